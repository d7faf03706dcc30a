package lease_test

// The members of a shard schedule (chaos_shards_sim_test.go): one ShardSet
// and its Run each, their network (freeze, partition, crash), and their
// simulated works.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kubelease/lease"
	clocktesting "k8s.io/utils/clock/testing"
)

// memberState is where a member is in its life.
type memberState int

const (
	msRunning memberState = iota // Run runs, its ctx live
	msLeaving                    // Run's ctx cancelled: a graceful leave
	msLeft                       // Run returned
	msCrashed                    // stopped dead: clock frozen, network gone, works abandoned
)

var memberStateNames = [...]string{"running", "leaving", "left", "crashed"}

// shMember is one incarnation of a member: a process that runs ShardSet.Run
// with an Owner of its own, on its own clock and network.
type shMember struct {
	id   int // unique over the schedule
	slot int
	name string // the Owner
	s    *shsim
	c    *simContender // the lease campaign's view of it: its chaos transport's faults
	clk  *clocktesting.FakeClock
	set  *lease.ShardSet
	ctx  context.Context
	stop context.CancelFunc
	rng  *rand.Rand // how its works behave; guarded by sim.mu

	nmu    sync.Mutex // guards cut, thaw and bodies: a leaf lock (the transport takes it)
	cut    bool       // every request and open stream fails: a partition or a crash
	thaw   chan struct{}
	bodies map[*shBody]struct{}

	// The fields below are guarded by sim.mu.
	state      memberState
	frozenTill time.Duration // true time; 0: not frozen
	cutTill    time.Duration // true time; 0: not partitioned (crashes are for good)
	crashed    bool          // for good: out of every check from then on
	zombie     bool          // crashed, and its clock runs again for the final wind-down
	leaveLate  bool          // S5 reported for its leave
	cancelAt   time.Duration // true time its Run's ctx was cancelled
	eager      map[string]*shWork

	// checker state, kept in event order, guarded by sim.mu
	working []*shWork              // works started and not returned
	alive   map[string]lease.Token // shard → tenure that would pass CheckAlive at the last check
	view    []string               // the members it saw at its last OnAssigned
	mine    []string
}

// joinLocked starts a new incarnation of slot: a ShardSet and its Run, on a
// clock that reads the true time. Call with s.mu held.
func (s *shsim) joinLocked(slot int) *shMember {
	s.nextMember++
	m := &shMember{
		id: s.nextMember, slot: slot, name: fmt.Sprintf("m%d-%d", slot, s.nextMember), s: s,
		clk:    clocktesting.NewFakeClock(epoch.Add(s.now)),
		rng:    rand.New(rand.NewPCG(s.cfg.seed, 0x6d656d62+uint64(s.nextMember))),
		bodies: map[*shBody]struct{}{}, alive: map[string]lease.Token{}, eager: map[string]*shWork{},
	}
	m.c = &simContender{id: m.id, owner: m.name, clk: m.clk}
	base := s.net.transport()
	s.transports = append(s.transports, base)
	rt := &memberTransport{next: &chaosTransport{base: base, sim: s.sim, c: m.c}, m: m}
	skew := time.Duration(0)
	if !s.cfg.fastPath {
		skew = -1
	}
	set, err := lease.NewShardSet(lease.ShardSettings{
		Set: "orders", Shards: s.sc.shards,
		Lease: lease.Settings{
			Owner: m.name, TTL: s.cfg.ttl, MaxClockSkew: skew, Clock: m.clk,
			Config:            &lease.Config{Host: simHost, HTTPClient: &http.Client{Transport: rt}},
			WatchWhileHolding: s.cfg.seed%3 == 0,
			Logger:            m.logger(),
		},
	})
	if err != nil {
		s.t.Fatal(err)
	}
	m.set = set
	s.sc.flaw.plant(m)
	m.ctx, m.stop = context.WithCancel(context.Background())
	s.ms = append(s.ms, m)
	s.cs = append(s.cs, m.c)
	s.slots[slot] = m
	s.sres.joins++
	s.tracef("%s joins (slot %d)", m.name, slot)
	opts := lease.ShardOptions{GracePeriod: s.sc.grace, MaxBackoff: s.sc.maxBackoff, OnAssigned: m.onAssigned}
	work := m.work
	if s.sc.flaw == flawEagerWork {
		work = m.lazyWork
	}
	s.goBg(func() {
		err := set.Run(m.ctx, work, opts)
		var held []string
		for _, sh := range s.sc.shards {
			if l := lease.ShardLeaseOf(set, sh); l != nil {
				if _, ok := lease.WouldCheckAlive(l); ok {
					held = append(held, sh)
				}
			}
		}
		_, memberHeld := lease.WouldCheckAlive(lease.MemberLeaseOf(set))
		s.stopEager(m)
		s.log.add(shEvent{kind: shRunReturn, m: m, err: err, held: held, memberHeld: memberHeld})
		set.Close()
	})
	return m
}

