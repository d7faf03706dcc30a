package lease

import (
	"context"
	"math/rand/v2"
	"time"
)

// Test seams for the external test package (lease_test), which can import
// leasetest without an import cycle.

// StepWall moves l's wall clock by d relative to its monotonic clock: a
// suspend (d > 0, monotonic time stopped) or a wall-clock step.
func StepWall(l *KubernetesLease, d time.Duration) { l.wallOffset.Add(int64(d)) }

// SetEventHook makes l report lifecycle steps to f. f runs under l's lock:
// it must not block or call l. Call before first use of l.
func SetEventHook(l *KubernetesLease, f func(name string)) { l.event = f }

// NonceOf returns l's per-instance nonce.
func NonceOf(l *KubernetesLease) string { return l.nonce }

// Margin is the deadline margin for ttl.
func Margin(ttl time.Duration) time.Duration { return margin(ttl) }

// SetArmHook makes l report when its renewal goroutine sets a timer (wake
// is when it fires) and when it exits (wake is zero). Call before first use.
func SetArmHook(l *KubernetesLease, f func(wake time.Time)) { l.armed = f }

// BreakDeadline makes l ignore its deadline: CheckAlive stays true until a
// renewal finds the lease lost. Only for showing that the checker can fail.
func BreakDeadline(l *KubernetesLease) { l.flaws.noDeadline = true }

// UseOriginalExpiry makes l judge expiry like the TypeScript original:
// remote renewTime + our TTL before our wall clock, nothing else. Only for
// showing that the checker can fail.
func UseOriginalExpiry(l *KubernetesLease) { l.flaws.originalExpiry = true }

// RequestDeadline returns when, on the lease's clock, a request context made
// by the library times out.
func RequestDeadline(ctx context.Context) (time.Time, bool) {
	t, ok := ctx.Value(deadlineKey{}).(time.Time)
	return t, ok
}

// SeedJitter makes the renewal schedule's jitter, for every lease, a
// sequence in the production range [0, 1) that follows from seed, until
// the returned function restores the previous source. Leases running
// meanwhile share the sequence.
func SeedJitter(seed uint64) (restore func()) {
	r := rand.New(rand.NewPCG(seed, 0x72656e6577))
	jitterSeam.Lock()
	old := jitterSeam.f
	jitterSeam.f = r.Float64
	jitterSeam.Unlock()
	return func() {
		jitterSeam.Lock()
		jitterSeam.f = old
		jitterSeam.Unlock()
	}
}

// The other tests of this package were written when each wait between
// renewals was RenewalInterval minus up to 10 %: many step a fake clock by
// exactly RenewalInterval and expect a renewal. Until they step to the
// armed timer instead, this test binary draws the jitter from [0, 0.5),
// which keeps every wait between renewals in [0.9, 1)·RenewalInterval as
// before (and retry waits in the lower half of their range). The tests of
// the schedule itself use SeedJitter, which gives the production range.
func init() { jitterSeam.f = func() float64 { return rand.Float64() / 2 } }

// RenewWait is the wait between renewals for jitter u in [0, 1).
func RenewWait(interval time.Duration, u float64) time.Duration { return renewWait(interval, u) }

// RetryWait is the wait after failed attempt number failures+1.
func RetryWait(failures int, interval, retryAfter, left time.Duration, u float64) time.Duration {
	return retryWait(failures, interval, retryAfter, left, u)
}

// AttemptTimeoutAt is l's timeout for a renewal attempt made with left
// before the deadline.
func AttemptTimeoutAt(l *KubernetesLease, left time.Duration) time.Duration {
	return l.attemptTimeoutAt(left)
}
