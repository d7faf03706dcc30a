package lease

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kubelease/lease/internal/transport"
	"github.com/kubelease/lease/internal/transport/exectest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"
)

// execStart is where the fake clocks of these tests start.
var execStart = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// pluginSetup is a plugin setup with its ExecConfig, unique to the test.
type pluginSetup struct {
	*exectest.Plugin
	exec *ExecConfig
}

// newPlugin returns a plugin setup with the given PLUGIN_* variables
// (name, value pairs) besides the counter and info files.
func newPlugin(t *testing.T, kv ...string) *pluginSetup {
	t.Helper()
	p := exectest.NewPlugin(t, kv...)
	ec := &ExecConfig{Command: p.Command}
	for _, v := range p.Env {
		ec.Env = append(ec.Env, ExecEnvVar(v))
	}
	return &pluginSetup{Plugin: p, exec: ec}
}

// leaseJSON is an answer that decodes as a Lease.
const leaseJSON = `{"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"job","namespace":"default","uid":"u","resourceVersion":"7"},"spec":{}}`

// newAuthServer serves leaseJSON to every request and sends each request's
// Authorization header to the returned channel, which buffers n of them.
// It is closed when the test ends.
func newAuthServer(t *testing.T, n int) (*httptest.Server, <-chan string) {
	t.Helper()
	auth := make(chan string, n)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth <- r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, leaseJSON)
	}))
	t.Cleanup(srv.Close)
	return srv, auth
}

// newExecLease makes a lease for cfg with a fake clock; its idle
// connections are closed at the end of the test.
func newExecLease(t *testing.T, cfg *Config) (*KubernetesLease, *clocktesting.FakeClock) {
	t.Helper()
	clk := clocktesting.NewFakeClock(execStart)
	l, err := NewKubernetesLease(Settings{Name: "job", Owner: "a", Config: cfg, Clock: clk})
	require.NoError(t, err)
	t.Cleanup(l.rest.httpc.CloseIdleConnections)
	return l, clk
}

func TestExecToken(t *testing.T) {
	for _, version := range []string{transport.ExecV1, transport.ExecV1beta1} {
		t.Run(version, func(t *testing.T) {
			srv, auth := newAuthServer(t, 4)
			p := newPlugin(t, "PLUGIN_TOKEN", "tok-"+version)
			p.exec.APIVersion = version
			l, _ := newExecLease(t, &Config{Host: srv.URL, Exec: p.exec})

			_, err := l.get(context.Background())
			require.NoError(t, err)
			assert.Equal(t, "Bearer tok-"+version, <-auth)
			assert.Equal(t, map[string]any{
				"apiVersion": version, "kind": "ExecCredential", "spec": map[string]any{"interactive": false},
			}, p.ExecInfo(t), "KUBERNETES_EXEC_INFO without cluster info")

			_, err = l.get(context.Background())
			require.NoError(t, err)
			assert.Equal(t, "Bearer tok-"+version, <-auth)
			assert.Equal(t, 1, p.Runs(t), "no expiry: the answer is cached")
		})
	}

}

func TestExecFailureFailsTheRequest(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a request was sent: %s %s", r.Method, r.URL)
	}))
	defer srv.Close()
	p := newPlugin(t, "PLUGIN_FAIL", "no credentials for you")
	l, _ := newExecLease(t, &Config{Host: srv.URL, Exec: p.exec})
	_, err := l.get(context.Background())
	require.Error(t, err)
	assert.Equal(t, fmt.Sprintf("lease: exec plugin %q: exit status 1; stderr: no credentials for you", p.exec.Command), err.Error())
}

