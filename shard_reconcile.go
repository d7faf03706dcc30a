package lease

import (
	"context"
	"slices"
	"time"

	"github.com/kubelease/lease/internal/wire"
)

// reconcile takes in what changed in the set's Leases, computes the live
// members and the assignment, starts a runner for each shard assigned
// here, and stops the runners of the others. It returns how long until it
// must run again with no change (a member would expire; the watch has not
// been current for a while), 0 for never.
//
// Its cost is in what changed, the members and this member's shards, not
// in all the shards: a watch event for one shard's renewal touches only
// that shard (a list, after a 410 say, touches them all).
func (r *setRun) reconcile(ctx context.Context) time.Duration {
	now := r.set.clock.Now()
	synced := r.takeChanges(now)
	others, next := r.view.live(r.memberObjs, now)
	if d := r.announced(ctx, synced, now); d > 0 && (next == 0 || d < next) {
		next = d
	}

	self := r.set.s.Lease.Owner
	r.set.mu.Lock()
	announced := r.set.announced
	members := others
	if announced {
		members = append(slices.Clone(others), self)
		slices.Sort(members)
	}
	var mine []string
	if announced && synced {
		mine = r.assign(members)
	}
	r.set.members = members
	if synced {
		r.set.mine = mine
	}
	r.set.mu.Unlock()

	if synced && (!slices.Equal(members, r.lastMembers) || !slices.Equal(mine, r.lastAssigned)) {
		r.lastMembers, r.lastAssigned = members, mine
		r.log.Info("kubelease: shard assignment", "members", members, "mine", len(mine))
		if r.o.OnAssigned != nil {
			r.o.OnAssigned(slices.Clone(members), slices.Clone(mine))
		}
	}
	r.steer(ctx, announced, synced, mine)
	return next
}

// takeChanges brings memberObjs and the set's freeSince up to date with
// what changed in the watch, and reports whether the watch is current.
func (r *setRun) takeChanges(now time.Time) bool {
	names, all := r.changed()
	if all {
		leases, synced := r.set.watch.snapshot()
		clear(r.memberObjs)
		for name, obj := range leases {
			if obj.Labels[LabelRole] == RoleMember {
				r.memberObjs[name] = obj
			}
		}
		r.set.mu.Lock()
		for i, shard := range r.set.shards {
			obj := leases[r.set.names[i]]
			r.set.noteHolderLocked(shard, obj, now)
			r.noteShard(shard, obj, now)
		}
		r.set.mu.Unlock()
		return synced
	}
	objs, synced := r.set.watch.lookup(names)
	r.set.mu.Lock()
	defer r.set.mu.Unlock()
	for i, name := range names {
		obj := objs[i]
		switch {
		case obj != nil && obj.Labels[LabelRole] == RoleMember:
			r.memberObjs[name] = obj
		case obj == nil && r.memberObjs[name] != nil:
			delete(r.memberObjs, name)
		}
		if shard, ok := r.set.byName[name]; ok {
			r.set.noteHolderLocked(shard, obj, now)
			r.noteShard(shard, obj, now)
		}
	}
	return synced
}

// noteShard records shard's Lease obj (nil: none) as seen now, keeping
// since when it has been in that state.
func (r *setRun) noteShard(shard string, obj *wire.Lease, now time.Time) {
	if obj == nil {
		delete(r.shardSeen, shard)
		return
	}
	if o, ok := r.shardSeen[shard]; ok && keyOf(o.obj) == keyOf(obj) {
		r.shardSeen[shard] = recordSeen{obj: obj, since: o.since}
		return
	}
	r.shardSeen[shard] = recordSeen{obj: obj, since: now}
}

// noteHolderLocked records when shard was first seen without a holder
// (its Lease obj nil, deleted, or naming no holder), for
// ShardStatus.Unowned, and forgets it once the shard has one.
func (set *ShardSet) noteHolderLocked(shard string, obj *wire.Lease, now time.Time) {
	if obj == nil || obj.Spec.Holder() == "" {
		if _, ok := set.freeSince[shard]; !ok {
			set.freeSince[shard] = now
		}
		return
	}
	delete(set.freeSince, shard)
}

// steer starts a runner for each shard in mine without one, and stops the
// runners of shards not in mine: all of them, with errWithdrawn, when this
// member is not announced (but not when it is so because ctx ended: run's
// leave path stops them after the member Lease is released); none while
// the watch is not current (it keeps what runs and starts nothing until
// it sees the set again).
func (r *setRun) steer(ctx context.Context, announced, synced bool, mine []string) {
	// Runners that ended are forgotten, so that a shard wanted again gets
	// a new one.
	for shard, sr := range r.runners {
		select {
		case <-sr.done:
			delete(r.runners, shard)
		default:
		}
	}
	if announced && !synced {
		return
	}
	if !announced && ctx.Err() != nil {
		// Leaving: the member's announcement ended with ctx. The leave
		// path (run) cancels the works once the member Lease is released;
		// cancelling them here would let them go first.
		return
	}
	want := make(map[string]bool, len(mine))
	for _, shard := range mine {
		want[shard] = true
		if r.runners[shard] == nil && r.pending.Load() < maxPending {
			r.start(shard)
		}
	}
	r.dropStale(ctx, want)
	for shard, sr := range r.runners {
		if want[shard] || sr.stopped {
			continue
		}
		sr.stopped = true
		if !announced {
			r.log.Info("kubelease: not a live member now; stopping the shard's work", "shard", shard)
			sr.cancel(errWithdrawn)
			continue
		}
		r.set.mu.Lock()
		r.set.movedOut++
		r.set.mu.Unlock()
		r.log.Info("kubelease: shard assigned elsewhere; stopping its work", "shard", shard)
		sr.cancel(errReassigned)
	}
}

// dropStale deletes, once per record, the Lease of each shard not wanted
// here and without a runner that still names this member: an acquiring
// write of a runner stopped mid-Acquire that the server applied after the
// runner had cleaned up. Otherwise the new owner would wait for it to
// expire.
func (r *setRun) dropStale(ctx context.Context, want map[string]bool) {
	self := r.set.s.Lease.Owner
	for shard, o := range r.shardSeen {
		if want[shard] || r.runners[shard] != nil || o.obj.Spec.Holder() != self || r.dropped[shard] == o.obj.ResourceVersion {
			continue
		}
		l, err := r.set.shardLease(shard)
		if err != nil {
			continue
		}
		r.dropped[shard] = o.obj.ResourceVersion
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := l.dropStale(context.WithoutCancel(ctx)); err != nil {
				r.log.Warn("kubelease: deleting a stale record of ours", "shard", shard, "err", err)
			}
		}()
	}
}
