package lease

import "time"

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
