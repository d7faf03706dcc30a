package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/kubelease/lease"
)

// ShardParams size one shard-set run (RunShards).
type ShardParams struct {
	// Shards are spread over Members, all in this process, each with its
	// own ShardSet and Config (and its own counting Tap).
	Shards  int `json:"shards"`
	Members int `json:"members"`
	// Warm is the wait after the cold start settled; Window the steady
	// state counted after it.
	Warm   time.Duration `json:"warm"`
	Window time.Duration `json:"window"`
	// Changes: after the window, a member joins, then one leaves gracefully,
	// then one crashes (ShardJoin, ShardLeave, ShardCrash).
	Changes bool `json:"changes"`
	// Cycles is how many join-then-leave rounds run before the crash (0:
	// one).
	Cycles int `json:"cycles,omitempty"`
}

// Kinds of ShardMove.
const (
	ShardJoin  = "join"
	ShardLeave = "leave"
	ShardCrash = "crash"
)

// ShardMove is one change of membership and what it took to settle.
type ShardMove struct {
	Kind string `json:"kind"`
	// Before and After are how many live members there were.
	Before int `json:"before"`
	After  int `json:"after"`
	// Settled is from the change (join: the new member's Run starts;
	// leave: its context is cancelled; crash: its transport is cut) to the
	// event after which every shard runs on exactly one live member, the
	// one lease.AssignShards gives it among the live members.
	Settled  time.Duration `json:"settled"`
	TimedOut bool          `json:"timedOut,omitempty"`
	// Starts counts shard tenures started on live members from the change
	// until a second after it settled: the shards that moved.
	Starts int `json:"starts"`
	// AssignDiff is how many shards AssignShards itself gives another
	// owner after the change than before: what the assignment moves.
	// Ideal is N/M (M the larger membership), the least any scheme moves.
	AssignDiff int     `json:"assignDiff"`
	Ideal      float64 `json:"ideal"`
	// Unowned is, for each shard that moved between live members, from the
	// old owner's work stopping (OnStopped, just before it releases) to the
	// new owner's work starting (OnStarted), on this process's clock.
	Unowned []time.Duration `json:"unowned,omitempty"`
	// Timeline, from the change: each live member's view of the new
	// membership (OnAssigned), and the first and last work stop and start
	// on live members.
	Seen       []time.Duration `json:"seen,omitempty"`
	FirstStop  time.Duration   `json:"firstStop,omitempty"`
	LastStop   time.Duration   `json:"lastStop,omitempty"`
	FirstStart time.Duration   `json:"firstStart,omitempty"`
	LastStart  time.Duration   `json:"lastStart,omitempty"`
	// Writes are the round trips of the members' writes (create,
	// update, delete) sent from the change until it settled: releases,
	// acquisitions and renewals.
	Writes []time.Duration `json:"writes,omitempty"`

	// Crash only.
	//
	// Orphans is how many shards the crashed member held; Reowned, for
	// each, from the cut to its work starting on a live member.
	Orphans int             `json:"orphans,omitempty"`
	Reowned []time.Duration `json:"reowned,omitempty"`
	// ZombieStopped, for each orphan, from the cut to the crashed member's
	// own work on it returning (it cannot renew; its tenure runs out);
	// Overlaps counts orphans that started elsewhere before that.
	ZombieStopped []time.Duration `json:"zombieStopped,omitempty"`
	Overlaps      int             `json:"overlaps"`
}

