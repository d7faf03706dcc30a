package leasetest

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubelease/lease"
)

// LeaseBackend makes the leases TestLease checks: instances that contend
// on one lease, and a way to end a holder's tenure from outside. Its
// functions are called from the goroutine of the subtest whose t they are
// given.
type LeaseBackend struct {
	// New returns a new instance, held as owner, contending on the same
	// lease as every other instance New returned for the same t. The lease
	// must be free when a subtest first calls New: the simplest way is a
	// fresh lease name, or a fresh server, per t. (TestLease releases
	// every instance at the end of each subtest, so a single name shared
	// by all subtests works too, provided Revoke leaves the lease
	// acquirable.)
	New func(t *testing.T, owner string) lease.Lease

	// Revoke ends holder's current tenure from outside, as another process
	// taking over or a third party would, and must make holder's OnLost
	// handlers fire (it may take backend-specific steps, such as stepping a
	// fake clock, to get there). Afterwards the same instance must be able
	// to acquire the lease again, perhaps after a Release.
	Revoke func(t *testing.T, holder lease.Lease)

	// Settle, if set, waits until every OnLost handler that the leases of
	// t have started so far has returned (Arbiter.Wait does this for
	// MemoryLeases). TestLease uses it before checking that a handler was
	// not called; without it TestLease yields the processor a number of
	// times instead, which catches a wrong call often but not always.
	Settle func(t *testing.T)
}

// TestLease checks that the leases b makes behave as the lease.Lease
// contract says, one named subtest per behaviour, one after another:
// AcquireFree, AcquireWhileHeld, LiveConflict, Release, ReleaseIdempotent,
// ReleaseByNonHolder, OnLostNotCalledOnRelease, OnLostOnRevoke,
// UnregisterOnLost, ReacquireAfterLoss, ConcurrentAcquire and
// TokensIncrease. Leases that also have a Token() (lease.Token, bool)
// method, as KubernetesLease and MemoryLease do, have it checked against
// CheckAlive and the tokens Acquire returned.
//
// It is shaped like testing/fstest.TestFS: every implementation of
// lease.Lease can run it, the in-memory MemoryLease and KubernetesLease
// (against Server) do. Where Conformance checks a server and the wire,
// TestLease checks an implementation through the interface alone. Every
// wait (an OnLost call, a call of the lease) is bounded by 10 s of real
// time.
func TestLease(t *testing.T, b LeaseBackend) {
	t.Helper()
	if b.New == nil || b.Revoke == nil {
		t.Fatal("leasetest.TestLease: LeaseBackend.New and Revoke must be set")
	}
	for _, c := range behaviourCases {
		t.Run(c.name, func(t *testing.T) { c.run(t, b) })
	}
}

// waitTimeout bounds every wait for an OnLost handler and every call.
const waitTimeout = 10 * time.Second

// tokener is implemented by leases that report their current token.
type tokener interface {
	Token() (lease.Token, bool)
}

// newTableLease makes an instance with b.New and releases it when the
// subtest ends.
func newTableLease(t *testing.T, b LeaseBackend, owner string) lease.Lease {
	t.Helper()
	l := b.New(t, owner)
	if l == nil {
		t.Fatalf("New(%q): got nil lease, want one", owner)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := l.Release(ctx); err != nil {
			t.Logf("cleanup: Release(%q): %v", owner, err)
		}
	})
	return l
}

// newWatchedLease makes an instance held as "a" with newTableLease, and a
// lostWatch on it that is unregistered when the subtest ends.
func newWatchedLease(t *testing.T, b LeaseBackend) (lease.Lease, *lostWatch) {
	t.Helper()
	a := newTableLease(t, b, "a")
	w := watchLost(a)
	t.Cleanup(w.unregister)
	return a, w
}

// callCtx is a context for one call, bounded by waitTimeout.
func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// mustAcquire acquires l and returns the tenure's token, checking that the
// acquire succeeded with a non-zero token.
func mustAcquire(t *testing.T, l lease.Lease, what string) lease.Token {
	t.Helper()
	tok, ok, err := l.AcquireWithToken(callCtx(t))
	switch {
	case err != nil:
		t.Fatalf("%s: AcquireWithToken: %v", what, err)
	case !ok:
		t.Fatalf("%s: AcquireWithToken: got ok=false, want true", what)
	case tok.IsZero():
		t.Fatalf("%s: AcquireWithToken: got zero token, want non-zero", what)
	}
	return tok
}

// mustNotAcquire checks that Acquire of l returns false with no error.
func mustNotAcquire(t *testing.T, l lease.Lease, what string) {
	t.Helper()
	ok, err := l.Acquire(callCtx(t))
	switch {
	case err != nil:
		t.Fatalf("%s: Acquire: %v", what, err)
	case ok:
		t.Fatalf("%s: Acquire: got true, want false", what)
	}
}

