package leasetest

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Tests of the write rules of updates: preconditions, no-op updates,
// create-on-update.
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