// ShardResult is RunShards's outcome on one backend.
type ShardResult struct {
	ShardParams
	Backend string        `json:"backend"`
	TTL     time.Duration `json:"ttl"`
	// Command and Started say which run measured this (it may be a later
	// run than the rest of the report, see Results.Updates).
	Command string    `json:"command,omitempty"`
	Started time.Time `json:"started"`
	// ColdSettled is from starting every member at once to the set
	// settling; ColdStarts the tenures started until then (N if no shard
	// was taken by a member that had to give it back).
	ColdSettled  time.Duration `json:"coldSettled"`
	ColdStarts   int           `json:"coldStarts"`
	ColdTimedOut bool          `json:"coldTimedOut,omitempty"`
	// ColdFirst is, per member, how many shards its first assignment gave
	// it (N/M when it already saw every member); ColdViews counts the
	// assignments the members computed (OnAssigned calls) until settled.
	ColdFirst []int `json:"coldFirst,omitempty"`
	ColdViews int   `json:"coldViews,omitempty"`
	// ColdStartTimes are, per shard, from the start to its work starting
	// (its last start, when it started more than once).
	ColdStartTimes []time.Duration `json:"coldStartTimes,omitempty"`
	// PerMember are each member's requests during the window (its Tap).
	PerMember []Counts `json:"perMember"`
	// Server is the server's own count during the window (fake only).
	Server map[string]int `json:"server,omitempty"`
	// WindowStarts counts tenures started during the window (must be 0).
	WindowStarts int `json:"windowStarts"`
	// CPU is this process's CPU time during the window (all members).
	CPU time.Duration `json:"cpu"`
	// Doubles counts starts on a live member while another live member ran
	// the same shard (must be 0).
	Doubles int         `json:"doubles"`
	Moves   []ShardMove `json:"moves,omitempty"`
}

// PerMemberMinute is the mean number of requests per member per minute
// during the window.
func (r ShardResult) PerMemberMinute() float64 {
	if len(r.PerMember) == 0 || r.Window <= 0 {
		return 0
	}
	var all Counts
	for _, c := range r.PerMember {
		all = all.Add(c)
	}
	return float64(all.Total()) / float64(len(r.PerMember)) / r.Window.Minutes()
}

// Move returns the move of kind.
func (r ShardResult) Move(kind string) (ShardMove, bool) {
	for _, m := range r.Moves {
		if m.Kind == kind {
			return m, true
		}
	}
	return ShardMove{}, false
}

const (
	shardColdTimeout = 3 * time.Minute
	shardMoveTimeout = time.Minute
	shardQuiet       = time.Second
)

// shardTracker follows which member runs which shard, from the members'
// OnStarted and OnStopped callbacks, timed on this process's clock.
type shardTracker struct {
	mu       sync.Mutex
	running  map[string]map[string]bool // shard → live members running it
	stopAt   map[string]time.Time       // shard → its last work stop on a live member
	startAt  map[string]time.Time       // shard → its last start on a live member
	dead     map[string]bool            // crashed members
	deadStop map[string]time.Time       // shard → a crashed member's work on it stopped
	starts   int                        // since resetPhase
	unowned  []time.Duration            // since resetPhase
	doubles  int
	last     time.Time // last event on a live member
	poke     chan struct{}
	// since resetPhase, on live members: first and last stop and start
	firstStop, lastStop, firstStart, lastStart time.Time
	// view is each member's last OnAssigned: the members it saw, and when
	view map[string]memberView
	// first is how many shards each member's first non-empty assignment
	// gave it; views counts OnAssigned calls
	first map[string]int
	views int
	// writes are write round trips since resetPhase
	writes []time.Duration
}

// timedRT records the round trip of every write through it in tr.
type timedRT struct {
	inner http.RoundTripper
	tr    *shardTracker
}

func (t *timedRT) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.inner.RoundTrip(req)
	switch req.Method {
	case http.MethodPost, http.MethodPut, http.MethodDelete:
		d := time.Since(start)
		t.tr.mu.Lock()
		t.tr.writes = append(t.tr.writes, d)
		t.tr.mu.Unlock()
	}
	return resp, err
}

