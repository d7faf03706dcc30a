package lease_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"
)

// runnerEnv runs RunSingleton over in-memory leases with a fake clock.
type runnerEnv struct {
	t   *testing.T
	arb *leasetest.Arbiter
	clk *clocktesting.FakeClock
}

func newRunnerEnv(t *testing.T) *runnerEnv {
	return &runnerEnv{t: t, arb: leasetest.NewArbiter(), clk: clocktesting.NewFakeClock(epoch)}
}

func (e *runnerEnv) lease(owner string) *leasetest.MemoryLease {
	l, err := e.arb.NewLease("job", owner)
	require.NoError(e.t, err)
	return l
}

// run starts RunSingleton on a goroutine and returns its result channel.
func (e *runnerEnv) run(ctx context.Context, l lease.Lease, work func(context.Context) error, o lease.SingletonOptions) <-chan error {
	o.Clock = e.clk
	done := make(chan error, 1)
	go func() { done <- lease.RunSingleton(ctx, l, work, o) }()
	return done
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatalf("%s: nothing within %v", what, waitFor)
		var zero T
		return zero
	}
}

func TestSingletonReleasesOnlyAfterWorkReturned(t *testing.T) {
	e := newRunnerEnv(t)
	a := e.lease("a")
	started := make(chan lease.Token, 1)
	holderAtReturn := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := e.run(ctx, a, func(ctx context.Context) error {
		<-ctx.Done()
		h, _ := e.arb.Holder("job")
		holderAtReturn <- h // still held while work winds down
		return nil
	}, lease.SingletonOptions{OnStarted: func(tok lease.Token) { started <- tok }})
	recv(t, started, "work start")
	cancel()
	assert.Equal(t, "a", recv(t, holderAtReturn, "work return"), "lease still held when work returned")
	assert.ErrorIs(t, recv(t, done, "RunSingleton"), context.Canceled)
	_, held := e.arb.Holder("job")
	assert.False(t, held, "released after work returned")
}

func TestSingletonWorkCancelledOnLossWithCause(t *testing.T) {
	e := newRunnerEnv(t)
	a := e.lease("a")
	causes := make(chan error, 2)
	starts := make(chan lease.Token, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := e.run(ctx, a, func(ctx context.Context) error {
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return nil
	}, lease.SingletonOptions{OnStarted: func(tok lease.Token) { starts <- tok }})
	first := recv(t, starts, "first start")
	require.True(t, e.arb.Revoke("job"))
	cause := recv(t, causes, "work cancelled")
	var le *lease.LostError
	require.ErrorAs(t, cause, &le, "work's context cause is the *LostError")
	assert.Equal(t, lease.LostConflict, le.Reason)
	assert.Equal(t, first, le.Token)

	// Re-contention after the loss: the backoff runs on the fake clock.
	var second lease.Token
	for second.IsZero() {
		e.clk.Step(time.Second)
		select {
		case second = <-starts:
		case <-time.After(10 * time.Millisecond):
		}
	}
	c, err := second.Compare(first)
	require.NoError(t, err)
	assert.Equal(t, 1, c, "a new tenure with a larger token")
	cancel()
	recv(t, done, "RunSingleton")
}

func TestSingletonWorkReturnsReleases(t *testing.T) {
	e := newRunnerEnv(t)
	a, b := e.lease("a"), e.lease("b")
	boom := errors.New("boom")
	var stopped []error
	var mu sync.Mutex
	done := e.run(context.Background(), a, func(context.Context) error { return boom }, lease.SingletonOptions{
		OnStopped: func(_ lease.Token, reason error) {
			mu.Lock()
			stopped = append(stopped, reason)
			mu.Unlock()
		},
	})
	assert.ErrorIs(t, recv(t, done, "RunSingleton"), boom)
	mu.Lock()
	assert.Equal(t, []error{nil}, stopped, "stopped by itself")
	mu.Unlock()
	ok, err := b.Acquire(context.Background())
	require.NoError(t, err)
	assert.True(t, ok, "a peer takes over at once")
	require.NoError(t, b.Release(context.Background()))
}

func TestSingletonGraceExceededDoesNotRelease(t *testing.T) {
	e := newRunnerEnv(t)
	a := e.lease("a")
	started := make(chan lease.Token, 1)
	stuck := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := e.run(ctx, a, func(context.Context) error {
		<-stuck // ignores its context
		return nil
	}, lease.SingletonOptions{GracePeriod: 3 * time.Second, OnStarted: func(tok lease.Token) { started <- tok }})
	recv(t, started, "start")
	cancel()
	var err error
	for err == nil {
		e.clk.Step(time.Second)
		select {
		case err = <-done:
		case <-time.After(10 * time.Millisecond):
		}
	}
	assert.ErrorIs(t, err, lease.ErrWorkDidNotStop)
	assert.True(t, a.CheckAlive(), "not released while work may still run")
	close(stuck)
	require.NoError(t, a.Release(context.Background()))
}

func TestSingletonWaitsWhileAnotherHolds(t *testing.T) {
	e := newRunnerEnv(t)
	a, b := e.lease("a"), e.lease("b")
	require.True(t, mustAcquireMem(t, a))
	attempts := make(chan error, 16)
	started := make(chan lease.Token, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := e.run(ctx, b, func(ctx context.Context) error { <-ctx.Done(); return nil },
		lease.SingletonOptions{RetryInterval: 2 * time.Second, OnAttempt: func(err error) { attempts <- err },
			OnStarted: func(tok lease.Token) { started <- tok }})
	assert.NoError(t, recv(t, attempts, "first attempt"), "held by another: no error")
	require.NoError(t, a.Release(context.Background()))
	var tok lease.Token
	for tok.IsZero() {
		e.clk.Step(time.Second)
		select {
		case tok = <-started:
		case <-attempts:
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	recv(t, done, "RunSingleton")
}

func mustAcquireMem(t *testing.T, l lease.Lease) bool {
	t.Helper()
	ok, err := l.Acquire(context.Background())
	require.NoError(t, err)
	return ok
}

// flakyLease fails its first Acquires with an error.
type flakyLease struct {
	lease.Lease
	mu    sync.Mutex
	fails int
}

func (f *flakyLease) AcquireWithToken(ctx context.Context) (lease.Token, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fails > 0 {
		f.fails--
		return lease.Token{}, false, errors.New("api down")
	}
	return f.Lease.AcquireWithToken(ctx)
}

func TestSingletonBacksOffAfterErrors(t *testing.T) {
	e := newRunnerEnv(t)
	fl := &flakyLease{Lease: e.lease("a"), fails: 3}
	attempts := make(chan error, 16)
	started := make(chan lease.Token, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := e.run(ctx, fl, func(ctx context.Context) error { <-ctx.Done(); return nil },
		lease.SingletonOptions{OnAttempt: func(err error) { attempts <- err }, OnStarted: func(tok lease.Token) { started <- tok }})
	// Each failed attempt is followed by a backoff on the fake clock: step
	// it (the timer may be set just after the attempt is reported) until
	// work starts.
	failed := 0
	for started := started; started != nil; {
		e.clk.Step(lease.DefaultMaxBackoff)
		select {
		case err := <-attempts:
			assert.Error(t, err)
			failed++
		case <-started:
			started = nil
		case <-time.After(10 * time.Millisecond):
		}
	}
	assert.Equal(t, 3, failed, "three failed attempts before work started")
	cancel()
	recv(t, done, "RunSingleton")
}
