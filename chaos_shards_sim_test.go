package lease_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
	"github.com/kubelease/lease/leasetest"
)

// shsim runs one shard schedule: members of one shard set, each a ShardSet
// with its own clock and network, joining, leaving, crashing, freezing and
// being cut off, against one leasetest.Server with faults, on a common true
// clock stepped by the simulation. Like the runner campaign (rsim) it
// reuses the lease campaign's machinery (sim: the chaos transport, the
// server faults, late writes, the trace) over the in-memory network, in a
// testing/synctest bubble where settling is synctest.Wait.
type shsim struct {
	*sim
	sc  shardConfig
	net *pipeNet
	log shLog
	bg  sync.WaitGroup
	// live counts the goroutines the simulation started (Runs) still running.
	live atomic.Int32

	// The fields below are guarded by sim.mu.
	ms         []*shMember // every incarnation, in join order
	slots      []*shMember // each slot's current incarnation (running or leaving), or nil
	nextJoin   []time.Duration
	nextMember int
	nextWork   int
	recovering bool
	finishing  bool
	sres       shardResult
	pairsSeen  map[[2]lease.Token]bool
}

func newShSim(t testing.TB, sc shardConfig) *shsim {
	srv := leasetest.NewUnstartedServer()
	n := newPipeNet(srv)
	base := &sim{
		t:       t,
		cfg:     sc.simConfig,
		rng:     rand.New(rand.NewPCG(sc.seed, 0x7368617264)),
		srv:     srv,
		changed: make(chan struct{}, 1),
		release: make(chan struct{}),
		res:     simResult{faults: map[string]int{}},
	}
	lt := n.transport()
	base.transports = append(base.transports, lt)
	base.lateClient = &http.Client{Transport: lt}
	s := &shsim{sim: base, sc: sc, net: n, pairsSeen: map[[2]lease.Token]bool{}}
	s.sres.byInvariant = map[string]int{}
	s.slots = make([]*shMember, sc.slots)
	s.nextJoin = make([]time.Duration, sc.slots)
	for i := range s.nextJoin {
		s.nextJoin[i] = time.Duration(s.rng.Int64N(int64(2 * time.Second)))
	}
	return s
}

// run plays the schedule and checks the invariants.
func (s *shsim) run() shardResult {
	s.mu.Lock()
	s.tracef("shard set of %d shards, %d member slots, TTL %v, fast path %v, watch while holding %v, flaw %s",
		len(s.sc.shards), s.sc.slots, s.cfg.ttl, s.cfg.fastPath, s.cfg.seed%3 == 0, s.sc.flaw)
	s.mu.Unlock()
	for s.now < s.cfg.faultFor {
		s.step(true)
	}
	s.recover()
	s.finish()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.sres
	r.simResult = s.res
	return r
}

// step plays one step of true time: what settled at this instant is
// checked, the step's events and faults start and settle, and the clocks
// move on.
func (s *shsim) step(faults bool) {
	s.settleAndCheck()
	s.mu.Lock()
	s.scheduleLocked(faults)
	s.mu.Unlock()
	s.settleAndCheck()
	s.advance()
}

// settle returns once every goroutine of the simulation is durably blocked
// (see rsim.settle).
func (s *shsim) settle() {
	synctest.Wait()
	time.Sleep(5 * time.Millisecond)
	synctest.Wait()
}

func (s *shsim) settleAndCheck() {
	s.settle()
	s.mu.Lock()
	s.checkLocked()
	s.mu.Unlock()
}

func (s *shsim) roll(n int) bool { return n > 0 && s.rng.IntN(n) == 0 }

// advance moves the true clock one step, and with it the clock of every
// member that has not crashed (a crashed member's stands still: it does
// nothing any more). Frozen and cut-off members thaw when due.
func (s *shsim) advance() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now += s.cfg.step
	for _, m := range s.ms {
		if m.state != msCrashed || m.zombie {
			m.clk.Step(s.cfg.step)
		}
	}
}

