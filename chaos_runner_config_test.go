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
	// quietHandoffs is how many planned handoffs are requested in quiet
	// windows after W5, for H2 (chaos_runner_handoff_test.go).
	quietHandoffs int
	// vacateFirst plants a bug in the lease: a step-down for a handoff
	// vacates the record before stopping work (lease.VacateBeforeHooks).
	vacateFirst bool
	// deafHolders plants a bug from outside: every process ignores
	// handoffs (Settings.DisableHandoff) while the checker believes they
	// honour them.
	deafHolders bool
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
	handoff int // per step: a planned handoff requested (RequestHandoff)
	// noHandoff: per process, at its creation, Settings.DisableHandoff,
	// in schedules with handoffs.
	noHandoff int
}

// oddsAll mixes every runner event: the odds of TestChaosRunner.
var oddsAll = runOdds{cancel: 120, sigterm: 150, release: 150, second: 250, retry: 2, suspend: 150, fwdStep: 150, stuck: 12, slow: 3, finish: 6}

// runnerConfig derives a runner schedule's setup from its seed, as
// scheduleConfig does for the lease campaign.
// Half the schedules (seed%4 < 2, so with and without the wall-clock fast
// path and the holder watch) request planned handoffs.
func runnerConfig(seed uint64) runConfig {
	sc := scheduleConfig(seed)
	sc.contenders = 4
	rc := runConfig{simConfig: sc, odds: oddsAll, grace: 2 * time.Second, retry: time.Second, maxBackoff: 4 * time.Second}
	if seed%4 < 2 {
		rc.odds.handoff, rc.odds.noHandoff, rc.quietHandoffs = 40, 5, 2
	}
	return rc
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
	handoffs      handoffCounts
}

// Odds that make each known bug of issue 10 likely in a schedule.
var (
	oddsItem1  = runOdds{cancel: 80, sigterm: 15, slow: 3, finish: 6}
	oddsItem2a = runOdds{cancel: 150, release: 30, slow: 3, finish: 6}
	oddsItem2b = runOdds{cancel: 100, second: 40, slow: 3, finish: 6}
	oddsItem2c = runOdds{cancel: 30, stuck: 1, retry: 1}
	oddsItem3  = runOdds{suspend: 12, fwdStep: 12, slow: 3, finish: 8}
	// oddsHandoff: frequent handoffs, slow works, few other events.
	oddsHandoff = runOdds{handoff: 8, noHandoff: 6, cancel: 300, slow: 2, finish: 10}
)
