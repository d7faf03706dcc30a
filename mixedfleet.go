package lease

import (
	"fmt"
	"time"

	"github.com/kubelease/lease/internal/wire"
)

// Mixed fleets. client-go's LeaderElector tells records apart by their
// JSON with renewTime in whole seconds, and times a holder's expiry from
// when it first saw the record change. Two renewals within one second look
// like one to it: it keeps timing from the first, and can take the Lease
// over while a kubelease holder whose later renewal it did not notice still
// holds (TestMixedFleetUnsafeSubSecondRenewals in e2e shows 0.66–0.75 s of
// two leaders with RenewalInterval 300 ms). So a lease that may renew less
// than one second after its previous renewal warns, once per instance, when
// it finds a Lease a foreign writer has written: raise RenewalInterval to at
// least MinMixedFleetRenewalInterval (with TTL well above it), or keep
// client-go off the Lease. It warns rather than refuses: a record written
// by another tool (an operator's kubectl, a test) looks the same, and such
// short timings are legitimate among kubelease processes alone.

// MinMixedFleetRenewalInterval is the shortest RenewalInterval whose
// jittered waits (−10 %) keep renewals at least one second apart, so that
// client-go contenders see every one. At the default RenewalInterval
// (TTL/3) it means a TTL of 3.336 s or more; the default 15 s is far above.
const MinMixedFleetRenewalInterval = 1112 * time.Millisecond

// minRenewalGap is the shortest time between the stamps of two successful
// renewals on the happy path: the jittered wait, or the wait cut so that a
// full attempt fits before the deadline, whichever is shorter.
func (l *KubernetesLease) minRenewalGap() time.Duration {
	jittered := time.Duration((1 - renewJitter) * float64(l.s.RenewalInterval))
	cut := l.s.TTL - margin(l.s.TTL) - l.attemptTimeout()
	return min(jittered, cut)
}

// foreignWriter says whether obj was written by a writer that is not
// kubelease, and why it thinks so. It sees client-go's records: a holder
// written without kubelease's nonce annotation; a holder whose leaseTransitions
// moved past the token kubelease published (client-go keeps annotations it
// does not know when it takes a Lease over); a release that left no holder
// with leaseDurationSeconds 1 and no handoff target (client-go's
// ReleaseOnCancel). It cannot see a takeover of a Lease whose kubelease
// holder had not yet published its token.
func foreignWriter(obj *wire.Lease) (string, bool) {
	holder := obj.Spec.Holder()
	ann := obj.Annotations
	if holder == "" {
		if d := obj.Spec.LeaseDurationSeconds; d != nil && *d == 1 && ann[PreferredHolderAnnotation] == "" {
			return "it was released with no holder and leaseDurationSeconds 1, as client-go's ReleaseOnCancel does", true
		}
		return "", false
	}
	if ann[NonceAnnotation] == "" {
		return fmt.Sprintf("its holder %q wrote no %s annotation", holder, NonceAnnotation), true
	}
	if tok, err := ParseToken(ann[TokenAnnotation]); err == nil && tok.Transitions != obj.Spec.Transitions() {
		return fmt.Sprintf("its holder %q took it over without replacing the %s of an earlier kubelease tenure (transitions %d, the record %d)",
			holder, TokenAnnotation, tok.Transitions, obj.Spec.Transitions()), true
	}
	return "", false
}

// warnMixedFleet logs, once per instance, that obj was written by a
// foreign writer while this lease's renewals may come less than a second
// apart (see MinMixedFleetRenewalInterval). Acquire goes on as usual.
func (l *KubernetesLease) warnMixedFleet(obj *wire.Lease) {
	if obj == nil || l.mixedWarned.Load() {
		return
	}
	gap := l.minRenewalGap()
	if gap >= time.Second {
		return
	}
	why, foreign := foreignWriter(obj)
	if !foreign || l.mixedWarned.Swap(true) {
		return
	}
	l.log.Warn(fmt.Sprintf("kubelease: %s/%s was written by a leader election that is not kubelease (client-go?): %s. "+
		"client-go sees a renewal only when renewTime changes in whole seconds, and this lease (TTL %v, RenewalInterval %v) may renew %v after the previous renewal, "+
		"so a client-go contender could take the Lease while this process holds it: set RenewalInterval to at least %v and TTL to at least 2.2s (at the default RenewalInterval, TTL/3: TTL 3.336s or more), or keep client-go off this Lease",
		l.s.Namespace, l.s.Name, why, l.s.TTL, l.s.RenewalInterval, gap.Round(time.Millisecond), MinMixedFleetRenewalInterval))
}
