package lease_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"
)

// shardLabels are the labels of the Leases the shared watch selects.
var shardLabels = map[string]string{"app": "shards"}

const shardSelector = "app=shards"

func shard(i int) string { return fmt.Sprintf("shard-%03d", i) }

// shared is a NamespaceWatch of the env's server on a clock of its own
// (stepped for its backoff and polling), and a clock that the standbys
// share and that never moves, so that no record expires by itself.
type shared struct {
	*lease.NamespaceWatch
	clk    *clocktesting.FakeClock // the NamespaceWatch's
	sbyClk *clocktesting.FakeClock // the standbys'
}

// newShared makes a NamespaceWatch of "default" for selector, closed on
// cleanup.
func (e *env) newShared(selector string, mods ...func(*lease.NamespaceWatchOptions)) *shared {
	e.t.Helper()
	return e.newSharedAs("", selector, mods...)
}

// newSharedAs is newShared for the user of bearer token tok ("": admin).
func (e *env) newSharedAs(tok, selector string, mods ...func(*lease.NamespaceWatchOptions)) *shared {
	e.t.Helper()
	clk := clocktesting.NewFakeClock(epoch)
	opts := lease.NamespaceWatchOptions{Clock: clk}
	for _, m := range mods {
		m(&opts)
	}
	cfg := e.srv.Config()
	if tok != "" {
		cfg.BearerToken = tok
	}
	w, err := lease.NewNamespaceWatch(cfg, "default", selector, opts)
	require.NoError(e.t, err)
	e.t.Cleanup(w.Close)
	return &shared{NamespaceWatch: w, clk: clk, sbyClk: clocktesting.NewFakeClock(epoch)}
}

// hold makes owner hold the Lease name, written with labels, on a clock of
// its own that never moves (so it never renews).
func (e *env) hold(name, owner string, labels map[string]string) *contender {
	e.t.Helper()
	c := e.newLease(owner, func(s *lease.Settings) {
		s.Name = name
		s.Labels = labels
	})
	c.acquire(e.t)
	return c
}

// onShared makes a lease on name that uses sh.
func (e *env) onShared(sh *shared, name, owner string, mods ...func(*lease.Settings)) *contender {
	e.t.Helper()
	c := e.newLease(owner, append([]func(*lease.Settings){func(s *lease.Settings) {
		s.Name = name
		s.Labels = shardLabels
		s.SharedWatch = sh.NamespaceWatch
		s.Clock = sh.sbyClk
	}}, mods...)...)
	c.clk = sh.sbyClk
	return c
}

// standby makes a lease on name that uses sh, and has it find the Lease
// held (Acquire false), so that its Wait stands by.
func (e *env) standby(sh *shared, name, owner string, mods ...func(*lease.Settings)) *contender {
	e.t.Helper()
	c := e.onShared(sh, name, owner, mods...)
	c.mustLose(e)
	return c
}

// mustLose has c find its Lease held: Acquire returns false.
func (c *contender) mustLose(e *env) {
	e.t.Helper()
	ok, err := c.Acquire(e.ctx())
	require.NoError(e.t, err)
	require.False(e.t, ok, "acquired a held Lease")
}

// stepUntilTrue steps clk by d, every 10 ms of real time, until cond holds.
func stepUntilTrue(t *testing.T, clk *clocktesting.FakeClock, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(waitFor)
	for !cond() {
		clk.Step(d)
		select {
		case <-deadline:
			t.Fatalf("%s: not within %v", what, waitFor)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// none fails if ch holds a value now.
func none[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s: got %v, want nothing", what, v)
	default:
	}
}
