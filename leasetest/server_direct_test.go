package leasetest

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubelease/lease/internal/wire"
)

// newWireLease returns a valid Lease for direct access.
func newWireLease(ns, name, holder string) *Lease {
	now := metav1.NewMicroTime(time.Now())
	return &Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: LeaseSpec{
			HolderIdentity: &holder, LeaseDurationSeconds: ptr(int32(15)),
			AcquireTime: &now, RenewTime: &now, LeaseTransitions: ptr(int32(0)),
		},
	}
}

func TestServerPutAndGet(t *testing.T) {
	s, c := newTestServer(t)
	in := newWireLease("", "x", "a")
	in.UID = "ignored"
	in.ResourceVersion = "7"
	require.NoError(t, s.Put(in))
	assert.Equal(t, "", in.Namespace, "Put does not change its argument")

	got, ok := s.Get("default", "x")
	require.True(t, ok)
	assert.NotEqual(t, "ignored", string(got.UID))
	assert.Equal(t, s.ResourceVersion(), got.ResourceVersion)
	assert.Equal(t, wire.Kind, got.Kind)
	assert.False(t, got.CreationTimestamp.IsZero())
	assert.Equal(t, 0, got.Spec.RenewTime.Nanosecond()%1000, "stored at MicroTime precision")

	// Over HTTP it is the same object.
	assert.Equal(t, got, c.must(http.MethodGet, wire.Path("default", "x"), nil).lease(t))

	// Get returns a copy.
	got.Spec.HolderIdentity = ptr("mutated")
	again, _ := s.Get("default", "x")
	assert.Equal(t, "a", again.Spec.Holder())

	// Replace keeps the identity and bumps the resourceVersion...
	repl := newWireLease("default", "x", "b")
	require.NoError(t, s.Put(repl))
	replaced, _ := s.Get("default", "x")
	assert.Equal(t, again.UID, replaced.UID)
	assert.Equal(t, again.CreationTimestamp, replaced.CreationTimestamp)
	assert.Greater(t, rvOf(t, replaced), rvOf(t, again))

	// ...unless nothing changed.
	require.NoError(t, s.Put(replaced))
	same, _ := s.Get("default", "x")
	assert.Equal(t, replaced.ResourceVersion, same.ResourceVersion)
}

func TestServerPutErrors(t *testing.T) {
	s, _ := newTestServer(t)
	bad := newWireLease("default", "x", "a")
	bad.Spec.LeaseDurationSeconds = ptr(int32(0))
	err := s.Put(bad)
	require.Error(t, err)
	assert.True(t, apierrors.IsInvalid(err), "got %v, want Invalid", err)
	assert.Contains(t, err.Error(), "leasetest: ")

	err = s.Put(newWireLease("nope", "x", "a"))
	assert.True(t, apierrors.IsNotFound(err), "got %v, want NotFound", err)

	assert.Error(t, s.Put(nil))
	assert.Equal(t, "100", s.ResourceVersion(), "failed writes do not bump the resourceVersion")
}

func TestServerEdit(t *testing.T) {
	s, _ := newTestServer(t)
	require.NoError(t, s.Put(newWireLease("default", "x", "a")))
	before, _ := s.Get("default", "x")

	require.NoError(t, s.Edit("default", "x", func(l *Lease) {
		l.Labels = map[string]string{"team": "b"}
	}))
	after, _ := s.Get("default", "x")
	assert.Equal(t, map[string]string{"team": "b"}, after.Labels)
	assert.Greater(t, rvOf(t, after), rvOf(t, before))
	assert.Equal(t, before.Spec, after.Spec)

	// A no-op edit keeps the resourceVersion.
	require.NoError(t, s.Edit("default", "x", func(*Lease) {}))
	same, _ := s.Get("default", "x")
	assert.Equal(t, after.ResourceVersion, same.ResourceVersion)

	tests := []struct {
		name  string
		ns    string
		edit  func(*Lease)
		check func(error) bool
	}{
		{"absent", "kube-system", func(*Lease) {}, apierrors.IsNotFound},
		{"rename", "default", func(l *Lease) { l.Name = "y" }, func(err error) bool { return err != nil }},
		{"uid", "default", func(l *Lease) { l.UID = "other" }, func(err error) bool { return err != nil }},
		{"invalid", "default", func(l *Lease) { l.Spec.LeaseTransitions = ptr(int32(-1)) }, apierrors.IsInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Edit(tt.ns, "x", tt.edit)
			assert.True(t, tt.check(err), "unexpected error %v", err)
			cur, _ := s.Get("default", "x")
			assert.Equal(t, same, cur)
		})
	}
}

