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

// heldAndContended returns two leases on the real clock: a holds the
// lease, and b has seen a hold it.
func (e *env) heldAndContended() (a, b *lease.KubernetesLease) {
	e.t.Helper()
	a, b = e.realLease("pod-a"), e.realLease("pod-b")
	require.True(e.t, mustAcquireMem(e.t, a))
	require.False(e.t, mustAcquireMem(e.t, b))
	return a, b
}

// waitWatching calls l.Wait on a goroutine of its own and returns, once
// Wait's watch is set, the channel its result is sent on.
func (e *env) waitWatching(l *lease.KubernetesLease) <-chan error {
	e.t.Helper()
	done := waitAsync(l)
	require.NoError(e.t, e.srv.AwaitWatchers(e.ctx(), 1))
	return done
}

// waitAsync calls l.Wait on a goroutine of its own and returns the channel
// its result is sent on.
func waitAsync(l *lease.KubernetesLease) <-chan error {
	done := make(chan error, 1)
	go func() { done <- l.Wait(context.Background()) }()
	return done
}

func TestWaitWakesOnRelease(t *testing.T) {
	e := newEnv(t)
	a, b := e.heldAndContended()
	done := e.waitWatching(b)
	require.NoError(t, a.Release(e.ctx()))
	require.NoError(t, recv(t, done, "Wait after Release"))
	assert.True(t, mustAcquireMem(t, b), "the peer acquires at once")
}

func TestWaitReconnectsAfterDroppedStream(t *testing.T) {
	e := newEnv(t)
	a, b := e.heldAndContended()
	done := e.waitWatching(b)
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
	done := e.waitWatching(b.KubernetesLease)
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
