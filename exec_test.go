package lease

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"
)

// execPlugin is testdata/execplugin, built once per test binary.
var execPlugin struct {
	once sync.Once
	path string
	skip string
	err  error
}

// ExecPluginPath returns the path of testdata/execplugin, built once per
// test binary (into the user's cache directory, keyed by the source and the
// Go version, so later runs reuse it). It skips t when the go command is
// not on $PATH. Exported for the external test package.
func ExecPluginPath(t testing.TB) string {
	t.Helper()
	execPlugin.once.Do(buildExecPlugin)
	if execPlugin.skip != "" {
		t.Skip(execPlugin.skip)
	}
	require.NoError(t, execPlugin.err)
	return execPlugin.path
}

func buildExecPlugin() {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		execPlugin.skip = "skipping: the exec plugin tests build testdata/execplugin and need the go command on $PATH"
		return
	}
	src, err := os.ReadFile(filepath.Join("testdata", "execplugin", "main.go"))
	if err != nil {
		execPlugin.err = err
		return
	}
	sum := sha256.Sum256(append(src, runtime.Version()+runtime.GOOS+runtime.GOARCH...))
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "kubelease-test", "execplugin-"+hex.EncodeToString(sum[:8]))
	path := filepath.Join(dir, "plugin")
	if runtime.GOOS == "windows" {
		path += ".exe"
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		execPlugin.path = path
		return
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		execPlugin.err = err
		return
	}
	tmp := path + ".tmp-" + strconv.Itoa(os.Getpid())
	out, err := exec.Command(goCmd, "build", "-o", tmp, "./testdata/execplugin").CombinedOutput()
	if err != nil {
		execPlugin.err = fmt.Errorf("go build ./testdata/execplugin: %v\n%s", err, out)
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		execPlugin.err = err
		return
	}
	execPlugin.path = path
}

// pluginToken is the token the plugin hands out in the failure tests; no
// error may contain it.
const pluginToken = "plugin-s3cr3t-tok"

// execStart is where the fake clocks of these tests start.
var execStart = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// pluginSetup is a plugin configuration with its own directory, so that its
// ExecConfig (and hence its cache entry) is unique to the test.
type pluginSetup struct {
	dir     string
	counter string // PLUGIN_COUNTER_FILE
	info    string // PLUGIN_INFO_FILE
	exec    *ExecConfig
}

// newPlugin returns a plugin setup with the given PLUGIN_* variables
// (name, value pairs) besides the counter and info files.
func newPlugin(t *testing.T, kv ...string) *pluginSetup {
	t.Helper()
	p := &pluginSetup{dir: t.TempDir()}
	p.counter = filepath.Join(p.dir, "runs")
	p.info = filepath.Join(p.dir, "info.json")
	p.exec = &ExecConfig{Command: ExecPluginPath(t), Env: []ExecEnvVar{
		{Name: "PLUGIN_COUNTER_FILE", Value: p.counter},
		{Name: "PLUGIN_INFO_FILE", Value: p.info},
	}}
	for i := 0; i+1 < len(kv); i += 2 {
		p.exec.Env = append(p.exec.Env, ExecEnvVar{Name: kv[i], Value: kv[i+1]})
	}
	return p
}

// runs is how many times the plugin has run.
func (p *pluginSetup) runs(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile(p.counter)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	require.NoError(t, err)
	return strings.Count(string(b), "\n")
}

// execInfo is the KUBERNETES_EXEC_INFO the plugin saw last.
func (p *pluginSetup) execInfo(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(p.info)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), "KUBERNETES_EXEC_INFO %s", b)
	return m
}

// authorizeOnce runs c.authorize on a fresh request and returns the
// Authorization header it set.
func authorizeOnce(c *credentials) (string, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://api.example/", nil)
	if err != nil {
		return "", err
	}
	err = c.authorize(req)
	return req.Header.Get("Authorization"), err
}

