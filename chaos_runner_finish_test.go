package lease_test

// The end of a runner schedule (chaos_runner_sim_test.go): recovery after
// the faults stop, and the final cancellations and releases.

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/kubelease/lease"
)

// livenessBound is how long after the faults stop some process must be
// running work under a live tenure: the lease campaign's bound, plus the
// runner's backoff cap, grace period and retry interval.
func (s *rsim) livenessBound() time.Duration {
	ttl := s.cfg.ttl
	b := ttl + ttl/3 + (ttl - lease.Margin(ttl)) + time.Second + s.cfg.step +
		s.rc.maxBackoff + s.rc.grace + s.rc.retry
	if s.rc.odds.handoff > 0 {
		// A pending handoff to a target that does not contend (goneOwner)
		// makes the others defer for HandoffWait (TTL), from when each
		// first sees the record takeable.
		b += ttl
	}
	return b
}

// recover stops every fault and runner event, frees stuck works, and checks
// (W5) that some process runs work under a live tenure within the bound.
func (s *rsim) recover() {
	s.mu.Lock()
	s.endFaultsLocked()
	for _, p := range s.ps {
		p.sigterm = nil
		for _, w := range p.working {
			w.unstickLocked()
		}
		if len(p.runs) == 0 {
			p.nextRun = s.now
		}
	}
	start, bound := s.now, s.livenessBound()
	s.tracef("faults stop; liveness bound %v", bound)
	s.mu.Unlock()
	for {
		s.settleAndCheck()
		s.mu.Lock()
		if w := s.workingHolderLocked(); w != nil {
			s.tracef("liveness: c%d runs work %d under %v, %v after faults stopped", w.p.id, w.id, w.tok, s.now-start)
			s.mu.Unlock()
			return
		}
		if s.now-start > bound {
			s.violate("W5", "no process runs work under a live tenure %v after faults stopped (bound %v)", s.now-start, bound)
			s.mu.Unlock()
			return
		}
		s.scheduleLocked(false)
		s.mu.Unlock()
		s.settleAndCheck()
		s.advance()
	}
}

// finish cancels every RunSingleton and checks that each returns (W4),
// releases every instance, and shuts the network and the server down so
// that every goroutine of the bubble ends. Each wait is bounded on the
// true clock.
func (s *rsim) finish() {
	s.mu.Lock()
	s.finishing = true
	for _, p := range s.ps {
		for _, r := range p.runs {
			r.cancel()
		}
		for _, w := range p.working {
			w.unstickLocked()
		}
	}
	close(s.release)
	s.release = make(chan struct{})
	s.mu.Unlock()
	limit := s.rc.grace + 2*s.cfg.ttl
	if !s.stepUntil(limit, func() bool { return s.busyLocked() == 0 }) {
		s.mu.Lock()
		s.violate("W4", "%d RunSingleton calls or Releases still running %v after every ctx was cancelled", s.busyLocked(), limit)
		s.mu.Unlock()
	}

	var releasing atomic.Int32
	for _, p := range s.ps {
		releasing.Add(1)
		s.goBg(func() {
			defer releasing.Add(-1)
			_ = p.l.Release(context.Background())
		})
	}
	if !s.stepUntil(limit, func() bool { return releasing.Load() == 0 }) {
		s.mu.Lock()
		s.violate("W4", "%d final Releases still running after %v", releasing.Load(), limit)
		s.mu.Unlock()
	}

	s.srv.Close()
	for _, tr := range s.transports {
		tr.CloseIdleConnections()
	}
	_ = s.net.Close()
	s.net.shutdown()
	if !s.stepUntil(limit, func() bool { return s.live.Load() == 0 }) {
		// synctest.Test will fail with their stacks: say which seed.
		fmt.Fprintf(os.Stderr, "seed %d: %d RunSingleton calls or Releases never returned\n", s.cfg.seed, s.live.Load())
	}
	s.bg.Wait()
	s.settleAndCheck()
}

// stepUntil settles, checks and steps the clocks until done (called with
// s.mu held) reports true, for at most limit of true time. It reports
// whether done did.
func (s *rsim) stepUntil(limit time.Duration, done func() bool) bool {
	for waited := time.Duration(0); ; waited += s.cfg.step {
		s.settleAndCheck()
		s.mu.Lock()
		ok := done()
		s.mu.Unlock()
		if ok || waited >= limit {
			return ok
		}
		s.advance()
	}
}

// busyLocked counts RunSingleton calls and external Releases that have not
// returned, as far as the checker has seen.
func (s *rsim) busyLocked() int {
	n := 0
	for _, p := range s.ps {
		n += len(p.runs)
		if p.releasing {
			n++
		}
	}
	return n
}
