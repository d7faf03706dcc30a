package lease_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/kubelease/lease"
	clocktesting "k8s.io/utils/clock/testing"
)

// proc is one process of a runner schedule: a KubernetesLease with its own
// clock (the runner's too) and wall offset, the RunSingleton calls made on
// it, and an external Release in flight, if any.
type proc struct {
	*simContender
	s *rsim

	// The fields below are guarded by sim.mu.
	runs      []*run        // RunSingleton calls not seen returned yet
	nextRun   time.Duration // true time of the next call when none runs; < 0: none
	nextKind  string        // "" or "retry" (after ErrWorkDidNotStop)
	sigterm   *run          // cancel this run's ctx as the next write is answered
	releasing bool          // an external Release is in flight

	// checker state, kept in event order
	active   []*run      // RunSingleton calls started and not returned
	deferred []runReturn // returns to judge when the external Release returns
	tenures  map[lease.Token]*tenureRec
	last     *tenureRec
	working  []*work // started and not returned, abandoned ones included
	alive    bool    // WouldCheckAlive at the last check
	aliveTok lease.Token
}

// simHost is the API server's address on the in-memory network.
const simHost = "http://kube.sim"

func (s *rsim) newProc(i int) *proc {
	c := &simContender{id: i, owner: fmt.Sprintf("c%d", i), clk: clocktesting.NewFakeClock(epoch)}
	p := &proc{simContender: c, s: s, tenures: map[lease.Token]*tenureRec{}}
	base := s.net.transport()
	s.transports = append(s.transports, base)
	rt := &sigtermTransport{next: &chaosTransport{base: base, sim: s.sim, c: c}, p: p}
	skew := time.Duration(0)
	if !s.cfg.fastPath {
		skew = -1
	}
	l, err := lease.NewKubernetesLease(lease.Settings{
		Name: "job", Owner: c.owner, TTL: s.cfg.ttl, MaxClockSkew: skew, Clock: c.clk,
		Config:            &lease.Config{Host: simHost, HTTPClient: &http.Client{Transport: rt}},
		WatchWhileHolding: s.cfg.seed%3 == 0,
		Observer:          procObserver{p},
	})
	if err != nil {
		s.t.Fatal(err)
	}
	if s.cfg.maxOffset > 0 {
		lease.StepWall(l, time.Duration(s.rng.Int64N(int64(2*s.cfg.maxOffset)))-s.cfg.maxOffset)
	}
	c.l = l
	p.nextRun = time.Duration(s.rng.Int64N(int64(time.Second)))
	return p
}

// procObserver logs the tenures of a process as the lease sees them. Its
// methods run under the lease's lock: they only append to the event log.
type procObserver struct{ p *proc }

func (o procObserver) Acquired(tok lease.Token) {
	o.p.s.log.add(event{kind: evAcquired, p: o.p, tok: tok})
}
func (o procObserver) Renewed(time.Duration, time.Duration) {}
func (o procObserver) RenewFailed(error)                    {}
func (o procObserver) Lost(reason lease.LostReason) {
	o.p.s.log.add(event{kind: evLost, p: o.p, reason: reason})
}
func (o procObserver) Released() { o.p.s.log.add(event{kind: evReleased, p: o.p}) }

// run is one RunSingleton call.
type run struct {
	id     int
	p      *proc
	kind   string // "", "second" (concurrent with another) or "retry"
	ctx    context.Context
	cancel context.CancelFunc
	rng    *rand.Rand // how its works behave; guarded by sim.mu

	mu  sync.Mutex  // guards tok
	tok lease.Token // from OnStarted, for the work about to start

	// checker state, guarded by sim.mu
	works    []*work
	started  []lease.Token // tenures its works started under
	acquired []lease.Token // tenures acquired while it was the instance's only call
	// releaseAbandoned: an external Release gave up on its work
	// (ErrWorkDidNotStop), so it may return while the work runs.
	releaseAbandoned bool
}

// startRunLocked calls RunSingleton on p, on a goroutine of its own. Call
// with s.mu held.
func (s *rsim) startRunLocked(p *proc, kind string) {
	s.nextID++
	r := &run{id: s.nextID, p: p, kind: kind, rng: rand.New(rand.NewPCG(s.cfg.seed, uint64(s.nextID)))}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	p.runs = append(p.runs, r)
	p.nextRun, p.nextKind = -1, ""
	s.rres.runs++
	if kind != "" {
		s.res.faults[kind+"-run"]++
	}
	s.tracef("c%d run %d starts%s", p.id, r.id, map[string]string{"": "", "second": " (second, concurrent)", "retry": " (retry after ErrWorkDidNotStop)"}[kind])
	l, unwrap := s.rc.flaw.wrap(p.l)
	opts := lease.SingletonOptions{
		RetryInterval: s.rc.retry, GracePeriod: s.rc.grace, MaxBackoff: s.rc.maxBackoff,
		Clock: p.clk, OnStarted: r.onStarted,
	}
	s.log.add(event{kind: evRunStart, p: p, r: r})
	s.goBg(func() {
		err := lease.RunSingleton(r.ctx, l, r.doWork, opts)
		tok, alive := lease.WouldCheckAlive(p.l)
		unwrap()
		s.log.add(event{kind: evRunReturn, p: p, r: r, err: err, tok: tok, alive: alive})
	})
}

func (r *run) onStarted(tok lease.Token) {
	r.mu.Lock()
	r.tok = tok
	r.mu.Unlock()
}