// leaseJSON is an answer that decodes as a Lease.
const leaseJSON = `{"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"job","namespace":"default","uid":"u","resourceVersion":"7"},"spec":{}}`

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
	for _, version := range []string{execV1, execV1beta1} {
		t.Run(version, func(t *testing.T) {
			auth := make(chan string, 4)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				auth <- r.Header.Get("Authorization")
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, leaseJSON)
			}))
			defer srv.Close()
			p := newPlugin(t, "PLUGIN_TOKEN", "tok-"+version)
			p.exec.APIVersion = version
			l, _ := newExecLease(t, &Config{Host: srv.URL, Exec: p.exec})

			_, err := l.get(context.Background())
			require.NoError(t, err)
			assert.Equal(t, "Bearer tok-"+version, <-auth)
			assert.Equal(t, map[string]any{
				"apiVersion": version, "kind": "ExecCredential", "spec": map[string]any{"interactive": false},
			}, p.execInfo(t), "KUBERNETES_EXEC_INFO without cluster info")

			_, err = l.get(context.Background())
			require.NoError(t, err)
			assert.Equal(t, "Bearer tok-"+version, <-auth)
			assert.Equal(t, 1, p.runs(t), "no expiry: the answer is cached")
		})
	}

	t.Run("empty APIVersion is v1", func(t *testing.T) {
		p := newPlugin(t, "PLUGIN_TOKEN", "tok")
		c := newCredentials(&Config{Host: "https://api.example", Exec: p.exec}, clocktesting.NewFakeClock(execStart))
		got, err := authorizeOnce(c)
		require.NoError(t, err)
		assert.Equal(t, "Bearer tok", got)
		assert.Equal(t, execV1, p.execInfo(t)["apiVersion"])
	})
}

func TestExecClusterInfo(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	require.NoError(t, os.WriteFile(caFile, []byte("CA PEM"), 0o600))
	p := newPlugin(t, "PLUGIN_TOKEN", "tok")
	p.exec.ProvideClusterInfo = true
	cfg := &Config{Host: "https://api.example:6443", CAFile: caFile, ServerName: "api.internal",
		Insecure: true, ProxyURL: "http://proxy.example:3128", Exec: p.exec}
	_, err := authorizeOnce(newCredentials(cfg, clocktesting.NewFakeClock(execStart)))
	require.NoError(t, err)
	assert.Equal(t, map[string]any{
		"apiVersion": execV1, "kind": "ExecCredential",
		"spec": map[string]any{"interactive": false, "cluster": map[string]any{
			"server":                     "https://api.example:6443",
			"certificate-authority-data": b64("CA PEM"),
			"tls-server-name":            "api.internal",
			"insecure-skip-tls-verify":   true,
			"proxy-url":                  "http://proxy.example:3128",
		}},
	}, p.execInfo(t))

	// Another cluster is another cache entry: the plugin runs again.
	cfg2 := *cfg
	cfg2.Host = "https://other.example"
	_, err = authorizeOnce(newCredentials(&cfg2, clocktesting.NewFakeClock(execStart)))
	require.NoError(t, err)
	assert.Equal(t, 2, p.runs(t))
}

func TestExecCachedUntilExpiry(t *testing.T) {
	expiry := execStart.Add(10 * time.Minute)
	p := newPlugin(t, "PLUGIN_TOKEN", "tok", "PLUGIN_EXPIRES_AT", expiry.Format(time.RFC3339))
	clk := clocktesting.NewFakeClock(execStart)
	c := newCredentials(&Config{Host: "https://api.example", Exec: p.exec}, clk)
	for range 3 {
		got, err := authorizeOnce(c)
		require.NoError(t, err)
		assert.Equal(t, "Bearer tok", got)
	}
	assert.Equal(t, 1, p.runs(t), "cached before the expiry")
	clk.Step(10*time.Minute - time.Second)
	_, err := authorizeOnce(c)
	require.NoError(t, err)
	assert.Equal(t, 1, p.runs(t), "still cached a second before the expiry")
	clk.Step(time.Second)
	_, err = authorizeOnce(c)
	require.NoError(t, err)
	assert.Equal(t, 2, p.runs(t), "run again at the expiry")
}

