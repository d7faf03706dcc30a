package kubeconfig

// A fuzz target for Load, which reads what users' kubeconfig files hold.
// It asserts properties of the result, not only the absence of panics.
// Seeds are both added here with f.Add and committed under
// testdata/fuzz/FuzzLoad/.
//
// Run it with:
//
//	go test -run '^$' -fuzz '^FuzzLoad$' -fuzztime 60s -parallel 2 ./internal/kubeconfig

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/yaml"
)

// fuzzKubeconfigSeeds are kubeconfig files and the context to load.
var fuzzKubeconfigSeeds = []struct {
	yaml    string
	context string
}{
	{`apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev
  cluster:
    server: https://dev.example:6443
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJ4ekNDQVcyZ0F3SUJBZ0lVZmFrZQotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==
users:
- name: dev-admin
  user:
    token: eyJhbGciOiJSUzI1NiIsImtpZCI6ImZha2UifQ.eyJzdWIiOiJmYWtlIn0.c2lnbmF0dXJl
contexts:
- name: dev
  context:
    cluster: dev
    user: dev-admin
    namespace: team-a
`, ""},
	{`apiVersion: v1
kind: Config
preferences: {}
current-context: kind-b
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://127.0.0.1:40123
  name: kind-a
- cluster:
    insecure-skip-tls-verify: true
    tls-server-name: api.internal
    server: 127.0.0.1:40124
  name: kind-b
users:
- name: kind-a
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
- name: kind-b
  user:
    client-certificate: certs/client.crt
    client-key: /etc/kube/client.key
    tokenFile: ../token
contexts:
- context:
    cluster: kind-a
    user: kind-a
  name: kind-a
- context:
    cluster: kind-b
    user: kind-b
    namespace: default
  name: kind-b
`, "kind-a"},
	{`{"current-context":"c","clusters":[{"name":"k","cluster":{"server":"http://localhost:8080"}}],"contexts":[{"name":"c","context":{"cluster":"k"}}]}`, ""},
	{`current-context: gke
clusters: [{name: gke, cluster: {server: https://34.0.0.1}}]
users: [{name: gke, user: {auth-provider: {name: gcp, config: {access-token: ya29.secret}}}}]
contexts: [{name: gke, context: {cluster: gke, user: gke}}]
`, ""},
	{`current-context: eks
clusters: [{name: eks, cluster: {server: https://eks.example}}]
users: [{name: eks, user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1, command: aws, args: [eks, get-token]}}}]
contexts: [{name: eks, context: {cluster: eks, user: eks}}]
`, ""},
	{`current-context: c
clusters: [{name: k, cluster: {server: https://k.example, certificate-authority-data: "%%%not base64"}}]
users: [{name: u, user: {client-key-data: "S0VZ!"}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
`, ""},
	{"clusters:\n- name: k\n  cluster:\n    server: https://k\n   bad: [unclosed\n", ""},
	{`current-context: ghost
clusters: [{name: k, cluster: {server: https://k.example}}]
contexts: [{name: c, context: {cluster: k}}]
`, ""},
	{`current-context: c
clusters: [{name: k, cluster: {server: https://k.example, proxy-url: "http://proxy:3128"}}]
users: [{name: u, user: {username: admin, password: hunter2hunter2, as: bob}}]
contexts: [{name: c, context: {cluster: k, user: u}}, {name: d, context: {cluster: nope, user: u}}, {name: e, context: {user: u}}]
`, "c"},
	{`clusters: 5`, ""},
	{`users: [{name: u, user: {token: [s3cr3t-token-123]}}]`, ""},
	{`current-context: c
clusters: [{name: k, cluster: {server: https://k.example, insecure-skip-tls-verify: "yes"}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
users: [{name: u, user: {token: 12345678901234}}]
`, ""},
	{"", ""},
	{"---\n...\n", "x"},
}

func FuzzLoad(f *testing.F) {
	for _, s := range fuzzKubeconfigSeeds {
		f.Add([]byte(s.yaml), s.context)
	}
	// One file per process, rewritten for each input: the inputs of a
	// process run one at a time.
	file := filepath.Join(f.TempDir(), "config")
	f.Fuzz(func(t *testing.T, data []byte, context string) {
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(file, context)
		if err != nil {
			if cfg != nil {
				t.Fatalf("Load returned both %+v and error %v", cfg, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "lease: ") {
				t.Fatalf("error %q does not start with %q", msg, "lease: ")
			}
			if !strings.Contains(msg, file) {
				t.Fatalf("error %q does not name the file %s", msg, file)
			}
			for _, tok := range fuzzSecrets(data) {
				if strings.Contains(msg, tok) && !fuzzNamedIn(tok, data, context, file) {
					t.Fatalf("error %q holds the secret %q", msg, tok)
				}
			}
			return
		}
		if cfg == nil || cfg.Host == "" {
			t.Fatalf("Load succeeded with Config %+v: Host is empty", cfg)
		}
		if !strings.Contains(cfg.Host, "://") {
			t.Fatalf("Host %q has no scheme", cfg.Host)
		}
		for _, p := range []string{cfg.CAFile, cfg.CertFile, cfg.KeyFile, cfg.BearerTokenFile} {
			if p != "" && !filepath.IsAbs(p) {
				t.Fatalf("file path %q is not absolute", p)
			}
		}
	})
}

// fuzzSecrets returns the values of the secret-bearing user fields of a
// kubeconfig (token, password, client-key-data, auth-provider and exec
// strings) long enough not to match error text by accident.
func fuzzSecrets(data []byte) []string {
	js, err := yaml.ToJSON(data)
	if err != nil {
		return nil
	}
	var doc map[string]any
	if json.Unmarshal(js, &doc) != nil {
		return nil
	}
	users, _ := doc["users"].([]any)
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			if len(v) >= 8 {
				out = append(out, v)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	for _, u := range users {
		entry, _ := u.(map[string]any)
		user, _ := entry["user"].(map[string]any)
		for _, k := range []string{"token", "password", "client-key-data", "auth-provider", "exec"} {
			walk(user[k])
		}
	}
	return out
}

// fuzzNamedIn reports whether s may rightly appear in an error: it is part
// of the file name, the context asked for, a name or reference in the file,
// or of the library's own wording.
func fuzzNamedIn(s string, data []byte, context, file string) bool {
	if strings.Contains(file, s) || strings.Contains(context, s) {
		return true
	}
	js, err := yaml.ToJSON(data)
	if err != nil {
		return false
	}
	var f fileFormat
	_ = json.Unmarshal(js, &f)
	names := []string{f.CurrentContext}
	for _, c := range f.Clusters {
		names = append(names, c.Name)
	}
	for _, u := range f.Users {
		names = append(names, u.Name)
	}
	for _, c := range f.Contexts {
		names = append(names, c.Name, c.Context.Cluster, c.Context.User)
	}
	for _, n := range names {
		if strings.Contains(n, s) {
			return true
		}
	}
	const wording = "lease: kubeconfig: no context given and no current-context set (read ) not found " +
		"cluster is not set user proxy-url is not supported yet; set HTTPS_PROXY instead server is not set " +
		"auth-provider is not supported; use token or tokenFile exec: credential plugins are not supported yet " +
		"username: basic auth is not supported password: impersonation is not valid base64 " +
		"certificate-authority-data client-certificate-data client-key-data invalid YAML not a kubeconfig file field unexpected"
	return strings.Contains(wording, s)
}
