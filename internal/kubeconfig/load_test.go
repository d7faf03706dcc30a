package kubeconfig

import (
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubelease/lease/internal/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestLoadFields(t *testing.T) {
	dir := t.TempDir()
	file := writeTestFile(t, dir, "config", fmt.Sprintf(`apiVersion: v1
kind: Config
current-context: data
clusters:
- name: c-files
  cluster:
    server: https://files.example:6443
    certificate-authority: pki/ca.crt
    tls-server-name: api.internal
- name: c-data
  cluster:
    server: https://data.example
    certificate-authority-data: %s
    insecure-skip-tls-verify: true
- name: c-bare
  cluster:
    server: 10.0.0.1:6443
users:
- name: u-files
  user:
    tokenFile: secrets/token
    client-certificate: pki/client.crt
    client-key: /abs/client.key
- name: u-data
  user:
    token: %s
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: files
  context: {cluster: c-files, user: u-files, namespace: team-a}
- name: data
  context: {cluster: c-data, user: u-data}
- name: anonymous
  context: {cluster: c-bare}
`, b64("CA PEM"), secretToken, b64("CERT PEM"), b64("KEY PEM")))

	tests := []struct {
		context string
		want    *Config
	}{
		{"files", &Config{
			Host:            "https://files.example:6443",
			Namespace:       "team-a",
			CAFile:          filepath.Join(dir, "pki", "ca.crt"),
			ServerName:      "api.internal",
			BearerTokenFile: filepath.Join(dir, "secrets", "token"),
			CertFile:        filepath.Join(dir, "pki", "client.crt"),
			KeyFile:         "/abs/client.key",
		}},
		{"data", &Config{
			Host:        "https://data.example",
			CAData:      []byte("CA PEM"),
			Insecure:    true,
			BearerToken: secretToken,
			CertData:    []byte("CERT PEM"),
			KeyData:     []byte("KEY PEM"),
		}},
		{"", &Config{ // current-context: data
			Host:        "https://data.example",
			CAData:      []byte("CA PEM"),
			Insecure:    true,
			BearerToken: secretToken,
			CertData:    []byte("CERT PEM"),
			KeyData:     []byte("KEY PEM"),
		}},
		{"anonymous", &Config{Host: "https://10.0.0.1:6443"}},
	}
	for _, tt := range tests {
		t.Run("context="+tt.context, func(t *testing.T) {
			got, err := Load(file, tt.context)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got, "got %+v, want %+v", got, tt.want)
		})
	}
}

func TestLoadMerge(t *testing.T) {
	root := t.TempDir()
	dirA, dirB := filepath.Join(root, "a"), filepath.Join(root, "b")
	fileA := writeTestFile(t, dirA, "config", `current-context: ctx-a
clusters:
- name: shared
  cluster: {server: "https://a.example", certificate-authority: ca.crt}
users:
- name: shared
  user: {token: token-a}
contexts:
- name: ctx-a
  context: {cluster: shared, user: shared, namespace: ns-a}
- name: both
  context: {cluster: shared, user: only-b, namespace: from-a}
`)
	fileB := writeTestFile(t, dirB, "config", `current-context: ctx-b
clusters:
- name: shared
  cluster: {server: "https://b.example"}
- name: only-b
  cluster: {server: "https://only-b.example", certificate-authority: ca.crt}
users:
- name: shared
  user: {token: token-b}
- name: only-b
  user: {client-certificate: certs/client.crt, client-key: certs/client.key}
contexts:
- name: both
  context: {cluster: only-b, user: shared, namespace: from-b}
- name: ctx-b
  context: {cluster: only-b, user: only-b}
`)
	missing := filepath.Join(root, "missing")
	list := func(files ...string) string { return strings.Join(files, string(os.PathListSeparator)) }
	certB := &Config{CertFile: filepath.Join(dirB, "certs", "client.crt"), KeyFile: filepath.Join(dirB, "certs", "client.key")}

	tests := []struct {
		name, path, context string
		want                *Config
	}{
		{"a first: current-context from a", list(fileA, fileB), "",
			&Config{Host: "https://a.example", CAFile: filepath.Join(dirA, "ca.crt"), BearerToken: "token-a", Namespace: "ns-a"}},
		{"a first: a's context, cluster from a, user from b", list(fileA, fileB), "both",
			&Config{Host: "https://a.example", CAFile: filepath.Join(dirA, "ca.crt"), CertFile: certB.CertFile, KeyFile: certB.KeyFile, Namespace: "from-a"}},
		{"a first: entries only in b, paths against b's dir", list(fileA, fileB), "ctx-b",
			&Config{Host: "https://only-b.example", CAFile: filepath.Join(dirB, "ca.crt"), CertFile: certB.CertFile, KeyFile: certB.KeyFile}},
		{"b first: current-context from b", list(fileB, fileA), "",
			&Config{Host: "https://only-b.example", CAFile: filepath.Join(dirB, "ca.crt"), CertFile: certB.CertFile, KeyFile: certB.KeyFile}},
		{"b first: b's context and user", list(fileB, fileA), "both",
			&Config{Host: "https://only-b.example", CAFile: filepath.Join(dirB, "ca.crt"), BearerToken: "token-b", Namespace: "from-b"}},
		{"b first: a's context, b's cluster and user", list(fileB, fileA), "ctx-a",
			&Config{Host: "https://b.example", BearerToken: "token-b", Namespace: "ns-a"}},
		{"missing and empty entries skipped", list("", missing, fileA, "", fileB), "",
			&Config{Host: "https://a.example", CAFile: filepath.Join(dirA, "ca.crt"), BearerToken: "token-a", Namespace: "ns-a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(tt.path, tt.context)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got, "got %+v, want %+v", got, tt.want)
		})
	}
}

