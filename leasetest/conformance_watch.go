package leasetest

import (
	"context"
	"time"

	"github.com/kubelease/lease"
)

// scReleaseWakesWaiter: a contender waiting in Wait (a watch on the Lease)
// wakes when the holder releases, without any clock moving, and acquires.
func scReleaseWakesWaiter(sc *scenario) {
	a := sc.newLease("conf-a")
	tokA := sc.acquire(a)
	b := sc.newLease("conf-b")
	sc.acquireFalse(b, "live holder")
	woke := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), realWait)
	defer cancel()
	go func() { woke <- b.Wait(ctx) }()
	// Whether or not the watch is open yet, it starts from the
	// resourceVersion b last read, so the server replays the delete.
	sc.release(a)
	if err := <-woke; err != nil {
		sc.t.Fatalf("conf-b: Wait after the holder's Release: got %v, want nil before %v", err, realWait)
	}
	tokB := sc.acquire(b)
	sc.tokenAfter(tokB, tokA)
}

// scHolderWatchSeesDelete: a holder with WatchWhileHolding loses its
// tenure with LostDeleted as soon as a third party deletes the Lease, with
// no clock moving (no renewal is needed to notice).
func scHolderWatchSeesDelete(sc *scenario) {
	a := sc.newLease("conf-a", func(s *lease.Settings) { s.WatchWhileHolding = true })
	tok := sc.acquire(a)
	sc.rest.remove(sc.name) // replayed to the watch from the acquiring write's resourceVersion

	select {
	case err := <-a.lost:
		le := sc.lostError(a, err)
		if le.Reason != lease.LostDeleted || le.Token != tok {
			sc.t.Errorf("conf-a: OnLost after a delete: got reason %q token %v, want %q %v", le.Reason, le.Token, lease.LostDeleted, tok)
		}
	case <-time.After(realWait):
		sc.t.Fatalf("conf-a: OnLost not called within %v of a delete, with the holder watching", realWait)
	}
	if a.CheckAlive() {
		sc.t.Errorf("conf-a: CheckAlive after the watched delete: got true, want false")
	}
}
