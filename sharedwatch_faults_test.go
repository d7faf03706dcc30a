package lease_test

import (
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// A dropped stream resumes from the last resourceVersion seen, without a
// list: a release made while it was down arrives on the resumed stream.
func TestNamespaceWatchResumesAfterDrop(t *testing.T) {
	e := newEnv(t)
	sh := e.newShared(shardSelector)
	h := e.hold("shard-a", "h-a", shardLabels)
	s := e.standby(sh, "shard-a", "standby")
	e.srv.ResetCounts()
	done := waitAsync(s.KubernetesLease)
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))

	e.srv.DropWatches()
	require.NoError(t, h.Release(e.ctx()))
	none(t, done, "Wait while the stream is down")
	stepUntilTrue(t, sh.clk, time.Second, "the watch resumes", func() bool { return e.srv.Watchers() == 1 })
	assert.NoError(t, recv(t, done, "Wait after the resume"))
	assert.Equal(t, 1, e.srv.Count("list"), "lists")
	assert.Equal(t, 2, e.srv.Count("watch"), "watches")
}

// A watch that may not resume from its resourceVersion (410, compacted)
// lists afresh once and watches from there.
func TestNamespaceWatchRelistsOn410(t *testing.T) {
	e := newEnv(t)
	sh := e.newShared(shardSelector)
	h := e.hold("shard-a", "h-a", shardLabels)
	s := e.standby(sh, "shard-a", "standby")
	e.srv.ResetCounts()
	done := waitAsync(s.KubernetesLease)
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))

	e.hold("plain", "h-p", nil) // a change the watch does not see: its resourceVersion falls behind
	e.srv.CompactLog()
	e.srv.DropWatches()
	stepUntilTrue(t, sh.clk, time.Second, "the watch is back", func() bool { return e.srv.Watchers() == 1 })
	assert.Equal(t, 2, e.srv.Count("list"), "lists: the first and one after the 410")
	assert.Equal(t, 3, e.srv.Count("watch"), "watches: the first, the 410, the one after the list")
	none(t, done, "Wait after the re-list")
	require.NoError(t, h.Release(e.ctx()))
	assert.NoError(t, recv(t, done, "Wait after the release"))
}

// When the server refuses to watch, the NamespaceWatch lists every
// PollInterval instead (logged once), tries to watch again after a minute,
// and a release is seen at the next list.
func TestNamespaceWatchPollsWhenWatchRefused(t *testing.T) {
	e := newEnv(t)
	e.srv.AddUser("no-watch", "get", "list", "create", "update", "delete")
	logs := &logCounter{}
	sh := e.newSharedAs("no-watch", shardSelector, func(o *lease.NamespaceWatchOptions) { o.Logger = logs.logger() })
	h := e.hold("shard-a", "h-a", shardLabels)
	s := e.standby(sh, "shard-a", "standby")
	e.srv.ResetCounts()
	done := waitAsync(s.KubernetesLease)
	require.NoError(t, e.srv.AwaitRequests(e.ctx(), 2))
	assert.Equal(t, map[string]int{"list": 1, "watch": 1}, e.srv.Counts(), "a list, then the refused watch")

	stepUntilTrue(t, sh.clk, lease.DefaultNamespacePollInterval, "polling", func() bool { return e.srv.Count("list") >= 3 })
	none(t, done, "Wait while polling")
	require.NoError(t, h.Release(e.ctx()))
	var err error
	stepUntilTrue(t, sh.clk, time.Second, "the release is listed", func() bool {
		select {
		case err = <-done:
			return true
		default:
			return false
		}
	})
	assert.NoError(t, err, "Wait")

	stepUntilTrue(t, sh.clk, lease.DefaultNamespacePollInterval, "a new try to watch", func() bool { return e.srv.Count("watch") >= 2 })
	assert.LessOrEqual(t, e.srv.Count("list"), 1+int(time.Minute/lease.DefaultNamespacePollInterval), "lists in the minute before trying to watch again")
	assert.Equal(t, 1, logs.count("refused to watch"), "the refusal is logged once")
	assert.Equal(t, 0, e.srv.Count("get"), "GETs")
}

// When the server refuses to list (a Role that grants verbs by
// resourceNames only), leases on the NamespaceWatch watch their Lease
// alone: a Wait in progress polls once, the next opens its own watch.
func TestNamespaceWatchListRefused(t *testing.T) {
	e := newEnv(t)
	e.srv.AddUser("no-list", "get", "watch", "create", "update", "delete")
	logs := &logCounter{}
	sh := e.newSharedAs("no-list", shardSelector, func(o *lease.NamespaceWatchOptions) { o.Logger = logs.logger() })
	h := e.hold("shard-a", "h-a", shardLabels)
	s := e.standby(sh, "shard-a", "standby")
	done := waitAsync(s.KubernetesLease)
	assert.NoError(t, stepUntil(t, sh.sbyClk, time.Second, done), "Wait returns to poll")
	assert.Equal(t, 1, logs.count("refused to list"), "logged once")
	assert.Equal(t, 0, e.srv.Count("watch"), "watches")

	done = waitAsync(s.KubernetesLease)
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))
	require.NoError(t, h.Release(e.ctx()))
	assert.NoError(t, recv(t, done, "Wait on its own watch"))
	assert.Equal(t, 1, e.srv.Count("watch"), "watches: its own")
}

// Close stops the NamespaceWatch and waits for it; leases standing by on it
// poll, then watch alone; nothing is left running.
func TestNamespaceWatchClose(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Run("close", func(t *testing.T) {
		e := newEnv(t)
		sh := e.newShared(shardSelector)
		h := e.hold("shard-a", "h-a", shardLabels)
		s := e.standby(sh, "shard-a", "standby")
		done := waitAsync(s.KubernetesLease)
		require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))
		sh.Close()
		sh.Close()
		assert.NoError(t, stepUntil(t, sh.sbyClk, time.Second, done), "Wait returns to poll after Close")

		done = waitAsync(s.KubernetesLease)
		stepUntilTrue(t, sh.clk, 0, "a watch of its own", func() bool { return e.srv.Count("watch") == 2 })
		require.NoError(t, h.Release(e.ctx()))
		assert.NoError(t, recv(t, done, "Wait on its own watch"))
		assert.Equal(t, 1, e.srv.Count("list"), "lists")
	})
	goleak.VerifyNone(t, ignore)
}

// A NamespaceWatch that is never used makes no request, and Close returns.
func TestNamespaceWatchUnusedMakesNoRequest(t *testing.T) {
	srv := leasetest.NewServerT(t)
	w, err := lease.NewNamespaceWatch(srv.Config(), "", "", lease.NamespaceWatchOptions{})
	require.NoError(t, err)
	w.Close()
	w.Start()
	assert.Equal(t, 0, srv.Received(), "requests")
}
