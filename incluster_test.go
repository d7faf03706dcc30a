package lease

import (
	"path/filepath"
	"testing"

	"github.com/kubelease/lease/internal/kubeconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// InClusterConfig hands what internal/kubeconfig finds in the pod over to
// the Config, and its errors unchanged (internal/kubeconfig's tests cover
// the search).
func TestInClusterConfig(t *testing.T) {
	dir := t.TempDir()
	writeTestFile(t, dir, "token", "sa-token")
	writeTestFile(t, dir, "ca.crt", "ca")
	old := kubeconfig.ServiceAccountDir
	kubeconfig.ServiceAccountDir = dir
	t.Cleanup(func() { kubeconfig.ServiceAccountDir = old })
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	t.Setenv("POD_NAMESPACE", "team-a")

	cfg, err := InClusterConfig()
	require.NoError(t, err)
	want := &Config{
		Host:            "https://10.0.0.1:443",
		Namespace:       "team-a",
		BearerTokenFile: filepath.Join(dir, "token"),
		CAFile:          filepath.Join(dir, "ca.crt"),
	}
	assert.Equal(t, want, cfg, "got %+v, want %+v", cfg, want)

	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	cfg, err = InClusterConfig()
	require.Error(t, err)
	assert.Nil(t, cfg)
	want2 := "lease: not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set"
	assert.Equal(t, want2, err.Error(), "got %q, want %q", err, want2)
}
