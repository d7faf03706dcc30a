package leasetest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
	"github.com/kubelease/lease/leasetest"
)

// authzDo sends one request with the bearer token tok ("" for none) and
// returns the status code and body.
func authzDo(t *testing.T, srv *leasetest.Server, tok, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, data
}

func authzLease(name string) *leasetest.Lease {
	l := &leasetest.Lease{}
	l.APIVersion, l.Kind, l.Name = wire.APIVersion, wire.Kind, name
	return l
}

func TestServerAddUserForbidden(t *testing.T) {
	srv := leasetest.NewServerT(t)
	srv.RequireToken("admin")
	srv.AddUser("reader", "get", "list")
	srv.AddUser("nobody")
	item, coll := wire.Path("default", "x"), wire.Path("default", "")

	// Allowed verbs go through, though the token is not RequireToken's.
	code, body := authzDo(t, srv, "reader", http.MethodGet, item, nil)
	assert.Equal(t, http.StatusNotFound, code, "%s", body)
	code, body = authzDo(t, srv, "reader", http.MethodGet, coll, nil)
	assert.Equal(t, http.StatusOK, code, "%s", body)

	tests := []struct {
		name, tok, method, path string
		body                    any
		wantName, wantMessage   string
	}{
		{"create has no name", "reader", http.MethodPost, coll, authzLease("x"), "",
			`leases.coordination.k8s.io is forbidden: User "system:serviceaccount:default:leasetest-user-1" cannot create resource "leases" in API group "coordination.k8s.io" in the namespace "default"`},
		{"get by a user with no verbs", "nobody", http.MethodGet, item, nil, "x",
			`leases.coordination.k8s.io "x" is forbidden: User "system:serviceaccount:default:leasetest-user-2" cannot get resource "leases" in API group "coordination.k8s.io" in the namespace "default"`},
		{"delete", "reader", http.MethodDelete, item, nil, "x",
			`leases.coordination.k8s.io "x" is forbidden: User "system:serviceaccount:default:leasetest-user-1" cannot delete resource "leases" in API group "coordination.k8s.io" in the namespace "default"`},
		{"list at the cluster scope", "nobody", http.MethodGet, "/apis/coordination.k8s.io/v1/leases", nil, "",
			`leases.coordination.k8s.io is forbidden: User "system:serviceaccount:default:leasetest-user-2" cannot list resource "leases" in API group "coordination.k8s.io" at the cluster scope`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := authzDo(t, srv, tc.tok, tc.method, tc.path, tc.body)
			require.Equal(t, http.StatusForbidden, code, "%s", body)
			var st metav1.Status
			require.NoError(t, json.Unmarshal(body, &st))
			assert.Equal(t, metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, st.TypeMeta)
			assert.Equal(t, metav1.StatusFailure, st.Status)
			assert.Equal(t, metav1.StatusReasonForbidden, st.Reason)
			assert.Equal(t, int32(http.StatusForbidden), st.Code)
			assert.Equal(t, tc.wantMessage, st.Message)
			assert.Equal(t, &metav1.StatusDetails{Name: tc.wantName, Group: "coordination.k8s.io", Kind: "leases"}, st.Details)
		})
	}

	// Unknown tokens are still unauthenticated; the admin keeps full access.
	code, body = authzDo(t, srv, "stranger", http.MethodGet, item, nil)
	assert.Equal(t, http.StatusUnauthorized, code, "%s", body)
	code, body = authzDo(t, srv, "admin", http.MethodPost, coll, authzLease("x"))
	assert.Equal(t, http.StatusCreated, code, "%s", body)
	code, body = authzDo(t, srv, "reader", http.MethodGet, item, nil)
	assert.Equal(t, http.StatusOK, code, "%s", body)
	_, ok := srv.Get("default", "x")
	assert.True(t, ok)
}

func TestServerAddUserWithoutRequireToken(t *testing.T) {
	srv := leasetest.NewServerT(t)
	srv.AddUser("reader", "get")
	coll := wire.Path("default", "")

	code, body := authzDo(t, srv, "reader", http.MethodPost, coll, authzLease("x"))
	assert.Equal(t, http.StatusForbidden, code, "%s", body)
	// Anyone else is the admin: no token, or another one.
	code, body = authzDo(t, srv, "", http.MethodPost, coll, authzLease("x"))
	assert.Equal(t, http.StatusCreated, code, "%s", body)
	code, body = authzDo(t, srv, "other", http.MethodPost, coll, authzLease("y"))
	assert.Equal(t, http.StatusCreated, code, "%s", body)
	// Health endpoints are not Lease resources.
	code, body = authzDo(t, srv, "reader", http.MethodGet, "/readyz", nil)
	assert.Equal(t, http.StatusOK, code, "%s", body)

	// AddUser again replaces the verbs; "*" allows every one.
	srv.AddUser("reader", "get", "create")
	code, body = authzDo(t, srv, "reader", http.MethodPost, coll, authzLease("z"))
	assert.Equal(t, http.StatusCreated, code, "%s", body)
	code, body = authzDo(t, srv, "reader", http.MethodDelete, wire.Path("default", "z"), nil)
	assert.Equal(t, http.StatusForbidden, code, "%s", body)
	srv.AddUser("reader", "*")
	code, body = authzDo(t, srv, "reader", http.MethodDelete, wire.Path("default", "z"), nil)
	assert.Equal(t, http.StatusOK, code, "%s", body)
}

func TestServerAddUserLease(t *testing.T) {
	srv := leasetest.NewServerT(t)
	srv.RequireToken("admin")
	srv.AddUser("no-delete", "get", "create", "update")
	cfg := srv.Config()
	cfg.BearerToken = "no-delete"
	l, err := lease.NewKubernetesLease(lease.Settings{Name: "job", Owner: "a", Config: cfg})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ok, err := l.Acquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)

	// Release needs delete: the 403 is an error that says so.
	err = l.Release(ctx)
	var apiErr *lease.APIError
	require.True(t, errors.As(err, &apiErr), "Release without delete: got %v, want a *lease.APIError", err)
	assert.Equal(t, http.StatusForbidden, apiErr.StatusCode)
	assert.Equal(t, http.MethodDelete, apiErr.Method)
	assert.Contains(t, apiErr.Message, `cannot delete resource "leases"`)
	assert.False(t, l.CheckAlive())
	_, ok = srv.Get("default", "job")
	assert.True(t, ok, "the lease stays when its Release is forbidden")
}
