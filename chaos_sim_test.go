package lease_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	clocktesting "k8s.io/utils/clock/testing"
)

// simConfig is one fault schedule's setup. Everything random in a run
// follows from seed.
type simConfig struct {
	seed       uint64
	contenders int
	ttl        time.Duration
	step       time.Duration // true time per simulation step
	faultFor   time.Duration // true time of the fault phase
	fastPath   bool          // MaxClockSkew default (1s) vs -1
	maxOffset  time.Duration // each contender's wall offset is within ±maxOffset
	bigSteps   bool          // wall-clock steps of ±2×MaxClockSkew and more
	// deliberate flaws, for showing the checker can fail
	breakDeadline, originalExpiry bool
}

// simResult is what one schedule found.
type simResult struct {
	violations []string
	trace      []string
	faults     map[string]int
	tenures    int
	lostCalls  int
	unsettled  int
}

// sim runs one fault schedule: contenders with their own clocks against a
// leasetest.Server, on a common true clock stepped by the simulation.
type sim struct {
	t   testing.TB
	cfg simConfig
	rng *rand.Rand
	srv *leasetest.Server

	// changed is poked (never blocking) whenever a contender's activity may
	// have changed, so settle can wait without polling.
	changed chan struct{}
	// actions counts Acquire and Release calls in flight.
	actions sync.WaitGroup
	// transports are the contenders' and the late writer's, closed at the end.
	transports []*http.Transport
	lateClient *http.Client

	mu      sync.Mutex    // guards the fields below and every simContender's fields
	now     time.Duration // true time since the start
	cs      []*simContender
	tenures []*simTenure
	paused  bool
	release chan struct{} // closed to free every held request
	late    []lateWrite
	// lateNow makes a write held for a late apply land at the next step
	// (once the faults have stopped, a late write is the last of them).
	lateNow bool
	store   fencedStore
	// lastThirdParty is the true time of the last third-party delete or
	// spec edit: overlaps with tenures started before it are excused.
	lastThirdParty time.Duration
	thirdParty     bool
	res            simResult
}

type simContender struct {
	id          int
	owner       string
	l           *lease.KubernetesLease
	clk         *clocktesting.FakeClock // the contender's monotonic clock
	wake        atomic.Int64            // renewal timer, unix ns on clk; 0: no loop; -1: loop starting
	acting      bool                    // an Acquire or Release is in flight
	inflight    int                     // HTTP requests in flight
	held        int                     // of which held on purpose
	heldDue     []time.Time             // when the held requests time out, on clk
	pending     []netFault              // faults for its next requests
	partitioned bool
	suspendTill time.Duration // true time; 0: running
	nextTry     time.Duration // true time of its next Acquire
	cur         *simTenure
}

func newSim(t testing.TB, cfg simConfig) *sim {
	s := &sim{
		t:       t,
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(cfg.seed, 0x6b75626c65617365)),
		srv:     leasetest.NewServer(),
		changed: make(chan struct{}, 1),
		release: make(chan struct{}),
		res:     simResult{faults: map[string]int{}},
	}
	lt := http.DefaultTransport.(*http.Transport).Clone()
	s.transports = append(s.transports, lt)
	s.lateClient = &http.Client{Transport: lt}
	for i := range cfg.contenders {
		s.cs = append(s.cs, s.newContender(i))
	}
	return s
}

func (s *sim) newContender(i int) *simContender {
	c := &simContender{id: i, owner: fmt.Sprintf("c%d", i), clk: clocktesting.NewFakeClock(epoch)}
	base := http.DefaultTransport.(*http.Transport).Clone()
	s.transports = append(s.transports, base)
	cfg := &lease.Config{Host: s.srv.URL, HTTPClient: &http.Client{Transport: &chaosTransport{base: base, sim: s, c: c}}}
	skew := time.Duration(0)
	if !s.cfg.fastPath {
		skew = -1
	}
	l, err := lease.NewKubernetesLease(lease.Settings{
		Name: "job", Owner: c.owner, Config: cfg, Clock: c.clk, TTL: s.cfg.ttl, MaxClockSkew: skew,
		WatchWhileHolding: s.cfg.seed%3 == 0, // a third of the schedules watch while holding
	})
	if err != nil {
		s.t.Fatal(err)
	}
	if s.cfg.maxOffset > 0 {
		lease.StepWall(l, time.Duration(s.rng.Int64N(int64(2*s.cfg.maxOffset)))-s.cfg.maxOffset)
	}
	if s.cfg.breakDeadline {
		lease.BreakDeadline(l)
	}
	if s.cfg.originalExpiry {
		lease.UseOriginalExpiry(l)
	}
	lease.SetArmHook(l, func(wake time.Time) {
		if wake.IsZero() {
			c.wake.Store(0)
		} else {
			c.wake.Store(wake.UnixNano())
		}
		s.poke()
	})
	lease.SetEventHook(l, func(name string) {
		if name == "acquired" {
			c.wake.Store(-1)
		}
		s.poke()
	})
	l.OnLost(func(err error) { s.onLost(c, err) })
	c.l = l
	c.nextTry = time.Duration(s.rng.Int64N(int64(time.Second)))
	return c
}

func (s *sim) poke() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// tracef records an event on the true clock. Call with s.mu held.
func (s *sim) tracef(format string, args ...any) {
	s.res.trace = append(s.res.trace, fmt.Sprintf("%9.3fs ", s.now.Seconds())+fmt.Sprintf(format, args...))
}

// violatef records an invariant violation. Call with s.mu held.
func (s *sim) violatef(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.res.violations = append(s.res.violations, fmt.Sprintf("at %.3fs: %s", s.now.Seconds(), msg))
	s.tracef("VIOLATION: %s", msg)
}

// run plays the schedule and checks the invariants.
func (s *sim) run() simResult {
	defer func() {
		for _, tr := range s.transports {
			tr.CloseIdleConnections()
		}
		s.srv.Close()
	}()
	total := s.cfg.faultFor
	for s.now < total {
		s.settle()
		s.mu.Lock()
		s.schedule(true)
		s.mu.Unlock()
		s.advance()
	}
	s.recover()
	s.finish()
	return s.res
}

// recover stops every fault and checks that some contender holds the lease
// within lease duration + max(backoff cap, RenewalInterval) + one request
// timeout (+ the contenders' retry interval and one step).
func (s *sim) recover() {
	s.mu.Lock()
	s.endFaultsLocked()
	start := s.now
	ri := s.cfg.ttl / 3
	bound := s.cfg.ttl + ri + (s.cfg.ttl - lease.Margin(s.cfg.ttl)) + time.Second + s.cfg.step
	s.tracef("faults stop; liveness bound %v", bound)
	s.mu.Unlock()
	for {
		s.settle()
		s.mu.Lock()
		if h := s.holderLocked(); h != nil {
			s.tracef("liveness: c%d holds %v after faults stopped", h.id, s.now-start)
			s.mu.Unlock()
			return
		}
		if s.now-start > bound {
			s.violatef("liveness: no holder %v after faults stopped (bound %v)", s.now-start, bound)
			s.mu.Unlock()
			return
		}
		s.schedule(false)
		s.mu.Unlock()
		s.advance()
	}
}

func (s *sim) holderLocked() *simContender {
	for _, c := range s.cs {
		if c.cur != nil && !c.cur.ended && c.l.CheckAlive() {
			return c
		}
	}
	return nil
}

// dump is the end of the trace, for a failure message.
func (r simResult) dump(n int) string {
	tr := r.trace
	if len(tr) > n {
		tr = tr[len(tr)-n:]
	}
	return strings.Join(tr, "\n")
}
