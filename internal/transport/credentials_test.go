package transport

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestTokenFileRotation(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/token"
	require.NoError(t, os.WriteFile(file, []byte("tok-1\n"), 0o600))
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c := mustCredentials(t, &Config{BearerTokenFile: file}, clk)
	assert.Equal(t, "tok-1", c.token())

	require.NoError(t, os.WriteFile(file, []byte("tok-2"), 0o600))
	assert.Equal(t, "tok-1", c.token(), "not re-read before a minute")
	clk.Step(TokenRereadEvery)
	assert.Equal(t, "tok-2", c.token(), "re-read after a minute")

	require.NoError(t, os.WriteFile(file, []byte(""), 0o600))
	clk.Step(TokenRereadEvery)
	assert.Equal(t, "tok-2", c.token(), "an empty file keeps the old token")
	require.NoError(t, os.Remove(file))
	assert.True(t, c.Refresh())
	assert.Equal(t, "tok-2", c.token(), "a failed re-read keeps the old token")

	static := mustCredentials(t, &Config{BearerToken: "fixed"}, clk)
	assert.False(t, static.Refresh(), "no file: a 401 is final")
	assert.Equal(t, "fixed", static.token())
}

func mustCredentials(t *testing.T, cfg *Config, clk clock.PassiveClock) *Credentials {
	t.Helper()
	c, err := NewCredentials(cfg, clk, nil)
	require.NoError(t, err)
	return c
}
