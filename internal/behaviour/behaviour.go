// Package behaviour is the table of behaviour that every lease.Lease
// implementation of this module must pass: lease.KubernetesLease against
// leasetest.Server, and leasetest.MemoryLease. Each implementation's tests
// call Run with a Backend that makes its leases.
package behaviour

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubelease/lease"
)

// waitTimeout bounds every wait for an OnLost handler and every call.
const waitTimeout = 10 * time.Second

// Backend makes leases that contend on one lease and can end a holder's
// tenure from outside. Its functions are called from the test goroutine of
// the subtest whose t they are given.
type Backend struct {
	// New returns a new instance, held as owner, contending on the same
	// lease as every other instance New returned for the same t. The lease
	// must be free when a subtest first calls New: the simplest way is a
	// fresh lease name per t. (Run releases every instance at the end of
	// each subtest, so a single name shared by all subtests works too,
	// provided Revoke leaves the lease acquirable.)
	New func(t *testing.T, owner string) lease.Lease

	// Revoke ends holder's current tenure from outside, as another process
	// taking over or a third party would, and must make holder's OnLost
	// handlers fire (it may take backend-specific steps, such as stepping a
	// fake clock, to get there). Afterwards the same instance must be able
	// to acquire the lease again, perhaps after a Release.
	Revoke func(t *testing.T, holder lease.Lease)

	// Settle, if set, waits until every OnLost handler that the leases of
	// t have started so far has returned (leasetest.Arbiter.Wait does this
	// for MemoryLeases). Run uses it before checking that a handler was
	// not called; without it Run yields the processor a number of times
	// instead, which catches a wrong call often but not always.
	Settle func(t *testing.T)
}

// tokener is implemented by leases that report their current token.
type tokener interface {
	Token() (lease.Token, bool)
}

// Run runs the behaviour table against b, each case as a subtest named
// after the behaviour it checks.
func Run(t *testing.T, b Backend) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, b) })
	}
}

var cases = []struct {
	name string
	run  func(t *testing.T, b Backend)
}{
	{"AcquireFree", acquireFree},
	{"AcquireWhileHeld", acquireWhileHeld},
	{"LiveConflict", liveConflict},
	{"Release", release},
	{"ReleaseIdempotent", releaseIdempotent},
	{"ReleaseByNonHolder", releaseByNonHolder},
	{"OnLostNotCalledOnRelease", onLostNotCalledOnRelease},
	{"OnLostOnRevoke", onLostOnRevoke},
	{"UnregisterOnLost", unregisterOnLost},
	{"ReacquireAfterLoss", reacquireAfterLoss},
	{"ConcurrentAcquire", concurrentAcquire},
	{"TokensIncrease", tokensIncrease},
}

// newLease makes an instance with b.New and releases it when the subtest
// ends.
func newLease(t *testing.T, b Backend, owner string) lease.Lease {
	t.Helper()
	l := b.New(t, owner)
	require.NotNil(t, l, "New(%q): got nil lease", owner)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := l.Release(ctx); err != nil {
			t.Logf("cleanup: Release(%q): %v", owner, err)
		}
	})
	return l
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
	require.NoError(t, err, "%s: AcquireWithToken", what)
	require.True(t, ok, "%s: AcquireWithToken: got ok=false, want true", what)
	require.False(t, tok.IsZero(), "%s: AcquireWithToken: got zero token, want non-zero", what)
	return tok
}

// checkHeld checks CheckAlive and, when l reports tokens, Token().
func checkHeld(t *testing.T, l lease.Lease, want bool, wantTok lease.Token, what string) {
	t.Helper()
	assert.Equal(t, want, l.CheckAlive(), "%s: CheckAlive: got %v, want %v", what, !want, want)
	if tl, ok := l.(tokener); ok {
		tok, held := tl.Token()
		assert.Equal(t, want, held, "%s: Token ok: got %v, want %v", what, held, want)
		if want {
			assert.Equal(t, wantTok, tok, "%s: Token: got %v, want %v", what, tok, wantTok)
		}
	}
}

// assertNewer checks that got compares greater than prev.
func assertNewer(t *testing.T, got, prev lease.Token, what string) {
	t.Helper()
	c, err := got.Compare(prev)
	require.NoError(t, err, "%s: %v.Compare(%v)", what, got, prev)
	assert.Equal(t, 1, c, "%s: %v.Compare(%v): got %d, want 1", what, got, prev, c)
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
		require.FailNow(t, "OnLost handler not called", "%s: got no call within %v, want one", what, waitTimeout)
		return lostCall{}
	}
}

// none checks that no call is queued, after letting handler goroutines
// run (see Backend.Settle).
func (w *lostWatch) none(t *testing.T, b Backend, what string) {
	t.Helper()
	settle(t, b)
	select {
	case c := <-w.ch:
		assert.Fail(t, "unexpected OnLost call", "%s: got a call with %v, want none", what, c.err)
	default:
	}
	assert.Zero(t, w.overflow.Load(), "%s: got extra OnLost calls, want none", what)
}

