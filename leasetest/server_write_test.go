package leasetest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubelease/lease/internal/wire"
)

// Tests of the write rules: update, no-op update, create-on-update, delete
// preconditions, unknown fields.
func TestServerUpdate(t *testing.T) {
	s, c := newTestServer(t)
	l := c.create("default", "x")
	next := l.DeepCopy()
	next.Spec.HolderIdentity = ptr("b")
	next.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
	next.CreationTimestamp = metav1.Time{} // the server keeps its own
	r := c.must(http.MethodPut, itemPath("default", "x"), next)
	require.Equal(t, http.StatusOK, r.code, "body: %s", r.body)
	got := r.lease(t)
	assert.Equal(t, "b", got.Spec.Holder())
	assert.Greater(t, rvOf(t, got), rvOf(t, l))
	assert.Equal(t, got.ResourceVersion, s.ResourceVersion())
	assert.Equal(t, l.UID, got.UID)
	assert.Equal(t, l.CreationTimestamp, got.CreationTimestamp)

	// A PUT without uid updates too (the server fills it in).
	next = got.DeepCopy()
	next.UID = ""
	next.Spec.HolderIdentity = ptr("c")
	r = c.must(http.MethodPut, itemPath("default", "x"), next)
	require.Equal(t, http.StatusOK, r.code, "body: %s", r.body)
	assert.Equal(t, l.UID, r.lease(t).UID)
}

func TestServerUpdateErrors(t *testing.T) {
	s, c := newTestServer(t)
	l := c.create("default", "x")
	tests := []struct {
		name     string
		edit     func(*Lease)
		path     string
		code     int
		reason   metav1.StatusReason
		kind     string
		message  string
		contains string
	}{
		{
			name: "stale resourceVersion",
			edit: func(l *Lease) { l.ResourceVersion = "1" },
			code: 409, reason: metav1.StatusReasonConflict, kind: "leases",
			message: `Operation cannot be fulfilled on leases.coordination.k8s.io "x": the object has been modified; please apply your changes to the latest version and try again`,
		},
		{
			name: "no resourceVersion",
			edit: func(l *Lease) { l.ResourceVersion = "" },
			code: 422, reason: metav1.StatusReasonInvalid, kind: "leases",
			message: `leases.coordination.k8s.io "x" is invalid: metadata.resourceVersion: Invalid value: 0: must be specified for an update`,
		},
		{
			name: "other uid",
			edit: func(l *Lease) { l.UID = "0b9e5a2c-0000-4000-8000-000000000000" },
			code: 409, reason: metav1.StatusReasonConflict, kind: "leases",
			contains: "Precondition failed: UID in precondition: 0b9e5a2c-0000-4000-8000-000000000000, UID in object meta: " + string(l.UID),
		},
		{
			name: "invalid spec",
			edit: func(l *Lease) { l.Spec.LeaseDurationSeconds = ptr(int32(-3)) },
			code: 422, reason: metav1.StatusReasonInvalid, kind: "Lease",
			message: `Lease.coordination.k8s.io "x" is invalid: spec.leaseDurationSeconds: Invalid value: -3: must be greater than 0`,
		},
		{
			name: "name mismatch",
			edit: func(l *Lease) { l.Name = "y" },
			code: 400, reason: metav1.StatusReasonBadRequest,
			message: "the name of the object (y) does not match the name on the URL (x)",
		},
		{
			name: "namespace mismatch",
			edit: func(l *Lease) { l.Namespace = "kube-system" },
			code: 400, reason: metav1.StatusReasonBadRequest,
			message: "the namespace of the object (kube-system) does not match the namespace on the request (default)",
		},
		{
			name: "resourceVersion not a number",
			edit: func(l *Lease) { l.ResourceVersion = "abc" },
			code: 500, reason: "",
			contains: `strconv.ParseUint: parsing "abc": invalid syntax`,
		},
		{
			name: "conflict wins over invalid",
			edit: func(l *Lease) { l.ResourceVersion = "1"; l.Spec.LeaseDurationSeconds = ptr(int32(0)) },
			code: 409, reason: metav1.StatusReasonConflict, kind: "leases",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rv := s.ResourceVersion()
			next := l.DeepCopy()
			next.Spec.HolderIdentity = ptr("someone-else")
			tt.edit(next)
			r := c.must(http.MethodPut, itemPath("default", "x"), next)
			require.Equal(t, tt.code, r.code, "got %d, want %d; body: %s", r.code, tt.code, r.body)
			st := r.status(t)
			assert.Equal(t, tt.reason, st.Reason)
			if tt.kind != "" {
				require.NotNil(t, st.Details)
				assert.Equal(t, tt.kind, st.Details.Kind)
				assert.Equal(t, "x", st.Details.Name)
			}
			if tt.message != "" {
				assert.Equal(t, tt.message, st.Message)
			}
			assert.Contains(t, st.Message, tt.contains)
			assert.Equal(t, rv, s.ResourceVersion())
			got, ok := s.Get("default", "x")
			require.True(t, ok)
			assert.Equal(t, "a", got.Spec.Holder(), "a failed update must not change the lease")
		})
	}
}

