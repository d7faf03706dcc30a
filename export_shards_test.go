package lease

// Test seams of the shard campaign (chaos_shards_*_test.go) for the external
// test package.

// ShardLeaseOf returns the Lease set uses for shard, or nil when it has not
// made it yet (a shard is given its Lease the first time it is assigned
// here). The checker reads it with WouldCheckAlive.
func ShardLeaseOf(set *ShardSet, shard string) *KubernetesLease {
	set.mu.Lock()
	defer set.mu.Unlock()
	return set.leases[shard]
}

// MemberLeaseOf returns the Lease by which set announces its member.
func MemberLeaseOf(set *ShardSet) *KubernetesLease { return set.member }

// PlantAssignment makes set compute its assignment with assign instead of
// AssignShards: a deliberate bug, only for showing that the shard
// campaign's checker finds one. Call before Run.
func PlantAssignment(set *ShardSet, assign func(shards, members []string) map[string]string) {
	set.test.Store(&shardTestHooks{assign: assign})
}

// SetCreateFirst lets l create its Lease without reading it when its
// standby last saw it deleted, as a ShardSet's shard Leases do.
func SetCreateFirst(l *KubernetesLease) { l.createFirst = true }

// MakeShardLeases makes the Lease of every shard of set now, as its first
// assignment would, and returns them, so that a test can plant a flaw in
// each before Run.
func MakeShardLeases(set *ShardSet) []*KubernetesLease {
	var out []*KubernetesLease
	for _, shard := range set.shards {
		l, err := set.shardLease(shard)
		if err != nil {
			panic(err)
		}
		out = append(out, l)
	}
	return out
}
