package lease_test

// One step of the lease campaign's simulation (chaos_sim_test.go): the
// step's actions, moving the clocks, and settling before the next step.

import (
	"context"
	"time"

	"github.com/kubelease/lease"
)

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
	s.act(c, func(ctx context.Context) func() {
		tok, ok, err := c.l.AcquireWithToken(ctx)
		return func() {
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
		}
	})
}

func (s *sim) startRelease(c *simContender) {
	c.cur.released = true
	s.tracef("c%d releases %v", c.id, c.cur.token)
	s.act(c, func(ctx context.Context) func() {
		err := c.l.Release(ctx)
		return func() {
			if c.cur != nil && !c.cur.ended {
				s.endTenureLocked(c)
			}
			if err != nil {
				s.tracef("c%d release: %v", c.id, err)
			}
		}
	})
}

// act marks c as acting and runs call, an Acquire or a Release of c, on a
// goroutine of its own with a 30 s bound; then, with s.mu held, c is no
// longer acting and what call returned runs. Call with s.mu held.
func (s *sim) act(c *simContender, call func(ctx context.Context) (then func())) {
	c.acting = true
	s.actions.Add(1)
	go func() {
		defer s.actions.Done()
		defer s.poke()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		then := call(ctx)
		s.mu.Lock()
		defer s.mu.Unlock()
		c.acting = false
		then()
	}()
}

// advance moves the true clock, and the contenders' clocks, one step
// (moveClocksLocked) and checks invariant (1).
func (s *sim) advance() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.moveClocksLocked()
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

// moveClocksLocked moves the true clock one step: running contenders'
// clocks move with it; a suspended contender's monotonic clock stands still
// while its wall clock moves on. Call with s.mu held.
func (s *sim) moveClocksLocked() {
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
