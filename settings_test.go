package lease

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func validSettings() Settings {
	return Settings{Name: "job", Owner: "pod-a", Config: &Config{Host: "http://127.0.0.1:1"}}
}

func TestSettingsValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Settings)
		want   []string // substrings of the error; nil: valid
	}{
		{"valid defaults", func(*Settings) {}, nil},
		{"valid explicit", func(s *Settings) {
			s.TTL, s.RenewalInterval, s.AcquireRetries, s.MaxClockSkew = 10*time.Second, 3*time.Second, 5, -1
		}, nil},
		{"empty name", func(s *Settings) { s.Name = "" }, []string{"Name is empty"}},
		{"name not dns", func(s *Settings) { s.Name = "Bad_Name" }, []string{`Name "Bad_Name" is not a DNS-1123 subdomain`}},
		{"namespace not dns", func(s *Settings) { s.Namespace = "a.b" }, []string{`Namespace "a.b"`}},
		{"empty owner", func(s *Settings) { s.Owner = "" }, []string{"Owner is empty"}},
		{"ttl too small", func(s *Settings) { s.TTL = 500 * time.Millisecond }, []string{"TTL 500ms is below the minimum 1s"}},
		{"ttl negative", func(s *Settings) { s.TTL = -time.Second }, []string{"TTL -1s is below"}},
		{"ttl above cap", func(s *Settings) { s.TTL = 2 * time.Hour }, []string{"TTL 2h0m0s is above MaxLeaseDuration 1h0m0s"}},
		{"renewal negative", func(s *Settings) { s.RenewalInterval = -time.Second }, []string{"RenewalInterval -1s is negative"}},
		{"renewal equal ttl", func(s *Settings) { s.TTL, s.RenewalInterval = 5*time.Second, 5*time.Second }, []string{"RenewalInterval 5s is not below TTL 5s"}},
		{"renewal above default ttl", func(s *Settings) { s.RenewalInterval = 20 * time.Second }, []string{"RenewalInterval 20s is not below TTL 15s"}},
		{"retries negative", func(s *Settings) { s.AcquireRetries = -1 }, []string{"AcquireRetries -1 is negative"}},
		{"nil config", func(s *Settings) { s.Config = nil }, []string{"Config is nil"}},
		{"empty host", func(s *Settings) { s.Config = &Config{} }, []string{"Config.Host is empty"}},
		{"every bad field at once", func(s *Settings) { *s = Settings{TTL: time.Millisecond, AcquireRetries: -2} }, []string{
			"Name is empty", "Owner is empty", "TTL 1ms", "AcquireRetries -2", "Config is nil",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := validSettings()
			tc.modify(&s)
			err := s.Validate()
			if tc.want == nil {
				require.NoError(t, err)
				_, err = NewKubernetesLease(s)
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrInvalidSettings), "got %v, want ErrInvalidSettings", err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.True(t, strings.HasPrefix(err.Error(), "lease: "), "got %q, want prefix lease: ", err)
			l, nerr := NewKubernetesLease(s)
			assert.Nil(t, l)
			assert.Equal(t, err.Error(), nerr.Error())
		})
	}
}

func TestSettingsDefaults(t *testing.T) {
	r := validSettings().withDefaults()
	assert.Equal(t, DefaultTTL, r.TTL)
	assert.Equal(t, DefaultTTL/3, r.RenewalInterval)
	assert.Equal(t, DefaultAcquireRetries, r.AcquireRetries)
	assert.Equal(t, DefaultMaxClockSkew, r.MaxClockSkew)
	assert.Equal(t, "default", r.Namespace)
	assert.NotNil(t, r.Clock)
	assert.NotNil(t, r.Logger)

	s := validSettings()
	s.Config.Namespace = "team-a"
	assert.Equal(t, "team-a", s.withDefaults().Namespace, "Config namespace")
	s.Namespace = "team-b"
	assert.Equal(t, "team-b", s.withDefaults().Namespace, "Settings namespace wins")
}

func TestNewKubernetesLeaseRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"bad namespace in config", Config{Host: "http://127.0.0.1:1", Namespace: "Not_Valid"}, `Config.Namespace "Not_Valid"`},
		{"host without scheme", Config{Host: "127.0.0.1:6443"}, `Config.Host "127.0.0.1:6443" is not an http(s) URL`},
		{"ftp host", Config{Host: "ftp://x"}, `Config.Host "ftp://x"`},
		{"bad CA", Config{Host: "https://127.0.0.1:1", CAData: []byte("not pem")}, "no PEM certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := validSettings()
			s.Config = &tc.cfg
			_, err := NewKubernetesLease(s)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidSettings)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestWireSeconds(t *testing.T) {
	tests := []struct {
		ttl  time.Duration
		want int32
	}{
		{time.Second, 1}, {1500 * time.Millisecond, 2}, {15 * time.Second, 15}, {time.Hour, 3600}, {time.Second + time.Nanosecond, 2},
	}
	for _, tc := range tests {
		if got := wireSeconds(tc.ttl); got != tc.want {
			t.Errorf("wireSeconds(%v): got %d, want %d", tc.ttl, got, tc.want)
		}
	}
}
