package lease_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"maps"
	"slices"
	"strings"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
)

// Every member of a shard set computes the same assignment from the
// members it sees live: even to within one shard, and a member that joins
// takes its share, each shard from the member that had it.
func ExampleAssignShards() {
	shards := []string{"eu-1", "eu-2", "eu-3", "us-1", "us-2", "us-3", "ap-1", "ap-2", "ap-3"}
	members := []string{"replica-a", "replica-b", "replica-c"}
	before := lease.AssignShards(shards, members)
	for _, m := range members {
		fmt.Println(m, owned(before, m))
	}

	after := lease.AssignShards(shards, append(members, "replica-d"))
	fmt.Println("replica-d joins:", owned(after, "replica-d"))
	for _, s := range shards {
		if before[s] != after[s] {
			fmt.Printf("  %s moves from %s\n", s, before[s])
		}
	}
	// Output:
	// replica-a [eu-2 us-1 us-2]
	// replica-b [ap-1 eu-3 us-3]
	// replica-c [ap-2 ap-3 eu-1]
	// replica-d joins: [eu-1 us-1 us-3]
	//   eu-1 moves from replica-c
	//   us-1 moves from replica-a
	//   us-3 moves from replica-b
}

// owned returns the shards assigned to member, sorted.
func owned(assignment map[string]string, member string) []string {
	var out []string
	for shard, m := range assignment {
		if m == member {
			out = append(out, shard)
		}
	}
	slices.Sort(out)
	return out
}

// Two processes share six partitions: each runs a ShardSet with an Owner
// of its own, and works on the partitions assigned to it, each under a
// Lease of its own, until ctx ends. The fake API server stands in for a
// cluster; with a real one, pass lease.DefaultConfig() as Config.
func ExampleShardSet_Run() {
	srv := leasetest.NewServer()
	defer srv.Close()
	partitions := []string{"p0", "p1", "p2", "p3", "p4", "p5"}

	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	opts := lease.ShardOptions{
		OnAssigned: func(members, mine []string) { poke() },
		OnStarted:  func(shard string, token lease.Token) { poke() },
		OnStopped:  func(shard string, token lease.Token, reason error) { poke() },
	}
	work := func(ctx context.Context, shard string, token lease.Token) error {
		// Process the partition, passing token with every write to a
		// fenced store, until the partition moves away or Run ends.
		<-ctx.Done()
		return nil
	}

	ctx, cancel := context.WithCancel(context.Background())
	var sets []*lease.ShardSet
	done := make(chan error, 2)
	owners := []string{"replica-a", "replica-b"} // in a pod: pod name + a random suffix
	for _, owner := range owners {
		set, err := lease.NewShardSet(lease.ShardSettings{
			Set:    "orders",
			Shards: partitions,
			Lease:  lease.Settings{Owner: owner, Config: srv.Config()},
		})
		if err != nil {
			log.Fatal(err)
		}
		defer set.Close()
		sets = append(sets, set)
		go func() { done <- set.Run(ctx, work, opts) }()
	}

	// Wait until both see both, and each runs what is assigned to it.
	settled := func() bool {
		for _, set := range sets {
			st := set.Status()
			running := slices.Sorted(maps.Keys(st.Running))
			if len(st.Members) != 2 || !slices.Equal(running, st.Assigned) {
				return false
			}
		}
		return true
	}
	for !settled() {
		<-changed
	}
	for i, set := range sets {
		st := set.Status()
		fmt.Printf("%s sees %s, runs %v\n", owners[i], strings.Join(st.Members, " and "), st.Assigned)
	}

	cancel() // each member withdraws, releasing every Lease it holds
	for range sets {
		err := <-done
		fmt.Println("Run returned:", errors.Is(err, context.Canceled))
	}
	_, exists := srv.Get("default", lease.ShardLeaseName("orders", "p0"))
	fmt.Println("p0's Lease exists:", exists)
	// Output:
	// replica-a sees replica-a and replica-b, runs [p0 p3 p4]
	// replica-b sees replica-a and replica-b, runs [p1 p2 p5]
	// Run returned: true
	// Run returned: true
	// p0's Lease exists: false
}

// RunShards is NewShardSet, Run and Close in one call: the usual main of a
// process that is one member of a shard set.
func ExampleRunShards() {
	srv := leasetest.NewServer()
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan string, 3)
	err := lease.RunShards(ctx, lease.ShardSettings{
		Set:    "reports",
		Shards: []string{"daily", "weekly", "monthly"},
		Lease:  lease.Settings{Owner: "replica-0", Config: srv.Config()},
	}, func(ctx context.Context, shard string, token lease.Token) error {
		started <- shard
		if len(started) == cap(started) {
			cancel() // a real process runs until SIGTERM
		}
		<-ctx.Done()
		return nil
	}, lease.ShardOptions{})
	fmt.Println("alone, it ran", len(started), "shards; RunShards returned:", err)
	// Output:
	// alone, it ran 3 shards; RunShards returned: context canceled
}