func (s *rsim) cancelRunLocked(r *run, why string) {
	if r.ctx.Err() != nil {
		return
	}
	r.cancel()
	s.rres.cancels++
	s.res.faults[why]++
	s.tracef("c%d run %d: ctx cancelled (%s)", r.p.id, r.id, why)
}

// startReleaseLocked calls Release on p's lease from a goroutine of its
// own, as a shutdown hook would. Call with s.mu held.
func (s *rsim) startReleaseLocked(p *proc) {
	p.releasing = true
	s.rres.releases++
	s.res.faults["external-release"]++
	s.log.add(event{kind: evReleaseStart, p: p})
	s.goBg(func() {
		err := p.l.Release(context.Background())
		s.log.add(event{kind: evReleaseReturn, p: p, err: err})
	})
}

// workMode is how a simulated work behaves.
type workMode int

const (
	workPrompt workMode = iota // returns as soon as its ctx ends
	workSlow                   // returns delay after its ctx ends (delay < grace)
	workStuck                  // ignores its ctx until the simulation frees it, after the grace period
	workFinish                 // returns by itself after delay, unless its ctx ends first
)

var workModeNames = [...]string{"prompt", "slow", "stuck", "finish"}

// work is one run of the work function.
type work struct {
	id      int
	p       *proc
	r       *run
	tok     lease.Token
	ctx     context.Context
	mode    workMode
	delay   time.Duration
	unstick chan struct{}

	// The fields below are guarded by sim.mu.
	clkAt     []time.Time   // every process's clock when it started
	unstickAt time.Duration // true time a stuck work is freed; 0: not decided
	unstuck   bool
	returned  bool
	abandoned bool      // RunSingleton or Release gave up on it: ErrWorkDidNotStop
	deadAt    time.Time // its process's clock when its tenure was first seen over
	late      bool      // W1 reported for it
	overlaps  map[*work]bool
}

// doWork is the work function of every RunSingleton call.
func (r *run) doWork(ctx context.Context) error {
	s := r.p.s
	w := s.startWork(r, ctx)
	err := w.body(ctx)
	s.log.add(event{kind: evWorkReturn, p: r.p, w: w})
	return err
}

func (s *rsim) startWork(r *run, ctx context.Context) *work {
	r.mu.Lock()
	tok := r.tok
	r.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok.IsZero() { // a runner that does not call OnStarted
		tok, _ = lease.WouldCheckAlive(r.p.l)
	}
	s.nextID++
	w := &work{id: s.nextID, p: r.p, r: r, tok: tok, ctx: ctx, unstick: make(chan struct{}), overlaps: map[*work]bool{}}
	for _, q := range s.ps {
		w.clkAt = append(w.clkAt, q.clk.Now())
	}
	o, roll := s.rc.odds, func(n int) bool { return n > 0 && r.rng.IntN(n) == 0 }
	switch {
	case roll(o.stuck):
		w.mode = workStuck
	case roll(o.finish):
		w.mode = workFinish
		w.delay = 500*time.Millisecond + time.Duration(r.rng.Int64N(int64(8*time.Second)))
	case roll(o.slow):
		w.mode = workSlow
		w.delay = s.cfg.step + time.Duration(r.rng.Int64N(int64(s.rc.grace-2*s.cfg.step)))
	}
	s.log.add(event{kind: evWorkStart, p: r.p, r: r, w: w})
	return w
}

// body is the simulated work: it waits on its process's clock, so a
// suspended process's work stands still too.
func (w *work) body(ctx context.Context) error {
	clk := w.p.clk
	if w.mode == workFinish {
		t := clk.NewTimer(w.delay)
		defer t.Stop()
		select {
		case <-t.C():
			return nil
		case <-ctx.Done():
		}
	} else {
		<-ctx.Done()
	}
	switch w.mode {
	case workSlow:
		t := clk.NewTimer(w.delay)
		defer t.Stop()
		<-t.C()
	case workStuck:
		<-w.unstick
	}
	return context.Cause(ctx)
}

// unstickLocked frees a stuck work. Call with sim.mu held.
func (w *work) unstickLocked() {
	if !w.unstuck {
		w.unstuck = true
		close(w.unstick)
	}
}

// sigtermTransport cancels an armed run's ctx the moment its process's
// next write is answered with success, before the lease sees the answer: a
// SIGTERM that lands while Acquire (or a renewal, or a Release) succeeds.
// It reads the answer first, so the cancellation cannot fail the request.
type sigtermTransport struct {
	next http.RoundTripper
	p    *proc
}

func (t *sigtermTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || req.Method == http.MethodGet || resp.StatusCode >= 300 {
		return resp, err
	}
	s := t.p.s
	s.mu.Lock()
	r := t.p.sigterm
	t.p.sigterm = nil
	s.mu.Unlock()
	if r == nil {
		return resp, nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	s.mu.Lock()
	s.cancelRunLocked(r, "sigterm-fired")
	s.mu.Unlock()
	return resp, nil
}

// unstickDueLocked decides when each stuck work whose context has ended is
// freed (some time after the grace period), and frees those that are due.
func (s *rsim) unstickDueLocked() {
	for _, p := range s.ps {
		for _, w := range p.working {
			if w.mode != workStuck || w.unstuck || w.ctx.Err() == nil {
				continue
			}
			if w.unstickAt == 0 {
				w.unstickAt = s.now + s.rc.grace + 2*s.cfg.step + time.Duration(s.rng.Int64N(int64(6*time.Second)))
			}
			if s.now >= w.unstickAt {
				s.tracef("c%d work %d is freed", p.id, w.id)
				w.unstickLocked()
			}
		}
	}
}
