package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/kubelease/lease/internal/wire"
	"k8s.io/utils/clock"
)

// leaveHeadStart bounds how long a leaving member waits for its member
// Lease to be released before it cancels its works (also at most TTL/10).
const leaveHeadStart = time.Second

// maxPending is how many shard runners a member keeps contending at once.
const maxPending = 64

// errWithdrawn is the cause of a shard work's context when this member
// stopped being one: its member Lease was lost, or it could not see the
// set for a TTL.
var errWithdrawn = fmt.Errorf("%w: this process is not a live member of the shard set now (its member Lease was lost, or it could not see the set's Leases)", ErrNotHeld)

// errReassigned is the cause of a shard work's context when the shard was
// assigned to another member.
var errReassigned = fmt.Errorf("%w: the shard was assigned to another member", ErrNotHeld)

// setRun is one ShardSet.Run call: its control loop (this goroutine), the
// member Lease's RunSingleton, and one runner per shard it wants.
type setRun struct {
	set  *ShardSet
	work func(context.Context, string, Token) error
	o    ShardOptions
	log  *slog.Logger
	view memberView
	poke chan struct{} // wakes the loop: announced, a runner ended

	// changed says which of the set's Leases changed since it was last
	// called (onChange); memberObjs are the member Leases as last seen,
	// by name.
	// runCtx is the parent of the runners' contexts: ctx without its
	// cancellation, ended by cancelRunners once the member Lease is
	// released (or leaveHeadStart has passed) when Run ends.
	runCtx        context.Context
	cancelRunners context.CancelFunc
	// pending counts the runners started that have neither started work
	// nor ended: steer starts no more than maxPending at a time, so that a
	// member that sees itself alone for a moment (a cold start of many
	// members) does not send an Acquire for every shard at once.
	pending    atomic.Int32
	changed    func() ([]string, bool)
	memberObjs map[string]*wire.Lease
	// shardSeen are the shard Leases as last seen, by shard, and since
	// when in that state: a runner's Lease starts from them (primeSeen).
	shardSeen map[string]recordSeen
	// dropped are the records of shards not wanted here that dropStale
	// was started for, by shard: their resourceVersions.
	dropped map[string]string
	// ann is the member Lease's RunSingleton while it runs; refused is
	// since when the watch has been refused to list (zero: it is not).
	// Only the loop touches them and runners.
	ann                       *announcement
	refused                   time.Time
	runners                   map[string]*shardRunner
	lastAssigned, lastMembers []string
	// assignedFor and assigned cache the last assignment computed: it
	// changes only with the members.
	assignedFor, assigned []string
	wg                    sync.WaitGroup
	errMu                 sync.Mutex
	errs                  []error // works that did not stop
}

// shardRunner runs one shard's work while the shard is assigned here.
type shardRunner struct {
	cancel  context.CancelCauseFunc
	done    chan struct{}
	stopped bool // cancel was called: the shard was assigned elsewhere
}

