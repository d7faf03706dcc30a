package lease_test

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kubelease/lease"
)

// evKind is what an event records.
type evKind int

const (
	evRunStart evKind = iota
	evRunReturn
	evWorkStart
	evWorkReturn
	evAcquired
	evLost
	evReleased
	evReleaseStart
	evReleaseReturn
	evHandoffReturn // an operator's RequestHandoff returned
	evVacate        // a process sends a vacating write (a step-down)
	evWorkCancel    // a work's context ended
	evRenewed       // a process renewed its tenure
)

// event is one step of a RunSingleton, a work, a tenure or an external
// Release, in the order the goroutines took them.
type event struct {
	kind   evKind
	p      *proc
	r      *run
	w      *work
	tok    lease.Token // evAcquired; evRunReturn: the tenure held at the return
	alive  bool        // evRunReturn: whether one was
	err    error       // evRunReturn, evReleaseReturn
	reason lease.LostReason
	to     string // evHandoffReturn, evVacate, evWorkCancel: the handoff's target
}

// eventLog orders the events of every goroutine. Its lock is a leaf: the
// lease's Observer appends under the lease's own lock.
type eventLog struct {
	mu  sync.Mutex // guards evs
	evs []event
}

func (g *eventLog) add(e event) {
	g.mu.Lock()
	g.evs = append(g.evs, e)
	g.mu.Unlock()
}

func (g *eventLog) drain() []event {
	g.mu.Lock()
	defer g.mu.Unlock()
	evs := g.evs
	g.evs = nil
	return evs
}

func (s *rsim) applyLocked(e event) {
	p := e.p
	switch e.kind {
	case evRunStart:
		p.active = append(p.active, e.r)
	case evAcquired:
		s.acquiredLocked(p, e.tok)
	case evLost:
		s.tracef("c%d lost (%s)", p.id, e.reason)
		if p.last != nil && p.last.end == "" {
			p.last.end = "lost"
		}
	case evReleased:
		s.tracef("c%d released", p.id)
		if p.last != nil && p.last.end == "" {
			p.last.end = "released"
		}
	case evWorkStart:
		s.workStartedLocked(e.w)
	case evWorkReturn:
		e.w.returned = true
		p.working = slices.DeleteFunc(p.working, func(w *work) bool { return w == e.w })
		s.tracef("c%d work %d returns", p.id, e.w.id)
	case evRunReturn:
		s.runReturnedLocked(e)
	case evHandoffReturn:
		if e.err != nil {
			s.rres.handoffs.failed++
			if errors.Is(e.err, lease.ErrNotHeld) {
				s.rres.handoffs.noLease++
			}
			if h := s.h2; h != nil && !h.done && e.to == h.target.owner {
				s.tracef("H2 window excused: the request failed")
				s.rres.handoffs.h2Excused++
				h.done = true
			}
		}
		s.tracef("handoff request to %s returns: %s", e.to, oneLine(e.err))
	case evVacate:
		s.vacateSentLocked(p, e.to)
	case evWorkCancel:
		if e.to != "" {
			e.w.handoffTo = e.to
			s.rres.handoffs.stepDowns++
			s.tracef("c%d work %d: cancelled for a handoff to %s", p.id, e.w.id, e.to)
		}
	case evRenewed:
		p.renewedAt = s.now
	case evReleaseStart:
		s.tracef("c%d external Release", p.id)
	case evReleaseReturn:
		p.releasing = false
		s.tracef("c%d external Release returns: %s", p.id, oneLine(e.err))
		gaveUp := errors.Is(e.err, lease.ErrWorkDidNotStop)
		if gaveUp {
			for _, w := range p.working {
				w.abandoned = true
				w.r.releaseAbandoned = true
			}
		}
		for _, ret := range p.deferred {
			if !gaveUp {
				s.judgeReturnLocked(ret)
			}
		}
		p.deferred = nil
	}
}