func TestExecCachedUntil401(t *testing.T) {
	tokFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokFile, []byte("tok-1"), 0o600))
	p := newPlugin(t, "PLUGIN_TOKEN_FILE", tokFile)
	clk := clocktesting.NewFakeClock(execStart)
	cfg := &Config{Host: "https://api.example", Exec: p.exec}
	a, b := newCredentials(cfg, clk), newCredentials(cfg, clk)

	for _, c := range []*credentials{a, b} {
		got, err := authorizeOnce(c)
		require.NoError(t, err)
		assert.Equal(t, "Bearer tok-1", got)
	}
	clk.Step(24 * time.Hour)
	_, err := authorizeOnce(a)
	require.NoError(t, err)
	assert.Equal(t, 1, p.runs(t), "without an expiry the answer is kept, for every lease")

	require.NoError(t, os.WriteFile(tokFile, []byte("tok-2"), 0o600))
	assert.True(t, a.refresh(), "a 401 with a plugin is retried")
	got, err := authorizeOnce(a)
	require.NoError(t, err)
	assert.Equal(t, "Bearer tok-2", got)
	assert.Equal(t, 2, p.runs(t), "run again after a 401")

	// b's 401 was for the answer a already replaced: no third run.
	assert.True(t, b.refresh())
	got, err = authorizeOnce(b)
	require.NoError(t, err)
	assert.Equal(t, "Bearer tok-2", got)
	assert.Equal(t, 2, p.runs(t), "a 401 for a stale answer does not drop the fresh one")
}

