package lease_test

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"slices"

	"github.com/kubelease/lease"
)

// shardFlaw is a bug planted in every member of a shard schedule, so that
// TestChaosShardsFindsKnownBugs can show the checker finds it.
type shardFlaw int

const (
	shardFlawNone shardFlaw = iota
	// flawEagerWork: a member starts a shard's work as soon as the shard
	// is assigned to it, before acquiring its Lease, and stops it only
	// when the shard is assigned elsewhere (planted from outside: the
	// work runs from ShardOptions.OnAssigned).
	flawEagerWork
	// flawIgnoreReassign: work ignores its ctx when the shard is assigned
	// elsewhere (the cause matches ErrNotHeld), so the member never hands
	// the shard over (planted from outside: in the work function).
	flawIgnoreReassign
	// flawGreedyAssign: the assignment forgets its quotas (plain
	// rendezvous hashing: each shard to the member that scores it
	// highest), so members are not balanced (planted with
	// lease.PlantAssignment, the one seam in the library).
	flawGreedyAssign
	// flawBlindDeadline: every Lease of a member ignores its deadline
	// (lease.BreakDeadline): CheckAlive stays true until a renewal finds
	// the Lease lost, so a member cut off keeps its shards while others,
	// once the Leases expired, take them. (With the member Lease sound, a
	// member cut off drops its shards as its member Lease runs out, before
	// the others can take them: the set does not depend on the shard
	// Leases' deadlines alone.)
	flawBlindDeadline
)

var shardFlawNames = map[shardFlaw]string{
	shardFlawNone: "none", flawEagerWork: "eager-work", flawIgnoreReassign: "ignore-reassign", flawGreedyAssign: "greedy-assign", flawBlindDeadline: "blind-deadline",
}

func (f shardFlaw) String() string { return shardFlawNames[f] }

// plant plants f in m's ShardSet.
func (f shardFlaw) plant(m *shMember) {
	switch f {
	case flawGreedyAssign:
		lease.PlantAssignment(m.set, greedyAssign)
	case flawBlindDeadline:
		for _, l := range append(lease.MakeShardLeases(m.set), lease.MemberLeaseOf(m.set)) {
			lease.BreakDeadline(l)
		}
	}
}

// greedyAssign is AssignShards without the quotas.
func greedyAssign(shards, members []string) map[string]string {
	out := map[string]string{}
	members = slices.Clone(members)
	slices.Sort(members)
	for _, sh := range shards {
		var best uint64
		for _, m := range members {
			sum := sha256.Sum256([]byte(m + "\x00" + sh))
			if sc := binary.BigEndian.Uint64(sum[:8]); out[sh] == "" || cmp.Compare(sc, best) > 0 {
				out[sh], best = m, sc
			}
		}
	}
	return out
}

// lazyWork is the work function of a member with flawEagerWork: its real
// work runs from OnAssigned instead.
func (m *shMember) lazyWork(ctx context.Context, _ string, _ lease.Token) error {
	<-ctx.Done()
	return nil
}

// eagerAssigned starts the work of each shard newly assigned to m, before
// any Lease is acquired, and stops those of shards assigned elsewhere.
func (s *shsim) eagerAssigned(m *shMember, mine []string) {
	s.mu.Lock()
	var start []string
	for _, sh := range mine {
		if m.eager[sh] == nil {
			start = append(start, sh)
			m.eager[sh] = &shWork{} // placeholder until it starts
		}
	}
	for sh, w := range m.eager {
		if !slices.Contains(mine, sh) && w.stop != nil {
			w.stop()
			delete(m.eager, sh)
		}
	}
	s.mu.Unlock()
	for _, sh := range start {
		ctx, stop := context.WithCancel(context.Background())
		w := s.startWork(m, sh, lease.Token{}, ctx, stop)
		s.mu.Lock()
		m.eager[sh] = w
		s.mu.Unlock()
		s.goBg(func() {
			<-ctx.Done()
			s.log.add(shEvent{kind: shWorkReturn, m: m, w: w})
		})
	}
}

// stopEager stops m's eager works (its Run has returned).
func (s *shsim) stopEager(m *shMember) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sh, w := range m.eager {
		if w.stop != nil {
			w.stop()
		}
		delete(m.eager, sh)
	}
}
