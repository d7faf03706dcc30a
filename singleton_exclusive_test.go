package lease_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"
)

// Regression tests for RunSingleton's exclusivity and shutdown (issue 10,
// items 1–3): each one failed on the runner before the fix.

// cancelOnAcquire cancels the caller's context right after an Acquire
// succeeded, as a SIGTERM arriving while the acquiring write is answered.
type cancelOnAcquire struct {
	lease.Lease
	cancel context.CancelFunc
}

func (c *cancelOnAcquire) AcquireWithToken(ctx context.Context) (lease.Token, bool, error) {
	tok, ok, err := c.Lease.AcquireWithToken(context.WithoutCancel(ctx))
	c.cancel()
	return tok, ok, err
}

// Item 1: ctx ends while Acquire succeeds → RunSingleton must not return
// with the tenure still held.
func TestSingletonCtxEndsWhileAcquireSucceeds(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		e := newRunnerEnv(t)
		a := e.lease("a")
		ctx, cancel := context.WithCancel(context.Background())
		err := recv(t, e.run(ctx, &cancelOnAcquire{Lease: a, cancel: cancel}, func(context.Context) error {
			t.Error("work started after ctx ended")
			return nil
		}, lease.SingletonOptions{}), "RunSingleton")
		assert.ErrorIs(t, err, context.Canceled)
		assert.False(t, a.CheckAlive(), "RunSingleton returned with the tenure held")
		_, held := e.arb.Holder("job")
		assert.False(t, held, "the lease is still held after RunSingleton returned")
	})
	t.Run("kubernetes", func(t *testing.T) {
		e := newEnv(t)
		a := e.newLease("a")
		ctx, cancel := context.WithCancel(context.Background())
		err := lease.RunSingleton(ctx, &cancelOnAcquire{Lease: a, cancel: cancel}, func(context.Context) error {
			t.Error("work started after ctx ended")
			return nil
		}, lease.SingletonOptions{Clock: a.clk})
		assert.ErrorIs(t, err, context.Canceled)
		assert.False(t, a.CheckAlive(), "RunSingleton returned with the tenure held")
		if _, ok := e.srv.Get("default", "job"); ok {
			t.Error("the Lease still exists after RunSingleton returned: peers are locked out")
		}
	})
}

// runnerWork is a work function that records its lifetime.
type runnerWork struct {
	running  atomic.Int32 // works running now
	maxSeen  atomic.Int32
	started  chan struct{}
	causes   chan error
	returned chan struct{}
}

func newRunnerWork() *runnerWork {
	return &runnerWork{started: make(chan struct{}, 8), causes: make(chan error, 8), returned: make(chan struct{}, 8)}
}

func (w *runnerWork) run(ctx context.Context) error {
	n := w.running.Add(1)
	for {
		m := w.maxSeen.Load()
		if n <= m || w.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	w.started <- struct{}{}
	<-ctx.Done()
	w.causes <- context.Cause(ctx)
	w.running.Add(-1)
	w.returned <- struct{}{}
	return nil
}

// Item 2a: a Release from elsewhere (a shutdown hook) cancels work and
// waits for it before the tenure ends, on both implementations.
func TestSingletonExternalReleaseStopsWorkFirst(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T) (l lease.Lease, clk *clocktesting.FakeClock, held func() bool)
	}{
		{"memory", func(t *testing.T) (lease.Lease, *clocktesting.FakeClock, func() bool) {
			e := newRunnerEnv(t)
			return e.lease("a"), e.clk, func() bool { _, ok := e.arb.Holder("job"); return ok }
		}},
		{"kubernetes", func(t *testing.T) (lease.Lease, *clocktesting.FakeClock, func() bool) {
			e := newEnv(t)
			c := e.newLease("a")
			return c, c.clk, func() bool { _, ok := e.srv.Get("default", "job"); return ok }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, clk, held := tc.make(t)
			w := newRunnerWork()
			done := make(chan error, 1)
			go func() { done <- lease.RunSingleton(context.Background(), l, w.run, lease.SingletonOptions{Clock: clk}) }()
			recv(t, w.started, "work start")
			require.NoError(t, l.Release(context.Background()))
			select {
			case <-w.returned:
			default:
				t.Fatal("Release returned while work still ran: a peer could start beside it")
			}
			assert.ErrorIs(t, recv(t, w.causes, "cause"), lease.ErrNotHeld, "work's cause")
			assert.False(t, held(), "released")
			assert.ErrorIs(t, recv(t, done, "RunSingleton"), lease.ErrNotHeld, "RunSingleton's result")
		})
	}
}

// Item 2b: two RunSingleton calls on one instance never run two works.
func TestSingletonSecondCallOnBusyInstance(t *testing.T) {
	e := newRunnerEnv(t)
	a := e.lease("a")
	w := newRunnerWork()
	ctx, cancel := context.WithCancel(context.Background())
	first := e.run(ctx, a, w.run, lease.SingletonOptions{})
	recv(t, w.started, "first work start")
	second := e.run(context.Background(), a, w.run, lease.SingletonOptions{})
	assert.ErrorIs(t, recv(t, second, "second RunSingleton"), lease.ErrBusy)
	assert.Equal(t, int32(1), w.maxSeen.Load(), "works running at once")
	assert.True(t, a.CheckAlive(), "the first work's tenure is untouched")
	cancel()
	assert.ErrorIs(t, recv(t, first, "first RunSingleton"), context.Canceled)
	// Free again once the first call returned.
	ctx2, cancel2 := context.WithCancel(context.Background())
	third := e.run(ctx2, a, w.run, lease.SingletonOptions{})
	recv(t, w.started, "third work start")
	cancel2()
	assert.ErrorIs(t, recv(t, third, "third RunSingleton"), context.Canceled)
}