func TestExecNeverRunsConcurrently(t *testing.T) {
	p := newPlugin(t, "PLUGIN_TOKEN", "tok", "PLUGIN_SLEEP", "300ms")
	cfg := &Config{Host: "https://api.example", Exec: p.exec}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for range 3 { // three leases
		c := newCredentials(&Config{Host: cfg.Host, Exec: &ExecConfig{
			Command: p.exec.Command, Env: append([]ExecEnvVar(nil), p.exec.Env...)}}, clocktesting.NewFakeClock(execStart))
		for range 4 { // four requests each
			wg.Go(func() {
				got, err := authorizeOnce(c)
				if err == nil && got != "Bearer tok" {
					err = fmt.Errorf("got %q", got)
				}
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	assert.Equal(t, 1, p.runs(t), "one run for all leases and requests")
}

func TestExecWaitEndsWithTheRequest(t *testing.T) {
	p := newPlugin(t, "PLUGIN_TOKEN", "tok", "PLUGIN_SLEEP", "500ms")
	c := newCredentials(&Config{Host: "https://api.example", Exec: p.exec}, clocktesting.NewFakeClock(execStart))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://api.example/", nil)
	require.NoError(t, err)
	err = c.authorize(req)
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), fmt.Sprintf("lease: exec plugin %q: waiting for it", p.exec.Command))
	// The run goes on and its answer is kept for the next request.
	got, err := authorizeOnce(c)
	require.NoError(t, err)
	assert.Equal(t, "Bearer tok", got)
	assert.Equal(t, 1, p.runs(t))
}

func TestExecFailures(t *testing.T) {
	dir := t.TempDir()
	notExecutable := filepath.Join(dir, "not-executable")
	require.NoError(t, os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o600))
	status := func(s string) string {
		return `{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":` + s + `}`
	}
	tests := []struct {
		name    string
		env     []string // PLUGIN_* name, value pairs
		command string   // instead of the plugin
		hint    string
		timeout time.Duration
		want    string // after `lease: exec plugin "<command>": `
	}{
		{name: "exit status with stderr", env: []string{"PLUGIN_TOKEN", pluginToken, "PLUGIN_FAIL", "boom:\n  the cloud said no"},
			want: "exit status 1; stderr: boom: the cloud said no"},
		{name: "stderr is bounded", env: []string{"PLUGIN_TOKEN", pluginToken, "PLUGIN_FAIL", strings.Repeat("x", 5000)},
			want: "exit status 1; stderr: " + strings.Repeat("x", 200) + "..."},
		{name: "garbage on stdout", env: []string{"PLUGIN_STDOUT", "token=" + pluginToken},
			want: "standard output is not JSON (syntax error at byte 2); want an ExecCredential"},
		{name: "nothing on stdout", env: []string{"PLUGIN_STDOUT", ""},
			want: "printed nothing on standard output; want an ExecCredential"},
		{name: "not an object", env: []string{"PLUGIN_STDOUT", `["` + pluginToken + `"]`},
			want: "standard output is not an ExecCredential JSON object"},
		{name: "wrong apiVersion", env: []string{"PLUGIN_TOKEN", pluginToken, "PLUGIN_API_VERSION", execV1beta1},
			want: `returned apiVersion "client.authentication.k8s.io/v1beta1", want "client.authentication.k8s.io/v1" (Config.Exec.APIVersion)`},
		{name: "wrong kind", env: []string{"PLUGIN_STDOUT", `{"apiVersion":"client.authentication.k8s.io/v1","kind":"Secret","status":{"token":"` + pluginToken + `"}}`},
			want: `standard output has kind "Secret", want "ExecCredential"`},
		{name: "no status", env: []string{"PLUGIN_STDOUT", `{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential"}`},
			want: "ExecCredential has no status"},
		{name: "neither token nor certificate", env: []string{"PLUGIN_EXPIRES_IN", "1h"},
			want: "ExecCredential has neither status.token nor status.clientCertificateData"},
		{name: "certificate without key", env: []string{"PLUGIN_STDOUT", status(`{"token":"` + pluginToken + `","clientCertificateData":"x"}`)},
			want: "status.clientCertificateData and status.clientKeyData must be set together"},
		{name: "not PEM", env: []string{"PLUGIN_STDOUT", status(`{"clientCertificateData":"x","clientKeyData":"` + pluginToken + `"}`)},
			want: "status.clientCertificateData and status.clientKeyData are not a PEM certificate and its key: tls: failed to find any PEM data in certificate input"},
		{name: "bad expirationTimestamp", env: []string{"PLUGIN_TOKEN", pluginToken, "PLUGIN_EXPIRES_AT", "tomorrow"},
			want: `status.expirationTimestamp "tomorrow" is not an RFC 3339 time`},
		{name: "command not found, with install hint", command: "kubelease-no-such-plugin",
			hint: "Install it with:\n  go install example.com/kubelease-no-such-plugin@latest",
			want: "command not found; install hint: Install it with: go install example.com/kubelease-no-such-plugin@latest"},
		{name: "path not found", command: filepath.Join(dir, "missing"), want: "command not found"},
		{name: "not executable", command: notExecutable, want: "cannot run it: permission denied"},
		{name: "timeout", env: []string{"PLUGIN_TOKEN", pluginToken, "PLUGIN_SLEEP", "1m", "PLUGIN_FAIL", "slept"}, timeout: 300 * time.Millisecond,
			want: "did not finish within 300ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPlugin(t, tt.env...)
			if tt.command != "" {
				p.exec.Command = tt.command
			}
			p.exec.InstallHint = tt.hint
			if tt.timeout != 0 {
				old := execTimeout
				execTimeout = tt.timeout // read when the cache entry is made
				t.Cleanup(func() { execTimeout = old })
			}
			c := newCredentials(&Config{Host: "https://api.example", Exec: p.exec}, clocktesting.NewFakeClock(execStart))
			_, err := authorizeOnce(c)
			require.Error(t, err)
			want := fmt.Sprintf("lease: exec plugin %q: %s", p.exec.Command, tt.want)
			assert.Equal(t, want, err.Error())
			assert.NotContains(t, err.Error(), pluginToken, "the error holds the token")

			if tt.command == "" {
				// A failure is not cached: the next request runs it again.
				_, err = authorizeOnce(c)
				require.Error(t, err)
				assert.Equal(t, 2, p.runs(t))
			}
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
	auth := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth <- r.Header.Get("Authorization")
		_, _ = io.WriteString(w, leaseJSON)
	}))
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()

	p := newPlugin(t, "PLUGIN_TOKEN", "tok")
	l, _ := newExecLease(t, &Config{Host: srv.URL, HTTPClient: hc, Exec: p.exec})
	_, err := l.get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "Bearer tok", <-auth, "the plugin's token is sent with a caller's client")

	pki := newTestPKI(t)
	certFile, keyFile := pki.clientFiles(t, "client")
	p = newPlugin(t, "PLUGIN_MODE", "cert", "PLUGIN_CERT_FILE", certFile, "PLUGIN_KEY_FILE", keyFile)
	l, _ = newExecLease(t, &Config{Host: srv.URL, HTTPClient: hc, Exec: p.exec})
	_, err = l.get(context.Background())
	require.Error(t, err)
	assert.Equal(t, fmt.Sprintf("lease: exec plugin %q returned a client certificate and no token: a client certificate cannot be used with Config.HTTPClient", p.exec.Command), err.Error())
}

