package lease_test

// The lease campaign's checker (chaos_sim_test.go): tenures as the
// simulation saw them, the fenced store, and the OnLost accounting.

import (
	"context"
	"time"

	"github.com/kubelease/lease"
)

// simTenure is one tenure as the simulation saw it, on the true clock.
type simTenure struct {
	c          *simContender
	token      lease.Token
	start, end time.Duration
	ended      bool
	released   bool // a Release was started while it was alive
	lost       int  // OnLost calls for it
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