// Item 2c: after ErrWorkDidNotStop the instance stays busy, and a Release
// refuses to end the tenure under the running work, until work returns;
// then the lease is released.
func TestSingletonAbandonedWorkKeepsInstanceBusy(t *testing.T) {
	e := newRunnerEnv(t)
	a := e.lease("a")
	stuck := make(chan struct{})
	returned := make(chan struct{})
	started := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := e.run(ctx, a, func(context.Context) error {
		started <- struct{}{}
		<-stuck // ignores its context
		close(returned)
		return nil
	}, lease.SingletonOptions{GracePeriod: 3 * time.Second})
	recv(t, started, "start")
	cancel()
	err := stepUntil(t, e.clk, time.Second, done)
	require.ErrorIs(t, err, lease.ErrWorkDidNotStop)
	assert.True(t, a.CheckAlive(), "not released while work may still run")

	again := e.run(context.Background(), a, func(context.Context) error {
		t.Error("a second work started beside the abandoned one")
		return nil
	}, lease.SingletonOptions{})
	assert.ErrorIs(t, recv(t, again, "RunSingleton on the busy instance"), lease.ErrBusy)

	rel := make(chan error, 1)
	go func() { rel <- a.Release(context.Background()) }()
	assert.ErrorIs(t, stepUntil(t, e.clk, time.Second, rel), lease.ErrWorkDidNotStop, "Release under a running work")
	assert.True(t, a.CheckAlive(), "Release did not end the tenure under the running work")

	close(stuck)
	recv(t, returned, "work return")
	// The runner releases the lease once the abandoned work returned.
	for deadline := time.Now().Add(waitFor); a.CheckAlive(); runtime.Gosched() {
		require.True(t, time.Now().Before(deadline), "lease not released after the abandoned work returned")
	}
	e.arb.Wait()
}

// stepUntil steps clk by d until ch yields.
func stepUntil[T any](t *testing.T, clk *clocktesting.FakeClock, d time.Duration, ch <-chan T) T {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		clk.Step(d)
		select {
		case v := <-ch:
			return v
		case <-deadline:
			t.Fatalf("nothing within %v", waitFor)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Item 3: after a suspend (the wall clock jumps, the monotonic clock stood
// still) work is cancelled within the alive-check period, not at the next
// renewal.
func TestSingletonCancelsWorkAfterSuspend(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("a")
	w := newRunnerWork()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- lease.RunSingleton(ctx, a, w.run, lease.SingletonOptions{Clock: a.clk}) }()
	recv(t, w.started, "work start")
	a.events.waitArmed(t)
	// The renewal timer and the runner's alive check are both set.
	awaitWaiters(t, a.clk, 2)
	lease.StepWall(a.KubernetesLease, 20*time.Second) // a suspend of 20 s
	a.clk.Step(250 * time.Millisecond)
	var cause error
	select {
	case cause = <-w.causes:
	case <-time.After(waitFor):
		t.Fatal("work not cancelled within 250 ms of the runner's clock after a suspend")
	}
	var le *lease.LostError
	require.ErrorAs(t, cause, &le)
	assert.Equal(t, lease.LostDeadline, le.Reason)
	cancel()
	recv(t, done, "RunSingleton")
}

// awaitWaiters waits until clk has at least n timers or tickers set.
func awaitWaiters(t *testing.T, clk *clocktesting.FakeClock, n int) {
	t.Helper()
	for deadline := time.Now().Add(waitFor); clk.Waiters() < n; runtime.Gosched() {
		require.True(t, time.Now().Before(deadline), "fewer than %d timers set within %v", n, waitFor)
	}
}

// Item 9: LastSeenHolder reports ourselves on the holder, also after renewals.
func TestLastSeenHolderOnHolder(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("a")
	assert.Equal(t, "", a.LastSeenHolder(), "before any read")
	a.acquire(t)
	assert.Equal(t, "a", a.LastSeenHolder(), "after acquiring a new Lease")
	a.renewOnce(t)
	assert.Equal(t, "a", a.LastSeenHolder(), "after a renewal")
	b := e.newLease("b")
	ok, err := b.Acquire(e.ctx())
	require.NoError(t, err)
	require.False(t, ok)
	assert.Equal(t, "a", b.LastSeenHolder(), "a contender sees the holder")
}

// Work that gives the lease up itself, with its own context, is not made
// to wait for itself.
func TestSingletonWorkReleasesItself(t *testing.T) {
	e := newRunnerEnv(t)
	a := e.lease("a")
	done := e.run(context.Background(), a, func(ctx context.Context) error {
		if err := a.Release(ctx); err != nil {
			return err
		}
		if ctx.Err() == nil {
			t.Error("work's context still live after its tenure was released")
		}
		return nil
	}, lease.SingletonOptions{})
	assert.NoError(t, recv(t, done, "RunSingleton"), "work's own result")
	_, held := e.arb.Holder("job")
	assert.False(t, held)
}