func TestServerDirectDelete(t *testing.T) {
	s, _ := newTestServer(t)
	require.NoError(t, s.Put(newWireLease("default", "x", "a")))
	rv := s.ResourceVersion()
	require.NoError(t, s.Delete("default", "x"))
	_, ok := s.Get("default", "x")
	assert.False(t, ok)
	assert.NotEqual(t, rv, s.ResourceVersion())
	err := s.Delete("default", "x")
	assert.True(t, apierrors.IsNotFound(err), "got %v, want NotFound", err)
}

func TestServerFinalizers(t *testing.T) {
	s, c := newTestServer(t)
	l := newWireLease("default", "x", "a")
	l.Finalizers = []string{"example.com/keep"}
	require.NoError(t, s.Put(l))

	r := c.must(http.MethodDelete, wire.Path("default", "x"), nil)
	require.Equal(t, http.StatusOK, r.code, "body: %s", r.body)
	deleting := r.lease(t)
	require.NotNil(t, deleting.DeletionTimestamp, "a Lease with finalizers is only marked")
	got, ok := s.Get("default", "x")
	require.True(t, ok)
	assert.Equal(t, deleting.ResourceVersion, got.ResourceVersion)

	// Adding a finalizer now is invalid.
	err := s.Edit("default", "x", func(l *Lease) { l.Finalizers = append(l.Finalizers, "example.com/more") })
	assert.True(t, apierrors.IsInvalid(err), "got %v, want Invalid", err)

	// Removing the last one deletes it.
	require.NoError(t, s.Edit("default", "x", func(l *Lease) { l.Finalizers = nil }))
	_, ok = s.Get("default", "x")
	assert.False(t, ok)
}

func TestServerChangeLog(t *testing.T) {
	s, c := newTestServer(t)
	created := c.create("default", "x")
	require.NoError(t, s.Edit("default", "x", func(l *Lease) { l.Labels = map[string]string{"a": "b"} }))
	require.NoError(t, s.Edit("default", "x", func(*Lease) {})) // no-op: no event
	require.NoError(t, s.Delete("default", "x"))

	s.mu.Lock()
	changes := append([]change(nil), s.changes...)
	s.mu.Unlock()
	var types, rvs []string
	for _, ch := range changes {
		types = append(types, ch.typ)
		rvs = append(rvs, ch.lease.ResourceVersion)
	}
	assert.Equal(t, []string{eventAdded, eventModified, eventDeleted}, types)
	assert.Equal(t, created.ResourceVersion, rvs[0])
	assert.Equal(t, s.ResourceVersion(), rvs[2], "a deletion has a resourceVersion of its own")
	assert.Less(t, mustParse(t, rvs[0]), mustParse(t, rvs[1]))
	assert.Less(t, mustParse(t, rvs[1]), mustParse(t, rvs[2]))
}

func TestServerGenerateName(t *testing.T) {
	_, c := newTestServer(t)
	body := leaseBody("", validSpec())
	body["metadata"].(map[string]any)["generateName"] = "job-"
	r := c.must(http.MethodPost, wire.Path("default", ""), body)
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)
	l := r.lease(t)
	assert.Regexp(t, `^job-[a-z0-9]{5}$`, l.Name)
}
