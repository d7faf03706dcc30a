package lease_test

// Planned handoffs in the runner campaign (doc.go, "Planned handoff"): an
// operator's RequestHandoff at random times of the fault phase, to a
// contender, the holder, or an Owner no process has; some processes with
// Settings.DisableHandoff; and, after W5, handoffs in quiet windows, for
// H2. The invariants H1 and H2 are described in chaos_runner_check_test.go.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
)

// goneOwner is a handoff target no process has: a contender that died or
// never started.
const goneOwner = "gone"

// handoffCounts are a schedule's handoff figures.
type handoffCounts struct {
	requested int // RequestHandoff calls
	failed    int // of which returned an error (no Lease, a server fault)
	noLease   int // of which found no Lease (ErrNotHeld)
	stepDowns int // works stopped with a LostHandoff cause
	vacates   int // vacating writes sent
	h2Checked int // quiet windows whose target ran work within the bound
	h2Excused int // quiet windows a DisableHandoff contender or an expired deferral ended
	h2Skipped int // quiet windows never found
	h2Max     time.Duration
}

func (c *handoffCounts) add(o handoffCounts) {
	c.requested += o.requested
	c.failed += o.failed
	c.noLease += o.noLease
	c.stepDowns += o.stepDowns
	c.vacates += o.vacates
	c.h2Checked += o.h2Checked
	c.h2Excused += o.h2Excused
	c.h2Skipped += o.h2Skipped
	c.h2Max = max(c.h2Max, o.h2Max)
}

// h2Window is a quiet handoff H2 watches.
type h2Window struct {
	holder, target *proc
	start          time.Duration // true time of the request
	vacatedAt      time.Duration // true time the holder sent the vacating write; < 0: not yet
	done           bool
}

// opConfig is the operator's connection: straight to the server, with no
// network faults (the server's injected faults still apply).
func (s *rsim) opConfig() *lease.Config {
	if s.op == nil {
		tr := s.net.transport()
		s.transports = append(s.transports, tr)
		s.op = &lease.Config{Host: simHost, HTTPClient: &http.Client{Transport: tr}}
	}
	return s.op
}

// handoffEventLocked requests a handoff to a random target: a process (any,
// live or suspended or idle), the current holder, or goneOwner. Call with
// s.mu held.
func (s *rsim) handoffEventLocked() {
	var to, kind string
	switch n := s.rng.IntN(10); {
	case n < 6:
		p := s.ps[s.rng.IntN(len(s.ps))]
		to, kind = p.owner, "contender"
		switch {
		case p.suspendTill > 0:
			kind = "suspended"
		case len(p.runs) == 0:
			kind = "idle"
		case p.noHandoff:
			kind = "disabled"
		}
	case n < 8:
		if cur, ok := s.srv.Get("default", "job"); ok && cur.Spec.Holder() != "" {
			to, kind = cur.Spec.Holder(), "holder"
			break
		}
		fallthrough
	default:
		to, kind = goneOwner, "unknown"
	}
	s.res.faults["handoff-to-"+kind]++
	s.startHandoffLocked(to, kind)
}

// startHandoffLocked calls RequestHandoff on a goroutine of its own. Call
// with s.mu held.
func (s *rsim) startHandoffLocked(to, kind string) {
	s.rres.handoffs.requested++
	cfg := s.opConfig()
	s.tracef("handoff requested to %s (%s)", to, kind)
	s.goBg(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := lease.RequestHandoff(ctx, cfg, "default", "job", to)
		s.log.add(event{kind: evHandoffReturn, to: to, err: err})
	})
}

// vacateTo reports whether req is a vacating write (a PUT of the Lease
// without a holder, naming a preferred holder), and to whom.
func vacateTo(req *http.Request) (string, bool) {
	if req.Method != http.MethodPut || req.GetBody == nil {
		return "", false
	}
	rc, err := req.GetBody()
	if err != nil {
		return "", false
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return "", false
	}
	var obj wire.Lease
	if json.Unmarshal(bytes.TrimSpace(body), &obj) != nil {
		return "", false
	}
	to := obj.Annotations[lease.PreferredHolderAnnotation]
	return to, to != "" && obj.Spec.Holder() == ""
}

// handoffCause is the target of the handoff that cancelled ctx, if one did.
func handoffCause(ctx context.Context) (string, bool) {
	var le *lease.LostError
	if errors.As(context.Cause(ctx), &le) && le.Reason == lease.LostHandoff {
		return le.Holder, true
	}
	return "", false
}

