package lease_test

import (
	"math/rand/v2"
	"net/http"
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
	op           *lease.Config // the operator's, for RequestHandoff
	quiet        bool          // quiet handoff windows: works are prompt or slow
	quietFrom    time.Duration // true time the quiet handoffs began
	h2           *h2Window     // the quiet handoff H2 watches, if any
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
	s.quietHandoffs()
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
	if faults && s.roll(o.handoff) {
		s.handoffEventLocked()
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

// advance moves the true clock one step, and the processes' clocks with it
// (the processes are the simulation's contenders: see moveClocksLocked).
func (s *rsim) advance() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.moveClocksLocked()
}

// goBg runs f on a goroutine the simulation waits for at the end.
func (s *rsim) goBg(f func()) {
	s.live.Add(1)
	s.bg.Go(func() {
		defer s.live.Add(-1)
		f()
	})
}

// violate records a violation of invariant inv. Call with s.mu held.
func (s *rsim) violate(inv, format string, args ...any) {
	s.rres.byInvariant[inv]++
	s.violatef(inv+": "+format, args...)
}
