package lease_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
)

// The shard sets' fault-schedule campaign (docs/design.md §6 and the
// ShardSet documentation, checked by machine; the invariants are listed in
// chaos_shards_check_test.go). It takes the lease campaign's flags:
//
//	go test -run 'TestChaosShards$' -chaos.n=1000 -timeout 60m .
//	go test -run 'TestChaosShards$' -chaos.seed=<seed> -v .
//
// Unless -chaos.n is given, `go test` runs defaultShardsN schedules. As for
// the runner campaign, a re-run of one seed need not replay it event for
// event: the trace file it prints is the record.
const defaultShardsN = 8

var chaosShardsLog = flag.Bool("chaosshards.log", false, "put the library's log lines in the shard campaign's traces")

var chaosShardsFlaw = flag.String("chaosshards.flaw", "none", "plant this bug (see shardFlawNames) in TestChaosShards, to debug the checker")

var chaosShardBugSeeds = flag.Int("chaosshards.bugseeds", 2, "schedules per case in TestChaosShardsFindsKnownBugs")

// shardConfig is one shard schedule's setup.
type shardConfig struct {
	simConfig
	shards     []string
	slots      int // members at most at once
	odds       shardOdds
	flaw       shardFlaw
	grace      time.Duration
	maxBackoff time.Duration
	stable     time.Duration // how long a settled set is watched for moves
	longFaults bool          // freezes and partitions last longer than a TTL
}

// shardOdds are the odds of a schedule's events, 1 in n per step (0:
// never): per running member for the membership events, per step for a
// server fault, per work for one that returns by itself.
type shardOdds struct {
	leave, crash, freeze, partition int
	server                          int
	finish                          int
}

var shardOddsAll = shardOdds{leave: 150, crash: 250, freeze: 120, partition: 120, server: 10, finish: 10}

// shardsConfig derives a shard schedule's setup from its seed: 8 to 24
// shards, 2 to 5 member slots; odd seeds with the wall-clock fast path on,
// even seeds with it off (no clock is offset); a third of them watch while
// holding.
func shardsConfig(seed uint64) shardConfig {
	rng := rand.New(rand.NewPCG(seed, 0x636f6e666967))
	sc := shardConfig{
		simConfig: simConfig{
			seed:     seed,
			ttl:      6 * time.Second,
			step:     200 * time.Millisecond,
			faultFor: 40 * time.Second,
			fastPath: seed%2 == 1,
		},
		slots:      2 + rng.IntN(4),
		odds:       shardOddsAll,
		grace:      2 * time.Second,
		maxBackoff: 4 * time.Second,
		stable:     12 * time.Second,
	}
	for i := range 8 + rng.IntN(17) {
		sc.shards = append(sc.shards, fmt.Sprintf("part-%02d", i))
	}
	return sc
}

// shardResult is what one shard schedule found.
type shardResult struct {
	simResult
	byInvariant                                 map[string]int
	joins, leaves, crashes, freezes, partitions int
	works                                       int
	settleTime                                  time.Duration // from the end of the faults to settled; 0: never
}

// shardSeeds are the seeds TestChaosShards plays.
func shardSeeds() []uint64 {
	if *chaosSeed != 0 {
		return []uint64{*chaosSeed}
	}
	n := defaultShardsN
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "chaos.n" {
			n = *chaosN
		}
	})
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = *chaosFirst + uint64(i)
	}
	return seeds
}

// shardCampaign plays shard schedules in parallel, each in a synctest
// bubble of its own, and returns their results.
func shardCampaign(t *testing.T, seeds []uint64, mod func(*shardConfig)) map[uint64]shardResult {
	t.Helper()
	return playSeeds(seeds, func(seed uint64) shardResult {
		sc := shardsConfig(seed)
		if mod != nil {
			mod(&sc)
		}
		var r shardResult
		synctest.Test(t, func(t *testing.T) { r = newShSim(t, sc).run() })
		return r
	})
}

// shardTotals sums a campaign's figures.
type shardTotals struct {
	joins, leaves, crashes, freezes, partitions, works int
	maxSettle                                          time.Duration
	faults, byInvariant                                map[string]int
	failed                                             []uint64
}

func sumShards(seeds []uint64, results map[uint64]shardResult) shardTotals {
	tot := shardTotals{faults: map[string]int{}, byInvariant: map[string]int{}}
	for _, seed := range seeds {
		r := results[seed]
		tot.joins += r.joins
		tot.leaves += r.leaves
		tot.crashes += r.crashes
		tot.freezes += r.freezes
		tot.partitions += r.partitions
		tot.works += r.works
		tot.maxSettle = max(tot.maxSettle, r.settleTime)
		for k, v := range r.faults {
			tot.faults[k] += v
		}
		for k, v := range r.byInvariant {
			tot.byInvariant[k] += v
		}
		if len(r.violations) > 0 {
			tot.failed = append(tot.failed, seed)
		}
	}
	slices.Sort(tot.failed)
	return tot
}

