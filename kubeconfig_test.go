package lease

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// secretToken is the token in the fixtures; no error may ever contain it.
const secretToken = "s3cr3t-token"

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestLoadKubeconfigFields(t *testing.T) {
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
			got, err := LoadKubeconfig(file, tt.context)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got, "got %+v, want %+v", got, tt.want)
		})
	}
}

func TestLoadKubeconfigMerge(t *testing.T) {
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
			got, err := LoadKubeconfig(tt.path, tt.context)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got, "got %+v, want %+v", got, tt.want)
		})
	}
}

func TestLoadKubeconfigDefaultPath(t *testing.T) {
	home := t.TempDir()
	writeTestFile(t, home, ".kube/config", kubeconfigFixture("server: https://home.example", ""))
	envFile := writeTestFile(t, t.TempDir(), "config", kubeconfigFixture("server: https://env.example", ""))
	t.Setenv("HOME", home)

	t.Setenv("KUBECONFIG", envFile)
	cfg, err := LoadKubeconfig("", "")
	require.NoError(t, err)
	assert.Equal(t, "https://env.example", cfg.Host, "got %q, want $KUBECONFIG's server", cfg.Host)

	t.Setenv("KUBECONFIG", "")
	cfg, err = LoadKubeconfig("", "")
	require.NoError(t, err)
	assert.Equal(t, "https://home.example", cfg.Host, "got %q, want ~/.kube/config's server", cfg.Host)
}

func TestLoadKubeconfigNoFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	_, err := LoadKubeconfig(missing+string(os.PathListSeparator)+filepath.Join(dir, "gone"), "")
	require.Error(t, err)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.True(t, strings.HasPrefix(err.Error(), "lease: "), "got %q, want prefix %q", err, "lease: ")
	assert.Contains(t, err.Error(), missing)
}

// kubeconfigFixture is a kubeconfig whose current context "ctx" uses
// cluster "prod" and user "alice" (token secretToken), with extra lines
// (indented by the caller's YAML, one field per line) in each.
func kubeconfigFixture(clusterExtra, userExtra string) string {
	indent := func(s string) string {
		if s == "" {
			return ""
		}
		return "    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n"
	}
	return `current-context: ctx
clusters:
- name: prod
  cluster:
` + indent(clusterExtra) + `users:
- name: alice
  user:
    token: ` + secretToken + "\n" + indent(userExtra) + `- name: gke
  user:
    auth-provider: {name: gcp}
contexts:
- name: ctx
  context: {cluster: prod, user: alice}
- name: no-cluster
  context: {user: alice}
- name: ghost-cluster
  context: {cluster: ghost, user: alice}
- name: ghost-user
  context: {cluster: prod, user: ghost}
`
}