func newSetRun(set *ShardSet, work func(context.Context, string, Token) error, o ShardOptions) *setRun {
	if o.GracePeriod <= 0 {
		o.GracePeriod = DefaultGracePeriod
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	return &setRun{
		set:        set,
		work:       work,
		o:          o,
		log:        set.logger(o),
		view:       memberView{self: set.s.Lease.Owner, ttl: set.t.TTL, skew: set.t.MaxClockSkew, seen: map[string]memberSeen{}},
		poke:       make(chan struct{}, 1),
		runners:    map[string]*shardRunner{},
		memberObjs: map[string]*wire.Lease{},
		shardSeen:  map[string]recordSeen{},
		dropped:    map[string]string{},
	}
}

func (r *setRun) wake() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// run is Run's body: announce, then reconcile the shards run here with
// the assignment at every change until ctx ends, then withdraw.
func (r *setRun) run(ctx context.Context) error {
	changes, changed, stop := r.set.watch.onChange()
	defer stop()
	r.changed = changed
	// Runners outlive ctx by a moment when leaving (see below).
	var cancelRunners context.CancelFunc
	r.runCtx, cancelRunners = context.WithCancel(context.WithoutCancel(ctx))
	r.cancelRunners = cancelRunners
	defer cancelRunners()
	r.log.Info("kubelease: joining shard set", "shards", len(r.set.shards))

	var timer clock.Timer
	for {
		next := r.reconcile(ctx)
		var tc <-chan time.Time
		if next > 0 {
			timer = r.set.clock.NewTimer(next)
			tc = timer.C()
		}
		select {
		case <-ctx.Done():
		case <-changes:
		case <-r.poke:
		case <-tc:
		}
		if timer != nil {
			timer.Stop()
			timer = nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	// Withdraw: the member Lease goes first (its RunSingleton releases it
	// as ctx ends), so that the others stand by for our shards before we
	// let them go; then each shard is released as its work returns. The
	// works are cancelled once the member Lease is released, or after
	// leaveHeadStart if that takes longer.
	r.log.Info("kubelease: leaving shard set")
	var merr error
	if r.ann != nil {
		t := r.set.clock.NewTimer(min(leaveHeadStart, r.set.t.TTL/10))
		select {
		case merr = <-r.ann.done:
			r.ann = nil
		case <-t.C():
		}
		t.Stop()
	}
	for _, sr := range r.runners {
		sr.cancel(context.Cause(ctx))
	}
	r.cancelRunners()
	if r.ann != nil {
		merr = <-r.ann.done
	}
	r.wg.Wait()
	r.set.mu.Lock()
	r.set.announced, r.set.members, r.set.mine = false, nil, nil
	r.set.mu.Unlock()
	r.errMu.Lock()
	defer r.errMu.Unlock()
	errs := append([]error{context.Cause(ctx)}, r.errs...)
	if merr != nil && !errors.Is(merr, context.Cause(ctx)) {
		errs = append(errs, merr)
	}
	return joinErrs(errs...)
}

// announcement is a run of announce.
type announcement struct {
	cancel context.CancelFunc
	done   chan error // receives announce's result
}

// announced starts the announcement once the watch is current, and stops
// it when the watch has been refused to list for a TTL, and returns how
// long until it must be looked at again (0: only at the next change). A
// watch that is not current for other reasons (a broken stream, the API
// server unreachable) does not stop it: those end by themselves, or end
// the member Lease too.
func (r *setRun) announced(ctx context.Context, synced bool, now time.Time) time.Duration {
	if r.ann != nil {
		select {
		case err := <-r.ann.done:
			r.ann = nil
			if ctx.Err() == nil && err != nil {
				r.log.Warn("kubelease: announcing this member failed", "err", err)
			}
		default:
		}
	}
	if synced {
		r.refused = time.Time{}
		if r.ann == nil && ctx.Err() == nil {
			actx, cancel := context.WithCancel(ctx)
			a := &announcement{cancel: cancel, done: make(chan error, 1)}
			r.ann = a
			go func() {
				a.done <- r.announce(actx)
				r.wake()
			}()
		}
		return 0
	}
	if !r.set.watch.listRefused() {
		r.refused = time.Time{}
		return 0
	}
	if r.refused.IsZero() {
		r.refused = now
	}
	if r.ann == nil {
		return 0
	}
	if left := r.set.t.TTL - now.Sub(r.refused); left > 0 {
		return left
	}
	r.log.Warn("kubelease: may not list the shard set's Leases (RBAC needs list and watch on leases); withdrawing until it may",
		"for", now.Sub(r.refused))
	r.ann.cancel()
	return 0
}

// announce holds the member Lease while ctx lasts, contending again after
// a loss; the set counts itself a member only while it holds it.
func (r *setRun) announce(ctx context.Context) error {
	return RunSingleton(ctx, r.set.member, func(wctx context.Context) error {
		r.setAnnounced(true)
		<-wctx.Done()
		r.setAnnounced(false)
		return nil
	}, SingletonOptions{
		GracePeriod: r.o.GracePeriod,
		MaxBackoff:  r.o.MaxBackoff,
		Clock:       r.set.clock,
		Logger:      r.log.With("lease", r.set.member.s.Name),
	})
}

func (r *setRun) setAnnounced(v bool) {
	r.set.mu.Lock()
	r.set.announced = v
	r.set.mu.Unlock()
	r.log.Info("kubelease: shard set membership", "announced", v)
	r.wake()
}

// assign returns the shards assigned to us among members, sorted.
func (r *setRun) assign(members []string) []string {
	if r.assignedFor != nil && slices.Equal(members, r.assignedFor) {
		return r.assigned
	}
	var mine []string
	for shard, m := range r.set.assignShards(r.set.shards, members) {
		if m == r.set.s.Lease.Owner {
			mine = append(mine, shard)
		}
	}
	slices.Sort(mine)
	r.assignedFor, r.assigned = slices.Clone(members), mine
	return mine
}

// start starts the runner of shard.
func (r *setRun) start(shard string) {
	l, err := r.set.shardLease(shard)
	if err != nil { // the settings were validated: a name that does not fit
		r.log.Error("kubelease: cannot make the shard's Lease", "shard", shard, "err", err)
		return
	}
	if o, ok := r.shardSeen[shard]; ok {
		l.primeSeen(o.obj, o.since)
	}
	rctx, cancel := context.WithCancelCause(r.runCtx)
	sr := &shardRunner{cancel: cancel, done: make(chan struct{})}
	r.runners[shard] = sr
	r.pending.Add(1)
	settled := sync.OnceFunc(func() {
		r.pending.Add(-1)
		r.wake()
	})
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer r.wake()
		defer close(sr.done)
		defer cancel(nil)
		defer settled()
		r.runShard(rctx, shard, l, settled)
	}()
}

// runShard runs work for shard under its Lease l until rctx ends (the shard
// was assigned elsewhere, or Run is ending), starting it again after a
// backoff when it returns by itself.
func (r *setRun) runShard(rctx context.Context, shard string, l *KubernetesLease, settled func()) {
	log := r.log.With("shard", shard)
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(min(500*time.Millisecond, r.o.MaxBackoff)),
		backoff.WithMaxInterval(r.o.MaxBackoff),
		backoff.WithMaxElapsedTime(0),
		backoff.WithClockProvider(r.set.clock),
	)
	for {
		var (
			tok     Token
			startAt time.Time // when work started; zero if it did not
		)
		err := RunSingleton(rctx, l, func(wctx context.Context) error {
			return r.work(wctx, shard, tok)
		}, SingletonOptions{
			GracePeriod: r.o.GracePeriod,
			MaxBackoff:  r.o.MaxBackoff,
			Clock:       r.set.clock,
			Logger:      log,
			OnStarted: func(t Token) {
				tok, startAt = t, r.set.clock.Now()
				settled()
				r.started(shard, t)
			},
			OnStopped: func(t Token, reason error) {
				r.stopped(shard, t, reason)
			},
		})
		if errors.Is(err, ErrWorkDidNotStop) {
			r.errMu.Lock()
			r.errs = append(r.errs, fmt.Errorf("shard %q: %w", shard, ErrWorkDidNotStop))
			r.errMu.Unlock()
		}
		if rctx.Err() != nil {
			return
		}
		// Work returned by itself (RunSingleton released the shard), or
		// an earlier work still runs (ErrBusy): start again later, soon
		// if it ran for a while (the backoff is for works that fail fast).
		if !startAt.IsZero() && r.set.clock.Since(startAt) >= r.o.MaxBackoff {
			b.Reset()
		}
		d := b.NextBackOff()
		log.Warn("kubelease: shard work returned; starting it again", "err", err, "retryIn", d)
		t := r.set.clock.NewTimer(d)
		select {
		case <-rctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// started records that shard's work starts under token t.
func (r *setRun) started(shard string, t Token) {
	now := r.set.clock.Now()
	r.set.mu.Lock()
	r.set.active[shard] = t
	r.set.movedIn++
	if since, ok := r.set.freeSince[shard]; ok {
		r.set.unowned += now.Sub(since)
		delete(r.set.freeSince, shard)
	}
	r.set.mu.Unlock()
	if r.o.OnStarted != nil {
		r.o.OnStarted(shard, t)
	}
}

// stopped records that shard's work under token t has returned.
func (r *setRun) stopped(shard string, t Token, reason error) {
	r.set.mu.Lock()
	if r.set.active[shard] == t {
		delete(r.set.active, shard)
	}
	r.set.mu.Unlock()
	if r.o.OnStopped != nil {
		r.o.OnStopped(shard, t, reason)
	}
}
