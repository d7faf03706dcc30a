package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// realLease is a KubernetesLease on the real clock, for watch tests whose
// waits are bounded by channels.
func (e *env) realLease(owner string, mods ...func(*lease.Settings)) *lease.KubernetesLease {
	e.t.Helper()
	s := lease.Settings{Name: "job", Owner: owner, Config: e.srv.Config(), TTL: 15 * time.Second}
	for _, m := range mods {
		m(&s)
	}
	l, err := lease.NewKubernetesLease(s)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = l.Release(context.Background()) })
	return l
}

func waitAsync(l *lease.KubernetesLease) <-chan error {
	done := make(chan error, 1)
	go func() { done <- l.Wait(context.Background()) }()
	return done
}

func TestWaitWakesOnRelease(t *testing.T) {
	e := newEnv(t)
	a, b := e.realLease("pod-a"), e.realLease("pod-b")
	require.True(t, mustAcquireMem(t, a))
	require.False(t, mustAcquireMem(t, b))
	done := waitAsync(b)
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))
	require.NoError(t, a.Release(e.ctx()))
	require.NoError(t, recv(t, done, "Wait after Release"))
	assert.True(t, mustAcquireMem(t, b), "the peer acquires at once")
}

func TestWaitReconnectsAfterDroppedStream(t *testing.T) {
	e := newEnv(t)
	a, b := e.realLease("pod-a"), e.realLease("pod-b")
	require.True(t, mustAcquireMem(t, a))
	require.False(t, mustAcquireMem(t, b))
	done := waitAsync(b)
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))
	watches := e.srv.Count("watch")
	e.srv.DropWatches()
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1), "the watch is re-established")
	assert.Equal(t, watches+1, e.srv.Count("watch"))
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v after a dropped stream, want it to keep waiting", err)
	default:
	}
	require.NoError(t, a.Release(e.ctx()))
	require.NoError(t, recv(t, done, "Wait after Release"))
}

func TestWaitRelistsOnGone(t *testing.T) {
	e := newEnv(t)
	a, b := e.realLease("pod-a"), e.realLease("pod-b")
	require.True(t, mustAcquireMem(t, a))
	require.False(t, mustAcquireMem(t, b))
	// Many writes later, with the log compacted, b's resourceVersion is
	// too old: the watch answers 410, and the standby watch reads the Lease
	// afresh (a re-list) and resumes from there, instead of spinning or
	// making the caller poll.
	for i := range 3 {
		require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) {
			l.Labels = map[string]string{"i": string(rune('a' + i))}
		}))
	}
	e.srv.CompactLog()
	gets := e.srv.Count("get")
	done := waitAsync(b)
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1), "the watch resumes after the re-read")
	assert.Equal(t, gets+1, e.srv.Count("get"), "one re-read after the 410")
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v after a 410 while the lease is held, want it to keep waiting", err)
	default:
	}
	require.NoError(t, a.Release(e.ctx()))
	require.NoError(t, recv(t, done, "Wait after Release"))
	assert.True(t, mustAcquireMem(t, b), "free after the release")
	require.NoError(t, b.Release(e.ctx()))
}

func TestWaitReturnsAtExpiry(t *testing.T) {
	e := newEnv(t)
	e.putRecord("pod-a", epoch, 15, 0) // a crashed holder
	b := e.newLease("pod-b", func(s *lease.Settings) { s.MaxClockSkew = -1 })
	ok, err := b.Acquire(e.ctx())
	require.NoError(t, err)
	require.False(t, ok)
	done := waitAsync(b.KubernetesLease)
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))
	// No event will come: Wait wakes at the computed expiry, 15s after the
	// record was first seen unchanged. Step b's clock until it does.
	var stepped time.Duration
	for woke := false; !woke; {
		b.clk.Step(time.Second)
		stepped += time.Second
		select {
		case err := <-done:
			require.NoError(t, err)
			woke = true
		case <-time.After(20 * time.Millisecond):
		}
		require.LessOrEqual(t, stepped, 20*time.Second, "Wait did not wake at the expiry")
	}
	assert.GreaterOrEqual(t, stepped, 15*time.Second, "not before the record's duration")
	ok, err = b.Acquire(e.ctx())
	require.NoError(t, err)
	assert.True(t, ok)
}

func TestWaitWhenFreeReturnsAtOnce(t *testing.T) {
	e := newEnv(t)
	b := e.realLease("pod-b")
	require.NoError(t, b.Wait(e.ctx()), "nothing seen yet")
	require.True(t, mustAcquireMem(t, b))
	require.NoError(t, b.Release(e.ctx()))
	require.NoError(t, b.Wait(e.ctx()), "our own record")
}

func TestHolderWatchEndsTenureAtOnce(t *testing.T) {
	tests := []struct {
		name   string
		change func(e *env)
		want   lease.LostReason
	}{
		{"third-party delete", func(e *env) { require.NoError(t, e.srv.Delete("default", "job")) }, lease.LostDeleted},
		{"foreign holder", func(e *env) {
			require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) { l.Spec.HolderIdentity = ptr("pod-c") }))
		}, lease.LostConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.newLease("pod-a", func(s *lease.Settings) { s.WatchWhileHolding = true })
			a.acquire(t)
			require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))
			// A label edit is not a loss.
			require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) { l.Labels = map[string]string{"x": "y"} }))
			tc.change(e)
			le := a.lost.wait(t) // no clock step: the watch saw it
			assert.Equal(t, tc.want, le.Reason)
			assert.False(t, a.CheckAlive())
			assert.Equal(t, 1, a.lost.count())
		})
	}
}

func TestSingletonHandoffByWatch(t *testing.T) {
	e := newEnv(t)
	a, b := e.realLease("pod-a"), e.realLease("pod-b")
	started := make(chan string, 2)
	work := func(name string) func(context.Context) error {
		return func(ctx context.Context) error {
			started <- name
			<-ctx.Done()
			return nil
		}
	}
	actx, acancel := context.WithCancel(context.Background())
	adone := make(chan error, 1)
	go func() { adone <- lease.RunSingleton(actx, a, work("a"), lease.SingletonOptions{}) }()
	assert.Equal(t, "a", recv(t, started, "a starts"))
	bctx, bcancel := context.WithCancel(context.Background())
	defer bcancel()
	bdone := make(chan error, 1)
	// An hour between polls: only the watch can wake b in time.
	go func() {
		bdone <- lease.RunSingleton(bctx, b, work("b"), lease.SingletonOptions{RetryInterval: time.Hour})
	}()
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))
	acancel()
	recv(t, adone, "a stops")
	assert.Equal(t, "b", recv(t, started, "b starts after a's release"))
	bcancel()
	recv(t, bdone, "b stops")
}
