package lease_test

import "time"

// runConfig is one runner schedule's setup: the lease campaign's processes,
// clocks and faults (simConfig), the odds of the runner events, the runner's
// options, and a planted flaw.
type runConfig struct {
	simConfig
	odds       runOdds
	flaw       flaw
	grace      time.Duration
	retry      time.Duration
	maxBackoff time.Duration
}

// runOdds are the odds of the runner events, 1 in n (0: never): per
// process and step for the events on a process, per step for the faults
// aimed at a process that runs work, per work for how the work behaves.
type runOdds struct {
	cancel  int // cancel the newest RunSingleton's ctx
	sigterm int // cancel it as the process's next write is answered
	release int // an external Release, as from a shutdown hook
	second  int // a second, concurrent RunSingleton on the instance
	retry   int // after ErrWorkDidNotStop, call RunSingleton again at once
	suspend int // suspend a process that runs work
	fwdStep int // step forward the wall clock of a process that runs work (bigSteps schedules)
	stuck   int // work ignores its ctx for longer than the grace period
	slow    int // work returns a while (less than the grace period) after its ctx ends
	finish  int // work returns by itself
}

// oddsAll mixes every runner event: the odds of TestChaosRunner.
var oddsAll = runOdds{cancel: 120, sigterm: 150, release: 150, second: 250, retry: 2, suspend: 150, fwdStep: 150, stuck: 12, slow: 3, finish: 6}

// runnerConfig derives a runner schedule's setup from its seed, as
// scheduleConfig does for the lease campaign.
func runnerConfig(seed uint64) runConfig {
	sc := scheduleConfig(seed)
	sc.contenders = 4
	return runConfig{simConfig: sc, odds: oddsAll, grace: 2 * time.Second, retry: time.Second, maxBackoff: 4 * time.Second}
}

// runnerResult is what one runner schedule found.
type runnerResult struct {
	simResult
	byInvariant map[string]int
	// leaseOverlaps are the lease's, not the runner's (see
	// chaos_runner_check_test.go): reported, not counted as violations.
	leaseOverlaps []string
	runs          int
	works         int
	releases      int
	cancels       int
	busy          int
	didNotStop    int
}

// Odds that make each known bug of issue 10 likely in a schedule.
var (
	oddsItem1  = runOdds{cancel: 80, sigterm: 15, slow: 3, finish: 6}
	oddsItem2a = runOdds{cancel: 150, release: 30, slow: 3, finish: 6}
	oddsItem2b = runOdds{cancel: 100, second: 40, slow: 3, finish: 6}
	oddsItem2c = runOdds{cancel: 30, stuck: 1, retry: 1}
	oddsItem3  = runOdds{suspend: 12, fwdStep: 12, slow: 3, finish: 8}
)
