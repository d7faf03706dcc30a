package lease

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubelease/lease/internal/transport"
	"github.com/kubelease/lease/internal/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"
)

// A BearerTokenFile whose first read fails or yields no token makes
// NewKubernetesLease fail, naming the file, instead of sending requests
// anonymously (issue 10, item 11).
func TestEdgesTokenFileFirstReadFails(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte(" \n"), 0o600))
	tests := []struct {
		name string
		file string
		want string
	}{
		{"missing", filepath.Join(dir, "missing"), "lease: invalid settings: Config.BearerTokenFile: open " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{"empty", empty, "lease: invalid settings: Config.BearerTokenFile " + empty + " holds no token"},
		{"directory", dir, "lease: invalid settings: Config.BearerTokenFile: read " + dir + ": is a directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := validSettings()
			s.Config.BearerTokenFile = tc.file
			l, err := NewKubernetesLease(s)
			require.Error(t, err, "got a lease, want an error")
			assert.Nil(t, l)
			assert.ErrorIs(t, err, ErrInvalidSettings)
			assert.True(t, strings.HasPrefix(err.Error(), tc.want), "got %q, want it to start with %q", err, tc.want)
		})
	}
}

// A later re-read that fails keeps the previous token and is logged once
// per run of failures, not every minute (item 11).
func TestEdgesTokenRereadFailureWarnsOnce(t *testing.T) {
	srv, auth := newAuthServer(t, 16)
	file := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(file, []byte("tok-1"), 0o600))
	var logs bytes.Buffer
	clk := clocktesting.NewFakeClock(execStart)
	l, err := NewKubernetesLease(Settings{Name: "job", Owner: "a", Clock: clk,
		Config: &Config{Host: srv.URL, BearerTokenFile: file},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	defer l.rest.httpc.CloseIdleConnections()

	steps := []struct {
		name      string
		change    func()
		wantAuth  string
		wantWarns int
	}{
		{"file removed", func() { require.NoError(t, os.Remove(file)) }, "Bearer tok-1", 1},
		{"still removed", func() {}, "Bearer tok-1", 1},
		{"emptied", func() { require.NoError(t, os.WriteFile(file, nil, 0o600)) }, "Bearer tok-1", 1},
		{"rotated", func() { require.NoError(t, os.WriteFile(file, []byte("tok-2"), 0o600)) }, "Bearer tok-2", 1},
		{"removed again", func() { require.NoError(t, os.Remove(file)) }, "Bearer tok-2", 2},
	}
	for _, st := range steps {
		st.change()
		clk.Step(transport.TokenRereadEvery)
		_, err := l.get(context.Background())
		require.NoError(t, err, st.name)
		if got := <-auth; got != st.wantAuth {
			t.Errorf("%s: got Authorization %q, want %q", st.name, got, st.wantAuth)
		}
		if got := strings.Count(logs.String(), "level=WARN"); got != st.wantWarns {
			t.Errorf("%s: got %d warnings, want %d; log:\n%s", st.name, got, st.wantWarns, logs.String())
		}
	}
	assert.Contains(t, logs.String(), file, "the warning names the file")
	assert.NotContains(t, logs.String(), "tok-", "tokens are never logged")
}

// unauthorizedJSON is the Status a kube-apiserver sends with a 401.
const unauthorizedJSON = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`

// Every 401 says which credential was sent, and where, for plain requests
// and watches alike, and never holds the credential (item 11).
func TestEdgesUnauthorizedNamesCredential(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, unauthorizedJSON)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	defer srv.Close()

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(secretToken), 0o600))
	ca := NewTLSCA(t, "kubelease test CA")
	certFile, keyFile := ca.ClientFiles(t, "alice")
	certPEM, keyPEM := ca.Client(t, "bob")

	tests := []struct {
		name string
		cfg  Config
		want string // what the error says was sent
	}{
		{"none", Config{}, "no credentials"},
		{"static token", Config{BearerToken: secretToken}, "bearer token Config.BearerToken"},
		{"token file", Config{BearerTokenFile: tokenFile}, "bearer token from file " + tokenFile},
		{"client certificate file", Config{CertFile: certFile, KeyFile: keyFile}, "client certificate from file " + certFile},
		{"client certificate data", Config{CertData: certPEM, KeyData: keyPEM}, "client certificate Config.CertData"},
		{"token file and certificate", Config{BearerTokenFile: tokenFile, CertFile: certFile, KeyFile: keyFile},
			"bearer token from file " + tokenFile + " and client certificate from file " + certFile},
		{"custom HTTP client", Config{BearerToken: secretToken, CertFile: certFile, KeyFile: keyFile,
			HTTPClient: srv.Client()}, "bearer token Config.BearerToken"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Host, cfg.Insecure = srv.URL, true
			checkUnauthorized(t, &cfg, "(sent "+tc.want+" to "+srv.URL+")")
		})
	}
	t.Run("exec plugin", func(t *testing.T) {
		p := newPlugin(t, "PLUGIN_TOKEN", secretToken)
		checkUnauthorized(t, &Config{Host: srv.URL, Insecure: true, Exec: p.exec},
			`(sent credentials from exec plugin "`+p.exec.Command+`" to `+srv.URL+")")
	})
	t.Run("host with user info and prefix", func(t *testing.T) {
		host := strings.Replace(srv.URL, "https://", "https://user:"+secretToken+"@", 1) + "/k8s/clusters/c-1"
		checkUnauthorized(t, &Config{Host: host, Insecure: true},
			"(sent no credentials to "+srv.URL+"/k8s/clusters/c-1)")
	})
}

// checkUnauthorized makes a GET and a watch with cfg against a server that
// answers 401, and checks that both errors end with suffix.
func checkUnauthorized(t *testing.T, cfg *Config, suffix string) {
	t.Helper()
	l, err := NewKubernetesLease(Settings{Name: "job", Owner: "a", Config: cfg, Clock: clocktesting.NewFakeClock(execStart)})
	require.NoError(t, err)
	defer l.rest.httpc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, getErr := l.get(ctx)
	watchErr := l.watch(ctx, "", func(string, *wire.Lease) bool { return false })
	for name, err := range map[string]error{"get": getErr, "watch": watchErr} {
		var apiErr *APIError
		require.True(t, errors.As(err, &apiErr), "%s: got %v, want an *APIError", name, err)
		assert.Equal(t, http.StatusUnauthorized, apiErr.StatusCode, "%s", name)
		assert.True(t, strings.HasSuffix(err.Error(), ": 401 Unauthorized: Unauthorized "+suffix),
			"%s: got %q, want it to end with %q", name, err, suffix)
		assert.NotContains(t, err.Error(), secretToken, "%s: the error holds the token", name)
	}
}

// waitFor bounds the waits of these tests.
const waitFor = 10 * time.Second
