package lease

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// With $KUBECONFIG set, only its files are read, as kubectl does: when none
// exists, DefaultConfig and LoadKubeconfig("", ...) fail naming them, and
// never fall back to the in-cluster config or ~/.kube/config, which may be
// another cluster (issue 10, item 10).
func TestEdgesKubeconfigEnvNamesOnlyMissingFiles(t *testing.T) {
	tests := []struct {
		name      string
		inCluster bool
		load      func() (*Config, error)
	}{
		{"DefaultConfig in a pod", true, DefaultConfig},
		{"DefaultConfig with ~/.kube/config", false, DefaultConfig},
		{"LoadKubeconfig current context", false, func() (*Config, error) { return LoadKubeconfig("", "") }},
		{"LoadKubeconfig named context", false, func() (*Config, error) { return LoadKubeconfig("", "ctx") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			home, other := t.TempDir(), t.TempDir()
			t.Setenv("HOME", home)
			writeTestFile(t, home, ".kube/config", kubeconfigFixture("server: https://home.example", ""))
			missing, gone := filepath.Join(other, "missing"), filepath.Join(other, "gone")
			t.Setenv("KUBECONFIG", missing+string(os.PathListSeparator)+gone)
			fakeServiceAccount(t, "")
			t.Setenv("KUBERNETES_SERVICE_HOST", "")
			t.Setenv("KUBERNETES_SERVICE_PORT", "")
			if tc.inCluster {
				t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
				t.Setenv("KUBERNETES_SERVICE_PORT", "443")
			}

			cfg, err := tc.load()
			require.Error(t, err, "got config %+v, want an error", cfg)
			want := "lease: kubeconfig: no file named by $KUBECONFIG exists (" + missing + ", " + gone +
				"); unset KUBECONFIG or point it at an existing file"
			assert.Equal(t, want, err.Error(), "got %q, want %q", err, want)
			assert.ErrorIs(t, err, os.ErrNotExist)
		})
	}
}

// A $KUBECONFIG of separators only names no file: an error all the same.
func TestEdgesKubeconfigEnvOfSeparatorsOnly(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	writeTestFile(t, home, ".kube/config", kubeconfigFixture("server: https://home.example", ""))
	t.Setenv("KUBECONFIG", string(os.PathListSeparator))
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	cfg, err := DefaultConfig()
	require.Error(t, err, "got config %+v, want an error", cfg)
	want := "lease: kubeconfig: $KUBECONFIG is set but names no file; unset KUBECONFIG or point it at an existing file"
	assert.Equal(t, want, err.Error(), "got %q, want %q", err, want)
}
