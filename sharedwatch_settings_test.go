package lease_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSharedSettingsValidate(t *testing.T) {
	cfg := &lease.Config{Host: "http://127.0.0.1:1", Namespace: "team-a"}
	watch := func(ns, sel string) *lease.NamespaceWatch {
		w, err := lease.NewNamespaceWatch(cfg, ns, sel, lease.NamespaceWatchOptions{})
		require.NoError(t, err)
		t.Cleanup(w.Close)
		return w
	}
	tests := []struct {
		name   string
		modify func(*lease.Settings)
		want   []string // substrings of the error; nil: valid
	}{
		{"labels", func(s *lease.Settings) { s.Labels = map[string]string{"app": "shards", "example.com/tier": ""} }, nil},
		{"watch of the config's namespace", func(s *lease.Settings) {
			s.Labels, s.SharedWatch = map[string]string{"app": "shards"}, watch("", "app=shards")
		}, nil},
		{"watch selecting all", func(s *lease.Settings) { s.Namespace, s.SharedWatch = "team-a", watch("team-a", "") }, nil},
		{"bad label key", func(s *lease.Settings) { s.Labels = map[string]string{"a b": "x"} }, []string{`Labels key "a b" is not a label key`}},
		{"bad label value", func(s *lease.Settings) { s.Labels = map[string]string{"app": "-x"} }, []string{`Labels["app"] value "-x" is not a label value`}},
		{"watch of another namespace", func(s *lease.Settings) { s.Namespace, s.SharedWatch = "team-b", watch("team-a", "") }, []string{
			`SharedWatch watches namespace "team-a" but the Lease is in namespace "team-b"`,
		}},
		{"labels the selector does not match", func(s *lease.Settings) {
			s.Labels, s.SharedWatch = map[string]string{"app": "other"}, watch("", "app=shards")
		}, []string{`Labels "app=other" do not match SharedWatch's labelSelector "app=shards"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := lease.Settings{Name: "job", Owner: "pod-a", Config: cfg}
			tc.modify(&s)
			err := s.Validate()
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.True(t, errors.Is(err, lease.ErrInvalidSettings), "got %v, want ErrInvalidSettings", err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Equal(t, 1, strings.Count(err.Error(), "lease: "), "one prefix in %q", err)
		})
	}
}

func TestNewNamespaceWatchValidates(t *testing.T) {
	tests := []struct {
		name    string
		cfg     *lease.Config
		ns, sel string
		opts    lease.NamespaceWatchOptions
		want    []string // substrings of the error; nil: valid
	}{
		{name: "valid", cfg: &lease.Config{Host: "http://127.0.0.1:1"}, sel: "app in (a,b),!legacy"},
		{name: "nil config", want: []string{"Config is nil"}},
		{name: "no host", cfg: &lease.Config{}, want: []string{"Config.Host is empty"}},
		{name: "bad namespace", cfg: &lease.Config{Host: "http://h"}, ns: "A_B", want: []string{`namespace "A_B" is not a DNS-1123 label`}},
		{name: "bad selector", cfg: &lease.Config{Host: "http://h"}, sel: "app in", want: []string{`labelSelector "app in"`}},
		{name: "short poll", cfg: &lease.Config{Host: "http://h"}, opts: lease.NamespaceWatchOptions{PollInterval: time.Millisecond}, want: []string{"PollInterval 1ms is below 1s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := lease.NewNamespaceWatch(tc.cfg, tc.ns, tc.sel, tc.opts)
			if tc.want == nil {
				require.NoError(t, err)
				w.Close()
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, lease.ErrInvalidSettings)
			for _, s := range tc.want {
				assert.Contains(t, err.Error(), s)
			}
		})
	}
}

// Labels go on the Lease when an acquiring write finds them missing;
// labels already there, ours included with another value, are kept, and
// renewals keep them all.
func TestLabelsOnAcquiringWrites(t *testing.T) {
	e := newEnv(t)
	lbl := map[string]string{"app": "shards", "tier": "a"}
	a := e.newLease("pod-a", func(s *lease.Settings) { s.Labels = lbl })
	a.acquire(t)
	lbl["tier"] = "changed after NewKubernetesLease"
	got, ok := e.srv.Get("default", "job")
	require.True(t, ok)
	assert.Equal(t, map[string]string{"app": "shards", "tier": "a"}, got.Labels, "labels of the create")

	require.NoError(t, e.srv.Edit("default", "job", func(l *leasetest.Lease) {
		l.Labels = map[string]string{"app": "other", "team": "x"}
		l.Spec.HolderIdentity = nil
	}))
	b := e.newLease("pod-b", func(s *lease.Settings) { s.Labels = map[string]string{"app": "shards", "tier": "b"} })
	b.acquire(t)
	b.renewOnce(t)
	got, _ = e.srv.Get("default", "job")
	assert.Equal(t, map[string]string{"app": "other", "team": "x", "tier": "b"}, got.Labels, "labels after a takeover and a renewal")
}