func TestServerNoOpUpdate(t *testing.T) {
	s, c := newTestServer(t)
	l := c.create("default", "x")
	rv := s.ResourceVersion()

	// Identical (the TypeMeta, creationTimestamp and an equal time in
	// another zone do not matter).
	same := l.DeepCopy()
	same.TypeMeta = metav1.TypeMeta{}
	same.CreationTimestamp = metav1.Time{}
	same.Spec.RenewTime = &metav1.MicroTime{Time: l.Spec.RenewTime.In(time.FixedZone("x", 3600))}
	r := c.must(http.MethodPut, itemPath("default", "x"), same)
	require.Equal(t, http.StatusOK, r.code, "body: %s", r.body)
	assert.Equal(t, l.ResourceVersion, r.lease(t).ResourceVersion, "a no-op PUT keeps the resourceVersion")
	assert.Equal(t, rv, s.ResourceVersion(), "a no-op PUT does not bump the global resourceVersion")

	// Any client-settable change is not a no-op.
	edits := map[string]func(*Lease){
		"label":      func(l *Lease) { l.Labels = map[string]string{"k": "v"} },
		"annotation": func(l *Lease) { l.Annotations = map[string]string{"k": "v"} },
		"finalizer":  func(l *Lease) { l.Finalizers = []string{"example.com/f"} },
		"owner": func(l *Lease) {
			l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: "p", UID: "u"}}
		},
		"renewTime": func(l *Lease) {
			l.Spec.RenewTime = &metav1.MicroTime{Time: l.Spec.RenewTime.Add(time.Microsecond)}
		},
		"strategy": func(l *Lease) {
			l.Spec.Unknown = map[string]json.RawMessage{"strategy": json.RawMessage(`"OldestEmulationVersion"`)}
		},
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			cur, ok := s.Get("default", "x")
			require.True(t, ok)
			edit(cur)
			r := c.must(http.MethodPut, itemPath("default", "x"), cur)
			require.Equal(t, http.StatusOK, r.code, "body: %s", r.body)
			got := r.lease(t)
			assert.Greater(t, rvOf(t, got), rvOf(t, cur))
		})
	}
}

func TestServerPutAbsent(t *testing.T) {
	tests := []struct {
		name   string
		ns     string
		uid    string
		rv     string
		code   int
		reason metav1.StatusReason
		kind   string
	}{
		{name: "no uid no resourceVersion re-creates", ns: "default", code: 201},
		{name: "resourceVersion", ns: "default", rv: "150", code: 404, reason: metav1.StatusReasonNotFound, kind: "leases"},
		{name: "uid", ns: "default", uid: "0b9e5a2c-0000-4000-8000-000000000000", code: 409, reason: metav1.StatusReasonConflict, kind: "leases"},
		{name: "uid and resourceVersion", ns: "default", uid: "0b9e5a2c-0000-4000-8000-000000000000", rv: "150", code: 409, reason: metav1.StatusReasonConflict, kind: "leases"},
		{name: "missing namespace", ns: "nope", code: 404, reason: metav1.StatusReasonNotFound, kind: "namespaces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := newTestServer(t)
			body := leaseBody("x", validSpec())
			meta := body["metadata"].(map[string]any)
			if tt.uid != "" {
				meta["uid"] = tt.uid
			}
			if tt.rv != "" {
				meta["resourceVersion"] = tt.rv
			}
			r := c.must(http.MethodPut, itemPath(tt.ns, "x"), body)
			require.Equal(t, tt.code, r.code, "got %d, want %d; body: %s", r.code, tt.code, r.body)
			if tt.code == http.StatusCreated {
				l := r.lease(t)
				assert.NotEmpty(t, l.UID)
				assert.Equal(t, s.ResourceVersion(), l.ResourceVersion)
				return
			}
			st := r.status(t)
			assert.Equal(t, tt.reason, st.Reason)
			require.NotNil(t, st.Details)
			assert.Equal(t, tt.kind, st.Details.Kind)
			_, ok := s.Get(tt.ns, "x")
			assert.False(t, ok)
		})
	}
}

