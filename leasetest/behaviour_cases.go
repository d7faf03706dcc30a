package leasetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/kubelease/lease"
)

// behaviourCases is the table TestLease runs, in order.
var behaviourCases = []struct {
	name string
	run  func(t *testing.T, b LeaseBackend)
}{
	{"AcquireFree", btAcquireFree},
	{"AcquireWhileHeld", btAcquireWhileHeld},
	{"LiveConflict", btLiveConflict},
	{"Release", btRelease},
	{"ReleaseIdempotent", btReleaseIdempotent},
	{"ReleaseByNonHolder", btReleaseByNonHolder},
	{"OnLostNotCalledOnRelease", btOnLostNotCalledOnRelease},
	{"OnLostOnRevoke", btOnLostOnRevoke},
	{"UnregisterOnLost", btUnregisterOnLost},
	{"ReacquireAfterLoss", btReacquireAfterLoss},
	{"ConcurrentAcquire", btConcurrentAcquire},
	{"TokensIncrease", btTokensIncrease},
}

func btAcquireFree(t *testing.T, b LeaseBackend) {
	l := newTableLease(t, b, "a")
	ok, err := l.Acquire(callCtx(t))
	if err != nil || !ok {
		t.Fatalf("Acquire: got (%v, %v), want (true, nil)", ok, err)
	}
	tok := mustAcquire(t, l, "AcquireWithToken after Acquire")
	checkHeld(t, l, true, tok, "after Acquire")
}

func btAcquireWhileHeld(t *testing.T, b LeaseBackend) {
	l := newTableLease(t, b, "a")
	tok1 := mustAcquire(t, l, "first acquire")
	tok2 := mustAcquire(t, l, "second acquire")
	if tok2 != tok1 {
		t.Errorf("token of second acquire: got %v, want %v", tok2, tok1)
	}
	checkHeld(t, l, true, tok1, "after second acquire")
}

func btLiveConflict(t *testing.T, b LeaseBackend) {
	a := newTableLease(t, b, "a")
	c := newTableLease(t, b, "c")
	tok := mustAcquire(t, a, "a")

	got, ok, err := c.AcquireWithToken(callCtx(t))
	if err != nil {
		t.Fatalf("c: AcquireWithToken: %v", err)
	}
	if ok {
		t.Errorf("c: AcquireWithToken: got true, want false")
	}
	if !got.IsZero() {
		t.Errorf("c: AcquireWithToken: got token %v, want zero", got)
	}
	mustNotAcquire(t, c, "c")

	checkHeld(t, c, false, lease.Token{}, "c")
	checkHeld(t, a, true, tok, "a")
}

func btRelease(t *testing.T, b LeaseBackend) {
	a := newTableLease(t, b, "a")
	c := newTableLease(t, b, "c")
	tok1 := mustAcquire(t, a, "a")
	mustRelease(t, a, "a")
	checkHeld(t, a, false, lease.Token{}, "a after Release")

	tok2 := mustAcquire(t, c, "c after a's Release")
	assertNewer(t, tok2, tok1, "c's token after a's")
	checkHeld(t, c, true, tok2, "c")
}

func btReleaseIdempotent(t *testing.T, b LeaseBackend) {
	a := newTableLease(t, b, "a")
	mustRelease(t, a, "before any Acquire")
	checkHeld(t, a, false, lease.Token{}, "after Release before any Acquire")

	mustAcquire(t, a, "a")
	mustRelease(t, a, "first")
	mustRelease(t, a, "second")
	checkHeld(t, a, false, lease.Token{}, "after two Releases")

	tok := mustAcquire(t, a, "a again")
	checkHeld(t, a, true, tok, "after acquiring again")
}

func btReleaseByNonHolder(t *testing.T, b LeaseBackend) {
	a := newTableLease(t, b, "a")
	c := newTableLease(t, b, "c")
	tok := mustAcquire(t, a, "a")

	mustRelease(t, c, "c, never acquired")
	mustNotAcquire(t, c, "c")
	mustRelease(t, c, "c, after a failed Acquire")

	checkHeld(t, a, true, tok, "a after c's Releases")
	if got := mustAcquire(t, a, "a again"); got != tok {
		t.Errorf("a's token after c's Releases: got %v, want %v", got, tok)
	}

	d := newTableLease(t, b, "d")
	mustNotAcquire(t, d, "d, while a holds")
}

