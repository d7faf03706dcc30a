package lease_test

import (
	"fmt"
	"slices"
	"time"

	"github.com/kubelease/lease"
)

// The runner campaign's invariants, on works (docs/design.md §1 and §5):
//
//	W1  No work's context is live aliveCheckBound or more after its tenure
//	    ended, and so no two works' contexts are live at once beyond it.
//	    "Ended" is the first check at which CheckAlive would return false
//	    (lease.WouldCheckAlive, which, unlike CheckAlive, does not end the
//	    tenure: the checker must never be the one that notices); a tenure
//	    that would be alive again later (its wall clock stepped back before
//	    anyone checked) starts afresh. Lateness is measured in the awake time
//	    of the work's process: on its own monotonic clock, the runner's,
//	    which stands still while the process is suspended, for a suspended
//	    process can do nothing. For a pair, from the later of that end and
//	    the start of the other work. Both are reported: "context still live"
//	    for one work, "both live" for a pair.
//	W2  Every started work has returned before a voluntary end of its
//	    tenure (Release, by the runner or by anyone) lets another instance's
//	    tenure start, unless the work was given up on (ErrWorkDidNotStop)
//	    or its tenure started before a third-party delete or spec edit.
//	    After an involuntary end (a loss, the deadline, a suspend) no runner
//	    can hold a peer back: W1 bounds those.
//	W3  For one instance, at most one work runs at a time, abandoned ones
//	    included: a second RunSingleton, or a retry after ErrWorkDidNotStop,
//	    never starts another work while one runs.
//	W4  When RunSingleton returns, other than with ErrWorkDidNotStop, its
//	    works have returned and no tenure it started is still held
//	    (WouldCheckAlive, in its goroutine, at the return); and every
//	    RunSingleton returns once its ctx is cancelled. A call whose work an
//	    external Release gave up on (ErrWorkDidNotStop) is excused.
//	W5  Once the faults stop, some process runs work under a live tenure
//	    within livenessBound; and every goroutine ends (synctest.Test fails
//	    otherwise; goleak checks the rest). With planned handoffs in the
//	    schedule, the bound grows by HandoffWait (TTL): a pending handoff to
//	    an Owner that does not contend makes the others defer that long.
//
// Planned handoffs (chaos_runner_handoff_test.go: RequestHandoff at random
// times of the fault phase, in half the schedules, to a contender, the
// holder or an unknown Owner; a quarter of their processes with
// DisableHandoff; then quiet windows) add, on top of W1–W5, which must
// hold under handoffs too:
//
//	H1  A holder steps down for a handoff only once its work has returned:
//	    when a process sends the vacating write (a PUT of the Lease with no
//	    holder, naming the target), none of its works still runs, abandoned
//	    ones included; and no work starts on another process while a work
//	    whose context ended for a handoff (cause: LostHandoff) still runs
//	    under a tenure that would pass CheckAlive (the step-down has not
//	    ended it), unless that tenure started before a third-party delete or
//	    spec edit. No overlap at all, not even within aliveCheckBound: the
//	    step-down waits for the work.
//	H2  In a quiet window, a handoff reaches its target: after W5, in the
//	    schedules with handoffs, rc.quietHandoffs times, once no fault, late
//	    write, suspend, external Release or third-party edit is pending,
//	    the DisableHandoff processes have stopped contending, and exactly
//	    one work runs, prompt or slow, under its process's live tenure that
//	    the server's record names and that was acquired or renewed since
//	    (a tenure from the fault phase may be about to expire on the
//	    server), a handoff is requested to another contending process;
//	    that process runs work under a live tenure
//	    within h2Bound (its comment gives the terms), and no other process
//	    acquires before HandoffWait has passed since the vacating write.
//	    Under faults H2 is not checked: a partition, a lost write or a
//	    suspend legitimately delays or defeats a handoff.
//
// Two works live at once while both their tenures would be alive are the
// lease's doing, not the runner's (docs/design.md §6): they are recorded apart as
// lease overlaps ("L", awake processes only, overlaps with a tenure that
// started before a third-party delete or spec edit excused as the lease
// campaign excuses them), reported, and not counted as runner violations.

