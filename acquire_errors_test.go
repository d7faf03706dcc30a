package lease_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// What Acquire reports when the server refuses, fails, or answers with
// something that is not a Lease it can use: an error, never false.

func TestAcquireErrors(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(e *env, s *lease.Settings)
		wantCode int
		wantText string
		wantIs   error
	}{
		{"missing namespace is an error, not false", func(e *env, s *lease.Settings) { s.Namespace = "nope" }, 404, "namespaces", nil},
		{"unauthorized", func(e *env, s *lease.Settings) {
			e.srv.RequireToken("secret")
			s.Config = &lease.Config{Host: e.srv.URL, BearerToken: "wrong"}
		}, 401, "Unauthorized", nil},
		{"forbidden", func(e *env, s *lease.Settings) {
			e.srv.InjectFault(leasetest.Fault{Verb: "get", Status: http.StatusForbidden})
		}, 403, "Forbidden", nil},
		{"server error on write", func(e *env, s *lease.Settings) {
			e.srv.InjectFault(leasetest.Fault{Verb: "create", Status: http.StatusInternalServerError})
		}, 500, "InternalError", nil},
		{"plain-text 429", func(e *env, s *lease.Settings) {
			e.srv.InjectFault(leasetest.Fault{Verb: "get", Status: http.StatusTooManyRequests, PlainText: true, RetryAfter: "1"})
		}, 429, "Too many requests", nil},
		{"garbage body", func(e *env, s *lease.Settings) {
			e.srv.InjectFault(leasetest.Fault{Verb: "get", Status: 200, Body: []byte("<html>hello")})
		}, 0, "not a Lease", lease.ErrBadResponse},
		{"truncated body", func(e *env, s *lease.Settings) {
			e.srv.InjectFault(leasetest.Fault{Verb: "get", Status: 200, Body: []byte(`{"kind":"Lease","metadata":{"name":"job"`)})
		}, 0, "not a Lease", lease.ErrBadResponse},
		{"huge body", func(e *env, s *lease.Settings) {
			e.srv.InjectFault(leasetest.Fault{Verb: "get", Status: 200, Body: make([]byte, 2<<20)})
		}, 0, "larger than", lease.ErrBadResponse},
		{"someone else's object", func(e *env, s *lease.Settings) {
			e.srv.InjectFault(leasetest.Fault{Verb: "get", Status: 200,
				Body: []byte(`{"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"other","namespace":"default","uid":"u","resourceVersion":"5"},"spec":{}}`)})
		}, 0, `got default/other`, lease.ErrBadResponse},
		{"connection reset", func(e *env, s *lease.Settings) {
			e.srv.InjectFault(leasetest.Fault{Verb: "get", Reset: true})
		}, 0, "GET", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			s := lease.Settings{}
			tc.setup(e, &s)
			b := e.newLease("pod-b", func(ss *lease.Settings) {
				ss.Namespace = s.Namespace
				if s.Config != nil {
					ss.Config = s.Config
				}
			})
			ok, err := b.Acquire(e.ctx())
			require.Error(t, err)
			assert.False(t, ok)
			assert.False(t, b.CheckAlive())
			assert.Contains(t, err.Error(), tc.wantText)
			assert.Regexp(t, "^lease: ", err.Error())
			if tc.wantIs != nil {
				assert.ErrorIs(t, err, tc.wantIs)
			}
			if tc.wantCode != 0 {
				var apiErr *lease.APIError
				require.ErrorAs(t, err, &apiErr)
				assert.Equal(t, tc.wantCode, apiErr.StatusCode)
			}
		})
	}
}

func TestAcquireNotAKubernetesServer(t *testing.T) {
	tests := []struct {
		name    string
		handler http.Handler
	}{
		{"plain-text 404 everywhere", http.NotFoundHandler()},
		{"404 Status without details", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`))
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			l, err := lease.NewKubernetesLease(lease.Settings{Name: "job", Owner: "a", Config: &lease.Config{Host: srv.URL}})
			require.NoError(t, err)
			ok, err := l.Acquire(context.Background())
			assert.False(t, ok)
			var apiErr *lease.APIError
			require.ErrorAs(t, err, &apiErr, "a wrong Host must be an error, not false")
			assert.Equal(t, 404, apiErr.StatusCode)
		})
	}
}

func TestAcquirePost404IsAnError(t *testing.T) {
	e := newEnv(t)
	e.srv.InjectFault(leasetest.Fault{Verb: "create", Status: http.StatusNotFound})
	b := e.newLease("pod-b")
	ok, err := b.Acquire(e.ctx())
	assert.False(t, ok)
	var apiErr *lease.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.MethodPost, apiErr.Method)
	assert.Equal(t, 1, e.srv.Count("create"), "not retried as a race")
}

func TestAcquireNoOpAnswerIsBad(t *testing.T) {
	e := newEnv(t)
	rec := e.putRecord("", epoch, 15, 0)
	raw, err := json.Marshal(rec)
	require.NoError(t, err)
	e.srv.InjectFault(leasetest.Fault{Verb: "update", Status: 200, Body: raw})
	b := e.newLease("pod-b")
	ok, err := b.Acquire(e.ctx())
	assert.False(t, ok)
	assert.ErrorIs(t, err, lease.ErrBadResponse)
	assert.False(t, b.CheckAlive())
}
