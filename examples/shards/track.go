package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kubelease/lease"
)

// stop is the last time a partition's work returned on a replica.
type stop struct {
	by    *replica
	at    time.Time
	crash bool // the replica crashed
}

// move is a partition whose work started on another replica than the one
// it last stopped on.
type move struct {
	shard    string
	from, to *replica
	gap      time.Duration // from's OnStopped (or crash) to to's OnStarted
	crash    bool
}

// tracker hears every replica's OnStarted and OnStopped, and knows which
// replica runs each partition.
type tracker struct {
	shards  []string
	changed chan struct{} // has room for one: a change since the last look

	mu      sync.Mutex          // guards the fields below
	running map[string]*replica // partition → replica whose work runs it
	last    map[string]stop
	moves   []move // since the last takeMoves
	starts  int    // since the last takeMoves
	overlap string // the first partition seen running twice, described
}

func newTracker(shards []string) *tracker {
	return &tracker{
		shards:  shards,
		changed: make(chan struct{}, 1),
		running: map[string]*replica{},
		last:    map[string]stop{},
	}
}

func (t *tracker) poke() {
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// started is r's OnStarted.
func (t *tracker) started(r *replica, shard string, tok lease.Token) {
	now := time.Now()
	t.mu.Lock()
	if o := t.running[shard]; o != nil && t.overlap == "" {
		t.overlap = fmt.Sprintf("%s starts on %s (token %s) while it runs on %s", shard, r.name, tok, o.name)
	}
	t.running[shard] = r
	t.starts++
	if s, ok := t.last[shard]; ok && s.by != r {
		t.moves = append(t.moves, move{shard: shard, from: s.by, to: r, gap: now.Sub(s.at), crash: s.crash})
	}
	t.mu.Unlock()
	t.poke()
}

// stopped is r's OnStopped.
func (t *tracker) stopped(r *replica, shard string, reason error) {
	now := time.Now()
	t.mu.Lock()
	if t.running[shard] == r {
		delete(t.running, shard)
	}
	t.last[shard] = stop{by: r, at: now, crash: errors.Is(reason, errCrash)}
	t.mu.Unlock()
	t.poke()
}

// runs returns the replica whose work runs shard, nil if none.
func (t *tracker) runs(shard string) *replica {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.running[shard]
}

// takeMoves returns the moves and the number of work starts since the last
// call.
func (t *tracker) takeMoves() ([]move, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m, n := t.moves, t.starts
	t.moves, t.starts = nil, 0
	return m, n
}

// settled reports whether the live replicas agree on their members and
// every partition runs on the replica that AssignShards gives it. It fails
// the demo if a partition ever ran on two replicas at once.
func (t *tracker) settled(live []*replica) bool {
	owners := ownersOf(live)
	for _, r := range live {
		st := r.set.Status()
		if !st.Announced || !slices.Equal(st.Members, owners) {
			return false
		}
	}
	want := lease.AssignShards(t.shards, owners)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.overlap != "" {
		fail("a partition ran on two replicas at once: %s", t.overlap)
	}
	for _, shard := range t.shards {
		if r := t.running[shard]; r == nil || r.owner != want[shard] {
			return false
		}
	}
	return true
}

// awaitSettled waits until settled(live), failing the demo after
// stepTimeout.
func (t *tracker) awaitSettled(what string, live []*replica) {
	deadline := timeout()
	for !t.settled(live) {
		select {
		case <-t.changed:
		case <-deadline:
			fail("%s: the assignment did not settle within %v", what, stepTimeout)
		}
	}
}

// printAssignment prints which partitions each live replica runs.
func (t *tracker) printAssignment(live []*replica) {
	t.mu.Lock()
	byReplica := map[*replica][]string{}
	for _, shard := range t.shards {
		if r := t.running[shard]; r != nil {
			byReplica[r] = append(byReplica[r], shard)
		}
	}
	t.mu.Unlock()
	for _, r := range live {
		mine := byReplica[r]
		say("    %-16s %2d: %s", r.owner, len(mine), strings.Join(mine, " "))
	}
}

// ownersOf returns the Owners of rs, sorted, as ShardStatus.Members has
// them.
func ownersOf(rs []*replica) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.owner)
	}
	slices.Sort(out)
	return out
}

func timeout() <-chan time.Time { return time.After(stepTimeout) }