// aliveCheckBound is the runner's documented bound B: work is cancelled
// within 250 ms, on the runner's clock, of the moment CheckAlive would turn
// false. On the stepped clocks of the simulation a bound is met when the
// work's context has ended by the first check at which the process's clock
// has moved B or more past that moment.
const aliveCheckBound = 250 * time.Millisecond

// tenureRec is one tenure of a process and how it ended.
type tenureRec struct {
	tok   lease.Token
	start time.Duration // true time
	end   string        // "", "lost" or "released"
}

// checkLocked applies the events since the last check in order, then
// checks W1 on the settled state. Call with s.mu held, between steps.
func (s *rsim) checkLocked() {
	for _, e := range s.log.drain() {
		s.applyLocked(e)
	}
	for _, p := range s.ps {
		p.aliveTok, p.alive = lease.WouldCheckAlive(p.l)
	}
	s.checkCancelledLocked()
	s.checkLeaseLocked()
	s.unstickDueLocked()
}

// excusedLocked reports whether tenure rec started before a third-party
// delete or spec edit, which lets a peer in before its process can know.
func (s *rsim) excusedLocked(rec *tenureRec) bool {
	return s.thirdParty && rec.start <= s.lastThirdParty
}

// checkCancelledLocked checks W1 on the works whose contexts are live.
func (s *rsim) checkCancelledLocked() {
	var live []*work
	for _, p := range s.ps {
		for _, w := range p.working {
			if w.ctx.Err() == nil {
				live = append(live, w)
			}
		}
	}
	slices.SortFunc(live, func(a, b *work) int { return a.id - b.id })
	for _, w := range live {
		p := w.p
		if p.alive && p.aliveTok == w.tok {
			w.deadAt = time.Time{}
			continue
		}
		now := p.clk.Now()
		if w.deadAt.IsZero() {
			w.deadAt = now
		}
		if late := now.Sub(w.deadAt); late >= aliveCheckBound && !w.late {
			w.late = true
			s.violate("W1", "c%d work %d: context still live %v of awake time after tenure %v ended", p.id, w.id, late, w.tok)
		}
	}
	for _, w := range live {
		if w.deadAt.IsZero() {
			continue
		}
		for _, v := range live {
			if v.p == w.p || w.overlaps[v] {
				continue
			}
			since := w.deadAt
			if at := v.clkAt[w.p.id]; at.After(since) {
				since = at
			}
			if late := w.p.clk.Now().Sub(since); late >= aliveCheckBound {
				w.overlaps[v] = true
				s.violate("W1", "works %d (c%d, %v, ended) and %d (c%d, %v) both live for %v of c%d's awake time",
					w.id, w.p.id, w.tok, v.id, v.p.id, v.tok, late, w.p.id)
			}
		}
	}
}

// checkLeaseLocked records lease overlaps: two awake processes whose
// CheckAlive would both return true.
func (s *rsim) checkLeaseLocked() {
	var believers []*proc
	for _, p := range s.ps {
		if p.alive && p.suspendTill == 0 {
			believers = append(believers, p)
		}
	}
	for i, a := range believers {
		for _, b := range believers[i+1:] {
			ra, rb := a.tenures[a.aliveTok], b.tenures[b.aliveTok]
			if ra == nil || rb == nil {
				continue // acquired in this very step: seen at the next check
			}
			older := ra
			if rb.start < ra.start {
				older = rb
			}
			key := [2]lease.Token{ra.tok, rb.tok}
			if s.excusedLocked(older) || s.overlapsSeen[key] {
				continue
			}
			s.overlapsSeen[key] = true
			msg := fmt.Sprintf("L: c%d (%v since %.3fs) and c%d (%v since %.3fs) both would pass CheckAlive",
				a.id, ra.tok, ra.start.Seconds(), b.id, rb.tok, rb.start.Seconds())
			s.rres.leaseOverlaps = append(s.rres.leaseOverlaps, fmt.Sprintf("at %.3fs: %s", s.now.Seconds(), msg))
			s.tracef("LEASE OVERLAP: %s", msg)
		}
	}
}

// workingHolderLocked returns a work whose context is live under its
// process's live tenure, or nil (W5).
func (s *rsim) workingHolderLocked() *work {
	for _, p := range s.ps {
		for _, w := range p.working {
			if w.ctx.Err() == nil && p.alive && p.aliveTok == w.tok {
				return w
			}
		}
	}
	return nil
}