// logger returns the library's logger for m: with -chaosshards.log, its
// lines (info and up) go to the trace, else nowhere.
func (m *shMember) logger() *slog.Logger {
	if !*chaosShardsLog {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(shLogWriter{m}, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// shLogWriter puts the lines written to it in the event log.
type shLogWriter struct{ m *shMember }

func (w shLogWriter) Write(p []byte) (int, error) {
	w.m.s.log.add(shEvent{kind: shLogLine, m: w.m, line: strings.TrimSpace(string(p))})
	return len(p), nil
}

// onAssigned traces what the member sees (on the set's goroutine).
func (m *shMember) onAssigned(members, mine []string) {
	m.s.log.add(shEvent{kind: shAssigned, m: m, members: members, mine: mine})
	if m.s.sc.flaw == flawEagerWork {
		m.s.eagerAssigned(m, mine)
	}
}

// leaveLocked cancels m's Run: a graceful leave.
func (s *shsim) leaveLocked(m *shMember, why string) {
	if m.state != msRunning {
		return
	}
	m.state = msLeaving
	m.cancelAt = s.now
	m.stop()
	s.sres.leaves++
	s.tracef("%s leaves (%s)", m.name, why)
}

// crashLocked stops m dead: its clock stands still and its network is gone
// for good, so nothing it runs can act again; its works are abandoned, and
// its tenures end with it. Call with s.mu held.
func (s *shsim) crashLocked(m *shMember) {
	m.state, m.crashed = msCrashed, true
	m.frozenTill, m.cutTill = 0, 0
	m.setNet(true, false)
	s.sres.crashes++
	s.tracef("%s crashes (holding %v)", m.name, sortedKeys(m.alive))
	if s.slots[m.slot] == m {
		s.slots[m.slot] = nil
	}
}

// setNet cuts or restores m's network, and freezes or thaws it.
func (m *shMember) setNet(cut, frozen bool) {
	m.nmu.Lock()
	defer m.nmu.Unlock()
	m.cut = cut
	if cut {
		for b := range m.bodies {
			_ = b.rc.Close()
		}
	}
	switch {
	case frozen && m.thaw == nil:
		m.thaw = make(chan struct{})
	case !frozen && m.thaw != nil:
		close(m.thaw)
		m.thaw = nil
	}
}

// net returns whether m's network is cut, and a channel closed when it
// thaws (nil: not frozen).
func (m *shMember) net() (bool, chan struct{}) {
	m.nmu.Lock()
	defer m.nmu.Unlock()
	return m.cut, m.thaw
}

// memberTransport is a member's network, in front of the lease campaign's
// chaos transport: while the member is cut off every request fails and
// every open stream breaks; while it is frozen every request and every read
// of a stream hangs until it thaws (or the request's context ends).
type memberTransport struct {
	next http.RoundTripper
	m    *shMember
}

func (t *memberTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.m.pass(req.Context()); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b := &shBody{rc: resp.Body, m: t.m, ctx: req.Context()}
	t.m.nmu.Lock()
	t.m.bodies[b] = struct{}{}
	t.m.nmu.Unlock()
	resp.Body = b
	return resp, nil
}

// pass waits while m is frozen and fails while it is cut off.
func (m *shMember) pass(ctx context.Context) error {
	for {
		cut, thaw := m.net()
		switch {
		case cut:
			return errInjected
		case thaw == nil:
			return nil
		}
		select {
		case <-thaw:
		case <-ctx.Done():
			return errors.Join(errInjected, ctx.Err())
		}
	}
}

// shBody is a response body on a member's network: what it reads is held
// while the member is frozen, and lost once it is cut off.
type shBody struct {
	rc  io.ReadCloser
	m   *shMember
	ctx context.Context
}

func (b *shBody) Read(p []byte) (int, error) {
	if err := b.m.pass(b.ctx); err != nil {
		return 0, err
	}
	n, err := b.rc.Read(p)
	if perr := b.m.pass(b.ctx); perr != nil {
		return 0, perr
	}
	return n, err
}

func (b *shBody) Close() error {
	b.m.nmu.Lock()
	delete(b.m.bodies, b)
	b.m.nmu.Unlock()
	return b.rc.Close()
}

// shWork is one run of a shard's work.
type shWork struct {
	id    int
	m     *shMember
	shard string
	tok   lease.Token
	ctx   context.Context
	stop  context.CancelFunc // eager works (flawEagerWork) only
	delay time.Duration      // > 0: it returns by itself after delay
	clkAt map[*shMember]time.Time
	free  chan struct{} // closed to free a work that ignores its ctx
	stay  chan struct{} // closed when the faults stop: it no longer returns by itself

	// The fields below are guarded by sim.mu.
	freed    bool
	stays    bool
	returned bool
	deadAt   time.Time // its member's clock when its tenure was first seen over
	late     bool      // S2 reported for it alone
	overlaps map[*shWork]bool
}

// work is the work function of every member: it waits on its member's
// clock (a crashed member's work stands still too) and returns promptly once
// its ctx ends, or by itself after a while (one in shardOdds.finish).
func (m *shMember) work(ctx context.Context, shard string, tok lease.Token) error {
	w := m.s.startWork(m, shard, tok, ctx, nil)
	w.body(ctx)
	m.s.log.add(shEvent{kind: shWorkReturn, m: m, w: w})
	return nil
}

func (s *shsim) startWork(m *shMember, shard string, tok lease.Token, ctx context.Context, stop context.CancelFunc) *shWork {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextWork++
	w := &shWork{id: s.nextWork, m: m, shard: shard, tok: tok, ctx: ctx, stop: stop, free: make(chan struct{}), stay: make(chan struct{}),
		clkAt: map[*shMember]time.Time{}, overlaps: map[*shWork]bool{}}
	for _, q := range s.ms {
		w.clkAt[q] = q.clk.Now()
	}
	if o := s.sc.odds.finish; stop == nil && !s.recovering && o > 0 && m.rng.IntN(o) == 0 {
		w.delay = 500*time.Millisecond + time.Duration(m.rng.Int64N(int64(8*time.Second)))
	}
	s.log.add(shEvent{kind: shWorkStart, m: m, w: w})
	return w
}

func (w *shWork) body(ctx context.Context) {
	if w.delay > 0 {
		t := w.m.clk.NewTimer(w.delay)
		defer t.Stop()
		select {
		case <-t.C():
			return
		case <-w.stay:
			<-ctx.Done()
		case <-ctx.Done():
		}
	} else {
		<-ctx.Done()
	}
	if w.m.s.sc.flaw == flawIgnoreReassign && errors.Is(context.Cause(ctx), lease.ErrNotHeld) {
		<-w.free // planted: reassignment ignored until the simulation ends
	}
}

// freeLocked frees a work that ignores its ctx. Call with sim.mu held.
func (w *shWork) freeLocked() {
	if !w.freed {
		w.freed = true
		close(w.free)
	}
}

// stayLocked makes w run until its ctx ends. Call with sim.mu held.
func (w *shWork) stayLocked() {
	if !w.stays {
		w.stays = true
		close(w.stay)
	}
}

// sortedKeys returns m's keys, sorted.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