// CloseIdleConnections passes the call on.
func (t *timedRT) CloseIdleConnections() {
	if c, ok := t.inner.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

type memberView struct {
	members []string
	at      time.Time
}

func newShardTracker() *shardTracker {
	return &shardTracker{
		running: map[string]map[string]bool{}, stopAt: map[string]time.Time{}, startAt: map[string]time.Time{},
		dead: map[string]bool{}, deadStop: map[string]time.Time{}, poke: make(chan struct{}, 1),
		view: map[string]memberView{}, first: map[string]int{},
	}
}

func (t *shardTracker) started(member, shard string) {
	now := time.Now()
	t.mu.Lock()
	if t.dead[member] {
		t.mu.Unlock()
		return
	}
	if len(t.running[shard]) > 0 {
		t.doubles++
	}
	if t.running[shard] == nil {
		t.running[shard] = map[string]bool{}
	}
	t.running[shard][member] = true
	t.starts++
	if at, ok := t.stopAt[shard]; ok {
		t.unowned = append(t.unowned, now.Sub(at))
		delete(t.stopAt, shard)
	}
	t.startAt[shard] = now
	t.last = now
	if t.firstStart.IsZero() {
		t.firstStart = now
	}
	t.lastStart = now
	t.mu.Unlock()
	trySend(t.poke, struct{}{})
}

func (t *shardTracker) stopped(member, shard string) {
	now := time.Now()
	t.mu.Lock()
	if t.dead[member] {
		t.deadStop[shard] = now
		t.mu.Unlock()
		return
	}
	delete(t.running[shard], member)
	t.stopAt[shard] = now
	t.last = now
	if t.firstStop.IsZero() {
		t.firstStop = now
	}
	t.lastStop = now
	t.mu.Unlock()
	trySend(t.poke, struct{}{})
}

func (t *shardTracker) assigned(member string, members []string, mine int) {
	now := time.Now()
	t.mu.Lock()
	t.view[member] = memberView{members: members, at: now}
	if _, ok := t.first[member]; !ok && mine > 0 {
		t.first[member] = mine
	}
	t.views++
	t.mu.Unlock()
}

// resetPhase zeroes the per-phase counts.
func (t *shardTracker) resetPhase() {
	t.mu.Lock()
	t.starts, t.unowned, t.writes = 0, nil, nil
	t.firstStop, t.lastStop, t.firstStart, t.lastStart = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	t.mu.Unlock()
}

// timeline fills in mv's timeline, relative to t0, for the live members.
func (t *shardTracker) timeline(mv *ShardMove, t0 time.Time, live []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rel := func(at time.Time) time.Duration {
		if at.IsZero() {
			return 0
		}
		return at.Sub(t0)
	}
	mv.FirstStop, mv.LastStop, mv.FirstStart, mv.LastStart = rel(t.firstStop), rel(t.lastStop), rel(t.firstStart), rel(t.lastStart)
	mv.Writes = slices.Clone(t.writes)
	want := slices.Sorted(slices.Values(live))
	for _, m := range live {
		if v, ok := t.view[m]; ok && slices.Equal(v.members, want) {
			mv.Seen = append(mv.Seen, v.at.Sub(t0))
		}
	}
}

func (t *shardTracker) phase() (starts int, unowned []time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.starts, slices.Clone(t.unowned)
}

// kill marks member crashed: its events are ignored from now on, and the
// shards it ran are returned and forgotten.
func (t *shardTracker) kill(member string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dead[member] = true
	var out []string
	for shard, ms := range t.running {
		if ms[member] {
			delete(ms, member)
			out = append(out, shard)
		}
	}
	slices.Sort(out)
	return out
}

// awaitSettled waits until every shard runs on exactly one member, the one
// AssignShards gives it among members, and returns the time of the event
// that made it so.
func (t *shardTracker) awaitSettled(ctx context.Context, shards, members []string, timeout time.Duration) (time.Time, bool) {
	want := lease.AssignShards(shards, members)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		t.mu.Lock()
		ok := true
		for _, shard := range shards {
			ms := t.running[shard]
			if len(ms) != 1 || !ms[want[shard]] {
				ok = false
				break
			}
		}
		last := t.last
		t.mu.Unlock()
		if ok {
			return last, true
		}
		select {
		case <-t.poke:
		case <-tick.C:
		case <-deadline.C:
			return time.Time{}, false
		case <-ctx.Done():
			return time.Time{}, false
		}
	}
}

