package lease_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kubelease/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A rotated token file is re-read after a 401 and the request is retried
// once, with the new token, as the server sees it on the wire.
func TestUnauthorizedRereadsTokenFile(t *testing.T) {
	e := newEnv(t)
	file := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(file, []byte("old"), 0o600))
	a := e.newLease("pod-a", func(s *lease.Settings) {
		s.Config = &lease.Config{Host: e.srv.URL, BearerTokenFile: file}
	})
	e.srv.RequireToken("new")
	require.NoError(t, os.WriteFile(file, []byte("new"), 0o600)) // kubelet rotated it
	a.acquire(t)
	reqs := e.srv.Requests()
	require.GreaterOrEqual(t, len(reqs), 3)
	assert.Equal(t, 401, reqs[0].Code, "first GET with the old token")
	assert.Equal(t, "get", reqs[1].Verb, "the same GET retried")
	assert.Equal(t, 404, reqs[1].Code, "accepted with the new token")

	// A token that is still wrong after the re-read is an error, not false.
	e.srv.RequireToken("newer")
	a2 := e.newLease("pod-b", func(s *lease.Settings) {
		s.Config = &lease.Config{Host: e.srv.URL, BearerTokenFile: file}
	})
	ok, err := a2.Acquire(e.ctx())
	assert.False(t, ok)
	var apiErr *lease.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 401, apiErr.StatusCode)
	assert.NotContains(t, err.Error(), "newer")
}