func TestLoadKubeconfigErrors(t *testing.T) {
	const server = "server: https://prod.example"
	tests := []struct {
		name    string
		yaml    string
		context string
		want    []string // fragments the error must contain, besides the file
	}{
		{"auth-provider", kubeconfigFixture(server, "auth-provider: {name: oidc, config: {id-token: "+secretToken+"}}"), "",
			[]string{`user "alice": auth-provider is not supported; use an exec credential plugin (gke-gcloud-auth-plugin, kubelogin) or a token`}},
		{"exec interactiveMode Always", kubeconfigFixture(server, "exec: {apiVersion: client.authentication.k8s.io/v1, command: aws, interactiveMode: Always}"), "",
			[]string{`user "alice": exec: interactiveMode Always needs a terminal, and a lease's plugin runs without one; use IfAvailable or Never`}},
		{"exec unknown interactiveMode", kubeconfigFixture(server, "exec: {apiVersion: client.authentication.k8s.io/v1, command: aws, interactiveMode: Sometimes}"), "",
			[]string{`user "alice": exec: interactiveMode "Sometimes" is not Never, IfAvailable or Always`}},
		{"exec without command", kubeconfigFixture(server, "exec: {apiVersion: client.authentication.k8s.io/v1}"), "",
			[]string{`user "alice": exec: command is not set`}},
		{"exec without apiVersion", kubeconfigFixture(server, "exec: {command: aws}"), "",
			[]string{`user "alice": exec: apiVersion is not set; use client.authentication.k8s.io/v1 or client.authentication.k8s.io/v1beta1`}},
		{"exec v1alpha1", kubeconfigFixture(server, "exec: {apiVersion: client.authentication.k8s.io/v1alpha1, command: aws}"), "",
			[]string{`user "alice": exec: apiVersion "client.authentication.k8s.io/v1alpha1" is not supported; use client.authentication.k8s.io/v1 or client.authentication.k8s.io/v1beta1`}},
		{"exec env without name", kubeconfigFixture(server, "exec: {apiVersion: client.authentication.k8s.io/v1, command: aws, env: [{value: "+secretToken+"}]}"), "",
			[]string{`user "alice": exec: env[0]: name is not set`}},
		{"exec of wrong type", kubeconfigFixture(server, "exec: aws"), "",
			[]string{"not a kubeconfig file: field users.user.exec: unexpected string"}},
		{"username", kubeconfigFixture(server, "username: admin"), "",
			[]string{`user "alice": username: basic auth is not supported`}},
		{"password", kubeconfigFixture(server, "password: "+secretToken), "",
			[]string{`user "alice": password: basic auth is not supported`}},
		{"as", kubeconfigFixture(server, "as: bob"), "",
			[]string{`user "alice": as: impersonation is not supported`}},
		{"as-uid", kubeconfigFixture(server, "as-uid: '1'"), "",
			[]string{`user "alice": as-uid: impersonation is not supported`}},
		{"as-groups", kubeconfigFixture(server, "as-groups: [admins]"), "",
			[]string{`user "alice": as-groups: impersonation is not supported`}},
		{"as-user-extra", kubeconfigFixture(server, "as-user-extra: {k: [v]}"), "",
			[]string{`user "alice": as-user-extra: impersonation is not supported`}},
		{"proxy-url scheme", kubeconfigFixture(server+"\nproxy-url: ftp://user:"+secretToken+"@proxy:21", ""), "",
			[]string{`cluster "prod": proxy-url "ftp://user:xxxxx@proxy:21" has scheme "ftp"; want http, https, socks5 or socks5h`}},
		{"proxy-url without host", kubeconfigFixture(server+"\nproxy-url: http://", ""), "",
			[]string{`cluster "prod": proxy-url "http://" has no host`}},
		{"no server", kubeconfigFixture("tls-server-name: x", ""), "",
			[]string{`cluster "prod": server is not set`}},
		{"bad certificate-authority-data", kubeconfigFixture(server+"\ncertificate-authority-data: '%%%'", ""), "",
			[]string{`cluster "prod": certificate-authority-data is not valid base64`}},
		{"bad client-certificate-data", kubeconfigFixture(server, "client-certificate-data: '%%%'"), "",
			[]string{`user "alice": client-certificate-data is not valid base64`}},
		{"bad client-key-data", kubeconfigFixture(server, "client-key-data: '"+secretToken+"!'"), "",
			[]string{`user "alice": client-key-data is not valid base64`}},
		{"refused user of the named context", kubeconfigFixture(server, "") + `- name: gke-ctx
  context: {cluster: prod, user: gke}
`, "gke-ctx", []string{`user "gke": auth-provider is not supported`}},
		{"missing context", kubeconfigFixture(server, ""), "nope",
			[]string{`context "nope" not found (read `}},
		{"context without cluster", kubeconfigFixture(server, ""), "no-cluster",
			[]string{`context "no-cluster": cluster is not set`}},
		{"missing cluster", kubeconfigFixture(server, ""), "ghost-cluster",
			[]string{`context "ghost-cluster": cluster "ghost" not found (read `}},
		{"missing user", kubeconfigFixture(server, ""), "ghost-user",
			[]string{`context "ghost-user": user "ghost" not found (read `}},
		{"no current-context", "clusters: []\n", "",
			[]string{"no context given and no current-context set (read "}},
		{"bad YAML", "users:\n- name: alice\n  user:\n    token: " + secretToken + "\n   bad: [unclosed\n", "",
			[]string{"invalid YAML"}},
		{"not a kubeconfig", "clusters: 5\n", "",
			[]string{"not a kubeconfig file: field clusters: unexpected number"}},
		{"wrong type", "users: [{name: alice, user: {token: [" + secretToken + "]}}]\n", "",
			[]string{"not a kubeconfig file: field users.user.token: unexpected array"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeTestFile(t, t.TempDir(), "config", tt.yaml)
			cfg, err := LoadKubeconfig(file, tt.context)
			require.Error(t, err, "got config %+v, want an error", cfg)
			msg := err.Error()
			assert.True(t, strings.HasPrefix(msg, "lease: kubeconfig"), "got %q, want prefix %q", msg, "lease: kubeconfig")
			assert.Contains(t, msg, file, "got %q, want the file named", msg)
			for _, w := range tt.want {
				assert.Contains(t, msg, w, "got %q, want it to contain %q", msg, w)
			}
			assert.NotContains(t, msg, secretToken, "got %q: the error holds the token", msg)
		})
	}
}

func TestLoadKubeconfigIgnoresUnusedRefusedEntries(t *testing.T) {
	// The fixture's user "gke" has an auth-provider, but context "ctx" does
	// not use it.
	file := writeTestFile(t, t.TempDir(), "config", kubeconfigFixture("server: https://prod.example", ""))
	cfg, err := LoadKubeconfig(file, "ctx")
	require.NoError(t, err)
	want := &Config{Host: "https://prod.example", BearerToken: secretToken}
	assert.Equal(t, want, cfg, "got %+v, want %+v", cfg, want)
}