// debugLogger, with KUBELEASE_BENCH_SHARD_LOG set, logs every member's
// events (debug level) to stderr.
var debugLogger = func() *slog.Logger {
	if os.Getenv("KUBELEASE_BENCH_SHARD_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}()

// shardMember is one member of the set: its own ShardSet, Config and Tap.
type shardMember struct {
	id      string
	set     *lease.ShardSet
	tap     *Tap
	ctr     *Counter
	cancel  context.CancelFunc
	done    chan error
	started time.Time
}

func newShardMember(be Backend, setName string, shards []string, id string, tr *shardTracker) (*shardMember, error) {
	m := &shardMember{id: id, ctr: NewCounter(), done: make(chan error, 1)}
	m.tap = &Tap{Counter: m.ctr}
	cfg := be.LeaseConfig(m.tap)
	m.tap.Inner = &timedRT{inner: m.tap.Inner, tr: tr}
	set, err := lease.NewShardSet(lease.ShardSettings{
		Set:    setName,
		Shards: shards,
		Lease:  lease.Settings{Owner: id, Config: cfg, TTL: LeaseDuration, Logger: debugLogger},
	})
	if err != nil {
		return nil, err
	}
	m.set = set
	return m, nil
}

// start runs the member; each shard's work waits for its context.
func (m *shardMember) start(tr *shardTracker) {
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.started = time.Now()
	go func() {
		m.done <- m.set.Run(ctx, func(wctx context.Context, _ string, _ lease.Token) error {
			<-wctx.Done()
			return nil
		}, lease.ShardOptions{
			OnStarted:  func(shard string, _ lease.Token) { tr.started(m.id, shard) },
			OnStopped:  func(shard string, _ lease.Token, _ error) { tr.stopped(m.id, shard) },
			OnAssigned: func(members, mine []string) { tr.assigned(m.id, members, len(mine)) },
		})
	}()
}

// stop cancels the member and waits up to timeout for its Run to return.
func (m *shardMember) stop(timeout time.Duration) error {
	if m.cancel == nil {
		m.set.Close()
		return nil
	}
	m.cancel()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-m.done:
		m.set.Close()
		return nil
	case <-t.C:
		return fmt.Errorf("bench: shard member %s: Run did not return %v after its context ended", m.id, timeout)
	}
}

func memberIDs(ms []*shardMember) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.id
	}
	return out
}

// assignDiff is how many shards AssignShards gives another owner after
// than before.
func assignDiff(shards, before, after []string) int {
	a, b := lease.AssignShards(shards, before), lease.AssignShards(shards, after)
	n := 0
	for s, owner := range a {
		if b[s] != owner {
			n++
		}
	}
	return n
}

