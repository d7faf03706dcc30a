package transport

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubelease/lease/internal/transport/exectest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
)

// pluginToken is the token the plugin hands out in the failure tests; no
// error may contain it.
const pluginToken = "plugin-s3cr3t-tok"

// execStart is where the fake clocks of these tests start.
var execStart = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

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

// newCredentials returns the credentials of cfg, which must be valid.
func newCredentials(t *testing.T, cfg *Config, clk clock.PassiveClock) *Credentials {
	t.Helper()
	c, err := NewCredentials(cfg, clk, nil)
	require.NoError(t, err)
	return c
}

// authorizeOnce runs c.Authorize on a fresh request and returns the
// Authorization header it set.
func authorizeOnce(c *Credentials) (string, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://api.example/", nil)
	if err != nil {
		return "", err
	}
	err = c.Authorize(req)
	return req.Header.Get("Authorization"), err
}

func TestExecEmptyAPIVersionIsV1(t *testing.T) {
	p := newPlugin(t, "PLUGIN_TOKEN", "tok")
	c := newCredentials(t, &Config{Host: "https://api.example", Exec: p.exec}, clocktesting.NewFakeClock(execStart))
	got, err := authorizeOnce(c)
	require.NoError(t, err)
	assert.Equal(t, "Bearer tok", got)
	assert.Equal(t, ExecV1, p.ExecInfo(t)["apiVersion"])
}

func TestExecClusterInfo(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	require.NoError(t, os.WriteFile(caFile, []byte("CA PEM"), 0o600))
	p := newPlugin(t, "PLUGIN_TOKEN", "tok")
	p.exec.ProvideClusterInfo = true
	cfg := &Config{Host: "https://api.example:6443", CAFile: caFile, ServerName: "api.internal",
		Insecure: true, ProxyURL: "http://proxy.example:3128", Exec: p.exec}
	_, err := authorizeOnce(newCredentials(t, cfg, clocktesting.NewFakeClock(execStart)))
	require.NoError(t, err)
	assert.Equal(t, map[string]any{
		"apiVersion": ExecV1, "kind": "ExecCredential",
		"spec": map[string]any{"interactive": false, "cluster": map[string]any{
			"server":                     "https://api.example:6443",
			"certificate-authority-data": b64("CA PEM"),
			"tls-server-name":            "api.internal",
			"insecure-skip-tls-verify":   true,
			"proxy-url":                  "http://proxy.example:3128",
		}},
	}, p.ExecInfo(t))

	// Another cluster is another cache entry: the plugin runs again.
	cfg2 := *cfg
	cfg2.Host = "https://other.example"
	_, err = authorizeOnce(newCredentials(t, &cfg2, clocktesting.NewFakeClock(execStart)))
	require.NoError(t, err)
	assert.Equal(t, 2, p.Runs(t))
}

func TestExecCachedUntilExpiry(t *testing.T) {
	expiry := execStart.Add(10 * time.Minute)
	p := newPlugin(t, "PLUGIN_TOKEN", "tok", "PLUGIN_EXPIRES_AT", expiry.Format(time.RFC3339))
	clk := clocktesting.NewFakeClock(execStart)
	c := newCredentials(t, &Config{Host: "https://api.example", Exec: p.exec}, clk)
	for range 3 {
		got, err := authorizeOnce(c)
		require.NoError(t, err)
		assert.Equal(t, "Bearer tok", got)
	}
	assert.Equal(t, 1, p.Runs(t), "cached before the expiry")
	clk.Step(10*time.Minute - time.Second)
	_, err := authorizeOnce(c)
	require.NoError(t, err)
	assert.Equal(t, 1, p.Runs(t), "still cached a second before the expiry")
	clk.Step(time.Second)
	_, err = authorizeOnce(c)
	require.NoError(t, err)
	assert.Equal(t, 2, p.Runs(t), "run again at the expiry")
}

func TestExecCachedUntil401(t *testing.T) {
	tokFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokFile, []byte("tok-1"), 0o600))
	p := newPlugin(t, "PLUGIN_TOKEN_FILE", tokFile)
	clk := clocktesting.NewFakeClock(execStart)
	cfg := &Config{Host: "https://api.example", Exec: p.exec}
	a, b := newCredentials(t, cfg, clk), newCredentials(t, cfg, clk)

	for _, c := range []*Credentials{a, b} {
		got, err := authorizeOnce(c)
		require.NoError(t, err)
		assert.Equal(t, "Bearer tok-1", got)
	}
	clk.Step(24 * time.Hour)
	_, err := authorizeOnce(a)
	require.NoError(t, err)
	assert.Equal(t, 1, p.Runs(t), "without an expiry the answer is kept, for every lease")

	require.NoError(t, os.WriteFile(tokFile, []byte("tok-2"), 0o600))
	assert.True(t, a.Refresh(), "a 401 with a plugin is retried")
	got, err := authorizeOnce(a)
	require.NoError(t, err)
	assert.Equal(t, "Bearer tok-2", got)
	assert.Equal(t, 2, p.Runs(t), "run again after a 401")

	// b's 401 was for the answer a already replaced: no third run.
	assert.True(t, b.Refresh())
	got, err = authorizeOnce(b)
	require.NoError(t, err)
	assert.Equal(t, "Bearer tok-2", got)
	assert.Equal(t, 2, p.Runs(t), "a 401 for a stale answer does not drop the fresh one")
}

func TestExecNeverRunsConcurrently(t *testing.T) {
	p := newPlugin(t, "PLUGIN_TOKEN", "tok", "PLUGIN_SLEEP", "300ms")
	cfg := &Config{Host: "https://api.example", Exec: p.exec}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for range 3 { // three leases
		c := newCredentials(t, &Config{Host: cfg.Host, Exec: &ExecConfig{
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
	assert.Equal(t, 1, p.Runs(t), "one run for all leases and requests")
}

func TestExecWaitEndsWithTheRequest(t *testing.T) {
	p := newPlugin(t, "PLUGIN_TOKEN", "tok", "PLUGIN_SLEEP", "500ms")
	c := newCredentials(t, &Config{Host: "https://api.example", Exec: p.exec}, clocktesting.NewFakeClock(execStart))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://api.example/", nil)
	require.NoError(t, err)
	err = c.Authorize(req)
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), fmt.Sprintf("lease: exec plugin %q: waiting for it", p.exec.Command))
	// The run goes on and its answer is kept for the next request.
	got, err := authorizeOnce(c)
	require.NoError(t, err)
	assert.Equal(t, "Bearer tok", got)
	assert.Equal(t, 1, p.Runs(t))
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
		{name: "wrong apiVersion", env: []string{"PLUGIN_TOKEN", pluginToken, "PLUGIN_API_VERSION", ExecV1beta1},
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
			c := newCredentials(t, &Config{Host: "https://api.example", Exec: p.exec}, clocktesting.NewFakeClock(execStart))
			_, err := authorizeOnce(c)
			require.Error(t, err)
			want := fmt.Sprintf("lease: exec plugin %q: %s", p.exec.Command, tt.want)
			assert.Equal(t, want, err.Error())
			assert.NotContains(t, err.Error(), pluginToken, "the error holds the token")

			if tt.command == "" {
				// A failure is not cached: the next request runs it again.
				_, err = authorizeOnce(c)
				require.Error(t, err)
				assert.Equal(t, 2, p.Runs(t))
			}
		})
	}
}