// mustRelease releases l, checking that Release returns nil.
func mustRelease(t *testing.T, l lease.Lease, what string) {
	t.Helper()
	if err := l.Release(callCtx(t)); err != nil {
		t.Fatalf("%s: Release: %v", what, err)
	}
}

// checkHeld checks CheckAlive and, when l reports tokens, Token().
func checkHeld(t *testing.T, l lease.Lease, want bool, wantTok lease.Token, what string) {
	t.Helper()
	if got := l.CheckAlive(); got != want {
		t.Errorf("%s: CheckAlive: got %v, want %v", what, got, want)
	}
	if tl, ok := l.(tokener); ok {
		tok, held := tl.Token()
		if held != want {
			t.Errorf("%s: Token ok: got %v, want %v", what, held, want)
		}
		if want && tok != wantTok {
			t.Errorf("%s: Token: got %v, want %v", what, tok, wantTok)
		}
	}
}

// assertNewer checks that got compares greater than prev.
func assertNewer(t *testing.T, got, prev lease.Token, what string) {
	t.Helper()
	c, err := got.Compare(prev)
	if err != nil {
		t.Fatalf("%s: %v.Compare(%v): %v", what, got, prev, err)
	}
	if c != 1 {
		t.Errorf("%s: %v.Compare(%v): got %d, want 1", what, got, prev, c)
	}
}

// lostCall is one call of an OnLost handler.
type lostCall struct {
	err   error
	alive bool // CheckAlive as seen from inside the handler
}

// lostWatch records the calls of one OnLost handler.
type lostWatch struct {
	ch         chan lostCall
	overflow   atomic.Int32
	unregister func()
}

// watchLost registers an OnLost handler on l that records its calls. The
// handler never blocks.
func watchLost(l lease.Lease) *lostWatch {
	w := &lostWatch{ch: make(chan lostCall, 16)}
	w.unregister = l.OnLost(func(reason error) {
		select {
		case w.ch <- lostCall{err: reason, alive: l.CheckAlive()}:
		default:
			w.overflow.Add(1)
		}
	})
	return w
}

// next waits up to waitTimeout for the next call.
func (w *lostWatch) next(t *testing.T, what string) lostCall {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case c := <-w.ch:
		return c
	case <-timer.C:
		t.Fatalf("%s: OnLost handler: got no call within %v, want one", what, waitTimeout)
		return lostCall{}
	}
}

// none checks that no call is queued, after letting handler goroutines
// run (see LeaseBackend.Settle).
func (w *lostWatch) none(t *testing.T, b LeaseBackend, what string) {
	t.Helper()
	settle(t, b)
	select {
	case c := <-w.ch:
		t.Errorf("%s: OnLost handler: got a call with %v, want none", what, c.err)
	default:
	}
	if n := w.overflow.Load(); n != 0 {
		t.Errorf("%s: OnLost handler: got %d extra calls, want none", what, n)
	}
}

// settle lets started OnLost handlers finish: with b.Settle if set, else
// by yielding the processor (no sleeping).
func settle(t *testing.T, b LeaseBackend) {
	t.Helper()
	if b.Settle != nil {
		b.Settle(t)
		return
	}
	for range 1000 {
		runtime.Gosched()
	}
}

// lostError checks that err, an OnLost reason, is a *lease.LostError
// matching lease.ErrLost, and returns it.
func lostError(t *testing.T, err error, what string) *lease.LostError {
	t.Helper()
	var le *lease.LostError
	if !errors.As(err, &le) {
		t.Fatalf("%s: OnLost reason: errors.As(%T, *LostError): got false, want true", what, err)
	}
	if !errors.Is(err, lease.ErrLost) {
		t.Errorf("%s: errors.Is(%v, ErrLost): got false, want true", what, err)
	}
	return le
}

// checkLost checks that c reports the end of the tenure with token tok.
func checkLost(t *testing.T, c lostCall, tok lease.Token, what string) {
	t.Helper()
	if c.alive {
		t.Errorf("%s: CheckAlive inside OnLost handler: got true, want false", what)
	}
	le := lostError(t, c.err, what)
	if le.Token != tok {
		t.Errorf("%s: LostError.Token: got %v, want %v", what, le.Token, tok)
	}
	if le.Reason == "" {
		t.Errorf("%s: LostError.Reason: got empty, want a reason", what)
	}
}

// revokeAndCheck ends a's tenure tok with b.Revoke and checks the call w
// then gets.
func revokeAndCheck(t *testing.T, b LeaseBackend, a lease.Lease, w *lostWatch, tok lease.Token, what string) {
	t.Helper()
	b.Revoke(t, a)
	checkLost(t, w.next(t, what), tok, what)
}
