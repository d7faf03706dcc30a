package kubeconfig

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// secretToken is the token in the fixtures; no error may ever contain it.
const secretToken = "s3cr3t-token"

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

func TestLoadErrors(t *testing.T) {
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
			cfg, err := Load(file, tt.context)
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

func TestLoadIgnoresUnusedRefusedEntries(t *testing.T) {
	// The fixture's user "gke" has an auth-provider, but context "ctx" does
	// not use it.
	file := writeTestFile(t, t.TempDir(), "config", kubeconfigFixture("server: https://prod.example", ""))
	cfg, err := Load(file, "ctx")
	require.NoError(t, err)
	want := &Config{Host: "https://prod.example", BearerToken: secretToken}
	assert.Equal(t, want, cfg, "got %+v, want %+v", cfg, want)
}

// The auth-provider refusal points at what is supported instead (item 12).
func TestEdgesAuthProviderPointsAtExecPlugins(t *testing.T) {
	tests := []struct {
		name, provider string
	}{
		{"gcp", "{name: gcp}"},
		{"oidc", "{name: oidc, config: {id-token: " + secretToken + "}}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := writeTestFile(t, t.TempDir(), "config",
				kubeconfigFixture("server: https://prod.example", "auth-provider: "+tc.provider))
			_, err := Load(file, "")
			require.Error(t, err)
			want := "lease: kubeconfig " + file + `: user "alice": auth-provider is not supported; use an exec credential plugin (gke-gcloud-auth-plugin, kubelogin) or a token`
			assert.Equal(t, want, err.Error(), "got %q, want %q", err, want)
			assert.NotContains(t, err.Error(), secretToken, "got %q: the error holds the token", err)
		})
	}
}
