package kubeconfig

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDefault(t *testing.T) {
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

			cfg, err := Default()
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

// With $KUBECONFIG set, only its files are read, as kubectl does: when none
// exists, Default and Load("", ...) fail naming them, and never fall back to
// the in-cluster config or ~/.kube/config, which may be another cluster
// (issue 10, item 10).
func TestEdgesKubeconfigEnvNamesOnlyMissingFiles(t *testing.T) {
	tests := []struct {
		name      string
		inCluster bool
		load      func() (*Config, error)
	}{
		{"Default in a pod", true, Default},
		{"Default with ~/.kube/config", false, Default},
		{"Load current context", false, func() (*Config, error) { return Load("", "") }},
		{"Load named context", false, func() (*Config, error) { return Load("", "ctx") }},
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
	cfg, err := Default()
	require.Error(t, err, "got config %+v, want an error", cfg)
	want := "lease: kubeconfig: $KUBECONFIG is set but names no file; unset KUBECONFIG or point it at an existing file"
	assert.Equal(t, want, err.Error(), "got %q, want %q", err, want)
}
