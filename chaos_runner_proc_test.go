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
	noHandoff bool          // Settings.DisableHandoff
	retired   bool          // no more RunSingleton calls (quiet handoffs)
	renewedAt time.Duration // true time of its last renewal, as the checker saw it

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
	p.noHandoff = s.rc.odds.handoff > 0 && s.roll(s.rc.odds.noHandoff)
	l, err := lease.NewKubernetesLease(lease.Settings{
		Name: "job", Owner: c.owner, TTL: s.cfg.ttl, MaxClockSkew: skew, Clock: c.clk,
		Config:            &lease.Config{Host: simHost, HTTPClient: &http.Client{Transport: rt}},
		WatchWhileHolding: s.cfg.seed%3 == 0,
		DisableHandoff:    p.noHandoff || s.rc.deafHolders,
		Observer:          procObserver{p},
	})
	if err != nil {
		s.t.Fatal(err)
	}
	if s.rc.vacateFirst {
		lease.VacateBeforeHooks(l)
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
func (o procObserver) Renewed(time.Duration, time.Duration) {
	o.p.s.log.add(event{kind: evRenewed, p: o.p})
}
func (o procObserver) RenewFailed(error) {}
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

// sigtermTransport cancels an armed run's ctx the moment its process's
// next write is answered with success, before the lease sees the answer: a
// SIGTERM that lands while Acquire (or a renewal, or a Release) succeeds.
// It reads the answer first, so the cancellation cannot fail the request.
type sigtermTransport struct {
	next http.RoundTripper
	p    *proc
}

func (t *sigtermTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if to, ok := vacateTo(req); ok {
		t.p.s.log.add(event{kind: evVacate, p: t.p, to: to})
	}
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
