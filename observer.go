package lease

import (
	"time"
)

// Observer receives the events a metrics system needs from a
// KubernetesLease: whether it is held, transitions, renewal latency, the
// time left before the deadline, and why tenures end. Methods are called
// synchronously from the lease's goroutines; they must be quick, must not
// block and must not call the lease. A Prometheus adapter lives in the
// separate module github.com/kubelease/lease/adapters/prometheus.
type Observer interface {
	// Acquired: a tenure started with token (held = 1).
	Acquired(token Token)
	// Renewed: a renewal succeeded after latency (from the stamp to the
	// answer); left is the time then left before the new deadline.
	Renewed(latency, left time.Duration)
	// RenewFailed: one renewal attempt failed with err; it will be retried
	// while the deadline allows.
	RenewFailed(err error)
	// Lost: a tenure ended without a Release (held = 0).
	Lost(reason LostReason)
	// Released: a tenure ended by Release (held = 0).
	Released()
}

// nopObserver is the Observer when none is set.
type nopObserver struct{}

func (nopObserver) Acquired(Token)                       {}
func (nopObserver) Renewed(time.Duration, time.Duration) {}
func (nopObserver) RenewFailed(error)                    {}
func (nopObserver) Lost(LostReason)                      {}
func (nopObserver) Released()                            {}
