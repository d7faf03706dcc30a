package lease

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An answer that does not come from a Kubernetes API server (a proxy's HTML
// page, a web server's 404) asks whether Config.Host is the API server; a
// real API server's answers, including the plain-text 429 of priority and
// fairness, do not (issue 10, item 12).
func TestEdgesNonAPIAnswerHint(t *testing.T) {
	const statusNotFound = `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"leases.coordination.k8s.io \"job\" not found","reason":"NotFound","details":{"name":"job","group":"coordination.k8s.io","kind":"leases"},"code":404}`
	tests := []struct {
		name        string
		code        int
		contentType string
		body        string
		wantHint    bool
	}{
		{"proxy HTML 502", 502, "text/html; charset=utf-8", "<html><body>Bad Gateway</body></html>", true},
		{"HTML without content type", 403, "", "<!DOCTYPE html><html><body>Access denied</body></html>", true},
		{"web server 404", 404, "text/plain; charset=utf-8", "404 page not found\n", true},
		{"empty 404", 404, "", "", true},
		{"HTML 200", 200, "text/html", "<html><body>Welcome to nginx!</body></html>", true},
		{"priority and fairness 429", 429, "text/plain; charset=utf-8", "Too many requests, please try again later.\n", false},
		{"Status 404", 404, "application/json", statusNotFound, false},
		{"Status 500", 500, "application/json", `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"InternalError","code":500}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.contentType != "" {
					w.Header().Set("Content-Type", tc.contentType)
				} else {
					w.Header()["Content-Type"] = nil // no sniffing
				}
				w.WriteHeader(tc.code)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			l, err := NewKubernetesLease(Settings{Name: "job", Owner: "a", Config: &Config{Host: srv.URL}})
			require.NoError(t, err)
			defer l.rest.httpc.CloseIdleConnections()
			_, err = l.rest.do(context.Background(), http.MethodGet, l.path, nil)
			require.Error(t, err)
			hint := "is Config.Host " + srv.URL + " the Kubernetes API server?"
			if got := strings.Contains(err.Error(), hint); got != tc.wantHint {
				t.Errorf("got %q, want hint %q: %v", err, hint, tc.wantHint)
			}
			var apiErr *APIError
			if tc.code != 200 {
				require.True(t, errors.As(err, &apiErr), "got %v, want an *APIError", err)
				assert.Equal(t, tc.code, apiErr.StatusCode)
				assert.NotContains(t, apiErr.Message, "Config.Host", "Message is the server's")
			} else {
				assert.ErrorIs(t, err, ErrBadResponse)
			}
			assert.NotContains(t, err.Error(), "\n", "got %q, want one line", err)
		})
	}
}