// acquiredLocked records a tenure and checks W2 against every other
// process's works.
func (s *rsim) acquiredLocked(p *proc, tok lease.Token) {
	rec := &tenureRec{tok: tok, start: s.now}
	p.tenures[tok] = rec
	p.last = rec
	if len(p.active) == 1 {
		r := p.active[0]
		r.acquired = append(r.acquired, tok)
	}
	s.tracef("c%d acquired %v", p.id, tok)
	s.h2AcquiredLocked(p, tok)
	for _, q := range s.ps {
		if q == p {
			continue
		}
		for _, w := range q.working {
			rec := q.tenures[w.tok]
			if w.abandoned || rec == nil || s.excusedLocked(rec) {
				continue
			}
			if rec.end == "released" {
				s.violate("W2", "c%d acquired %v while work %d of c%d (tenure %v, released) had not returned", p.id, tok, w.id, q.id, w.tok)
			}
		}
	}
}

// workStartedLocked checks W3.
func (s *rsim) workStartedLocked(w *work) {
	p := w.p
	s.rres.works++
	w.r.works = append(w.r.works, w)
	w.r.started = append(w.r.started, w.tok)
	s.tracef("c%d run %d: work %d starts under %v (%s %v)", p.id, w.r.id, w.id, w.tok, workModeNames[w.mode], w.delay)
	s.workStartHandoffLocked(w)
	for _, v := range p.working {
		how := "still runs"
		if v.abandoned {
			how = "still runs, given up on (ErrWorkDidNotStop)"
		}
		s.violate("W3", "c%d work %d (run %d) starts while work %d (run %d) %s", p.id, w.id, w.r.id, v.id, v.r.id, how)
	}
	p.working = append(p.working, w)
}

// runReturnedLocked checks W4 and plans the process's next call.
func (s *rsim) runReturnedLocked(e event) {
	p, r := e.p, e.r
	p.active = slices.DeleteFunc(p.active, func(x *run) bool { return x == r })
	p.runs = slices.DeleteFunc(p.runs, func(x *run) bool { return x == r })
	if p.sigterm == r {
		p.sigterm = nil
	}
	didNotStop := errors.Is(e.err, lease.ErrWorkDidNotStop)
	busy := errBusy != nil && errors.Is(e.err, errBusy)
	s.tracef("c%d run %d returns: %s", p.id, r.id, oneLine(e.err))
	switch {
	case didNotStop:
		s.rres.didNotStop++
		for _, w := range r.works {
			if !w.returned {
				w.abandoned = true
			}
		}
	case busy:
		s.rres.busy++
	}
	if !didNotStop && !r.releaseAbandoned {
		var running []*work
		for _, w := range r.works {
			if !w.returned && !w.abandoned {
				running = append(running, w)
			}
		}
		held := e.alive && (slices.Contains(r.started, e.tok) || slices.Contains(r.acquired, e.tok))
		ret := runReturn{r: r, err: e.err, running: running, held: held, tok: e.tok}
		if p.releasing {
			// An external Release may yet give up on the work
			// (ErrWorkDidNotStop), which excuses the return: judge then.
			p.deferred = append(p.deferred, ret)
		} else {
			s.judgeReturnLocked(ret)
		}
	}
	if s.finishing || p.retired || len(p.runs) > 0 {
		return
	}
	if didNotStop && s.roll(s.rc.odds.retry) {
		p.nextRun, p.nextKind = s.now, "retry"
		return
	}
	p.nextRun = s.now + s.cfg.step + time.Duration(s.rng.Int64N(int64(3*time.Second)))
}

// runReturn is what W4 judges of a RunSingleton's return.
type runReturn struct {
	r       *run
	err     error
	running []*work // its works that had not returned
	held    bool    // a tenure it started was still held, tok
	tok     lease.Token
}

func (s *rsim) judgeReturnLocked(ret runReturn) {
	p, r := ret.r.p, ret.r
	for _, w := range ret.running {
		s.violate("W4", "c%d run %d returned (%s) while its work %d still ran", p.id, r.id, oneLine(ret.err), w.id)
	}
	if ret.held {
		s.violate("W4", "c%d run %d returned (%s) with tenure %v, which it started, still held", p.id, r.id, oneLine(ret.err), ret.tok)
	}
}

// oneLine formats err on one line of the trace (errors.Join uses several).
func oneLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