func TestExecConfigInvalid(t *testing.T) {
	plugin := "/usr/local/bin/kubelease-plugin"
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no command", Config{Exec: &ExecConfig{}}, "lease: Config.Exec.Command is empty"},
		{"bad apiVersion", Config{Exec: &ExecConfig{Command: plugin, APIVersion: "client.authentication.k8s.io/v1alpha1"}},
			`lease: Config.Exec.APIVersion "client.authentication.k8s.io/v1alpha1" is not supported; use "client.authentication.k8s.io/v1" or "client.authentication.k8s.io/v1beta1"`},
		{"bad env name", Config{Exec: &ExecConfig{Command: plugin, Env: []ExecEnvVar{{"A", "1"}, {"B=C", secretToken}}}},
			`lease: Config.Exec.Env[1].Name "B=C" is not a valid variable name`},
		{"with token", Config{BearerToken: secretToken, Exec: &ExecConfig{Command: plugin}},
			"lease: Config.Exec cannot be combined with Config.BearerToken, BearerTokenFile or a client certificate (CertData, KeyData, CertFile, KeyFile)"},
		{"with token file", Config{BearerTokenFile: "/token", Exec: &ExecConfig{Command: plugin}}, "lease: Config.Exec cannot be combined"},
		{"with client certificate", Config{CertFile: "/c", KeyFile: "/k", Exec: &ExecConfig{Command: plugin}}, "lease: Config.Exec cannot be combined"},
		{"cluster CA file missing", Config{CAFile: "/nonexistent/ca.crt", Exec: &ExecConfig{Command: plugin, ProvideClusterInfo: true}},
			"lease: reading Config.CAFile: open /nonexistent/ca.crt: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Host = "https://api.example"
			_, err := NewKubernetesLease(Settings{Name: "job", Owner: "a", Config: &cfg})
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidSettings)
			assert.Contains(t, err.Error(), strings.Replace(tt.want, "lease: ", "lease: invalid settings: ", 1))
			assert.NotContains(t, err.Error(), secretToken)

			// With Config.HTTPClient the transport is not built: the
			// requests fail instead.
			cfg.HTTPClient = &http.Client{}
			l, err := NewKubernetesLease(Settings{Name: "job", Owner: "a", Config: &cfg})
			require.NoError(t, err)
			_, err = l.get(context.Background())
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestExecWithHTTPClient(t *testing.T) {
	srv, auth := newAuthServer(t, 1)
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()

	p := newPlugin(t, "PLUGIN_TOKEN", "tok")
	l, _ := newExecLease(t, &Config{Host: srv.URL, HTTPClient: hc, Exec: p.exec})
	_, err := l.get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "Bearer tok", <-auth, "the plugin's token is sent with a caller's client")

	certFile, keyFile := NewTLSCA(t, "kubelease test CA").ClientFiles(t, "client")
	p = newPlugin(t, "PLUGIN_MODE", "cert", "PLUGIN_CERT_FILE", certFile, "PLUGIN_KEY_FILE", keyFile)
	l, _ = newExecLease(t, &Config{Host: srv.URL, HTTPClient: hc, Exec: p.exec})
	_, err = l.get(context.Background())
	require.Error(t, err)
	assert.Equal(t, fmt.Sprintf("lease: exec plugin %q returned a client certificate and no token: a client certificate cannot be used with Config.HTTPClient", p.exec.Command), err.Error())
}

func TestExecClientCertificate(t *testing.T) {
	ca := NewTLSCA(t, "kubelease test CA")
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	peers := make(chan string, 8)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peers <- r.TLS.PeerCertificates[0].Subject.CommonName
		assert.Empty(t, r.Header.Get("Authorization"), "a certificate-only plugin sends no token")
		_, _ = io.WriteString(w, leaseJSON)
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Localhost(t)}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()

	certFile, keyFile := ca.ClientFiles(t, "client-1")
	p := newPlugin(t, "PLUGIN_MODE", "cert", "PLUGIN_CERT_FILE", certFile, "PLUGIN_KEY_FILE", keyFile,
		"PLUGIN_EXPIRES_AT", execStart.Add(time.Hour).Format(time.RFC3339))
	l, clk := newExecLease(t, &Config{Host: srv.URL, CAData: ca.PEM, Exec: p.exec})

	_, err := l.get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "client-1", <-peers)

	// The plugin would now hand out another certificate, but the answer
	// is cached until its expiry.
	ca.WriteClient(t, "client-2", certFile, keyFile)
	_, err = l.get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "client-1", <-peers)
	assert.Equal(t, 1, p.Runs(t))

	// At the expiry the plugin runs again, and the connection made with
	// the old certificate is replaced.
	clk.Step(time.Hour)
	_, err = l.get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "client-2", <-peers)
	assert.Equal(t, 2, p.Runs(t))

	// Without the plugin's certificate the server refuses the handshake.
	l2, _ := newExecLease(t, &Config{Host: srv.URL, CAData: ca.PEM})
	_, err = l2.get(context.Background())
	require.Error(t, err)
}