func TestServerDelete(t *testing.T) {
	tests := []struct {
		name    string
		body    func(l *Lease) any
		code    int
		reason  metav1.StatusReason
		message string
	}{
		{name: "no body", body: func(*Lease) any { return nil }, code: 200},
		{name: "empty options", body: func(*Lease) any { return map[string]any{"apiVersion": "v1", "kind": "DeleteOptions"} }, code: 200},
		{
			name: "matching preconditions",
			body: func(l *Lease) any {
				return wire.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &l.UID, ResourceVersion: &l.ResourceVersion}}
			},
			code: 200,
		},
		{
			name: "uid mismatch",
			body: func(l *Lease) any { return map[string]any{"preconditions": map[string]any{"uid": "other"}} },
			code: 409, reason: metav1.StatusReasonConflict,
			message: `Operation cannot be fulfilled on Lease.coordination.k8s.io "x": the UID in the precondition (other) does not match the UID in record (%UID%). The object might have been deleted and then recreated`,
		},
		{
			name: "resourceVersion mismatch",
			body: func(l *Lease) any {
				return map[string]any{"preconditions": map[string]any{"uid": string(l.UID), "resourceVersion": "1"}}
			},
			code: 409, reason: metav1.StatusReasonConflict,
			message: `Operation cannot be fulfilled on Lease.coordination.k8s.io "x": the ResourceVersion in the precondition (1) does not match the ResourceVersion in record (%RV%). The object might have been modified`,
		},
		{name: "garbage", body: func(*Lease) any { return "{" }, code: 400, reason: metav1.StatusReasonBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := newTestServer(t)
			l := c.create("default", "x")
			r := c.must(http.MethodDelete, itemPath("default", "x"), tt.body(l))
			require.Equal(t, tt.code, r.code, "got %d, want %d; body: %s", r.code, tt.code, r.body)
			st := r.status(t)
			if tt.code != http.StatusOK {
				assert.Equal(t, tt.reason, st.Reason)
				if tt.message != "" {
					want := strings.NewReplacer("%UID%", string(l.UID), "%RV%", l.ResourceVersion).Replace(tt.message)
					assert.Equal(t, want, st.Message)
					require.NotNil(t, st.Details)
					assert.Equal(t, "Lease", st.Details.Kind, "a DELETE precondition conflict names the Kind")
				}
				assert.Equal(t, l.ResourceVersion, s.ResourceVersion())
				_, ok := s.Get("default", "x")
				assert.True(t, ok)
				return
			}
			assert.Equal(t, metav1.StatusSuccess, st.Status)
			require.NotNil(t, st.Details)
			assert.Equal(t, metav1.StatusDetails{Name: "x", Group: "coordination.k8s.io", Kind: "leases", UID: l.UID}, *st.Details)
			assert.Greater(t, mustParse(t, s.ResourceVersion()), rvOf(t, l), "a DELETE bumps the global resourceVersion")
			_, ok := s.Get("default", "x")
			assert.False(t, ok)
		})
	}
}

func mustParse(t *testing.T, rv string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(rv, 10, 64)
	require.NoError(t, err)
	return v
}

func TestServerDeleteMissing(t *testing.T) {
	_, c := newTestServer(t)
	r := c.must(http.MethodDelete, itemPath("default", "x"), nil)
	require.Equal(t, http.StatusNotFound, r.code)
	st := r.status(t)
	require.NotNil(t, st.Details)
	assert.Equal(t, "leases", st.Details.Kind)
}

