package leasetest

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubelease/lease/internal/wire"
)

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