// RunShards measures one shard set on a backend from src: p.Members
// members start at once on p.Shards shards (cold start, until settled);
// after p.Warm, every member's requests are counted for p.Window; then,
// with p.Changes, p.Cycles times a member joins and then the first member
// leaves (its context cancelled), and a random 1–5 s after that settled
// the next one crashes
// (its transport cut: no renewal, no release). All at the defaults, TTL
// 15 s, on the real clock.
func RunShards(ctx context.Context, src Source, p ShardParams) (ShardResult, error) {
	res := ShardResult{ShardParams: p, Backend: src.Name, TTL: LeaseDuration}
	be, err := src.New()
	if err != nil {
		return res, err
	}
	defer be.Close()
	setName := "sh-" + runID()
	shards := make([]string, p.Shards)
	for i := range shards {
		shards[i] = fmt.Sprintf("shard-%04d", i)
	}
	tr := newShardTracker()
	var all, live []*shardMember
	defer func() {
		var wg sync.WaitGroup
		for _, m := range all {
			wg.Add(1)
			go func() { defer wg.Done(); _ = m.stop(30 * time.Second) }()
		}
		wg.Wait()
	}()
	newMember := func() (*shardMember, error) {
		m, err := newShardMember(be, setName, shards, fmt.Sprintf("%s-m%d", setName, len(all)), tr)
		if err == nil {
			all = append(all, m)
		}
		return m, err
	}

	// Cold start: every member at once.
	for range p.Members {
		m, err := newMember()
		if err != nil {
			return res, err
		}
		live = append(live, m)
	}
	t0 := time.Now()
	for _, m := range live {
		m.start(tr)
	}
	at, ok := tr.awaitSettled(ctx, shards, memberIDs(live), shardColdTimeout)
	res.ColdStarts, _ = tr.phase()
	if !ok {
		res.ColdTimedOut = true
		return res, fmt.Errorf("bench: %d shards over %d members did not settle within %v (%d tenures started)", p.Shards, p.Members, shardColdTimeout, res.ColdStarts)
	}
	res.ColdSettled = at.Sub(t0)
	tr.mu.Lock()
	for _, s := range shards {
		res.ColdStartTimes = append(res.ColdStartTimes, tr.startAt[s].Sub(t0))
	}
	for _, m := range live {
		res.ColdFirst = append(res.ColdFirst, tr.first[m.id])
	}
	res.ColdViews = tr.views
	tr.mu.Unlock()

	// Steady state.
	if err := sleep(ctx, p.Warm); err != nil {
		return res, err
	}
	tr.resetPhase()
	for _, m := range live {
		m.ctr.Reset()
	}
	be.ResetServerCounts()
	cpu0 := cpuTime()
	if err := sleep(ctx, p.Window); err != nil {
		return res, err
	}
	res.CPU = cpuTime() - cpu0
	for _, m := range live {
		res.PerMember = append(res.PerMember, m.ctr.Snapshot())
	}
	res.Server, _ = be.ServerCounts()
	res.WindowStarts, _ = tr.phase()
	if !p.Changes {
		tr.mu.Lock()
		res.Doubles = tr.doubles
		tr.mu.Unlock()
		return res, nil
	}

	// settle waits for the members in live to settle after a change at t0
	// and fills in mv.
	settle := func(mv *ShardMove, before []string, t0 time.Time) error {
		after := memberIDs(live)
		mv.Before, mv.After = len(before), len(after)
		mv.Ideal = float64(p.Shards) / float64(max(len(before), len(after)))
		mv.AssignDiff = assignDiff(shards, before, after)
		at, ok := tr.awaitSettled(ctx, shards, after, shardMoveTimeout)
		if !ok {
			mv.TimedOut = true
			mv.Starts, mv.Unowned = tr.phase()
			res.Moves = append(res.Moves, *mv)
			return fmt.Errorf("bench: shard set (%s) did not settle within %v", mv.Kind, shardMoveTimeout)
		}
		mv.Settled = at.Sub(t0)
		if err := sleep(ctx, shardQuiet); err != nil {
			return err
		}
		mv.Starts, mv.Unowned = tr.phase()
		tr.timeline(mv, t0, after)
		return nil
	}

	// Rounds of a member joining, then the first member leaving
	// gracefully, each a random 1–3 s after the last settled.
	for range max(p.Cycles, 1) {
		if err := sleep(ctx, time.Second+rand.N(2*time.Second)); err != nil {
			return res, err
		}
		before := memberIDs(live)
		m, err := newMember()
		if err != nil {
			return res, err
		}
		tr.resetPhase()
		m.start(tr)
		live = append(live, m)
		join := ShardMove{Kind: ShardJoin}
		if err := settle(&join, before, m.started); err != nil {
			return res, err
		}
		res.Moves = append(res.Moves, join)

		if err := sleep(ctx, time.Second+rand.N(2*time.Second)); err != nil {
			return res, err
		}
		before = memberIDs(live)
		victim := live[0]
		live = live[1:]
		tr.resetPhase()
		t0 := time.Now()
		stopped := make(chan error, 1)
		go func() { stopped <- victim.stop(shardMoveTimeout) }()
		leave := ShardMove{Kind: ShardLeave}
		if err := settle(&leave, before, t0); err != nil {
			return res, err
		}
		if err := <-stopped; err != nil {
			return res, err
		}
		res.Moves = append(res.Moves, leave)
	}

	// The next one crashes at a random point of its renewal cycles.
	if err := sleep(ctx, time.Second+rand.N(4*time.Second)); err != nil {
		return res, err
	}
	before := memberIDs(live)
	victim := live[0]
	live = live[1:]
	tr.resetPhase()
	t0 = time.Now()
	victim.tap.Cut()
	orphans := tr.kill(victim.id)
	crash := ShardMove{Kind: ShardCrash, Orphans: len(orphans)}
	if err := settle(&crash, before, t0); err != nil {
		return res, err
	}
	tr.mu.Lock()
	for _, s := range orphans {
		if at, ok := tr.startAt[s]; ok && at.After(t0) {
			crash.Reowned = append(crash.Reowned, at.Sub(t0))
			if zs, ok := tr.deadStop[s]; ok {
				crash.ZombieStopped = append(crash.ZombieStopped, zs.Sub(t0))
				if zs.After(at) {
					crash.Overlaps++
				}
			} else {
				crash.Overlaps++
			}
		}
	}
	res.Doubles = tr.doubles
	tr.mu.Unlock()
	res.Moves = append(res.Moves, crash)
	if len(crash.Reowned) != len(orphans) {
		return res, errors.New("bench: shard set (crash): not every orphaned shard was re-owned")
	}
	return res, nil
}
