package lease

import (
	"sync/atomic"
	"time"

	"github.com/kubelease/lease/internal/wire"
)

// testHooks are the seams this package's tests use (export_test.go sets
// them, before the lease is first used but for wallOffset). A
// KubernetesLease outside those tests has none, and every hook below is then
// skipped.
type testHooks struct {
	// wallOffset is added to every wall-clock reading: it moves the wall
	// clock apart from the monotonic one (a step, a suspend).
	wallOffset atomic.Int64
	// event is told of steps of the lifecycle, so that tests can wait for
	// them instead of sleeping.
	event func(name string)
	// armed is told when the renewal goroutine sets its timer (wake: when
	// it fires, on the lease's clock) and when it exits (wake: zero), so a
	// simulation knows when the lease is idle.
	armed func(wake time.Time)
	// ignoreDeadline and mayTakeOver are deliberate bugs, so that tests
	// can show the fault-schedule checker finds what follows: CheckAlive
	// ignores the deadline; a replacement for the expiry rule.
	ignoreDeadline bool
	mayTakeOver    func(obj *wire.Lease, n stamp) bool
	// vacateBeforeHooks is a deliberate bug, so that the runner campaign
	// can show its checker finds it: a step-down for a planned handoff
	// writes the vacating PUT before the BeforeRelease hooks stop work.
	vacateBeforeHooks bool
}

// emit tells the test hooks, if any, of a lifecycle step.
func (l *KubernetesLease) emit(name string) {
	if h := l.test.Load(); h != nil && h.event != nil {
		h.event(name)
	}
}

// arm tells the test hooks, if any, when the renewal goroutine wakes next
// (zero: it exited).
func (l *KubernetesLease) arm(wake time.Time) {
	if h := l.test.Load(); h != nil && h.armed != nil {
		h.armed(wake)
	}
}

// ignoresDeadline reports the test flaw that makes CheckAlive ignore the
// deadline.
func (l *KubernetesLease) ignoresDeadline() bool {
	h := l.test.Load()
	return h != nil && h.ignoreDeadline
}

// vacatesBeforeHooks reports the test flaw that makes a step-down vacate
// the record before its BeforeRelease hooks run.
func (l *KubernetesLease) vacatesBeforeHooks() bool {
	h := l.test.Load()
	return h != nil && h.vacateBeforeHooks
}

// shardTestHooks are a ShardSet's seams for this package's tests
// (export_shards_test.go sets them). A ShardSet outside those tests has
// none.
type shardTestHooks struct {
	// assign replaces AssignShards: a deliberate bug, so that tests can
	// show the shard campaign's checker finds a broken assignment.
	assign func(shards, members []string) map[string]string
}

// assignShards is AssignShards, unless a test planted a replacement.
func (set *ShardSet) assignShards(shards, members []string) map[string]string {
	if h := set.test.Load(); h != nil && h.assign != nil {
		return h.assign(shards, members)
	}
	return AssignShards(shards, members)
}
