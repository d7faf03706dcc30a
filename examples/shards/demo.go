package main

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
)

// runDemo is the demo of the package comment. It exits the process with 1
// on failure.
func runDemo(verbose bool) {
	start = time.Now()
	srv := leasetest.NewServer()
	defer srv.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	var shards []string
	for i := range partitions {
		shards = append(shards, fmt.Sprintf("part-%02d", i))
	}
	t := newTracker(shards)
	newReplicaOrFail := func(name string) *replica {
		r, err := newReplica(name, srv.Config(), shards, log)
		if err != nil {
			fail("%v", err)
		}
		return r
	}

	// 1. Three replicas join at once and settle.
	var live []*replica
	for i := 1; i <= 3; i++ {
		live = append(live, newReplicaOrFail(fmt.Sprintf("replica-%d", i)))
	}
	say("3 replicas run a lease.ShardSet %q of %d partitions (TTL %v, renewed every %v)", setName, partitions, ttl, ttl/3)
	for _, r := range live {
		r.run(t)
	}
	t.awaitSettled("start", live)
	_, starts := t.takeMoves()
	say("==> settled: %d work starts while the replicas saw each other join; assignment:", starts)
	t.printAssignment(live)
	time.Sleep(1500 * time.Millisecond) // a few renewals

	// 2. One replica crashes: its requests fail, then its Run stops
	// without a successful Release.
	victim := live[1]
	var lost []string
	for _, shard := range shards {
		if t.runs(shard) == victim {
			lost = append(lost, shard)
		}
	}
	say("==> %s crashes: HTTP client cut off, then Run stopped (its Releases fail); it ran %d partitions", victim.owner, len(lost))
	crashed := time.Now()
	err := victim.crash()
	say("    %s's Run returned: %v", victim.name, err)
	for _, name := range victimLeases(victim, lost) {
		if l, ok := srv.Get("default", name); !ok || l.Spec.Holder() != victim.owner {
			fail("after the crash the Lease %s is not held by %s: its Release went through", name, victim.owner)
		}
	}
	say("    its member Lease and the Leases of %s still name it in the API server, no longer renewed", strings.Join(lost, " "))
	live = slices.DeleteFunc(live, func(r *replica) bool { return r == victim })
	t.awaitSettled("after the crash", live)
	say("==> settled %.2f s after the crash: the survivors waited for its member Lease to expire (which drops it from the members) and then for each of its partitions' Leases; assignment:",
		time.Since(crashed).Seconds())
	t.printAssignment(live)
	moves, _ := t.takeMoves()
	printMoves(moves)

	// 3. A fourth replica joins: partitions move to it as their old owners
	// release them.
	joiner := newReplicaOrFail("replica-4")
	say("==> %s joins", joiner.owner)
	joined := time.Now()
	joiner.run(t)
	live = append(live, joiner)
	t.awaitSettled("after the join", live)
	say("==> settled %d ms after the join; assignment:", time.Since(joined).Milliseconds())
	t.printAssignment(live)
	moves, _ = t.takeMoves()
	printMoves(moves)
	say("    %d of %d partitions moved (N/M = %d/%d = %d)", len(moves), partitions, partitions, len(live), partitions/len(live))

	// 4. Shut down: every replica leaves at once, releasing what it holds.
	say("==> shutting down")
	for _, r := range live {
		r.stop(errShutdown)
	}
	for _, r := range live {
		if err := r.wait(); err != errShutdown {
			fail("%s: Run returned %v", r.name, err)
		}
	}
	var left []string
	for _, shard := range shards {
		if _, ok := srv.Get("default", lease.ShardLeaseName(setName, shard)); ok {
			left = append(left, "the Lease of "+shard)
		}
	}
	for _, r := range append(live, victim) {
		if _, ok := srv.Get("default", lease.MemberLeaseName(setName, r.owner)); ok {
			left = append(left, fmt.Sprintf("the member Lease of %s", r.owner))
		}
	}
	if len(left) != 1 || !slices.Contains(left, "the member Lease of "+victim.owner) {
		fail("Leases left after shutdown: %q; want only the crashed replica's member Lease", left)
	}
	say("all replicas stopped; every Lease was released (deleted) but %s: expired, nobody deletes it", left[0])
}

// victimLeases returns the names of r's member Lease and of the Leases of
// its partitions.
func victimLeases(r *replica, shards []string) []string {
	names := []string{lease.MemberLeaseName(setName, r.owner)}
	for _, shard := range shards {
		names = append(names, lease.ShardLeaseName(setName, shard))
	}
	return names
}

// printMoves prints each move, the crash's apart.
func printMoves(moves []move) {
	slices.SortFunc(moves, func(a, b move) int { return cmp.Compare(a.gap, b.gap) })
	for _, m := range moves {
		if m.crash {
			say("    %s: %s (crashed) → %s: re-owned %.2f s after the crash", m.shard, m.from.name, m.to.name, m.gap.Seconds())
		} else {
			say("    %s: %s → %s: %.1f ms from the old owner's OnStopped to the new owner's OnStarted", m.shard, m.from.name, m.to.name, float64(m.gap.Microseconds())/1000)
		}
	}
}
