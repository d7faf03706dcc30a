package lease

import (
	"math"
	"time"

	"github.com/kubelease/lease/internal/wire"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// stampAcquire turns body (a copy of the stored Lease, or a new one) into
// an acquiring write stamped st: our holder and nonce, acquireTime =
// renewTime = now, leaseTransitions bumped when the holder changes, and
// no token or handoff request of an earlier tenure.
func (l *KubernetesLease) stampAcquire(body *wire.Lease, st stamp) {
	created := body.ResourceVersion == ""
	prevHolder := body.Spec.Holder()
	l.stampRenew(body, st)
	l.addLabels(body)
	// A new tenure: its token is published at its first renewal, and a
	// handoff request is answered by this write (by its target, or by
	// anyone once HandoffWait has passed).
	delete(body.Annotations, TokenAnnotation)
	delete(body.Annotations, PreferredHolderAnnotation)
	body.Spec.AcquireTime = body.Spec.RenewTime.DeepCopy()
	var tr int32
	switch {
	case created:
		tr = 0
	case prevHolder == l.s.Owner:
		tr = body.Spec.Transitions()
	default:
		tr = body.Spec.Transitions()
		if tr < math.MaxInt32 {
			tr++
		}
		if tr < 0 {
			tr = 1 // a negative count from another writer restarts
		}
	}
	body.Spec.LeaseTransitions = &tr
}

// stampRenew turns body into a renewing write stamped st: holder = Owner,
// leaseDurationSeconds = ⌈TTL⌉, our nonce, and renewTime = now, except that
// when the stored record is ours and its renewTime is not before now (µs
// precision), renewTime is the stored one plus 1 µs, so that the write
// never repeats the stored object (which the server would treat as a no-op).
func (l *KubernetesLease) stampRenew(body *wire.Lease, st stamp) {
	rt := st.wall.UTC().Truncate(time.Microsecond)
	if l.isOurs(body) && body.Spec.RenewTime != nil {
		stored := body.Spec.RenewTime.UTC().Truncate(time.Microsecond)
		if !stored.Before(rt) {
			rt = stored.Add(time.Microsecond)
		}
	}
	holder := l.s.Owner
	dur := wireSeconds(l.s.TTL)
	body.Spec.HolderIdentity = &holder
	body.Spec.LeaseDurationSeconds = &dur
	body.Spec.RenewTime = &metav1.MicroTime{Time: rt}
	if body.Annotations == nil {
		body.Annotations = map[string]string{}
	}
	body.Annotations[NonceAnnotation] = l.nonce
}

// isOurs reports whether obj names our Owner with our nonce.
func (l *KubernetesLease) isOurs(obj *wire.Lease) bool {
	return obj.Spec.Holder() == l.s.Owner && obj.Annotations[NonceAnnotation] == l.nonce
}