// testPKI is a CA that issues server and client certificates.
type testPKI struct {
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
	caPEM []byte
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubelease test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testPKI{ca: ca, caKey: key, caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate for cn and its key, PEM-encoded.
func (p *testPKI) issue(t *testing.T, cn string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// clientFiles writes a client certificate for cn and its key to files.
func (p *testPKI) clientFiles(t *testing.T, cn string) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	p.writeClient(t, cn, certFile, keyFile)
	return certFile, keyFile
}

func (p *testPKI) writeClient(t *testing.T, cn, certFile, keyFile string) {
	t.Helper()
	c, k := p.issue(t, cn, false)
	require.NoError(t, os.WriteFile(certFile, c, 0o600))
	require.NoError(t, os.WriteFile(keyFile, k, 0o600))
}

func TestExecClientCertificate(t *testing.T) {
	pki := newTestPKI(t)
	serverCert, serverKey := pki.issue(t, "api", true)
	pair, err := tls.X509KeyPair(serverCert, serverKey)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(pki.ca)
	peers := make(chan string, 8)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peers <- r.TLS.PeerCertificates[0].Subject.CommonName
		assert.Empty(t, r.Header.Get("Authorization"), "a certificate-only plugin sends no token")
		_, _ = io.WriteString(w, leaseJSON)
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()

	certFile, keyFile := pki.clientFiles(t, "client-1")
	p := newPlugin(t, "PLUGIN_MODE", "cert", "PLUGIN_CERT_FILE", certFile, "PLUGIN_KEY_FILE", keyFile,
		"PLUGIN_EXPIRES_AT", execStart.Add(time.Hour).Format(time.RFC3339))
	l, clk := newExecLease(t, &Config{Host: srv.URL, CAData: pki.caPEM, Exec: p.exec})

	_, err = l.get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "client-1", <-peers)

	// The plugin would now hand out another certificate, but the answer
	// is cached until its expiry.
	pki.writeClient(t, "client-2", certFile, keyFile)
	_, err = l.get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "client-1", <-peers)
	assert.Equal(t, 1, p.runs(t))

	// At the expiry the plugin runs again, and the connection made with
	// the old certificate is replaced.
	clk.Step(time.Hour)
	_, err = l.get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "client-2", <-peers)
	assert.Equal(t, 2, p.runs(t))

	// Without the plugin's certificate the server refuses the handshake.
	l2, _ := newExecLease(t, &Config{Host: srv.URL, CAData: pki.caPEM})
	_, err = l2.get(context.Background())
	require.Error(t, err)
}

func TestSharedTransportKey(t *testing.T) {
	p := newPlugin(t, "PLUGIN_TOKEN", "tok")
	base := Config{Host: "https://api.example", CAData: nil}
	get := func(cfg Config) http.RoundTripper {
		t.Helper()
		tr, err := sharedTransport(&cfg, 5*time.Second, time.Second)
		require.NoError(t, err)
		return tr
	}
	plain := get(base)
	assert.Same(t, plain, get(base), "the same setup shares a transport")

	withProxy := base
	withProxy.ProxyURL = "http://proxy-" + filepath.Base(p.dir) + ".example:3128"
	proxied := get(withProxy)
	assert.NotSame(t, plain, proxied, "ProxyURL is part of the key")
	assert.Same(t, proxied, get(withProxy))
	require.IsType(t, &http.Transport{}, proxied)
	u, err := proxied.(*http.Transport).Proxy(httptest.NewRequest(http.MethodGet, "https://api.example/", nil))
	require.NoError(t, err)
	assert.Equal(t, withProxy.ProxyURL, u.String())

	withExec := base
	withExec.Exec = p.exec
	execTr := get(withExec)
	assert.NotSame(t, plain, execTr, "the exec plugin is part of the key")
	require.IsType(t, &execTransport{}, execTr)
	assert.NotNil(t, execTr.(*execTransport).current().TLSClientConfig.GetClientCertificate)
	other := *p.exec
	other.Args = []string{"--other"}
	withOther := base
	withOther.Exec = &other
	assert.NotSame(t, execTr, get(withOther), "another ExecConfig, another transport")
	same := *p.exec
	withSame := base
	withSame.Exec = &same
	assert.Same(t, execTr, get(withSame), "an equal ExecConfig shares the transport")
}
