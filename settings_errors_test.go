package lease

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Errors of NewKubernetesLease are one line with one "lease: " prefix,
// whichever check made them, and still match ErrInvalidSettings (item 8).
func TestEdgesInvalidSettingsOneLine(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Settings)
		want   string // the whole error
	}{
		{"two fields", func(s *Settings) { s.Name, s.TTL = "", 500*time.Millisecond },
			"lease: invalid settings: Name is empty; TTL 500ms is below the minimum 1s"},
		{"every field", func(s *Settings) { *s = Settings{TTL: time.Millisecond, AcquireRetries: -2} },
			"lease: invalid settings: Name is empty; Owner is empty; TTL 1ms is below the minimum 1s; AcquireRetries -2 is negative; Config is nil (call DefaultConfig to discover one)"},
		{"host without scheme", func(s *Settings) { s.Config = &Config{Host: "127.0.0.1:6443"} },
			`lease: invalid settings: Config.Host "127.0.0.1:6443" is not an http(s) URL with a host`},
		{"config namespace", func(s *Settings) { s.Config.Namespace = "Not_Valid" },
			`lease: invalid settings: Config.Namespace "Not_Valid" is not a DNS-1123 label: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?'); set Settings.Namespace or fix the kubeconfig context`},
		{"bad CA", func(s *Settings) { s.Config = &Config{Host: "https://127.0.0.1:1", CAData: []byte("not pem")} },
			"lease: invalid settings: Config CA data holds no PEM certificate"},
		{"bad proxy", func(s *Settings) { s.Config.ProxyURL = "ftp://proxy:21" },
			`lease: invalid settings: Config.ProxyURL "ftp://proxy:21" has scheme "ftp"; want http, https, socks5 or socks5h`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := validSettings()
			tc.modify(&s)
			_, err := NewKubernetesLease(s)
			require.Error(t, err)
			assert.Equal(t, tc.want, err.Error(), "got %q, want %q", err, tc.want)
			assert.ErrorIs(t, err, ErrInvalidSettings)
			assert.Equal(t, 1, strings.Count(err.Error(), "lease: "), "got %q, want one prefix", err)
			assert.NotContains(t, err.Error(), "\n", "got %q, want one line", err)
		})
	}

	// Wrapping keeps the cause for errors.Is.
	s := validSettings()
	s.Config = &Config{Host: "https://127.0.0.1:1", CAFile: "/nonexistent/ca.crt"}
	_, err := NewKubernetesLease(s)
	require.Error(t, err)
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrInvalidSettings) {
		t.Errorf("got %v, want it to match fs.ErrNotExist and ErrInvalidSettings", err)
	}
	assert.Equal(t, "lease: invalid settings: reading Config.CAFile: open /nonexistent/ca.crt: no such file or directory", err.Error())
}
