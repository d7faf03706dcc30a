package lease

import (
	"math"
	"time"

	"github.com/kubelease/lease/internal/wire"
)

// observation is a Lease record as Acquire last saw it, and when (on our
// monotonic clock) it was first seen in this exact state.
type observation struct {
	key   specKey
	since time.Time
}

// specKey is what a holder changes when it renews. The resourceVersion is
// left out on purpose: a label edit by someone else is not a renewal and
// must not reset the expiry timer.
type specKey struct {
	uid         string
	holder      string
	renewTime   time.Time
	duration    int32
	transitions int32
}

func keyOf(obj *wire.Lease) specKey {
	k := specKey{uid: string(obj.UID), holder: obj.Spec.Holder(), transitions: obj.Spec.Transitions()}
	if obj.Spec.RenewTime != nil {
		k.renewTime = obj.Spec.RenewTime.UTC()
	}
	if obj.Spec.LeaseDurationSeconds != nil {
		k.duration = *obj.Spec.LeaseDurationSeconds
	}
	return k
}

// observe records that obj was received at st (expiry rule (a)).
func (l *KubernetesLease) observe(obj *wire.Lease, st stamp) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.observeLocked(obj, st)
}

// observeLocked records that obj (nil: the Lease is gone) was received at
// st, wakes every Wait, and queues a holder change for OnHolderChange.
func (l *KubernetesLease) observeLocked(obj *wire.Lease, st stamp) {
	if obj == nil {
		l.seen, l.seenObj = nil, nil
	} else {
		if k := keyOf(obj); l.seen == nil || l.seen.key != k {
			l.seen = &observation{key: k, since: st.mono}
		}
		l.seenObj = obj
	}
	l.seenAt = st.wall
	l.noteChangeLocked()
	holder := ""
	if obj != nil {
		holder = obj.Spec.Holder()
	}
	l.reportHolderLocked(holder)
}

// changedLocked returns the channel that is closed at the next change of
// what was seen.
func (l *KubernetesLease) changedLocked() <-chan struct{} {
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	return l.changed
}

// noteChangeLocked wakes every Wait: what was seen changed.
func (l *KubernetesLease) noteChangeLocked() {
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// recordDuration is the lease duration a record claims: its own
// leaseDurationSeconds, our TTL when missing or not positive, capped at
// MaxLeaseDuration.
func (l *KubernetesLease) recordDuration(obj *wire.Lease) time.Duration {
	return durationOf(obj, l.s.TTL)
}

// durationOf is the lease duration obj claims, ttl when it claims none or
// one that is not positive, capped at MaxLeaseDuration.
func durationOf(obj *wire.Lease, ttl time.Duration) time.Duration {
	d := obj.Spec.LeaseDurationSeconds
	if d == nil || *d <= 0 {
		return ttl
	}
	return min(time.Duration(*d)*time.Second, MaxLeaseDuration)
}

// mayTakeOver reports whether obj may be taken over: it names no holder,
// names our Owner, or has expired. A record has expired when (a) it has been seen
// unchanged for its own duration on our monotonic clock, or (b), unless
// MaxClockSkew is negative, renewTime + duration + MaxClockSkew is before
// our wall clock; that sum saturates rather than wrapping around.
func (l *KubernetesLease) mayTakeOver(obj *wire.Lease) bool {
	holder := obj.Spec.Holder()
	if holder == "" || holder == l.s.Owner {
		return true
	}
	n := l.now()
	if h := l.test.Load(); h != nil && h.mayTakeOver != nil {
		return h.mayTakeOver(obj, n)
	}
	dur := l.recordDuration(obj)
	l.mu.Lock()
	seen := l.seen
	l.mu.Unlock()
	if seen != nil && seen.key == keyOf(obj) && n.mono.Sub(seen.since) >= dur {
		return true
	}
	if l.s.MaxClockSkew >= 0 && obj.Spec.RenewTime != nil {
		if obj.Spec.RenewTime.Add(addSat(dur, l.s.MaxClockSkew)).Before(n.wall) {
			return true
		}
	}
	return false
}

// addSat returns a + b, saturated at the limits of time.Duration instead of
// wrapping around: a wrapped sum on the expiry path would make a live
// record look expired.
func addSat(a, b time.Duration) time.Duration {
	s := a + b
	switch {
	case a > 0 && b > 0 && s < 0:
		return math.MaxInt64
	case a < 0 && b < 0 && s >= 0:
		return math.MinInt64
	}
	return s
}
