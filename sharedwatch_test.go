package lease_test

import (
	"context"
	"testing"

	"github.com/kubelease/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// 100 standbys on one NamespaceWatch cost one list and one watch between
// them, and each wakes on its own Lease's release, and only then.
func TestNamespaceWatchManyLeases(t *testing.T) {
	const n = 100
	e := newEnv(t)
	sh := e.newShared(shardSelector)
	holders := make([]*contender, n)
	standbys := make([]*contender, n)
	for i := range n {
		holders[i] = e.hold(shard(i), "holder", shardLabels)
		standbys[i] = e.standby(sh, shard(i), "standby")
	}
	e.hold("other", "holder", map[string]string{"app": "other"})
	e.srv.ResetCounts()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	woke := make(chan int, n)
	for i, s := range standbys {
		go func() {
			if s.Wait(ctx) == nil {
				woke <- i
			}
		}()
	}
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))
	for i, h := range holders {
		require.NoError(t, h.Release(e.ctx()))
		require.Equal(t, i, recv(t, woke, "a standby wakes"), "the standby that woke after releasing %s", shard(i))
	}
	got := e.srv.Counts()
	assert.Equal(t, 1, got["list"], "lists")
	assert.Equal(t, 1, got["watch"], "watches")
	assert.Equal(t, 0, got["get"], "GETs")
	assert.Equal(t, n, got["delete"], "the releases")
	t.Logf("%d standbys: %v", n, got)
}

// A standby hears only its own Lease: changes to other Leases, selected or
// not, neither wake it nor report a holder to it.
func TestNamespaceWatchIgnoresOtherLeases(t *testing.T) {
	e := newEnv(t)
	sh := e.newShared(shardSelector)
	a := e.hold("shard-a", "h-a", shardLabels)
	b := e.hold("shard-b", "h-b", shardLabels)
	plain := e.hold("plain", "h-p", nil)
	s := e.onShared(sh, "shard-a", "standby")
	holders := make(chan string, 16)
	s.OnHolderChange(func(h string) { holders <- h })
	s.mustLose(e)
	assert.Equal(t, "h-a", recv(t, holders, "the holder first seen"))
	done := waitAsync(s.KubernetesLease)
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))

	require.NoError(t, b.Release(e.ctx()))
	require.NoError(t, plain.Release(e.ctx()))
	e.hold("shard-b", "h-b2", shardLabels)
	e.hold("plain", "h-p2", nil)
	none(t, done, "Wait after changes to other Leases")

	require.NoError(t, a.Release(e.ctx()))
	assert.NoError(t, recv(t, done, "Wait after its own Lease's release"))
	assert.Equal(t, "", recv(t, holders, "the release"), "holder after the release")
	none(t, holders, "holder changes")
	assert.Equal(t, 1, e.srv.Count("watch"), "watches")
}

// A Lease the selector does not match (written without the labels) is
// watched alone; the shared watch is not even started for it.
func TestNamespaceWatchUnselectedLeaseWatchedAlone(t *testing.T) {
	e := newEnv(t)
	sh := e.newShared(shardSelector)
	h := e.hold("shard-a", "h-a", nil)
	logs := &logCounter{}
	s := e.standby(sh, "shard-a", "standby", func(s *lease.Settings) { s.Logger = logs.logger() })
	e.srv.ResetCounts()
	done := waitAsync(s.KubernetesLease)
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))
	require.NoError(t, h.Release(e.ctx()))
	assert.NoError(t, recv(t, done, "Wait"))
	assert.Equal(t, 0, e.srv.Count("list"), "lists")
	assert.Equal(t, 1, e.srv.Count("watch"), "watches: its own")
	assert.Equal(t, 1, logs.count("does not match the shared watch"), "logged once")
}

// Holder answers from a running NamespaceWatch without a GET when the
// watch has the Lease, and GETs when it does not.
func TestNamespaceWatchHolderView(t *testing.T) {
	e := newEnv(t)
	sh := e.newShared(shardSelector)
	e.hold("shard-a", "h-a", shardLabels)
	e.hold("plain", "h-p", nil)
	sh.Start()
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))
	viewer := func(name string) *contender {
		return e.newLease("viewer", func(s *lease.Settings) {
			s.Name, s.Labels, s.SharedWatch = name, shardLabels, sh.NamespaceWatch
		})
	}
	gets := e.srv.Count("get")
	h, err := viewer("shard-a").Holder(e.ctx())
	require.NoError(t, err)
	assert.Equal(t, "h-a", h.Holder)
	assert.Equal(t, gets, e.srv.Count("get"), "GETs for a Lease the watch has")
	h, err = viewer("plain").Holder(e.ctx())
	require.NoError(t, err)
	assert.Equal(t, "h-p", h.Holder)
	assert.Equal(t, gets+1, e.srv.Count("get"), "GETs for a Lease the watch does not select")
}

// RunSingleton over a shared watch hands off at the release and reports
// every holder.
func TestNamespaceWatchRunSingleton(t *testing.T) {
	e := newEnv(t)
	sh := e.newShared(shardSelector)
	a := e.hold("shard-a", "h-a", shardLabels)
	s := e.onShared(sh, "shard-a", "standby")
	started := make(chan lease.Token, 1)
	holders := make(chan string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- lease.RunSingleton(ctx, s, func(ctx context.Context) error { <-ctx.Done(); return nil },
			lease.SingletonOptions{Clock: sh.sbyClk, OnStarted: func(tok lease.Token) { started <- tok },
				OnNewHolder: func(h string) { holders <- h }})
	}()
	assert.Equal(t, "h-a", recv(t, holders, "first holder"))
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))
	require.NoError(t, a.Release(e.ctx()))
	recv(t, started, "the standby's work starts")
	assert.Equal(t, "", recv(t, holders, "the release"))
	assert.Equal(t, "standby", recv(t, holders, "the standby itself"))
	got, ok := e.srv.Get("default", "shard-a")
	require.True(t, ok)
	assert.Equal(t, "shards", got.Labels["app"], "the standby's create carries its Labels")
	cancel()
	assert.ErrorIs(t, recv(t, done, "RunSingleton"), context.Canceled)
	assert.Equal(t, 1, e.srv.Count("list"), "lists")
}
