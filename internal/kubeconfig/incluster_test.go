package kubeconfig

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeServiceAccount points ServiceAccountDir at a fresh directory holding
// a token and a CA bundle, and a namespace file unless namespace is "".
func fakeServiceAccount(t *testing.T, namespace string) string {
	t.Helper()
	dir := t.TempDir()
	writeTestFile(t, dir, "token", "sa-token")
	writeTestFile(t, dir, "ca.crt", "ca")
	if namespace != "" {
		writeTestFile(t, dir, "namespace", namespace+"\n")
	}
	old := ServiceAccountDir
	ServiceAccountDir = dir
	t.Cleanup(func() { ServiceAccountDir = old })
	return dir
}

func writeTestFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestInCluster(t *testing.T) {
	tests := []struct {
		name          string
		host, port    string
		podNamespace  string
		fileNamespace string
		wantHost      string
		wantNamespace string
	}{
		{"POD_NAMESPACE wins over file", "10.0.0.1", "443", "from-env", "from-file", "https://10.0.0.1:443", "from-env"},
		{"file wins over default", "10.0.0.1", "6443", "", "from-file", "https://10.0.0.1:6443", "from-file"},
		{"default", "10.0.0.1", "443", "", "", "https://10.0.0.1:443", "default"},
		{"IPv6 host", "fd00::1", "443", "", "", "https://[fd00::1]:443", "default"},
		{"DNS host", "kubernetes.default.svc", "443", "", "", "https://kubernetes.default.svc:443", "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fakeServiceAccount(t, tt.fileNamespace)
			t.Setenv("KUBERNETES_SERVICE_HOST", tt.host)
			t.Setenv("KUBERNETES_SERVICE_PORT", tt.port)
			t.Setenv("POD_NAMESPACE", tt.podNamespace)

			cfg, err := InCluster()
			require.NoError(t, err)
			want := &Config{
				Host:            tt.wantHost,
				Namespace:       tt.wantNamespace,
				BearerTokenFile: filepath.Join(dir, "token"),
				CAFile:          filepath.Join(dir, "ca.crt"),
			}
			assert.Equal(t, want, cfg, "got %+v, want %+v", cfg, want)
		})
	}
}

func TestInClusterErrors(t *testing.T) {
	const notInCluster = "lease: not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set"
	tests := []struct {
		name       string
		host, port string
		noToken    bool
		want       string
	}{
		{"no host", "", "443", false, notInCluster},
		{"no port", "10.0.0.1", "", false, notInCluster},
		{"neither", "", "", false, notInCluster},
		{"token file missing", "10.0.0.1", "443", true, "lease: in-cluster config: service-account token file is not readable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := fakeServiceAccount(t, "")
			if tt.noToken {
				require.NoError(t, os.Remove(filepath.Join(dir, "token")))
			}
			t.Setenv("KUBERNETES_SERVICE_HOST", tt.host)
			t.Setenv("KUBERNETES_SERVICE_PORT", tt.port)

			cfg, err := InCluster()
			require.Error(t, err)
			assert.Nil(t, cfg)
			assert.Contains(t, err.Error(), tt.want, "got %q, want it to contain %q", err, tt.want)
			assert.NotContains(t, err.Error(), "sa-token")
		})
	}
}
