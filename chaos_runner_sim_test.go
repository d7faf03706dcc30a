package lease_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
)

// rsim runs one runner schedule: processes, each a KubernetesLease with its
// own fake clock and wall offset, calling RunSingleton against one
// leasetest.Server, on a common true clock stepped by the simulation. It
// reuses the lease campaign's machinery (sim: the chaos transport, the
// faults, late writes, the trace) over an in-memory network, inside a
// testing/synctest bubble: settling is synctest.Wait, exact.
type rsim struct {
	*sim
	rc  runConfig
	net *pipeNet
	ps  []*proc
	log eventLog
	// bg counts the goroutines the simulation started: RunSingleton calls
	// and external Releases; live, those still running.
	bg   sync.WaitGroup
	live atomic.Int32

	// The fields below are guarded by sim.mu.
	rres         runnerResult
	nextID       int
	finishing    bool
	overlapsSeen map[[2]lease.Token]bool
}

func newRSim(t testing.TB, rc runConfig) *rsim {
	srv := leasetest.NewUnstartedServer()
	n := newPipeNet(srv)
	base := &sim{
		t:       t,
		cfg:     rc.simConfig,
		rng:     rand.New(rand.NewPCG(rc.seed, 0x72756e6e6572)),
		srv:     srv,
		changed: make(chan struct{}, 1),
		release: make(chan struct{}),
		res:     simResult{faults: map[string]int{}},
	}
	lt := n.transport()
	base.transports = append(base.transports, lt)
	base.lateClient = &http.Client{Transport: lt}
	s := &rsim{sim: base, rc: rc, net: n, overlapsSeen: map[[2]lease.Token]bool{}}
	s.rres.byInvariant = map[string]int{}
	for i := range rc.contenders {
		p := s.newProc(i)
		s.ps = append(s.ps, p)
		s.cs = append(s.cs, p.simContender)
	}
	return s
}

// run plays the schedule and checks the invariants.
func (s *rsim) run() runnerResult {
	for s.now < s.cfg.faultFor {
		s.step(true)
	}
	s.recover()
	s.finish()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rres
	r.simResult = s.res
	return r
}

// step plays one step of true time: what settled at this instant is
// checked, the step's events and faults start and settle, and the clocks
// move on.
func (s *rsim) step(faults bool) {
	s.settleAndCheck()
	s.mu.Lock()
	s.scheduleLocked(faults)
	s.mu.Unlock()
	s.settleAndCheck()
	s.advance()
}

// settle returns once every goroutine of the simulation is durably blocked:
// on a fake clock, a held request, a watch, work, or the network. Injected
// server latency (at most a few milliseconds) runs on the bubble's own
// clock, which moves only while everything is blocked: sleeping the driver
// on it lets that latency elapse, instantly in real time. The processes'
// clocks and the true clock are the fake clocks the simulation steps.
func (s *rsim) settle() {
	synctest.Wait()
	time.Sleep(5 * time.Millisecond)
	synctest.Wait()
}

func (s *rsim) settleAndCheck() {
	s.settle()
	s.mu.Lock()
	s.checkLocked()
	s.mu.Unlock()
}

func (s *rsim) roll(n int) bool { return n > 0 && s.rng.IntN(n) == 0 }

// scheduleLocked starts this step's runner events and, in the fault phase,
// faults. Call with s.mu held.
func (s *rsim) scheduleLocked(faults bool) {
	s.deliverLocked()
	if faults {
		s.injectLocked()
		s.aimedFaultsLocked()
	}
	o := s.rc.odds
	for _, p := range s.ps {
		if p.suspendTill > 0 {
			continue // a suspended process does nothing
		}
		if len(p.runs) == 0 && p.nextRun >= 0 && s.now >= p.nextRun {
			s.startRunLocked(p, p.nextKind)
		}
		if !faults {
			continue
		}
		if n := len(p.runs); n > 0 {
			r := p.runs[n-1]
			switch {
			case s.roll(o.cancel):
				s.cancelRunLocked(r, "cancel")
			case s.roll(o.sigterm) && p.sigterm == nil && r.ctx.Err() == nil:
				p.sigterm = r
				s.res.faults["sigterm-in-flight"]++
				s.tracef("c%d run %d: ctx will be cancelled as its next write is answered", p.id, r.id)
			}
			if s.roll(o.second) && n == 1 {
				s.startRunLocked(p, "second")
			}
		}
		if s.roll(o.release) && !p.releasing {
			s.startReleaseLocked(p)
		}
	}
}

// aimedFaultsLocked suspends, or steps the wall clock of, a process that is
// running work. Call with s.mu held.
func (s *rsim) aimedFaultsLocked() {
	o := s.rc.odds
	if s.roll(o.suspend) {
		if p := s.pickWorkerLocked(); p != nil {
			p.suspendTill = s.now + time.Duration(1+s.rng.IntN(int(2*s.cfg.ttl/time.Second)))*time.Second
			s.res.faults["suspend-worker"]++
			s.tracef("fault suspend-worker (c%d until %.3fs)", p.id, p.suspendTill.Seconds())
		}
	}
	// Forward steps only where the wall-clock fast path is off: with it on,
	// a clock ahead by more than MaxClockSkew breaks the lease's own
	// precondition (docs/design.md §6).
	if s.cfg.bigSteps && s.roll(o.fwdStep) {
		if p := s.pickWorkerLocked(); p != nil {
			d := 2 * lease.DefaultMaxClockSkew * time.Duration(1+s.rng.IntN(5))
			lease.StepWall(p.l, d)
			s.res.faults["wall-step-fwd"]++
			s.tracef("fault wall-step-fwd (c%d, +%v)", p.id, d)
		}
	}
}

// pickWorkerLocked returns a random awake process whose work's context is
// live, or nil.
func (s *rsim) pickWorkerLocked() *proc {
	var ps []*proc
	for _, p := range s.ps {
		if p.suspendTill > 0 {
			continue
		}
		for _, w := range p.working {
			if w.ctx.Err() == nil {
				ps = append(ps, p)
				break
			}
		}
	}
	if len(ps) == 0 {
		return nil
	}
	return ps[s.rng.IntN(len(ps))]
}

// advance moves the true clock one step: running processes' clocks move
// with it; a suspended process's monotonic clock stands still while its
// wall clock moves on.
func (s *rsim) advance() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now += s.cfg.step
	for _, p := range s.ps {
		if p.suspendTill > 0 && s.now < p.suspendTill {
			lease.StepWall(p.l, s.cfg.step)
			continue
		}
		if p.suspendTill > 0 {
			p.suspendTill = 0
			s.tracef("c%d resumes", p.id)
		}
		p.clk.Step(s.cfg.step)
	}
}

// livenessBound is how long after the faults stop some process must be
// running work under a live tenure: the lease campaign's bound, plus the
// runner's backoff cap, grace period and retry interval.
func (s *rsim) livenessBound() time.Duration {
	ttl := s.cfg.ttl
	return ttl + ttl/3 + (ttl - lease.Margin(ttl)) + time.Second + s.cfg.step +
		s.rc.maxBackoff + s.rc.grace + s.rc.retry
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

// goBg runs f on a goroutine the simulation waits for at the end.
func (s *rsim) goBg(f func()) {
	s.live.Add(1)
	s.bg.Go(func() {
		defer s.live.Add(-1)
		f()
	})
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

// violate records a violation of invariant inv. Call with s.mu held.
func (s *rsim) violate(inv, format string, args ...any) {
	s.rres.byInvariant[inv]++
	s.violatef(inv+": "+format, args...)
}
