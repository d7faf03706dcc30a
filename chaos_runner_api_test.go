package lease_test

// The runner API of issue 10 (ErrBusy; a Release that cancels the runner's
// work first; RunSingleton releasing a tenure acquired as ctx ended; work
// cancelled within aliveCheckBound of CheckAlive turning false) is being
// written while this campaign is. Everything in the runner campaign that
// depends on it is switched here. After merging the fix:
//
//   - set runnerFixed to true: TestChaosRunner then fails on violations
//     instead of skipping, and TestChaosRunnerFindsKnownBugs stops expecting
//     violations from the unmodified lease (only the planted flaws);
//   - set errBusy to lease.ErrBusy, so that refusals of a second
//     RunSingleton on a busy instance are counted, not reported.
const runnerFixed = false

// errBusy is lease.ErrBusy once it exists; nil matches no error.
var errBusy error
