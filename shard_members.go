package lease

import (
	"slices"
	"time"

	"github.com/kubelease/lease/internal/wire"
)

// memberSeen is a member Lease as the set last saw it, and since when (on
// the set's monotonic clock) in this exact state: expiry rule (a).
type memberSeen struct {
	key   specKey
	since time.Time
}

// recordSeen is a shard Lease as the set last saw it, and since when (on
// the set's monotonic clock) its spec has been unchanged.
type recordSeen struct {
	obj   *wire.Lease
	since time.Time
}

// memberView tells which members of a set are live, from the member Leases
// its NamespaceWatch has. It is used by one goroutine only.
type memberView struct {
	self string // our Owner: judged by our own tenure, not by the record
	ttl  time.Duration
	skew time.Duration // MaxClockSkew; negative turns rule (b) off
	seen map[string]memberSeen
}

// live returns the live members among the member Leases in leases (by
// name; others are ignored), ourselves left out, sorted, and how long until
// the first of them would expire if nothing changes (0: none is live).
func (v *memberView) live(leases map[string]*wire.Lease, now time.Time) ([]string, time.Duration) {
	var (
		out  []string
		next time.Duration
	)
	present := make(map[string]bool, len(leases))
	for name, obj := range leases {
		if obj.Labels[LabelRole] != RoleMember {
			continue
		}
		present[name] = true
		k := keyOf(obj)
		s, ok := v.seen[name]
		if !ok || s.key != k {
			s = memberSeen{key: k, since: now}
			v.seen[name] = s
		}
		holder := obj.Spec.Holder()
		if holder == "" || holder == v.self {
			continue
		}
		left := v.timeLeft(obj, s, now)
		if left <= 0 {
			continue
		}
		out = append(out, holder)
		if next == 0 || left < next {
			next = left
		}
	}
	for name := range v.seen {
		if !present[name] {
			delete(v.seen, name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), next
}

// timeLeft is how long until the member record obj, seen unchanged since
// s.since, expires by rule (a) or, unless turned off, rule (b).
func (v *memberView) timeLeft(obj *wire.Lease, s memberSeen, now time.Time) time.Duration {
	dur := v.ttl
	if d := obj.Spec.LeaseDurationSeconds; d != nil && *d > 0 {
		dur = min(time.Duration(*d)*time.Second, MaxLeaseDuration)
	}
	left := dur - now.Sub(s.since)
	if v.skew >= 0 && obj.Spec.RenewTime != nil {
		wallLeft := obj.Spec.RenewTime.Add(addSat(dur, v.skew)).Sub(now.Round(0))
		left = min(left, wallLeft)
	}
	return left
}