func TestServerRecreateGetsNewUIDAndLargerRV(t *testing.T) {
	s, c := newTestServer(t)
	first := c.create("default", "x")
	require.NoError(t, s.Delete("default", "x"))
	second := c.create("default", "x")
	assert.NotEqual(t, first.UID, second.UID)
	assert.Greater(t, rvOf(t, second), rvOf(t, first)+1, "the delete had a resourceVersion of its own")

	// One resourceVersion counter for the whole server.
	other := c.create("kube-system", "y")
	assert.Equal(t, rvOf(t, second)+1, rvOf(t, other))
}

func TestServerUnknownFields(t *testing.T) {
	s, c := newTestServer(t)
	sp := validSpec()
	sp["foo"] = map[string]any{"a": 1}
	sp["strategy"] = "OldestEmulationVersion"
	sp["preferredHolder"] = "b"
	body := leaseBody("x", sp)
	body["status"] = map[string]any{}
	body["metadata"].(map[string]any)["bar"] = 1
	body["metadata"].(map[string]any)["ownerReferences"] = []any{
		map[string]any{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u", "baz": true},
	}
	r := c.must(http.MethodPost, wire.Path("default", ""), body)
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)
	assert.Equal(t, []string{
		`299 - "unknown field \"metadata.bar\""`,
		`299 - "unknown field \"metadata.ownerReferences[0].baz\""`,
		`299 - "unknown field \"spec.foo\""`,
		`299 - "unknown field \"status\""`,
	}, r.header.Values("Warning"))

	got, ok := s.Get("default", "x")
	require.True(t, ok)
	assert.Equal(t, map[string]json.RawMessage{
		"strategy":        json.RawMessage(`"OldestEmulationVersion"`),
		"preferredHolder": json.RawMessage(`"b"`),
	}, got.Spec.Unknown, "known spec fields that the wire type does not model are kept, others dropped")
	require.Len(t, got.OwnerReferences, 1)

	// A renewal that carries them back is accepted without warnings, and
	// keeps them.
	got.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
	r = c.must(http.MethodPut, itemPath("default", "x"), got)
	require.Equal(t, http.StatusOK, r.code, "body: %s", r.body)
	assert.Empty(t, r.header.Values("Warning"))
	assert.Equal(t, got.Spec.Unknown, r.lease(t).Spec.Unknown)

	// A domain-prefixed strategy is accepted, and a null spec too.
	sp = validSpec()
	sp["strategy"] = "example.com/mine"
	r = c.must(http.MethodPost, wire.Path("default", ""), leaseBody("z", sp))
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)
	r = c.must(http.MethodPost, wire.Path("default", ""), `{"metadata":{"name":"n"},"spec":null}`)
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)

	// fieldValidation=Ignore drops without warning.
	body = leaseBody("y", map[string]any{"foo": 1})
	r = c.must(http.MethodPost, wire.Path("default", "")+"?fieldValidation=Ignore", body)
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)
	assert.Empty(t, r.header.Values("Warning"))
}

// With the CoordinatedLeaderElection gate off (the default, as on a real
// kube-apiserver 1.37), strategy and preferredHolder are dropped silently on
// create, and on update when the stored object does not have them.
func TestServerDropsGatedSpecFieldsByDefault(t *testing.T) {
	s := NewServer()
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		s.Close()
	})
	c := &testClient{t: t, hc: &http.Client{Transport: tr}, base: s.URL}
	sp := validSpec()
	sp["strategy"] = "OldestEmulationVersion"
	sp["preferredHolder"] = "b"
	r := c.must(http.MethodPost, wire.Path("default", ""), leaseBody("x", sp))
	if r.code != http.StatusCreated {
		t.Fatalf("create: got %d, want 201", r.code)
	}
	got, ok := s.Get("default", "x")
	if !ok {
		t.Fatal("created lease is absent")
	}
	if len(got.Spec.Unknown) != 0 {
		t.Errorf("stored gated spec fields: got %v, want none", got.Spec.Unknown)
	}
	if w := r.header.Values("Warning"); len(w) != 0 {
		t.Errorf("warnings: got %q, want none (the real server drops them silently)", w)
	}
}