func TestLoadDefaultPath(t *testing.T) {
	home := t.TempDir()
	writeTestFile(t, home, ".kube/config", kubeconfigFixture("server: https://home.example", ""))
	envFile := writeTestFile(t, t.TempDir(), "config", kubeconfigFixture("server: https://env.example", ""))
	t.Setenv("HOME", home)

	t.Setenv("KUBECONFIG", envFile)
	cfg, err := Load("", "")
	require.NoError(t, err)
	assert.Equal(t, "https://env.example", cfg.Host, "got %q, want $KUBECONFIG's server", cfg.Host)

	t.Setenv("KUBECONFIG", "")
	cfg, err = Load("", "")
	require.NoError(t, err)
	assert.Equal(t, "https://home.example", cfg.Host, "got %q, want ~/.kube/config's server", cfg.Host)
}

func TestLoadNoFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	_, err := Load(missing+string(os.PathListSeparator)+filepath.Join(dir, "gone"), "")
	require.Error(t, err)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.True(t, strings.HasPrefix(err.Error(), "lease: "), "got %q, want prefix %q", err, "lease: ")
	assert.Contains(t, err.Error(), missing)
}

func TestLoadExecAndProxy(t *testing.T) {
	dir := t.TempDir()
	file := writeTestFile(t, dir, "config", `current-context: rel
clusters:
- name: c
  cluster: {server: "https://api.example", proxy-url: "socks5://proxy.example:1080"}
users:
- name: u-rel
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: bin/get-token
      args: [--cluster, prod]
      env:
      - {name: REGION, value: eu-1}
      - {name: EMPTY}
      provideClusterInfo: true
      installHint: see the wiki
      interactiveMode: IfAvailable
- name: u-up
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1, command: ../plugins/get-token, interactiveMode: Never}
- name: u-path
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1, command: aws}
- name: u-abs
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1, command: /usr/local/bin/get-token}
- name: u-token
  user:
    token: `+secretToken+`
    exec: {apiVersion: client.authentication.k8s.io/v1, command: aws}
contexts:
- {name: rel, context: {cluster: c, user: u-rel}}
- {name: up, context: {cluster: c, user: u-up}}
- {name: path, context: {cluster: c, user: u-path}}
- {name: abs, context: {cluster: c, user: u-abs}}
- {name: token, context: {cluster: c, user: u-token}}
`)
	const proxy = "socks5://proxy.example:1080"
	v1 := "client.authentication.k8s.io/v1"
	tests := []struct {
		context string
		want    *Config
	}{
		{"rel", &Config{Host: "https://api.example", ProxyURL: proxy, Exec: &transport.ExecConfig{
			Command:            filepath.Join(dir, "bin", "get-token"),
			Args:               []string{"--cluster", "prod"},
			Env:                []transport.ExecEnvVar{{Name: "REGION", Value: "eu-1"}, {Name: "EMPTY"}},
			APIVersion:         "client.authentication.k8s.io/v1beta1",
			ProvideClusterInfo: true,
			InstallHint:        "see the wiki",
		}}},
		{"up", &Config{Host: "https://api.example", ProxyURL: proxy,
			Exec: &transport.ExecConfig{Command: filepath.Join(filepath.Dir(dir), "plugins", "get-token"), APIVersion: v1}}},
		{"path", &Config{Host: "https://api.example", ProxyURL: proxy,
			Exec: &transport.ExecConfig{Command: "aws", APIVersion: v1}}},
		{"abs", &Config{Host: "https://api.example", ProxyURL: proxy,
			Exec: &transport.ExecConfig{Command: "/usr/local/bin/get-token", APIVersion: v1}}},
		// As kubectl: a static token wins over the plugin.
		{"token", &Config{Host: "https://api.example", ProxyURL: proxy, BearerToken: secretToken}},
	}
	for _, tt := range tests {
		t.Run(tt.context, func(t *testing.T) {
			got, err := Load(file, tt.context)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got, "got %+v, want %+v", got, tt.want)
		})
	}
}