// goBg runs f on a goroutine the simulation waits for at the end.
func (s *shsim) goBg(f func()) {
	s.live.Add(1)
	s.bg.Go(func() {
		defer s.live.Add(-1)
		f()
	})
}

// scheduleLocked starts this step's member events and, in the fault phase,
// faults. Call with s.mu held.
func (s *shsim) scheduleLocked(faults bool) {
	s.deliverLocked()
	for _, m := range s.ms {
		if m.frozenTill > 0 && s.now >= m.frozenTill {
			m.frozenTill = 0
			m.setNet(false, false)
			s.tracef("%s thaws", m.name)
		}
		if m.cutTill > 0 && s.now >= m.cutTill {
			m.cutTill = 0
			m.setNet(false, false)
			s.tracef("%s reconnects", m.name)
		}
	}
	if !faults {
		return
	}
	s.injectShardFaultsLocked()
	o := s.sc.odds
	for slot, m := range s.slots {
		if m == nil {
			if s.nextJoin[slot] >= 0 && s.now >= s.nextJoin[slot] {
				s.nextJoin[slot] = -1
				s.joinLocked(slot)
			}
			continue
		}
		if m.state != msRunning {
			continue
		}
		switch {
		case s.roll(o.leave):
			s.leaveLocked(m, "graceful")
		case s.roll(o.crash):
			s.crashLocked(m)
			if s.roll(2) {
				s.nextJoin[slot] = s.now + time.Second + time.Duration(s.rng.Int64N(int64(5*time.Second)))
			}
		case m.frozenTill == 0 && m.cutTill == 0 && s.roll(o.freeze):
			m.frozenTill = s.now + s.faultLength()
			m.setNet(false, true)
			s.sres.freezes++
			s.res.faults["member-freeze"]++
			s.tracef("%s freezes until %.3fs", m.name, m.frozenTill.Seconds())
		case m.frozenTill == 0 && m.cutTill == 0 && s.roll(o.partition):
			m.cutTill = s.now + s.faultLength()
			m.setNet(true, false)
			s.sres.partitions++
			s.res.faults["member-partition"]++
			s.tracef("%s is cut off until %.3fs", m.name, m.cutTill.Seconds())
		}
	}
}

// faultLength is how long a freeze or a partition lasts: up to two TTLs
// (with longFaults, from one to two).
func (s *shsim) faultLength() time.Duration {
	if s.sc.longFaults {
		return s.cfg.ttl + time.Duration(s.rng.Int64N(int64(s.cfg.ttl)))
	}
	return s.cfg.step + time.Duration(s.rng.Int64N(int64(2*s.cfg.ttl)))
}

// shardFaultKinds are the server and network faults a shard schedule
// injects: the lease campaign's (chaos_sim_faults_test.go), less those on
// one process's clock, plus faults of the set's shared watch.
var shardFaultKinds = []string{
	"latency", "hang", "late-apply", "drop-answer", "reset", "5xx", "5xx+retry-after",
	"429-plain", "429+retry-after", "server-pause", "label-edit", "watch-drop", "watch-410",
}

