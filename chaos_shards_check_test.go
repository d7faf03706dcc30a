package lease_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kubelease/lease"
)

// The shard campaign's invariants (docs/design.md §5, §6 and the ShardSet
// documentation), checked at every settled instant of a schedule. A crashed
// member is out of every check from its crash on: it can do nothing any
// more, so its tenures and works end with it.
//
//	S1  Never two holders of one shard: at no instant do two members'
//	    tenures of one shard Lease both pass CheckAlive (read with
//	    lease.WouldCheckAlive, which never ends a tenure, so the checker is
//	    never the one that notices a deadline). No clock is offset and no
//	    third party edits a spec, so no overlap is excused.
//	S2  Never two works of one shard at once beyond the runner's bound,
//	    formulated exactly as the runner campaign's W1
//	    (chaos_runner_check_test.go): a work (from its start to its return:
//	    works return as soon as their context ends) runs less than
//	    aliveCheckBound (250 ms) of its member's time past the end of its
//	    tenure (the first check at which its shard Lease's CheckAlive would
//	    not report the work's token); so of two works of one shard on
//	    different members, the one whose tenure ended may run at most that
//	    bound past the later of that end and the other's start. One member
//	    never runs two works of one shard at once.
//	S3  Liveness: once faults and membership events stop, every shard's
//	    work runs under a live tenure within settleBound (chaos_shards_sim_test.go).
//	S4  Balance: by then, the shard owners are exactly
//	    AssignShards(shards, live members) (so max − min ≤ 1 per live
//	    member), each live member's Status shows the live members and its
//	    own shards, and it stays so (no moves) for shardConfig.stable.
//	S5  Leaving: a Run returns only once its ctx is cancelled, within
//	    GracePeriod + 2×TTL, with every work returned and no shard tenure
//	    nor member tenure still held (unless it reports ErrWorkDidNotStop).

// shEvKind is what a shard event records.
type shEvKind int

const (
	shWorkStart shEvKind = iota
	shWorkReturn
	shAssigned
	shRunReturn
	shLogLine // a line the library logged (-chaosshards.log)
)

// shEvent is one step of a member's Run or work, in the order the
// goroutines took them.
type shEvent struct {
	kind       shEvKind
	m          *shMember
	w          *shWork
	members    []string // shAssigned
	mine       []string
	err        error    // shRunReturn
	held       []string // shRunReturn: shards whose tenure would pass CheckAlive at the return
	memberHeld bool
	line       string // shLogLine
}

// shLog orders the events of every goroutine; its lock is a leaf.
type shLog struct {
	mu  sync.Mutex
	evs []shEvent
}

func (g *shLog) add(e shEvent) {
	g.mu.Lock()
	g.evs = append(g.evs, e)
	g.mu.Unlock()
}

func (g *shLog) drain() []shEvent {
	g.mu.Lock()
	defer g.mu.Unlock()
	evs := g.evs
	g.evs = nil
	return evs
}

// checkLocked applies the events since the last check in order, then
// checks S1, S2 and S5 on the settled state. Call with s.mu held.
func (s *shsim) checkLocked() {
	for _, e := range s.log.drain() {
		s.applyLocked(e)
	}
	for _, m := range s.ms {
		clear(m.alive)
		if m.crashed {
			continue
		}
		for _, sh := range s.sc.shards {
			if l := lease.ShardLeaseOf(m.set, sh); l != nil {
				if tok, ok := lease.WouldCheckAlive(l); ok {
					m.alive[sh] = tok
				}
			}
		}
	}
	s.checkHoldersLocked()
	s.checkWorksLocked()
	for _, m := range s.ms {
		if m.state == msLeaving && !m.crashed && !m.leaveLate && s.now-m.cancelAt > s.sc.grace+2*s.cfg.ttl {
			m.leaveLate = true
			s.violate("S5", "%s: Run has not returned %v after its ctx was cancelled", m.name, s.now-m.cancelAt)
		}
	}
}