func btOnLostNotCalledOnRelease(t *testing.T, b LeaseBackend) {
	a, w := newWatchedLease(t, b)

	// Released tenures interleaved with revoked ones: every call must be
	// for a revoked tenure. Each wait for a revoked tenure's call gives a
	// wrong call for an earlier Release time to show up.
	var released []lease.Token
	for i := range 3 {
		what := fmt.Sprintf("round %d", i)
		tok := mustAcquire(t, a, what+": released tenure")
		mustRelease(t, a, what)
		released = append(released, tok)
		w.none(t, b, what+": after Release")

		tok = mustAcquire(t, a, what+": revoked tenure")
		b.Revoke(t, a)
		for {
			le := lostError(t, w.next(t, what+": after Revoke").err, what)
			if slices.Contains(released, le.Token) {
				t.Fatalf("%s: OnLost called for released tenure %v, want no call", what, le.Token)
			}
			if le.Token == tok {
				break
			}
		}
		mustRelease(t, a, what+": after loss")
	}
	w.none(t, b, "after the last revoked tenure's call")
}

func btOnLostOnRevoke(t *testing.T, b LeaseBackend) {
	a, w := newWatchedLease(t, b)

	tok1 := mustAcquire(t, a, "first tenure")
	revokeAndCheck(t, b, a, w, tok1, "first Revoke")
	checkHeld(t, a, false, lease.Token{}, "after first Revoke")

	// The handler stays registered for the next tenure, and the first
	// tenure got exactly one call.
	mustRelease(t, a, "after loss")
	tok2 := mustAcquire(t, a, "second tenure")
	revokeAndCheck(t, b, a, w, tok2, "second Revoke")
	checkHeld(t, a, false, lease.Token{}, "after second Revoke")
	w.none(t, b, "after second Revoke")
}

func btUnregisterOnLost(t *testing.T, b LeaseBackend) {
	a := newTableLease(t, b, "a")
	gone := watchLost(a)
	kept := watchLost(a)
	defer kept.unregister()
	gone.unregister()
	gone.unregister() // idempotent

	tok := mustAcquire(t, a, "a")
	revokeAndCheck(t, b, a, kept, tok, "registered handler")

	// Another lost tenure gives the unregistered handler a second chance
	// to show up while we wait for the registered one.
	mustRelease(t, a, "after loss")
	tok = mustAcquire(t, a, "a again")
	revokeAndCheck(t, b, a, kept, tok, "registered handler, second loss")
	gone.none(t, b, "unregistered handler")
}

func btReacquireAfterLoss(t *testing.T, b LeaseBackend) {
	a, w := newWatchedLease(t, b)

	tok1 := mustAcquire(t, a, "first tenure")
	revokeAndCheck(t, b, a, w, tok1, "Revoke")
	mustRelease(t, a, "after loss")

	tok2 := mustAcquire(t, a, "after loss")
	assertNewer(t, tok2, tok1, "token after loss")
	checkHeld(t, a, true, tok2, "after re-acquiring")
}

func btConcurrentAcquire(t *testing.T, b LeaseBackend) {
	const n = 8
	ls := make([]lease.Lease, n)
	for i := range ls {
		ls[i] = newTableLease(t, b, string(rune('a'+i)))
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
		switch {
		case r.err != nil:
			t.Errorf("%s: AcquireWithToken: %v", owner, r.err)
		case r.ok:
			winners++
			if r.tok.IsZero() {
				t.Errorf("%s: winner's token: got zero, want non-zero", owner)
			}
			checkHeld(t, ls[i], true, r.tok, owner)
		default:
			if !r.tok.IsZero() {
				t.Errorf("%s: loser's token: got %v, want zero", owner, r.tok)
			}
			checkHeld(t, ls[i], false, lease.Token{}, owner)
		}
	}
	if winners != 1 {
		t.Errorf("instances that acquired: got %d, want 1", winners)
	}
}

func btTokensIncrease(t *testing.T, b LeaseBackend) {
	ls := []lease.Lease{newTableLease(t, b, "a"), newTableLease(t, b, "c")}
	var prev lease.Token
	for i := range 5 {
		l := ls[i%2]
		what := fmt.Sprintf("cycle %d", i)
		tok := mustAcquire(t, l, what)
		if i > 0 {
			assertNewer(t, tok, prev, what)
		}
		mustRelease(t, l, what)
		prev = tok
	}
}
