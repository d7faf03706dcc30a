package leasetest

import (
	"time"

	"github.com/kubelease/lease"
)

// The standby scenarios: a contender waiting in Wait keeps one watch open
// (the standby watch) and wakes when the lease may be taken — at the
// expiry it computes when nothing happens, after a dropped stream from
// where it left off, after a 410 from a fresh read.

// startWait runs c.Wait on a goroutine, bounded by realWait, and returns
// the channel that gets its result.
func (sc *scenario) startWait(c *contender) <-chan error {
	woke := make(chan error, 1)
	ctx := sc.ctx()
	go func() { woke <- c.Wait(ctx) }()
	return woke
}

// notWoken requires that Wait, whose result woke gets, has not returned.
func (sc *scenario) notWoken(c *contender, woke <-chan error, when string) {
	sc.t.Helper()
	select {
	case err := <-woke:
		sc.t.Fatalf("%s: Wait returned %v %s, while the lease was held", c.owner, err, when)
	default:
	}
}

// awaitWoken requires that Wait, whose result woke gets, returns nil
// within realWait, with no clock stepped.
func (sc *scenario) awaitWoken(c *contender, woke <-chan error, after string) {
	sc.t.Helper()
	select {
	case err := <-woke:
		if err != nil {
			sc.t.Fatalf("%s: Wait %s: got %v, want nil", c.owner, after, err)
		}
	case <-time.After(realWait):
		sc.t.Fatalf("%s: Wait did not return within %v %s", c.owner, realWait, after)
	}
}

// scStandbyWakesOnExpiry: with no event at all, a waiter wakes exactly when
// the record it saw expires as it computes it: by rule (a), seen unchanged
// for leaseDurationSeconds on its own clock, or by the fast path, when
// renewTime + leaseDurationSeconds + MaxClockSkew is before its wall
// clock, whichever comes first; Holder's ExpiresIn says when.
func scStandbyWakesOnExpiry(sc *scenario) {
	// Nobody renews this record: renewTime 10s ago, 15s duration.
	before := sc.rest.create(sc.record("conf-other", confEpoch.Add(-10*time.Second), 15, 2))
	tests := []struct {
		c    *contender
		at   time.Duration // when it expires for c, from c's first look
		tick time.Duration // how much before that it does not
	}{
		// Rule (a) alone: 15s after the first look.
		{sc.newLease("conf-observed", func(s *lease.Settings) { s.MaxClockSkew = -1 }), 15 * time.Second, time.Millisecond},
		// The fast path first: 10s ago + 15s + 1s skew is 6s from now, and
		// only strictly after that instant.
		{sc.newLease("conf-fastpath"), 6*time.Second + time.Microsecond, time.Microsecond},
	}
	for _, tt := range tests {
		c := tt.c
		sc.acquireFalse(c, "first look at a live record")
		sc.expiresIn(c, tt.at, "at the first look")
		woke := sc.startWait(c)
		c.clk.Step(tt.at - tt.tick)
		sc.expiresIn(c, tt.tick, "just before the expiry")
		sc.notWoken(c, woke, "before the expiry")
		c.clk.Step(tt.tick)
		sc.awaitWoken(c, woke, "at the record's expiry")
	}
	if got := sc.rest.mustGet(sc.name); got.ResourceVersion != before.ResourceVersion {
		sc.t.Fatalf("record written by waiting contenders: resourceVersion %s, want %s", got.ResourceVersion, before.ResourceVersion)
	}
	c := tests[0].c
	tok := sc.acquire(c)
	sc.checkTakenOver(c, before, sc.rest.mustGet(sc.name), tok, 3)
}

// expiresIn requires that c's Holder view says the record expires in want.
func (sc *scenario) expiresIn(c *contender, want time.Duration, when string) {
	sc.t.Helper()
	h, err := c.Holder(sc.ctx())
	if err != nil {
		sc.t.Fatalf("%s: Holder %s: %v", c.owner, when, err)
	}
	if h.Holder != "conf-other" || h.ExpiresIn != want {
		sc.t.Errorf("%s: Holder %s: got holder %q expiring in %v, want %q in %v", c.owner, when, h.Holder, h.ExpiresIn, "conf-other", want)
	}
}

// scStandbyResumesAfterDrop: the server drops the waiter's watch; the
// holder releases while the waiter is away; the waiter watches again from
// the last resourceVersion it saw (no new read), is sent the deletion it
// missed, and wakes.
func scStandbyResumesAfterDrop(sc *scenario) {
	if sc.b.DropWatches == nil {
		sc.t.Skip("ConformanceBackend.DropWatches is nil: the server's watches cannot be dropped")
	}
	a := sc.newLease("conf-a")
	tokA := sc.acquire(a)
	b, rc := sc.newCountedLease("conf-b")
	sc.acquireFalse(b, "live holder")
	woke := sc.startWait(b)
	open := sc.awaitCounts(rc, "conf-b's standby watch", func(n requestCounts) bool { return n.watches >= 1 })
	sc.b.DropWatches(sc.t)
	sc.notWoken(b, woke, "after its watch was dropped")
	sc.release(a)
	// b watches again after a backoff on its clock.
	sc.advance(b, fakeStep, "Wait's return after the release", func() bool {
		select {
		case err := <-woke:
			if err != nil {
				sc.t.Fatalf("conf-b: Wait after the release: got %v, want nil", err)
			}
			return true
		default:
			return false
		}
	})
	n := rc.counts()
	if n.reads != open.reads || n.watches <= open.watches {
		sc.t.Errorf("conf-b: requests after the drop: got %d reads and %d watches, want no read and a watch (resumed)",
			n.reads-open.reads, n.watches-open.watches)
	}
	tokB := sc.acquire(b)
	sc.tokenAfter(tokB, tokA)
}

// scStandbyRelistsOnGone: the waiter's resourceVersion is older than the
// server's history (410 Gone): it reads the Lease once, keeps waiting on a
// watch from what it read, and wakes when the holder releases.
func scStandbyRelistsOnGone(sc *scenario) {
	if sc.b.CompactLog == nil {
		sc.t.Skip("ConformanceBackend.CompactLog is nil: the server's history cannot be compacted")
	}
	a := sc.newLease("conf-a")
	tokA := sc.acquire(a)
	b, rc := sc.newCountedLease("conf-b")
	sc.acquireFalse(b, "live holder")
	// A renewal moves the Lease past the resourceVersion b saw; then the
	// history before it is forgotten.
	sc.awaitRenewal(a, confEpoch)
	sc.b.CompactLog(sc.t)
	start := rc.counts()
	woke := sc.startWait(b)
	sc.awaitCounts(rc, "conf-b's read after 410 and its new watch", func(n requestCounts) bool {
		return n.reads > start.reads && n.watches >= start.watches+2
	})
	sc.notWoken(b, woke, "after reading the renewed Lease")
	sc.release(a)
	sc.awaitWoken(b, woke, "after the holder's Release")
	if n := rc.counts(); n.reads != start.reads+1 || n.watches != start.watches+2 {
		sc.t.Errorf("conf-b: requests while waiting: got %d reads and %d watches, want 1 read (after the 410) and 2 watches",
			n.reads-start.reads, n.watches-start.watches)
	}
	tokB := sc.acquire(b)
	sc.tokenAfter(tokB, tokA)
}