func TestDefaultConfig(t *testing.T) {
	tests := []struct {
		name       string
		kubeconfig string // "set", "missing", "broken" or "" (unset)
		inCluster  bool
		homeConfig bool
		wantHost   string
		wantErr    []string
	}{
		{"$KUBECONFIG first", "set", true, true, "https://env.example", nil},
		{"in-cluster before home", "", true, true, "https://10.0.0.1:443", nil},
		{"$KUBECONFIG files missing: no in-cluster", "missing", true, true, "", []string{"no file named by $KUBECONFIG exists (", "unset KUBECONFIG or point it at an existing file"}},
		{"home last", "", false, true, "https://home.example", nil},
		{"$KUBECONFIG files missing: no home", "missing", false, true, "", []string{"no file named by $KUBECONFIG exists (", "unset KUBECONFIG or point it at an existing file"}},
		{"broken $KUBECONFIG is not skipped", "broken", true, true, "", []string{"invalid YAML"}},
		{"nothing", "", false, false, "", []string{"lease: no Kubernetes configuration found; tried $KUBECONFIG (not set), in-cluster ($KUBERNETES_SERVICE_HOST not set), ", ".kube/config (does not exist)"}},
		{"nothing, $KUBECONFIG missing", "missing", false, false, "", []string{"lease: kubeconfig: no file named by $KUBECONFIG exists ("}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home, other := t.TempDir(), t.TempDir()
			t.Setenv("HOME", home)
			if tt.homeConfig {
				writeTestFile(t, home, ".kube/config", kubeconfigFixture("server: https://home.example", ""))
			}
			switch tt.kubeconfig {
			case "set":
				t.Setenv("KUBECONFIG", writeTestFile(t, other, "config", kubeconfigFixture("server: https://env.example", "")))
			case "missing":
				t.Setenv("KUBECONFIG", filepath.Join(other, "missing"))
			case "broken":
				t.Setenv("KUBECONFIG", writeTestFile(t, other, "config", "clusters: [\n"))
			default:
				t.Setenv("KUBECONFIG", "")
			}
			fakeServiceAccount(t, "")
			t.Setenv("POD_NAMESPACE", "")
			t.Setenv("KUBERNETES_SERVICE_HOST", "")
			t.Setenv("KUBERNETES_SERVICE_PORT", "")
			if tt.inCluster {
				t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
				t.Setenv("KUBERNETES_SERVICE_PORT", "443")
			}

			cfg, err := DefaultConfig()
			if tt.wantErr != nil {
				require.Error(t, err, "got config %+v, want an error", cfg)
				for _, w := range tt.wantErr {
					assert.Contains(t, err.Error(), w, "got %q, want it to contain %q", err, w)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantHost, cfg.Host, "got %q, want %q", cfg.Host, tt.wantHost)
		})
	}
}

func TestLoadKubeconfigExecAndProxy(t *testing.T) {
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
		{"rel", &Config{Host: "https://api.example", ProxyURL: proxy, Exec: &ExecConfig{
			Command:            filepath.Join(dir, "bin", "get-token"),
			Args:               []string{"--cluster", "prod"},
			Env:                []ExecEnvVar{{"REGION", "eu-1"}, {"EMPTY", ""}},
			APIVersion:         "client.authentication.k8s.io/v1beta1",
			ProvideClusterInfo: true,
			InstallHint:        "see the wiki",
		}}},
		{"up", &Config{Host: "https://api.example", ProxyURL: proxy,
			Exec: &ExecConfig{Command: filepath.Join(filepath.Dir(dir), "plugins", "get-token"), APIVersion: v1}}},
		{"path", &Config{Host: "https://api.example", ProxyURL: proxy,
			Exec: &ExecConfig{Command: "aws", APIVersion: v1}}},
		{"abs", &Config{Host: "https://api.example", ProxyURL: proxy,
			Exec: &ExecConfig{Command: "/usr/local/bin/get-token", APIVersion: v1}}},
		// As kubectl: a static token wins over the plugin.
		{"token", &Config{Host: "https://api.example", ProxyURL: proxy, BearerToken: secretToken}},
	}
	for _, tt := range tests {
		t.Run(tt.context, func(t *testing.T) {
			got, err := LoadKubeconfig(file, tt.context)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got, "got %+v, want %+v", got, tt.want)
		})
	}
}

// A relative exec command runs from the kubeconfig's directory, whatever
// the working directory.
func TestLoadKubeconfigExecRuns(t *testing.T) {
	plugin := ExecPluginPath(t)
	auth := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth <- r.Header.Get("Authorization")
		_, _ = io.WriteString(w, leaseJSON)
	}))
	defer srv.Close()
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