// settle lets started OnLost handlers finish: with b.Settle if set, else
// by yielding the processor (no sleeping).
func settle(t *testing.T, b Backend) {
	t.Helper()
	if b.Settle != nil {
		b.Settle(t)
		return
	}
	for range 1000 {
		runtime.Gosched()
	}
}

// checkLost checks that c reports the end of the tenure with token tok.
func checkLost(t *testing.T, c lostCall, tok lease.Token, what string) {
	t.Helper()
	assert.False(t, c.alive, "%s: CheckAlive inside OnLost handler: got true, want false", what)
	require.Error(t, c.err, "%s: OnLost reason: got nil, want a *lease.LostError", what)
	assert.True(t, errors.Is(c.err, lease.ErrLost), "%s: errors.Is(%v, ErrLost): got false, want true", what, c.err)
	var le *lease.LostError
	require.True(t, errors.As(c.err, &le), "%s: errors.As(%T, *LostError): got false, want true", what, c.err)
	assert.Equal(t, tok, le.Token, "%s: LostError.Token: got %v, want %v", what, le.Token, tok)
	assert.NotEmpty(t, le.Reason, "%s: LostError.Reason: got empty, want a reason", what)
}

func acquireFree(t *testing.T, b Backend) {
	l := newLease(t, b, "a")
	ok, err := l.Acquire(callCtx(t))
	require.NoError(t, err, "Acquire")
	require.True(t, ok, "Acquire: got false, want true")
	tok, ok, err := l.AcquireWithToken(callCtx(t))
	require.NoError(t, err, "AcquireWithToken")
	require.True(t, ok, "AcquireWithToken: got false, want true")
	assert.False(t, tok.IsZero(), "AcquireWithToken: got zero token, want non-zero")
	checkHeld(t, l, true, tok, "after Acquire")
}

func acquireWhileHeld(t *testing.T, b Backend) {
	l := newLease(t, b, "a")
	tok1 := mustAcquire(t, l, "first acquire")
	tok2 := mustAcquire(t, l, "second acquire")
	assert.Equal(t, tok1, tok2, "token of second acquire: got %v, want %v", tok2, tok1)
	checkHeld(t, l, true, tok1, "after second acquire")
}

func liveConflict(t *testing.T, b Backend) {
	a := newLease(t, b, "a")
	c := newLease(t, b, "c")
	tok := mustAcquire(t, a, "a")

	got, ok, err := c.AcquireWithToken(callCtx(t))
	require.NoError(t, err, "c: AcquireWithToken")
	assert.False(t, ok, "c: AcquireWithToken: got true, want false")
	assert.True(t, got.IsZero(), "c: AcquireWithToken: got token %v, want zero", got)
	ok, err = c.Acquire(callCtx(t))
	require.NoError(t, err, "c: Acquire")
	assert.False(t, ok, "c: Acquire: got true, want false")

	checkHeld(t, c, false, lease.Token{}, "c")
	checkHeld(t, a, true, tok, "a")
}

func release(t *testing.T, b Backend) {
	a := newLease(t, b, "a")
	c := newLease(t, b, "c")
	tok1 := mustAcquire(t, a, "a")
	require.NoError(t, a.Release(callCtx(t)), "a: Release")
	checkHeld(t, a, false, lease.Token{}, "a after Release")

	tok2 := mustAcquire(t, c, "c after a's Release")
	assertNewer(t, tok2, tok1, "c's token after a's")
	checkHeld(t, c, true, tok2, "c")
}

func releaseIdempotent(t *testing.T, b Backend) {
	a := newLease(t, b, "a")
	require.NoError(t, a.Release(callCtx(t)), "Release before any Acquire")
	checkHeld(t, a, false, lease.Token{}, "after Release before any Acquire")

	mustAcquire(t, a, "a")
	require.NoError(t, a.Release(callCtx(t)), "first Release")
	require.NoError(t, a.Release(callCtx(t)), "second Release")
	checkHeld(t, a, false, lease.Token{}, "after two Releases")

	tok := mustAcquire(t, a, "a again")
	checkHeld(t, a, true, tok, "after acquiring again")
}

func releaseByNonHolder(t *testing.T, b Backend) {
	a := newLease(t, b, "a")
	c := newLease(t, b, "c")
	tok := mustAcquire(t, a, "a")

	require.NoError(t, c.Release(callCtx(t)), "c: Release, never acquired")
	ok, err := c.Acquire(callCtx(t))
	require.NoError(t, err, "c: Acquire")
	require.False(t, ok, "c: Acquire: got true, want false")
	require.NoError(t, c.Release(callCtx(t)), "c: Release after a failed Acquire")

	checkHeld(t, a, true, tok, "a after c's Releases")
	got := mustAcquire(t, a, "a again")
	assert.Equal(t, tok, got, "a's token after c's Releases: got %v, want %v", got, tok)

	d := newLease(t, b, "d")
	ok, err = d.Acquire(callCtx(t))
	require.NoError(t, err, "d: Acquire")
	assert.False(t, ok, "d: Acquire while a holds: got true, want false")
}