// injectShardFaultsLocked picks this step's server fault, if any, as the
// lease campaign's injectLocked does. Call with s.mu held.
func (s *shsim) injectShardFaultsLocked() {
	if !s.roll(s.sc.odds.server) {
		return
	}
	kind := shardFaultKinds[s.rng.IntN(len(shardFaultKinds))]
	var c *simContender
	var who string
	var up []*shMember
	for _, m := range s.ms {
		if m.state == msRunning || m.state == msLeaving {
			up = append(up, m)
		}
	}
	if len(up) > 0 {
		m := up[s.rng.IntN(len(up))]
		c, who = m.c, m.name
	}
	verbs := []string{"get", "create", "update", "delete", "list", "watch", ""}
	verb := verbs[s.rng.IntN(len(verbs))]
	times := 1 + s.rng.IntN(3)
	switch kind {
	case "latency":
		s.srv.InjectFault(leasetest.Fault{Verb: verb, Times: times, Latency: time.Duration(s.rng.IntN(3)) * time.Millisecond})
	case "hang", "late-apply", "drop-answer", "reset":
		if c == nil {
			return
		}
		c.pending = append(c.pending, map[string]netFault{"hang": netHang, "late-apply": netLateApply, "drop-answer": netDrop, "reset": netReset}[kind])
	case "5xx":
		codes := []int{500, 502, 503, 504}
		s.srv.InjectFault(leasetest.Fault{Verb: verb, Times: times, Status: codes[s.rng.IntN(len(codes))]})
	case "5xx+retry-after":
		s.srv.InjectFault(leasetest.Fault{Verb: verb, Times: times, Status: 503, RetryAfter: fmt.Sprint(1 + s.rng.IntN(3))})
	case "429-plain":
		s.srv.InjectFault(leasetest.Fault{Verb: verb, Times: times, Status: 429, PlainText: true})
	case "429+retry-after":
		s.srv.InjectFault(leasetest.Fault{Verb: verb, Times: times, Status: 429, PlainText: true, RetryAfter: fmt.Sprint(1 + s.rng.IntN(3))})
	case "server-pause":
		if s.paused {
			s.paused = false
			close(s.release)
			s.release = make(chan struct{})
		} else {
			s.paused = true
		}
	case "label-edit":
		shard := s.sc.shards[s.rng.IntN(len(s.sc.shards))]
		_ = s.srv.Edit("default", lease.ShardLeaseName("orders", shard), func(l *wire.Lease) {
			if l.Labels == nil {
				l.Labels = map[string]string{}
			}
			l.Labels["chaos"] = fmt.Sprint(s.rng.IntN(1000))
		})
	case "watch-drop":
		s.srv.DropWatches()
	case "watch-410":
		s.srv.CompactLog()
		s.srv.DropWatches()
	}
	s.res.faults[kind]++
	s.tracef("fault %s (%s, verb %q)", kind, who, verb)
}

// settleBound is how long after the faults and membership events stop the
// set must have settled (invariants S3 and S4): every shard's work running
// under a live tenure on the member AssignShards gives it to, and every
// member seeing the same live members. A crashed member's member Lease and
// shard Leases expire one TTL after the others last saw them change (their
// watches may first have to come back: a backoff of at most the shared
// watch's poll interval, and a list); a shard lost in the fault phase is
// contended again after at most MaxBackoff; a handed-over shard is released
// once its work returns (at once: works are prompt) and taken by the new
// owner within a round trip; a shard whose holder expired is taken when the
// new owner computes the expiry (one TTL after it last saw the record,
// which may be after a member's expiry made it the new owner): hence
// 2×TTL + the poll interval + MaxBackoff + GracePeriod + 2 s of requests,
// retries after Retry-After and steps.
func (s *shsim) settleBound() time.Duration {
	return 2*s.cfg.ttl + lease.DefaultNamespacePollInterval + s.sc.maxBackoff + s.sc.grace + 2*time.Second
}

