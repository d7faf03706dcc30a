package lease_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The fault-schedule campaign (the safety promise of docs/design.md §1, checked by
// machine). `go test` runs a short campaign; `make chaos` a long one:
//
//	go test -run TestChaos -chaos.n=2000 -timeout 60m .
//
// A failing schedule prints its seed; it re-runs alone with
//
//	go test -run TestChaos -chaos.seed=<seed> -v .
var (
	chaosN     = flag.Int("chaos.n", 200, "number of fault schedules in TestChaos")
	chaosSeed  = flag.Uint64("chaos.seed", 0, "run only this schedule's seed")
	chaosFirst = flag.Uint64("chaos.first", 1, "first seed of the campaign")
)

// scheduleConfig derives a schedule's setup from its seed: odd seeds run
// with the wall-clock fast path on and offsets within MaxClockSkew; even
// seeds with it off, any offset, and big wall-clock steps.
func scheduleConfig(seed uint64) simConfig {
	cfg := simConfig{
		seed:       seed,
		contenders: 5,
		ttl:        6 * time.Second,
		step:       200 * time.Millisecond,
		faultFor:   30 * time.Second,
	}
	if seed%2 == 1 {
		cfg.fastPath = true
		cfg.maxOffset = 450 * time.Millisecond // pairwise within the 1s MaxClockSkew
	} else {
		cfg.maxOffset = time.Hour
		cfg.bigSteps = true
	}
	return cfg
}

// campaign runs schedules for seeds in parallel and returns their results.
func campaign(t *testing.T, seeds []uint64, mod func(*simConfig)) map[uint64]simResult {
	t.Helper()
	return playSeeds(seeds, func(seed uint64) simResult {
		cfg := scheduleConfig(seed)
		if mod != nil {
			mod(&cfg)
		}
		return newSim(t, cfg).run()
	})
}

// playSeeds plays one schedule for each seed, four at a time, and returns
// their results by seed.
func playSeeds[R any](seeds []uint64, play func(seed uint64) R) map[uint64]R {
	var mu sync.Mutex // guards results
	results := map[uint64]R{}
	todo := make(chan uint64)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for seed := range todo {
				r := play(seed)
				mu.Lock()
				results[seed] = r
				mu.Unlock()
			}
		})
	}
	for _, s := range seeds {
		todo <- s
	}
	close(todo)
	wg.Wait()
	return results
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("fault-schedule campaign skipped in -short mode")
	}
	var seeds []uint64
	if *chaosSeed != 0 {
		seeds = []uint64{*chaosSeed}
	} else {
		for i := range uint64(*chaosN) {
			seeds = append(seeds, *chaosFirst+i)
		}
	}
	results := campaign(t, seeds, nil)

	faults := map[string]int{}
	var tenures, lost, unsettled int
	var failed []uint64
	for _, seed := range seeds {
		r := results[seed]
		for k, v := range r.faults {
			faults[k] += v
		}
		tenures += r.tenures
		lost += r.lostCalls
		unsettled += r.unsettled
		if len(r.violations) > 0 {
			failed = append(failed, seed)
		}
	}
	sort.Slice(failed, func(i, j int) bool { return failed[i] < failed[j] })
	t.Logf("chaos: %d schedules, %d tenures, %d OnLost calls, %d unsettled steps, %d failing", len(seeds), tenures, lost, unsettled, len(failed))
	t.Logf("chaos: faults injected by kind: %s", formatCounts(faults))
	for _, seed := range failed {
		r := results[seed]
		path := filepath.Join(os.TempDir(), fmt.Sprintf("kubelease-chaos-%d.trace", seed))
		_ = os.WriteFile(path, []byte(strings.Join(r.trace, "\n")+"\n"), 0o644)
		t.Errorf("seed %d: %d violations, first: %s\nre-run alone: go test -run TestChaos -chaos.seed=%d -v .\nfull trace: %s\nend of trace:\n%s",
			seed, len(r.violations), r.violations[0], seed, path, r.dump(40))
	}
	if *chaosSeed != 0 && testing.Verbose() {
		t.Logf("trace of seed %d:\n%s", *chaosSeed, results[*chaosSeed].dump(1<<30))
	}
}

// TestChaosCheckerCanFail shows the checker is not vacuous: with the
// deadline check disabled, or with the original's expiry rule under clock
// offsets, the campaign finds violations.
func TestChaosCheckerCanFail(t *testing.T) {
	if testing.Short() {
		t.Skip("fault-schedule campaign skipped in -short mode")
	}
	tests := []struct {
		name string
		mod  func(*simConfig)
	}{
		{"deadline check disabled", func(c *simConfig) { c.breakDeadline = true }},
		{"original expiry rule under clock offsets", func(c *simConfig) {
			c.originalExpiry = true
			c.fastPath = true
			c.maxOffset = 3 * time.Second
			c.bigSteps = false
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var seeds []uint64
			for i := range uint64(40) {
				seeds = append(seeds, 1000+i)
			}
			results := campaign(t, seeds, tc.mod)
			found := 0
			for _, r := range results {
				if len(r.violations) > 0 {
					found++
				}
			}
			t.Logf("%d of %d schedules found violations", found, len(seeds))
			assert.Positive(t, found, "the checker must find violations of a broken lease")
		})
	}
}

func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[k])
	}
	return b.String()
}
