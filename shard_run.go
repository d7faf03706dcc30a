package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"k8s.io/utils/clock"
)

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

	runners                   map[string]*shardRunner // only the loop touches it
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
		set:     set,
		work:    work,
		o:       o,
		log:     set.logger(o),
		view:    memberView{self: set.s.Lease.Owner, ttl: set.t.TTL, skew: set.t.MaxClockSkew, seen: map[string]memberSeen{}},
		poke:    make(chan struct{}, 1),
		runners: map[string]*shardRunner{},
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
	changes, stop := r.set.watch.onChange()
	defer stop()
	mdone := make(chan error, 1)
	go func() { mdone <- r.announce(ctx) }()
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
	// Withdraw: the member Lease goes at once (RunSingleton releases it
	// as ctx ends); each shard is released as its work returns.
	r.log.Info("kubelease: leaving shard set")
	for _, sr := range r.runners {
		sr.cancel(context.Cause(ctx))
	}
	merr := <-mdone
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

// reconcile computes the live members and the assignment from what the
// watch has now, starts a runner for each shard assigned here, and stops
// the runners of shards assigned elsewhere. It returns how long until a
// member would expire (0: no timer needed).
func (r *setRun) reconcile(ctx context.Context) time.Duration {
	leases, synced := r.set.watch.snapshot()
	now := r.set.clock.Now()
	others, next := r.view.live(leases, now)

	r.set.mu.Lock()
	announced := r.set.announced
	members := others
	if announced {
		members = append(slices.Clone(others), r.set.s.Lease.Owner)
		slices.Sort(members)
	}
	var mine []string
	if announced && synced {
		mine = r.assign(members)
	}
	// Note which shards are without a holder, for ShardStatus.Unowned.
	for i, shard := range r.set.shards {
		obj := leases[r.set.names[i]]
		if obj == nil || obj.Spec.Holder() == "" {
			if _, ok := r.set.freeSince[shard]; !ok {
				r.set.freeSince[shard] = now
			}
		} else {
			delete(r.set.freeSince, shard)
		}
	}
	if synced {
		r.set.members, r.set.mine = members, mine
	}
	r.set.mu.Unlock()

	if synced && (!slices.Equal(members, r.lastMembers) || !slices.Equal(mine, r.lastAssigned)) {
		r.lastMembers, r.lastAssigned = members, mine
		r.log.Info("kubelease: shard assignment", "members", members, "mine", len(mine))
		if r.o.OnAssigned != nil {
			r.o.OnAssigned(slices.Clone(members), slices.Clone(mine))
		}
	}

	// Runners that ended are forgotten, so that a shard wanted again gets
	// a new one.
	for shard, sr := range r.runners {
		select {
		case <-sr.done:
			delete(r.runners, shard)
		default:
		}
	}
	if !synced {
		// Not current (listing, or refused): keep what runs, start nothing.
		return next
	}
	want := make(map[string]bool, len(mine))
	for _, shard := range mine {
		want[shard] = true
		if r.runners[shard] == nil {
			r.start(ctx, shard)
		}
	}
	for shard, sr := range r.runners {
		if !want[shard] && !sr.stopped {
			sr.stopped = true
			r.set.mu.Lock()
			r.set.movedOut++
			r.set.mu.Unlock()
			r.log.Info("kubelease: shard assigned elsewhere; stopping its work", "shard", shard)
			sr.cancel(errReassigned)
		}
	}
	return next
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
func (r *setRun) start(ctx context.Context, shard string) {
	l, err := r.set.shardLease(shard)
	if err != nil { // the settings were validated: a name that does not fit
		r.log.Error("kubelease: cannot make the shard's Lease", "shard", shard, "err", err)
		return
	}
	rctx, cancel := context.WithCancelCause(ctx)
	sr := &shardRunner{cancel: cancel, done: make(chan struct{})}
	r.runners[shard] = sr
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer r.wake()
		defer close(sr.done)
		defer cancel(nil)
		r.runShard(rctx, shard, l)
	}()
}

// runShard runs work for shard under its Lease l until rctx ends (the shard
// was assigned elsewhere, or Run is ending), starting it again after a
// backoff when it returns by itself.
func (r *setRun) runShard(rctx context.Context, shard string, l *KubernetesLease) {
	log := r.log.With("shard", shard)
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(min(500*time.Millisecond, r.o.MaxBackoff)),
		backoff.WithMaxInterval(r.o.MaxBackoff),
		backoff.WithMaxElapsedTime(0),
		backoff.WithClockProvider(r.set.clock),
	)
	for {
		var tok Token
		err := RunSingleton(rctx, l, func(wctx context.Context) error {
			return r.work(wctx, shard, tok)
		}, SingletonOptions{
			GracePeriod: r.o.GracePeriod,
			MaxBackoff:  r.o.MaxBackoff,
			Clock:       r.set.clock,
			Logger:      log,
			OnStarted: func(t Token) {
				tok = t
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
		// an earlier work still runs (ErrBusy): start again later.
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