func (s *shsim) applyLocked(e shEvent) {
	m := e.m
	switch e.kind {
	case shWorkStart:
		w := e.w
		s.sres.works++
		s.tracef("%s: work %d of %s starts under %v%s", m.name, w.id, w.shard, w.tok, map[bool]string{true: fmt.Sprintf(" (returns by itself after %v)", w.delay)}[w.delay > 0])
		if m.crashed {
			return
		}
		for _, v := range m.working {
			if v.shard == w.shard {
				s.violate("S2", "%s: work %d of %s starts while its work %d of it (%v) still runs", m.name, w.id, w.shard, v.id, v.tok)
			}
		}
		m.working = append(m.working, w)
	case shWorkReturn:
		e.w.returned = true
		m.working = slices.DeleteFunc(m.working, func(v *shWork) bool { return v == e.w })
		s.tracef("%s: work %d of %s returns", m.name, e.w.id, e.w.shard)
	case shAssigned:
		m.view, m.mine = e.members, e.mine
		s.tracef("%s sees members %v; assigned %d: %v", m.name, e.members, len(e.mine), e.mine)
	case shRunReturn:
		s.runReturnedLocked(e)
	case shLogLine:
		s.tracef("%s: log: %s", m.name, e.line)
	}
}

// runReturnedLocked checks S5 at the return of a member's Run.
func (s *shsim) runReturnedLocked(e shEvent) {
	m := e.m
	s.tracef("%s: Run returns: %s", m.name, oneLine(e.err))
	was := m.state
	m.state = msLeft
	if s.slots[m.slot] == m {
		s.slots[m.slot] = nil
		if !s.recovering && s.rng.IntN(3) > 0 {
			s.nextJoin[m.slot] = s.now + time.Second + time.Duration(s.rng.Int64N(int64(4*time.Second)))
		}
	}
	if m.crashed {
		return
	}
	if was != msLeaving {
		s.violate("S5", "%s: Run returned (%s) although its ctx was live", m.name, oneLine(e.err))
	}
	if errors.Is(e.err, lease.ErrWorkDidNotStop) {
		return
	}
	for _, w := range m.working {
		s.violate("S5", "%s: Run returned while its work %d of %s still ran", m.name, w.id, w.shard)
	}
	if len(e.held) > 0 || e.memberHeld {
		s.violate("S5", "%s: Run returned with shard tenures %v still held (member Lease held: %v)", m.name, e.held, e.memberHeld)
	}
}

// checkHoldersLocked checks S1.
func (s *shsim) checkHoldersLocked() {
	for _, sh := range s.sc.shards {
		var holders []*shMember
		for _, m := range s.ms {
			if _, ok := m.alive[sh]; ok {
				holders = append(holders, m)
			}
		}
		for i, a := range holders {
			for _, b := range holders[i+1:] {
				key := [2]lease.Token{a.alive[sh], b.alive[sh]}
				if s.pairsSeen[key] {
					continue
				}
				s.pairsSeen[key] = true
				s.violate("S1", "shard %s: %s (%v) and %s (%v) both hold it", sh, a.name, a.alive[sh], b.name, b.alive[sh])
			}
		}
	}
}

// checkWorksLocked checks S2 on the works that have not returned, as the
// runner campaign's checkCancelledLocked checks W1.
func (s *shsim) checkWorksLocked() {
	var live []*shWork
	for _, m := range s.ms {
		if !m.crashed {
			live = append(live, m.working...)
		}
	}
	slices.SortFunc(live, func(a, b *shWork) int { return a.id - b.id })
	for _, w := range live {
		m := w.m
		if tok, ok := m.alive[w.shard]; ok && tok == w.tok {
			w.deadAt = time.Time{}
			continue
		}
		now := m.clk.Now()
		if w.deadAt.IsZero() {
			w.deadAt = now
		}
		if late := now.Sub(w.deadAt); late >= aliveCheckBound && !w.late {
			w.late = true
			s.violate("S2", "%s: work %d of %s still runs %v after its tenure %v ended", m.name, w.id, w.shard, late, w.tok)
		}
	}
	for _, w := range live {
		if w.deadAt.IsZero() {
			continue
		}
		for _, v := range live {
			if v.m == w.m || v.shard != w.shard || w.overlaps[v] {
				continue
			}
			since := w.deadAt
			if at, ok := v.clkAt[w.m]; ok && at.After(since) {
				since = at
			}
			if late := w.m.clk.Now().Sub(since); late >= aliveCheckBound {
				w.overlaps[v] = true
				s.violate("S2", "shard %s: works %d (%s, %v, ended) and %d (%s, %v) both run for %v of %s's time",
					w.shard, w.id, w.m.name, w.tok, v.id, v.m.name, v.tok, late, w.m.name)
			}
		}
	}
}