func onLostNotCalledOnRelease(t *testing.T, b Backend) {
	a := newLease(t, b, "a")
	w := watchLost(a)
	defer w.unregister()

	// Released tenures interleaved with revoked ones: every call must be
	// for a revoked tenure. Each wait for a revoked tenure's call gives a
	// wrong call for an earlier Release time to show up.
	var released []lease.Token
	for i := range 3 {
		what := fmt.Sprintf("round %d", i)
		tok := mustAcquire(t, a, what+": released tenure")
		require.NoError(t, a.Release(callCtx(t)), "%s: Release", what)
		released = append(released, tok)
		w.none(t, b, what+": after Release")

		tok = mustAcquire(t, a, what+": revoked tenure")
		b.Revoke(t, a)
		for {
			c := w.next(t, what+": after Revoke")
			var le *lease.LostError
			require.True(t, errors.As(c.err, &le), "%s: OnLost reason: errors.As(%T, *LostError): got false, want true", what, c.err)
			require.NotContains(t, released, le.Token, "%s: OnLost called for released tenure %v, want no call", what, le.Token)
			if le.Token == tok {
				break
			}
		}
		require.NoError(t, a.Release(callCtx(t)), "%s: Release after loss", what)
	}
	w.none(t, b, "after the last revoked tenure's call")
}

func onLostOnRevoke(t *testing.T, b Backend) {
	a := newLease(t, b, "a")
	w := watchLost(a)
	defer w.unregister()

	tok1 := mustAcquire(t, a, "first tenure")
	b.Revoke(t, a)
	checkLost(t, w.next(t, "first Revoke"), tok1, "first Revoke")
	checkHeld(t, a, false, lease.Token{}, "after first Revoke")

	// The handler stays registered for the next tenure, and the first
	// tenure got exactly one call.
	require.NoError(t, a.Release(callCtx(t)), "Release after loss")
	tok2 := mustAcquire(t, a, "second tenure")
	b.Revoke(t, a)
	checkLost(t, w.next(t, "second Revoke"), tok2, "second Revoke")
	checkHeld(t, a, false, lease.Token{}, "after second Revoke")
	w.none(t, b, "after second Revoke")
}

func unregisterOnLost(t *testing.T, b Backend) {
	a := newLease(t, b, "a")
	gone := watchLost(a)
	kept := watchLost(a)
	defer kept.unregister()
	gone.unregister()
	gone.unregister() // idempotent

	tok := mustAcquire(t, a, "a")
	b.Revoke(t, a)
	checkLost(t, kept.next(t, "registered handler"), tok, "registered handler")

	// Another lost tenure gives the unregistered handler a second chance
	// to show up while we wait for the registered one.
	require.NoError(t, a.Release(callCtx(t)), "Release after loss")
	tok = mustAcquire(t, a, "a again")
	b.Revoke(t, a)
	checkLost(t, kept.next(t, "registered handler, second loss"), tok, "registered handler, second loss")
	gone.none(t, b, "unregistered handler")
}

func reacquireAfterLoss(t *testing.T, b Backend) {
	a := newLease(t, b, "a")
	w := watchLost(a)
	defer w.unregister()

	tok1 := mustAcquire(t, a, "first tenure")
	b.Revoke(t, a)
	checkLost(t, w.next(t, "Revoke"), tok1, "Revoke")
	require.NoError(t, a.Release(callCtx(t)), "Release after loss")

	tok2 := mustAcquire(t, a, "after loss")
	assertNewer(t, tok2, tok1, "token after loss")
	checkHeld(t, a, true, tok2, "after re-acquiring")
}

func concurrentAcquire(t *testing.T, b Backend) {
	const n = 8
	ls := make([]lease.Lease, n)
	for i := range ls {
		ls[i] = newLease(t, b, string(rune('a'+i)))
	}
	type result struct {
		tok lease.Token
		ok  bool
		err error
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, l := range ls {
		ctx := callCtx(t)
		wg.Go(func() {
			<-start
			tok, ok, err := l.AcquireWithToken(ctx)
			results[i] = result{tok, ok, err}
		})
	}
	close(start)
	wg.Wait()

	winners := 0
	for i, r := range results {
		owner := string(rune('a' + i))
		if !assert.NoError(t, r.err, "%s: AcquireWithToken", owner) {
			continue
		}
		if r.ok {
			winners++
			assert.False(t, r.tok.IsZero(), "%s: winner's token: got zero, want non-zero", owner)
			checkHeld(t, ls[i], true, r.tok, owner)
		} else {
			assert.True(t, r.tok.IsZero(), "%s: loser's token: got %v, want zero", owner, r.tok)
			checkHeld(t, ls[i], false, lease.Token{}, owner)
		}
	}
	assert.Equal(t, 1, winners, "instances that acquired: got %d, want 1", winners)
}

func tokensIncrease(t *testing.T, b Backend) {
	ls := []lease.Lease{newLease(t, b, "a"), newLease(t, b, "c")}
	var prev lease.Token
	for i := range 5 {
		l := ls[i%2]
		what := fmt.Sprintf("cycle %d", i)
		tok := mustAcquire(t, l, what)
		if i > 0 {
			assertNewer(t, tok, prev, what)
		}
		require.NoError(t, l.Release(callCtx(t)), "%s: Release", what)
		prev = tok
	}
}
