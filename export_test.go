package lease

import (
	"context"
	"time"

	"github.com/kubelease/lease/internal/wire"
)

// Test seams for the external test package (lease_test), which can import
// leasetest without an import cycle.

// StepWall moves l's wall clock by d relative to its monotonic clock: a
// suspend (d > 0, monotonic time stopped) or a wall-clock step.
func StepWall(l *KubernetesLease, d time.Duration) { hooksOf(l).wallOffset.Add(int64(d)) }

// hooksOf returns l's test hooks, creating them on first use.
func hooksOf(l *KubernetesLease) *testHooks {
	l.test.CompareAndSwap(nil, &testHooks{})
	return l.test.Load()
}

// SetEventHook makes l report lifecycle steps to f. f runs under l's lock:
// it must not block or call l. Call before first use of l.
func SetEventHook(l *KubernetesLease, f func(name string)) { hooksOf(l).event = f }

// NonceOf returns l's per-instance nonce.
func NonceOf(l *KubernetesLease) string { return l.nonce }

// Margin is the deadline margin for ttl.
func Margin(ttl time.Duration) time.Duration { return margin(ttl) }

// SetArmHook makes l report when its renewal goroutine sets a timer (wake
// is when it fires) and when it exits (wake is zero). Call before first use.
func SetArmHook(l *KubernetesLease, f func(wake time.Time)) { hooksOf(l).armed = f }

// BreakDeadline makes l ignore its deadline: CheckAlive stays true until a
// renewal finds the lease lost. Only for showing that the checker can fail.
func BreakDeadline(l *KubernetesLease) { hooksOf(l).ignoreDeadline = true }

// UseOriginalExpiry makes l judge expiry like the TypeScript original:
// remote renewTime + our TTL before our wall clock, nothing else. Only for
// showing that the checker can fail.
func UseOriginalExpiry(l *KubernetesLease) {
	hooksOf(l).mayTakeOver = func(obj *wire.Lease, n stamp) bool {
		return obj.Spec.RenewTime != nil && obj.Spec.RenewTime.Add(l.s.TTL).Before(n.wall)
	}
}

// VacateBeforeHooks makes l, stepping down for a planned handoff, write the
// vacating PUT before its BeforeRelease hooks stop RunSingleton's work. Only
// for showing that the checker can fail. Call before first use.
func VacateBeforeHooks(l *KubernetesLease) { hooksOf(l).vacateBeforeHooks = true }

// RequestDeadline returns when, on the lease's clock, a request context made
// by the library times out.
func RequestDeadline(ctx context.Context) (time.Time, bool) {
	t, ok := ctx.Value(deadlineKey{}).(time.Time)
	return t, ok
}
