package lease_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
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

// faultKinds are the faults a schedule injects, by name, for the report.
var faultKinds = []string{
	"latency", "hang", "late-apply", "drop-answer", "reset", "5xx", "5xx+retry-after",
	"429-plain", "429+retry-after", "partition", "server-pause", "label-edit", "delete",
	"spec-edit", "suspend", "wall-step",
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

// simTenure is one tenure as the simulation saw it, on the true clock.
type simTenure struct {
	c          *simContender
	token      lease.Token
	start, end time.Duration
	ended      bool
	released   bool // a Release was started while it was alive
	lost       int  // OnLost calls for it
}

// lateWrite is a request whose client gave up, delivered later.
type lateWrite struct {
	due    time.Duration
	method string
	url    string
	header http.Header
	body   []byte
}

// fencedStore accepts writes whose token is not below the highest it has
// seen, and records what it accepted in arrival order.
type fencedStore struct {
	highest  lease.Token
	accepted []*simTenure
	inflight []fencedWrite
}

type fencedWrite struct {
	due time.Duration
	ten *simTenure
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

// endFaultsLocked clears every fault: server faults, partitions, pauses,
// suspends, held requests.
func (s *sim) endFaultsLocked() {
	s.srv.ClearFaults()
	s.paused = false
	close(s.release)
	s.release = make(chan struct{})
	for _, c := range s.cs {
		c.partitioned = false
		c.pending = nil
		if c.suspendTill > 0 {
			c.suspendTill = 0
		}
	}
}

// finish releases everything, waits for the actions and handlers, and
// checks the OnLost accounting.
func (s *sim) finish() {
	s.mu.Lock()
	close(s.release)
	s.release = make(chan struct{})
	s.mu.Unlock()
	s.actions.Wait()
	for _, c := range s.cs {
		s.mu.Lock()
		if c.cur != nil && !c.cur.ended {
			if c.l.CheckAlive() {
				c.cur.released = true
			}
		}
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := c.l.Release(ctx)
		cancel()
		s.mu.Lock()
		if c.cur != nil && !c.cur.ended {
			s.endTenureLocked(c)
		}
		if err != nil {
			s.tracef("c%d final release: %v", c.id, err)
		}
		s.mu.Unlock()
	}
	// OnLost handlers run on goroutines of their own: wait for every
	// tenure that ended without a Release to be reported, within a bound.
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		missing := 0
		for _, ten := range s.tenures {
			if !ten.released && ten.lost == 0 {
				missing++
			}
		}
		s.mu.Unlock()
		if missing == 0 {
			break
		}
		select {
		case <-s.changed:
		case <-deadline:
			s.mu.Lock()
			for _, ten := range s.tenures {
				if !ten.released && ten.lost == 0 {
					s.violatef("OnLost never called for lost tenure %v of c%d", ten.token, ten.c.id)
				}
			}
			s.mu.Unlock()
			return
		}
	}
}

// onLost checks invariant (4) as handlers run.
func (s *sim) onLost(c *simContender, err error) {
	defer s.poke()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.res.lostCalls++
	le, ok := err.(*lease.LostError)
	if !ok {
		s.violatef("c%d OnLost with %T, want *LostError", c.id, err)
		return
	}
	s.tracef("c%d OnLost %s (%v)", c.id, le.Reason, le.Token)
	for _, ten := range s.tenures {
		if ten.c == c && ten.token == le.Token {
			ten.lost++
			if ten.lost > 1 {
				s.violatef("c%d OnLost called %d times for tenure %v", c.id, ten.lost, le.Token)
			}
			if !ten.ended {
				if c.l.CheckAlive() && c.cur == ten {
					s.violatef("c%d OnLost for %v while CheckAlive is true", c.id, le.Token)
				}
				s.endTenureLocked(c)
			}
			return
		}
	}
	s.violatef("c%d OnLost for unknown tenure %v", c.id, le.Token)
}

// schedule decides this step's actions and, in the fault phase, faults.
// Call with s.mu held.
func (s *sim) schedule(faults bool) {
	s.deliverLocked()
	if faults {
		s.injectLocked()
	}
	for _, c := range s.cs {
		if c.acting || c.suspendTill > 0 {
			continue
		}
		alive := c.cur != nil && !c.cur.ended && c.l.CheckAlive()
		switch {
		case alive && faults && s.rng.IntN(400) == 0:
			s.startRelease(c)
		case alive:
			if s.rng.IntN(3) == 0 {
				s.store.inflight = append(s.store.inflight, fencedWrite{due: s.now + time.Duration(s.rng.Int64N(int64(3*time.Second))), ten: c.cur})
			}
		case s.now >= c.nextTry:
			c.nextTry = s.now + 500*time.Millisecond + time.Duration(s.rng.Int64N(int64(time.Second)))
			s.startAcquire(c)
		}
	}
}

func (s *sim) startAcquire(c *simContender) {
	c.acting = true
	s.actions.Add(1)
	go func() {
		defer s.actions.Done()
		defer s.poke()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		tok, ok, err := c.l.AcquireWithToken(ctx)
		s.mu.Lock()
		defer s.mu.Unlock()
		c.acting = false
		if err != nil {
			s.tracef("c%d acquire: %v", c.id, err)
			return
		}
		if !ok {
			return
		}
		if c.cur != nil && !c.cur.ended && c.cur.token == tok {
			return // still the same tenure
		}
		s.startTenureLocked(c, tok)
	}()
}

func (s *sim) startRelease(c *simContender) {
	c.acting = true
	c.cur.released = true
	s.tracef("c%d releases %v", c.id, c.cur.token)
	s.actions.Add(1)
	go func() {
		defer s.actions.Done()
		defer s.poke()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := c.l.Release(ctx)
		s.mu.Lock()
		defer s.mu.Unlock()
		c.acting = false
		if c.cur != nil && !c.cur.ended {
			s.endTenureLocked(c)
		}
		if err != nil {
			s.tracef("c%d release: %v", c.id, err)
		}
	}()
}

// startTenureLocked checks invariants (1) and (2) at the instant an
// Acquire returned true, and fences the store with the new token.
func (s *sim) startTenureLocked(c *simContender, tok lease.Token) {
	ten := &simTenure{c: c, token: tok, start: s.now}
	s.tracef("c%d acquired %v", c.id, tok)
	for _, o := range s.cs {
		if o == c || o.cur == nil || o.cur.ended {
			continue
		}
		if o.l.CheckAlive() {
			if s.thirdParty && o.cur.start <= s.lastThirdParty {
				s.tracef("excused overlap: c%d still believes in %v after a third-party change", o.id, o.cur.token)
				continue
			}
			s.violatef("overlap: c%d acquired %v while c%d holds %v since %.3fs", c.id, tok, o.id, o.cur.token, o.cur.start.Seconds())
		}
	}
	for _, prev := range s.tenures {
		cmp, err := tok.Compare(prev.token)
		if err != nil || cmp <= 0 {
			s.violatef("token order: %v of c%d is not above earlier tenure %v of c%d (%v)", tok, c.id, prev.token, prev.c.id, err)
		}
	}
	s.tenures = append(s.tenures, ten)
	s.res.tenures++
	c.cur = ten
	s.fenceLocked(ten) // the new holder bumps the fenced store first
}

func (s *sim) endTenureLocked(c *simContender) {
	c.cur.ended = true
	c.cur.end = s.now
	s.tracef("c%d tenure %v ends", c.id, c.cur.token)
}

// fenceLocked delivers a write of tenure ten to the fenced store, checking
// invariant (3).
func (s *sim) fenceLocked(ten *simTenure) {
	st := &s.store
	if !st.highest.IsZero() {
		cmp, err := ten.token.Compare(st.highest)
		if err != nil || cmp < 0 {
			return // refused: a stale holder
		}
	}
	st.highest = ten.token
	if n := len(st.accepted); n > 0 && tenureIndex(s.tenures, st.accepted[n-1]) > tenureIndex(s.tenures, ten) {
		s.violatef("fencing: store accepted a write of %v after one of the later tenure %v", ten.token, st.accepted[n-1].token)
	}
	st.accepted = append(st.accepted, ten)
}

func tenureIndex(all []*simTenure, ten *simTenure) int {
	for i, t := range all {
		if t == ten {
			return i
		}
	}
	return -1
}

// deliverLocked delivers fenced writes and late-applied requests that are due.
func (s *sim) deliverLocked() {
	keep := s.store.inflight[:0]
	for _, w := range s.store.inflight {
		if w.due <= s.now {
			s.fenceLocked(w.ten)
		} else {
			keep = append(keep, w)
		}
	}
	s.store.inflight = keep
	lateKeep := s.late[:0]
	for _, lw := range s.late {
		if lw.due > s.now {
			lateKeep = append(lateKeep, lw)
			continue
		}
		req, err := http.NewRequest(lw.method, lw.url, bytes.NewReader(lw.body))
		if err != nil {
			continue
		}
		req.Header = lw.header
		resp, err := s.lateClient.Do(req)
		code := 0
		if err == nil {
			code = resp.StatusCode
			resp.Body.Close()
		}
		s.tracef("late %s applied: %d", lw.method, code)
	}
	s.late = lateKeep
}

// lateApply queues a held write for delivery after its client gave up.
func (s *sim) lateApply(req *http.Request, body []byte) {
	if req.Method == http.MethodGet {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.late = append(s.late, lateWrite{
		due:    s.now + time.Duration(s.rng.Int64N(int64(2*s.cfg.ttl))),
		method: req.Method, url: req.URL.String(), header: req.Header.Clone(), body: body,
	})
}

// injectLocked picks this step's faults.
func (s *sim) injectLocked() {
	if s.rng.IntN(12) != 0 {
		return
	}
	kind := faultKinds[s.rng.IntN(len(faultKinds))]
	c := s.cs[s.rng.IntN(len(s.cs))]
	verbs := []string{"get", "create", "update", "delete", ""}
	verb := verbs[s.rng.IntN(len(verbs))]
	times := 1 + s.rng.IntN(3)
	switch kind {
	case "latency":
		s.srv.InjectFault(leasetest.Fault{Verb: verb, Times: times, Latency: time.Duration(s.rng.IntN(3)) * time.Millisecond})
	case "hang":
		c.pending = append(c.pending, netHang)
	case "late-apply":
		c.pending = append(c.pending, netLateApply)
	case "drop-answer":
		c.pending = append(c.pending, netDrop)
	case "reset":
		c.pending = append(c.pending, netReset)
	case "5xx":
		codes := []int{500, 502, 503, 504}
		s.srv.InjectFault(leasetest.Fault{Verb: verb, Times: times, Status: codes[s.rng.IntN(len(codes))]})
	case "5xx+retry-after":
		s.srv.InjectFault(leasetest.Fault{Verb: verb, Times: times, Status: 503, RetryAfter: fmt.Sprint(1 + s.rng.IntN(3))})
	case "429-plain":
		s.srv.InjectFault(leasetest.Fault{Verb: verb, Times: times, Status: 429, PlainText: true})
	case "429+retry-after":
		s.srv.InjectFault(leasetest.Fault{Verb: verb, Times: times, Status: 429, PlainText: true, RetryAfter: fmt.Sprint(1 + s.rng.IntN(3))})
	case "partition":
		c.partitioned = !c.partitioned
	case "server-pause":
		if s.paused {
			s.paused = false
			close(s.release)
			s.release = make(chan struct{})
		} else {
			s.paused = true
		}
	case "label-edit":
		_ = s.srv.Edit("default", "job", func(l *wire.Lease) {
			if l.Labels == nil {
				l.Labels = map[string]string{}
			}
			l.Labels["chaos"] = fmt.Sprint(s.rng.IntN(1000))
		})
	case "delete":
		if s.srv.Delete("default", "job") == nil {
			s.lastThirdParty, s.thirdParty = s.now, true
		}
	case "spec-edit":
		if s.srv.Edit("default", "job", func(l *wire.Lease) { l.Spec.HolderIdentity = nil }) == nil {
			s.lastThirdParty, s.thirdParty = s.now, true
		}
	case "suspend":
		if c.suspendTill == 0 {
			c.suspendTill = s.now + time.Duration(1+s.rng.IntN(int(2*s.cfg.ttl/time.Second)))*time.Second
		}
	case "wall-step":
		if !s.cfg.bigSteps {
			return
		}
		d := 2 * lease.DefaultMaxClockSkew * time.Duration(1+s.rng.IntN(5))
		if s.rng.IntN(2) == 0 {
			d = -d
		}
		lease.StepWall(c.l, d)
	}
	s.res.faults[kind]++
	s.tracef("fault %s (c%d, verb %q)", kind, c.id, verb)
}

// advance moves the true clock one step: running contenders' clocks move
// with it; a suspended contender's monotonic clock stands still while its
// wall clock moves on.
func (s *sim) advance() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now += s.cfg.step
	for _, c := range s.cs {
		if c.suspendTill > 0 && s.now < c.suspendTill {
			lease.StepWall(c.l, s.cfg.step)
			continue
		}
		if c.suspendTill > 0 {
			c.suspendTill = 0
			s.tracef("c%d resumes", c.id)
		}
		c.clk.Step(s.cfg.step)
	}
	// Invariant (1) at every instant: at most one believer, unless excused.
	var alive []*simContender
	for _, c := range s.cs {
		if c.cur == nil || c.cur.ended {
			continue
		}
		if c.l.CheckAlive() {
			alive = append(alive, c)
		} else {
			s.endTenureLocked(c)
		}
	}
	if len(alive) > 1 {
		newest := alive[0]
		for _, c := range alive {
			if c.cur.start > newest.cur.start {
				newest = c
			}
		}
		for _, c := range alive {
			if c == newest {
				continue
			}
			if s.thirdParty && c.cur.start <= s.lastThirdParty {
				continue
			}
			s.violatef("overlap: c%d (%v) and c%d (%v) both hold", c.id, c.cur.token, newest.id, newest.cur.token)
		}
	}
}

// settle waits until every contender is idle: no action or renewal busy,
// every request in flight held on purpose. A step that does not settle
// within a bound goes ahead and is counted.
func (s *sim) settle() {
	deadline := time.NewTimer(2 * time.Second)
	defer deadline.Stop()
	for {
		if s.idle() {
			return
		}
		select {
		case <-s.changed:
		case <-deadline.C:
			s.mu.Lock()
			s.res.unsettled++
			for _, c := range s.cs {
				s.tracef("unsettled: c%d acting=%v inflight=%d held=%d wake=%d now=%d suspended=%v",
					c.id, c.acting, c.inflight, c.held, c.wake.Load(), c.clk.Now().UnixNano(), c.suspendTill > 0)
			}
			s.mu.Unlock()
			return
		}
	}
}

func (s *sim) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cs {
		if c.inflight > c.held {
			return false
		}
		if c.inflight > 0 {
			for _, due := range c.heldDue {
				if !due.IsZero() && !c.clk.Now().Before(due) {
					return false // its timeout fired: the request is ending
				}
			}
			continue // everything it does waits on a held request
		}
		if c.acting {
			return false
		}
		switch w := c.wake.Load(); {
		case w == -1:
			return false
		case w > 0 && c.clk.Now().UnixNano() >= w && c.suspendTill == 0:
			return false
		}
	}
	return true
}

// dump is the end of the trace, for a failure message.
func (r simResult) dump(n int) string {
	tr := r.trace
	if len(tr) > n {
		tr = tr[len(tr)-n:]
	}
	return strings.Join(tr, "\n")
}