// recover stops every fault and membership event, and checks (S3, S4) that
// the set settles within settleBound and stays settled for sc.stable.
func (s *shsim) recover() {
	s.mu.Lock()
	s.recovering = true
	s.endFaultsLocked()
	// Writes held for a late apply land at once, as the last of the
	// faults: one landing a TTL later would move a settled set (a crashed
	// member's renewal applied late makes it look live for one more TTL).
	s.lateNow = true
	for i := range s.late {
		s.late[i].due = min(s.late[i].due, s.now)
	}
	s.deliverLocked()
	for _, m := range s.ms {
		for _, w := range m.working {
			w.stayLocked() // no more moves: works run until stopped
		}
		if m.state != msCrashed && (m.frozenTill > 0 || m.cutTill > 0) {
			m.frozenTill, m.cutTill = 0, 0
			m.setNet(false, false)
		}
	}
	if len(s.liveLocked()) == 0 {
		s.tracef("no live member when faults stop: one joins")
		slot := 0
		for i, m := range s.slots {
			if m == nil {
				slot = i
				break
			}
		}
		if s.slots[slot] != nil {
			slot = len(s.slots)
			s.slots = append(s.slots, nil)
			s.nextJoin = append(s.nextJoin, -1)
		}
		s.joinLocked(slot)
	}
	start, bound := s.now, s.settleBound()
	s.tracef("faults and membership events stop; live members %v; settle bound %v", s.liveLocked(), bound)
	s.mu.Unlock()
	for {
		s.settleAndCheck()
		s.mu.Lock()
		ok, why := s.settledLocked()
		if ok && len(s.late) > 0 {
			// A write still to land late is a fault still to come.
			ok, why = false, fmt.Sprintf("%d late writes still to land", len(s.late))
		}
		if ok {
			s.sres.settleTime = s.now - start
			s.tracef("settled %v after faults stopped", s.now-start)
			s.mu.Unlock()
			break
		}
		if s.now-start > bound {
			s.unsettledLocked(bound, why)
			s.mu.Unlock()
			return
		}
		s.scheduleLocked(false)
		s.mu.Unlock()
		s.settleAndCheck()
		s.advance()
	}
	for until := s.now + s.sc.stable; s.now < until; {
		s.step(false)
		s.mu.Lock()
		if ok, why := s.settledLocked(); !ok {
			s.violate("S4", "the settled set moved with no fault and no membership change: %s", why)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

// finish cancels every Run, crashed members' too (their clocks run again
// and their network stays gone, so that they wind down without acting), and
// checks (S5) that each returns, then shuts the network and the server down
// so that every goroutine of the bubble ends. Each wait is bounded on the
// true clock.
func (s *shsim) finish() {
	s.mu.Lock()
	s.finishing = true
	for _, m := range s.ms {
		switch m.state {
		case msRunning:
			s.leaveLocked(m, "end of schedule")
		case msCrashed:
			m.zombie = true
			m.stop()
		}
		for _, w := range m.working {
			w.freeLocked()
		}
	}
	close(s.release)
	s.release = make(chan struct{})
	s.mu.Unlock()
	limit := s.sc.grace + 2*s.cfg.ttl
	if !s.stepUntil(limit, func() bool { return s.live.Load() == 0 }) {
		s.mu.Lock()
		for _, m := range s.ms {
			if m.state != msLeft {
				s.violate("S5", "%s (%s): Run has not returned %v after its ctx was cancelled", m.name, memberStateNames[m.state], limit)
			}
		}
		s.mu.Unlock()
	}
	s.srv.Close()
	for _, tr := range s.transports {
		tr.CloseIdleConnections()
	}
	_ = s.net.Close()
	s.net.shutdown()
	if !s.stepUntil(limit, func() bool { return s.live.Load() == 0 }) {
		// synctest.Test will fail with their stacks: say which seed.
		fmt.Printf("seed %d: %d shard set Runs never returned\n", s.cfg.seed, s.live.Load())
	}
	s.bg.Wait()
	s.settleAndCheck()
}

// stepUntil settles, checks and steps the clocks until done reports true,
// for at most limit of true time. It reports whether done did.
func (s *shsim) stepUntil(limit time.Duration, done func() bool) bool {
	for waited := time.Duration(0); ; waited += s.cfg.step {
		s.settleAndCheck()
		if done() || waited >= limit {
			return done()
		}
		s.advance()
	}
}

// violate records a violation of invariant inv. Call with s.mu held.
func (s *shsim) violate(inv, format string, args ...any) {
	s.sres.byInvariant[inv]++
	s.violatef(inv+": "+format, args...)
}
