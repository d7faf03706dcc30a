package lease_test

// The simulated work of a runner schedule (chaos_runner_proc_test.go): how
// it behaves, and when a stuck one is freed.

import (
	"context"
	"time"

	"github.com/kubelease/lease"
)

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
	// othersAlive: for each process, the tenure that would pass
	// CheckAlive as this work started (zero: none).
	othersAlive []lease.Token
	handoffTo   string // its context ended for a handoff to this Owner
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
		qt, alive := lease.WouldCheckAlive(q.l)
		if !alive {
			qt = lease.Token{}
		}
		w.othersAlive = append(w.othersAlive, qt)
	}
	context.AfterFunc(ctx, func() {
		to, _ := handoffCause(ctx)
		s.log.add(event{kind: evWorkCancel, p: r.p, w: w, to: to})
	})
	o, roll := s.rc.odds, func(n int) bool { return n > 0 && r.rng.IntN(n) == 0 }
	switch {
	case s.quiet:
		if roll(o.slow) {
			w.mode = workSlow
			w.delay = s.cfg.step + time.Duration(r.rng.Int64N(int64(s.rc.grace-2*s.cfg.step)))
		}
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