// liveLocked returns the live members, sorted: those whose Run runs with
// a live ctx.
func (s *shsim) liveLocked() []string {
	var live []string
	for _, m := range s.ms {
		if m.state == msRunning && !m.crashed {
			live = append(live, m.name)
		}
	}
	slices.Sort(live)
	return live
}

// owners returns, per shard, the members whose work of it runs under a
// live tenure, and every member's running works of it.
func (s *shsim) ownersLocked() (owners, running map[string][]*shMember) {
	owners, running = map[string][]*shMember{}, map[string][]*shMember{}
	for _, m := range s.ms {
		if m.crashed {
			continue
		}
		for _, w := range m.working {
			running[w.shard] = append(running[w.shard], m)
			if tok, ok := m.alive[w.shard]; ok && tok == w.tok {
				owners[w.shard] = append(owners[w.shard], m)
			}
		}
	}
	return owners, running
}

// settledLocked reports whether the set is as S3 and S4 want it, and if
// not, why.
func (s *shsim) settledLocked() (bool, string) {
	live := s.liveLocked()
	want := lease.AssignShards(s.sc.shards, live)
	owners, running := s.ownersLocked()
	var why []string
	for _, sh := range s.sc.shards {
		switch o, r := owners[sh], running[sh]; {
		case len(o) == 0:
			why = append(why, fmt.Sprintf("%s not held", sh))
		case len(r) > 1 || o[0].name != want[sh]:
			why = append(why, fmt.Sprintf("%s run by %v, assigned to %s", sh, names(r), want[sh]))
		}
	}
	for _, m := range s.ms {
		if m.state != msRunning || m.crashed {
			continue
		}
		st := m.set.Status()
		var mine []string
		for _, sh := range s.sc.shards {
			if want[sh] == m.name {
				mine = append(mine, sh)
			}
		}
		if !slices.Equal(st.Members, live) || !slices.Equal(st.Assigned, mine) {
			why = append(why, fmt.Sprintf("%s sees members %v and is assigned %d shards (want %v and %d)", m.name, st.Members, len(st.Assigned), live, len(mine)))
		}
	}
	return len(why) == 0, strings.Join(why, "; ")
}

// unsettledLocked reports what is wrong when the set has not settled in
// time: S3 when a shard is not held, else S4, with the counts per member.
func (s *shsim) unsettledLocked(bound time.Duration, why string) {
	owners, _ := s.ownersLocked()
	count := map[string]int{}
	for _, m := range s.liveLocked() {
		count[m] = 0
	}
	held := 0
	for _, sh := range s.sc.shards {
		if len(owners[sh]) > 0 {
			held++
			count[owners[sh][0].name]++
		}
	}
	if *chaosShardsLog {
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		path := filepath.Join(os.TempDir(), fmt.Sprintf("kubelease-chaosshards-%d.stacks", s.cfg.seed))
		_ = os.WriteFile(path, buf, 0o644)
		s.tracef("goroutines when it did not settle: %s", path)
	}
	if held < len(s.sc.shards) {
		s.violate("S3", "%d of %d shards not held %v after faults stopped (bound): %s", len(s.sc.shards)-held, len(s.sc.shards), bound, why)
		return
	}
	var cs []int
	for _, c := range count {
		cs = append(cs, c)
	}
	s.violate("S4", "not settled %v after faults stopped (bound; shards per member %v, max − min %d): %s", bound, count, slices.Max(cs)-slices.Min(cs), why)
}

func names(ms []*shMember) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.name
	}
	return out
}
