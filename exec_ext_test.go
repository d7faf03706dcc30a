package lease_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/transport/exectest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// After a 401 the exec plugin runs again and the request is sent once
// more, as the server sees it on the wire; the new answer is shared with
// the other leases of the process that use the same plugin.
func TestExecRerunAfterUnauthorized(t *testing.T) {
	plugin := exectest.PluginPath(t)
	e := newEnv(t)
	dir := t.TempDir()
	tokenFile, counter := filepath.Join(dir, "token"), filepath.Join(dir, "runs")
	runs := func() int {
		b, err := os.ReadFile(counter)
		require.NoError(t, err)
		return strings.Count(string(b), "\n")
	}
	require.NoError(t, os.WriteFile(tokenFile, []byte("exec-tok-1"), 0o600))
	withExec := func(s *lease.Settings) {
		s.Config = &lease.Config{Host: e.srv.URL, Exec: &lease.ExecConfig{
			Command:    plugin,
			APIVersion: "client.authentication.k8s.io/v1beta1",
			Env: []lease.ExecEnvVar{
				{Name: "PLUGIN_TOKEN_FILE", Value: tokenFile},
				{Name: "PLUGIN_COUNTER_FILE", Value: counter},
			},
		}}
	}
	e.srv.RequireToken("exec-tok-1")
	a := e.newLease("pod-a", withExec)
	a.acquire(t)
	assert.Equal(t, 1, runs())

	// The credentials rotate: the cached token is now refused.
	e.srv.RequireToken("exec-tok-2")
	require.NoError(t, os.WriteFile(tokenFile, []byte("exec-tok-2"), 0o600))
	before := len(e.srv.Requests())
	b := e.newLease("pod-b", withExec)
	ok, err := b.Acquire(e.ctx())
	require.NoError(t, err)
	assert.False(t, ok, "pod-a holds the lease")
	reqs := e.srv.Requests()[before:]
	require.Len(t, reqs, 2)
	assert.Equal(t, "get", reqs[0].Verb)
	assert.Equal(t, 401, reqs[0].Code, "the cached token is refused")
	assert.Equal(t, "get", reqs[1].Verb, "the same GET is sent again")
	assert.Equal(t, 200, reqs[1].Code, "with the plugin's new token")
	assert.Equal(t, 2, runs(), "the plugin ran again after the 401")

	// pod-a renews with the new answer from the shared cache.
	before = len(e.srv.Requests())
	a.renewOnce(t)
	reqs = e.srv.Requests()[before:]
	require.Len(t, reqs, 1)
	assert.Equal(t, "update", reqs[0].Verb)
	assert.Equal(t, 200, reqs[0].Code)
	assert.Equal(t, 2, runs(), "no run for the other lease")

	// A token that is still refused after the re-run is an error.
	e.srv.RequireToken("exec-tok-3")
	c := e.newLease("pod-c", withExec)
	ok, err = c.Acquire(e.ctx())
	assert.False(t, ok)
	var apiErr *lease.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 401, apiErr.StatusCode)
	assert.NotContains(t, err.Error(), "exec-tok")
	assert.Equal(t, 3, runs(), "one more run, then the 401 is final")
}