// writeShardTrace writes a schedule's trace to a file and returns its path.
func writeShardTrace(seed uint64, r shardResult) string {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("kubelease-chaosshards-%d.trace", seed))
	_ = os.WriteFile(path, []byte(strings.Join(r.trace, "\n")+"\n"), 0o644)
	return path
}

func TestChaosShards(t *testing.T) {
	if testing.Short() {
		t.Skip("fault-schedule campaign skipped in -short mode")
	}
	seeds := shardSeeds()
	start := time.Now()
	var mod func(*shardConfig)
	if *chaosShardsFlaw != "none" {
		for f, name := range shardFlawNames {
			if name == *chaosShardsFlaw {
				mod = func(sc *shardConfig) { sc.flaw = f }
			}
		}
	}
	results := shardCampaign(t, seeds, mod)
	tot := sumShards(seeds, results)
	t.Logf("chaos: shard campaign: %d schedules, %d joins, %d graceful leaves, %d crashes, %d freezes, %d partitions, %d works started, slowest settle %v, %d failing, %v",
		len(seeds), tot.joins, tot.leaves, tot.crashes, tot.freezes, tot.partitions, tot.works, tot.maxSettle, len(tot.failed), time.Since(start).Round(time.Millisecond))
	t.Logf("chaos: shard violations by invariant: %s", formatCounts(tot.byInvariant))
	t.Logf("chaos: shard faults by kind: %s", formatCounts(tot.faults))
	for _, seed := range tot.failed {
		r := results[seed]
		t.Errorf("seed %d: %d violations, first: %s\nre-run alone: go test -run 'TestChaosShards$' -chaos.seed=%d -v .\nfull trace: %s\nend of trace:\n%s",
			seed, len(r.violations), r.violations[0], seed, writeShardTrace(seed, r), r.dump(40))
	}
	if *chaosSeed != 0 {
		t.Logf("trace of seed %d: %s", *chaosSeed, writeShardTrace(*chaosSeed, results[*chaosSeed]))
		if testing.Verbose() {
			t.Logf("trace of seed %d:\n%s", *chaosSeed, results[*chaosSeed].dump(1<<30))
		}
	}
}

// TestChaosShardsFindsKnownBugs shows the shard campaign's checker is not
// vacuous: for each bug planted in every member (chaos_shards_flaws_test.go)
// it finds violations of the invariants that bug breaks.
func TestChaosShardsFindsKnownBugs(t *testing.T) {
	if testing.Short() {
		t.Skip("fault-schedule campaign skipped in -short mode")
	}
	// Quotas bind only with several members: the greedy assignment's
	// schedules keep four.
	fourMembers := func(sc *shardConfig) { sc.slots, sc.odds.leave, sc.odds.crash = 4, 0, 0 }
	// A blind deadline shows when a member is cut off for longer than a
	// TTL while another takes its shards over.
	cutOff := func(sc *shardConfig) {
		sc.slots, sc.odds.partition, sc.odds.freeze, sc.odds.leave, sc.odds.crash = 3, 25, 0, 0, 0
		sc.longFaults, sc.faultFor = true, 40*time.Second
	}
	tests := []struct {
		flaw shardFlaw
		want []string // invariants the bug breaks
		mod  func(*shardConfig)
	}{
		{flawEagerWork, []string{"S2"}, nil},
		{flawIgnoreReassign, []string{"S3", "S4"}, nil},
		{flawGreedyAssign, []string{"S4"}, fourMembers},
		{flawBlindDeadline, []string{"S1"}, cutOff},
	}
	for _, tc := range tests {
		t.Run(tc.flaw.String(), func(t *testing.T) {
			n := *chaosShardBugSeeds
			if tc.flaw == flawBlindDeadline {
				n = max(n, 5) // about one schedule in six has no member cut off long enough
			}
			seeds := make([]uint64, n)
			for i := range seeds {
				seeds[i] = 7000 + uint64(i)
			}
			results := shardCampaign(t, seeds, func(sc *shardConfig) {
				sc.flaw, sc.faultFor = tc.flaw, 20*time.Second
				if tc.mod != nil {
					tc.mod(sc)
				}
			})
			tot := sumShards(seeds, results)
			found := 0
			var missed []uint64
			for _, seed := range seeds {
				hit := false
				for _, inv := range tc.want {
					hit = hit || results[seed].byInvariant[inv] > 0
				}
				if hit {
					found++
				} else {
					missed = append(missed, seed)
					writeShardTrace(seed, results[seed])
				}
			}
			if len(missed) > 0 {
				t.Logf("chaos: seeds without: %v (traces in %s)", missed, os.TempDir())
			}
			t.Logf("chaos: %d of %d schedules found %s violations (all: %s)", found, len(seeds), strings.Join(tc.want, "/"), formatCounts(tot.byInvariant))
			assert.Positive(t, found, "the checker must find the bug")
		})
	}
}