// vacateSentLocked checks H1 as p sends a vacating write: none of p's
// works still runs.
func (s *rsim) vacateSentLocked(p *proc, to string) {
	s.rres.handoffs.vacates++
	s.tracef("c%d sends the vacating write (handoff to %s)", p.id, to)
	for _, w := range p.working {
		s.violate("H1", "c%d vacated the lease for %s while its work %d (%v) still ran", p.id, to, w.id, w.tok)
	}
	if h := s.h2; h != nil && h.holder == p && h.vacatedAt < 0 {
		h.vacatedAt = s.now
	}
}

// workStartHandoffLocked checks H1 as work v starts: no work of another
// process that is stopping for a handoff still runs while its tenure
// would pass CheckAlive (the step-down has not ended it).
func (s *rsim) workStartHandoffLocked(v *work) {
	for _, p := range s.ps {
		if p == v.p {
			continue
		}
		for _, w := range p.working {
			rec := p.tenures[w.tok]
			if w.handoffTo == "" || w.abandoned || v.othersAlive[p.id] != w.tok || (rec != nil && s.excusedLocked(rec)) {
				continue
			}
			s.violate("H1", "c%d work %d (%v) starts while work %d of c%d, stopping for a handoff to %s, still runs under its live tenure %v",
				v.p.id, v.id, v.tok, w.id, p.id, w.handoffTo, w.tok)
		}
	}
}

// h2AcquiredLocked ends a quiet window when a process other than its
// target acquires: excused for a DisableHandoff process (it does not
// defer) or once HandoffWait has passed since the vacating write, an H2
// violation otherwise.
func (s *rsim) h2AcquiredLocked(p *proc, tok lease.Token) {
	h := s.h2
	if h == nil || h.done || p == h.target {
		return
	}
	switch {
	case p.noHandoff:
		s.tracef("H2 window excused: c%d (DisableHandoff) took the lease", p.id)
	case h.vacatedAt >= 0 && s.now-h.vacatedAt >= s.cfg.ttl-s.cfg.step:
		s.tracef("H2 window excused: c%d took the lease after HandoffWait", p.id)
	default:
		s.violate("H2", "c%d acquired %v during a handoff to c%d, within HandoffWait", p.id, tok, h.target.id)
		h.done = true
		return
	}
	s.rres.handoffs.h2Excused++
	h.done = true
}

// h2Bound is how long after a handoff request, in a quiet window, its
// target must be running work: the holder notices within 1.1 ×
// RenewalInterval (its renewal's 409 and re-read, the renewal timer
// jittered by ±10 %; its holder watch, if any, is faster) plus a step of
// the simulation's clocks; its work stops within the grace period (a slow
// work; quiet windows have no stuck or self-finishing work); the target
// wakes at once from its standby watch, or within 1.5 × MaxBackoff if its
// RunSingleton is backing off (the backoff's ±50 % jitter), and either is
// at most the larger of that and 1.5 × RenewalInterval, the standby
// watch's reconnect backoff; the request, the vacating write and the
// acquiring write are round trips, settled within the step they are made
// in; and two steps of granularity.
func (s *rsim) h2Bound() time.Duration {
	ri := s.cfg.ttl / 3
	return ri*11/10 + s.cfg.step + s.rc.grace + max(s.rc.maxBackoff*3/2, ri*3/2) + 2*s.cfg.step
}

// quietHandoffs requests rc.quietHandoffs handoffs, each in a quiet
// window, and checks H2 on each. From here on works are prompt or slow,
// and the DisableHandoff processes stop contending (their RunSingleton is
// cancelled and not called again): they do not defer to a handoff's
// target, so they could take the lease from it.
func (s *rsim) quietHandoffs() {
	if s.rc.quietHandoffs == 0 {
		return
	}
	s.mu.Lock()
	s.quiet, s.lateNow, s.quietFrom = true, true, s.now
	for _, p := range s.ps {
		if p.noHandoff {
			p.retired = true
			p.nextRun = -1
			for _, r := range p.runs {
				s.cancelRunLocked(r, "quiet-retire")
			}
		}
	}
	s.mu.Unlock()
	for range s.rc.quietHandoffs {
		s.quietHandoff()
	}
}

