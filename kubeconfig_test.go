package lease

import (
	"context"
	"encoding/base64"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/kubelease/lease/internal/transport/exectest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// secretToken is the token in the fixtures; no error may ever contain it.
const secretToken = "s3cr3t-token"

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// writeTestFile writes content to dir/name, making the directories.
func writeTestFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

// LoadKubeconfig hands every field internal/kubeconfig reads over to the
// Config, and its errors unchanged (internal/kubeconfig's tests cover the
// reading itself).
func TestLoadKubeconfig(t *testing.T) {
	dir := t.TempDir()
	file := writeTestFile(t, dir, "config", `current-context: static
clusters:
- name: c
  cluster:
    server: https://api.example:6443
    certificate-authority: pki/ca.crt
    certificate-authority-data: `+b64("CA PEM")+`
    insecure-skip-tls-verify: true
    tls-server-name: api.internal
    proxy-url: http://proxy.example:3128
users:
- name: static
  user:
    token: `+secretToken+`
    tokenFile: secrets/token
    client-certificate: pki/client.crt
    client-certificate-data: `+b64("CERT PEM")+`
    client-key: pki/client.key
    client-key-data: `+b64("KEY PEM")+`
- name: exec
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: bin/get-token
      args: [--cluster, prod]
      env: [{name: REGION, value: eu-1}]
      provideClusterInfo: true
      installHint: see the wiki
- name: exec-bare
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1, command: aws}
contexts:
- {name: static, context: {cluster: c, user: static, namespace: team-a}}
- {name: exec, context: {cluster: c, user: exec}}
- {name: exec-bare, context: {cluster: c, user: exec-bare}}
`)
	cluster := Config{
		Host:       "https://api.example:6443",
		CAFile:     filepath.Join(dir, "pki", "ca.crt"),
		CAData:     []byte("CA PEM"),
		Insecure:   true,
		ServerName: "api.internal",
		ProxyURL:   "http://proxy.example:3128",
	}
	static := cluster
	static.Namespace = "team-a"
	static.BearerToken = secretToken
	static.BearerTokenFile = filepath.Join(dir, "secrets", "token")
	static.CertFile = filepath.Join(dir, "pki", "client.crt")
	static.CertData = []byte("CERT PEM")
	static.KeyFile = filepath.Join(dir, "pki", "client.key")
	static.KeyData = []byte("KEY PEM")
	withExec := cluster
	withExec.Exec = &ExecConfig{
		Command:            filepath.Join(dir, "bin", "get-token"),
		Args:               []string{"--cluster", "prod"},
		Env:                []ExecEnvVar{{"REGION", "eu-1"}},
		APIVersion:         "client.authentication.k8s.io/v1beta1",
		ProvideClusterInfo: true,
		InstallHint:        "see the wiki",
	}
	bareExec := cluster
	bareExec.Exec = &ExecConfig{Command: "aws", APIVersion: "client.authentication.k8s.io/v1"}

	tests := []struct {
		contextName string
		want        *Config
	}{
		{"", &static},
		{"exec", &withExec},
		{"exec-bare", &bareExec},
	}
	for _, tt := range tests {
		t.Run("context="+tt.contextName, func(t *testing.T) {
			got, err := LoadKubeconfig(file, tt.contextName)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got, "got %+v, want %+v", got, tt.want)
		})
	}

	t.Run("error", func(t *testing.T) {
		cfg, err := LoadKubeconfig(file, "nope")
		require.Error(t, err)
		assert.Nil(t, cfg)
		want := `lease: kubeconfig: context "nope" not found (read ` + file + ")"
		assert.Equal(t, want, err.Error(), "got %q, want %q", err, want)

		missing := filepath.Join(dir, "missing")
		_, err = LoadKubeconfig(missing, "")
		assert.ErrorIs(t, err, fs.ErrNotExist)
		assert.Equal(t, "lease: kubeconfig: no such file: "+missing, err.Error())
	})
}

// DefaultConfig hands what internal/kubeconfig finds over to the Config,
// and its errors unchanged (internal/kubeconfig's tests cover the search).
func TestDefaultConfig(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBECONFIG", writeTestFile(t, t.TempDir(), "config", `current-context: ctx
clusters: [{name: c, cluster: {server: "https://env.example"}}]
users: [{name: u, user: {token: `+secretToken+`}}]
contexts: [{name: ctx, context: {cluster: c, user: u, namespace: team-a}}]
`))
	cfg, err := DefaultConfig()
	require.NoError(t, err)
	want := &Config{Host: "https://env.example", Namespace: "team-a", BearerToken: secretToken}
	assert.Equal(t, want, cfg, "got %+v, want %+v", cfg, want)

	t.Setenv("KUBECONFIG", "")
	cfg, err = DefaultConfig()
	require.Error(t, err)
	assert.Nil(t, cfg)
	want2 := "lease: no Kubernetes configuration found; tried $KUBECONFIG (not set), in-cluster ($KUBERNETES_SERVICE_HOST not set), " +
		filepath.Join(home, ".kube", "config") + " (does not exist)"
	assert.Equal(t, want2, err.Error(), "got %q, want %q", err, want2)
}

// A relative exec command runs from the kubeconfig's directory, whatever
// the working directory.
func TestLoadKubeconfigExecRuns(t *testing.T) {
	plugin := exectest.PluginPath(t)
	srv, auth := newAuthServer(t, 1)
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "bin"), 0o700))
	require.NoError(t, os.Symlink(plugin, filepath.Join(dir, "bin", "get-token")))
	file := writeTestFile(t, dir, "config", `current-context: ctx
clusters:
- {name: c, cluster: {server: "`+srv.URL+`"}}
users:
- name: u
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: bin/get-token
      env: [{name: PLUGIN_TOKEN, value: from-kubeconfig-plugin}]
contexts:
- {name: ctx, context: {cluster: c, user: u}}
`)
	cfg, err := LoadKubeconfig(file, "")
	require.NoError(t, err)
	l, _ := newExecLease(t, cfg)
	_, err = l.get(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "Bearer from-kubeconfig-plugin", <-auth)
}
