package lease

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{"120", maxRetryAfter, true},
		{"99999999999999999999999", 0, false},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{now.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{now.Add(time.Hour).Format(http.TimeFormat), maxRetryAfter, true},
	}
	for _, tc := range tests {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("parseRetryAfter(%q): got %v, %v, want %v, %v", tc.in, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestLostErrorText(t *testing.T) {
	cause := errors.New("boom")
	e := &LostError{Reason: LostConflict, Holder: "pod-b", Token: Token{"12", 3}, Err: cause}
	assert.Equal(t, `lease: lost tenure 12/3: conflict (holder now "pod-b"): boom`, e.Error())
	assert.ErrorIs(t, e, ErrLost)
	assert.ErrorIs(t, e, cause)
	assert.Equal(t, "lease: lost tenure 12/3: deadline", (&LostError{Reason: LostDeadline, Token: Token{"12", 3}}).Error())
}

func TestRequestHeadersAndWarnings(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.Header().Add("Warning", `299 - "unknown field \"spec.foo\""`)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"job","namespace":"default","uid":"u","resourceVersion":"7"},"spec":{}}`))
	}))
	defer srv.Close()
	var logs bytes.Buffer
	s := Settings{Name: "job", Owner: "a", Config: &Config{Host: srv.URL, BearerToken: "s3cret-token"},
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l, err := NewKubernetesLease(s)
	require.NoError(t, err)
	obj, err := l.get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "7", obj.ResourceVersion)
	assert.Equal(t, "Bearer s3cret-token", got.Get("Authorization"))
	assert.Regexp(t, regexp.MustCompile(`^kubelease/[^ ]+ \(`+runtime.GOOS+`/`+runtime.GOARCH+`\)$`), got.Get("User-Agent"))
	assert.Equal(t, "application/json", got.Get("Accept"))
	assert.Contains(t, logs.String(), "unknown field")
	assert.NotContains(t, logs.String(), "s3cret-token", "tokens are never logged")
}

func TestNonJSONErrorBodies(t *testing.T) {
	tests := []struct {
		name       string
		code       int
		body       string
		retryAfter string
		wantReason string
		wantMsg    string
		wantRetry  time.Duration
	}{
		{"plain-text 429", 429, "Too many requests, please try again later.\n", "2", "TooManyRequests", "Too many requests, please try again later.", 2 * time.Second},
		{"html 502", 502, "<html><body>bad gateway</body></html>", "", "InternalError", "<html><body>bad gateway</body></html>", 0},
		{"empty 504", 504, "", "", "Timeout", "", 0},
		{"status with retryAfterSeconds", 500, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"ServerTimeout","code":500,"details":{"retryAfterSeconds":4}}`, "", "ServerTimeout", "", 4 * time.Second},
		{"long binary body", 500, strings.Repeat("\x00\xff", 500), "", "InternalError", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.WriteHeader(tc.code)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			l, err := NewKubernetesLease(Settings{Name: "job", Owner: "a", Config: &Config{Host: srv.URL}})
			require.NoError(t, err)
			_, err = l.get(context.Background())
			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tc.code, apiErr.StatusCode)
			assert.Equal(t, tc.wantReason, string(apiErr.Reason))
			if tc.wantMsg != "" {
				assert.Equal(t, tc.wantMsg, apiErr.Message)
			}
			assert.LessOrEqual(t, len(apiErr.Message), 210, "messages are bounded")
			assert.Equal(t, tc.wantRetry, apiErr.RetryAfter)
		})
	}
}