func (s *rsim) quietHandoff() {
	limit := 3 * s.cfg.ttl
	var holder, target *proc
	for waited := time.Duration(0); ; waited += s.cfg.step {
		s.settleAndCheck()
		s.mu.Lock()
		var why string
		if holder, target, why = s.quietWindowLocked(); holder != nil {
			break
		}
		if waited >= limit {
			s.rres.handoffs.h2Skipped++
			s.tracef("no quiet window for a handoff within %v (%s)", limit, why)
			s.mu.Unlock()
			return
		}
		s.scheduleLocked(false)
		s.mu.Unlock()
		s.settleAndCheck()
		s.advance()
	}
	start, bound := s.now, s.h2Bound()
	s.h2 = &h2Window{holder: holder, target: target, start: start, vacatedAt: -1}
	s.tracef("quiet window: c%d holds; handoff to c%d must see it run work within %v", holder.id, target.id, bound)
	s.startHandoffLocked(target.owner, "quiet")
	s.mu.Unlock()
	for {
		s.settleAndCheck()
		s.mu.Lock()
		h := s.h2
		if !h.done {
			for _, w := range target.working {
				if w.ctx.Err() == nil && target.alive && target.aliveTok == w.tok {
					h.done = true
					d := s.now - start
					s.rres.handoffs.h2Checked++
					s.rres.handoffs.h2Max = max(s.rres.handoffs.h2Max, d)
					s.tracef("H2: c%d runs work %d %v after the handoff request", target.id, w.id, d)
				}
			}
		}
		if !h.done && s.now-start > bound {
			s.violate("H2", "c%d runs no work %v after a handoff to it in a quiet window (bound %v; vacated at %.3fs)",
				target.id, s.now-start, bound, h.vacatedAt.Seconds())
			h.done = true
		}
		if h.done {
			s.h2 = nil
			s.mu.Unlock()
			return
		}
		s.scheduleLocked(false)
		s.mu.Unlock()
		s.settleAndCheck()
		s.advance()
	}
}

// quietWindowLocked returns a holder and a target for a quiet handoff, or
// nils: no late write pending, no process suspended or releasing, one
// work running, under its process's live tenure, prompt or slow, on a
// process with handoffs enabled, whose tenure the server's record names
// and which it acquired or renewed since the quiet handoffs began; the
// target another process whose RunSingleton contends.
//
// A work left from before (stuck, or one that returns by itself), or
// running under a tenure the record does not name or that started as a
// third party edited the record, has its RunSingleton cancelled, so that a
// window comes.
func (s *rsim) quietWindowLocked() (holder, target *proc, why string) {
	if len(s.late) > 0 {
		return nil, nil, "a late write is pending"
	}
	var works []*work
	for _, p := range s.ps {
		if p.suspendTill > 0 || p.releasing || p.sigterm != nil {
			return nil, nil, fmt.Sprintf("c%d is suspended or releasing", p.id)
		}
		for _, w := range p.working {
			if w.mode == workStuck || w.mode == workFinish {
				s.cancelRunLocked(w.r, "quiet-cancel")
			}
		}
		works = append(works, p.working...)
	}
	if len(works) != 1 {
		return nil, nil, fmt.Sprintf("%d works run", len(works))
	}
	w := works[0]
	h := w.p
	rec := h.tenures[w.tok]
	cur, ok := s.srv.Get("default", "job")
	switch {
	case h.noHandoff:
		return nil, nil, fmt.Sprintf("holder c%d has DisableHandoff", h.id)
	case w.abandoned || w.ctx.Err() != nil || !(h.alive && h.aliveTok == w.tok) || w.mode == workStuck || w.mode == workFinish:
		return nil, nil, fmt.Sprintf("work %d of c%d is ending", w.id, h.id)
	case rec == nil || s.excusedLocked(rec) || !ok || cur.Spec.Holder() != h.owner:
		// Started as a third party edited the record, or otherwise not
		// the record's: let another tenure come.
		s.cancelRunLocked(w.r, "quiet-cancel")
		return nil, nil, fmt.Sprintf("c%d's tenure is not the record's", h.id)
	case max(rec.start, h.renewedAt) < s.quietFrom:
		// A tenure from the fault phase may be about to expire on the
		// server (its holder was suspended or cut off): wait until it
		// renews.
		return nil, nil, fmt.Sprintf("c%d has not renewed since the faults stopped", h.id)
	}
	var ts []*proc
	for _, p := range s.ps {
		if p != h && len(p.runs) > 0 && p.runs[len(p.runs)-1].ctx.Err() == nil {
			ts = append(ts, p)
		}
	}
	if len(ts) == 0 {
		return nil, nil, "no other process contends"
	}
	return h, ts[s.rng.IntN(len(ts))], ""
}
