package lease

import (
	"math/rand/v2"
	"time"
)

// Test seams of the renewal schedule, for the external test package (they
// live here rather than in export_test.go only to keep that file's
// imports as they were).

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
