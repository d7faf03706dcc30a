package lease_test

import "github.com/kubelease/lease"

// runnerFixed says the runner under test has issue 10's fixes (ErrBusy; a
// Release that cancels the runner's work first; RunSingleton releasing a
// tenure acquired as ctx ended; work cancelled within aliveCheckBound of
// CheckAlive turning false): TestChaosRunner fails on violations, and
// TestChaosRunnerFindsKnownBugs expects violations only from the planted
// flaws, not from the unmodified lease.
const runnerFixed = true

// errBusy is what a second RunSingleton on a busy instance returns; such
// refusals are counted, not reported.
var errBusy = lease.ErrBusy
