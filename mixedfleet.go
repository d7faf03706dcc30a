package lease

import (
	"errors"
	"fmt"
	"time"

	"github.com/kubelease/lease/internal/wire"
)

// ErrUnsafeWithClientGo is matched by the error Acquire returns when the
// Lease was last written by a holder that is not kubelease (in practice
// client-go's LeaderElector, during a migration) and this lease renews so
// often that such a contender cannot see its renewals.
//
// client-go's LeaderElector tells records apart by their JSON with
// renewTime in whole seconds, and times a holder's expiry from when it
// first saw the record change. Two renewals within one second look like
// one to it: it keeps timing from the first, and can take the Lease over
// while a kubelease holder whose later renewal it did not notice still
// holds (TestMixedFleetUnsafeSubSecondRenewals in e2e shows 0.66–0.75 s of
// two leaders with RenewalInterval 300 ms). So a lease that may renew less
// than one second after its previous renewal refuses to contend for a
// Lease a foreign writer has written: raise RenewalInterval to at least
// MinMixedFleetRenewalInterval (with TTL well above it), or keep client-go
// off the Lease.
var ErrUnsafeWithClientGo = errors.New("lease: renewals less than a second apart are unsafe against client-go contenders")

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

// checkMixedFleet refuses to contend for obj when it was written by a
// foreign writer and this lease may renew less than a second apart.
func (l *KubernetesLease) checkMixedFleet(obj *wire.Lease) error {
	if obj == nil {
		return nil
	}
	gap := l.minRenewalGap()
	if gap >= time.Second {
		return nil
	}
	why, foreign := foreignWriter(obj)
	if !foreign {
		return nil
	}
	return fmt.Errorf("%w: %s/%s was written by a leader election that is not kubelease (client-go?): %s. "+
		"client-go sees a renewal only when renewTime changes in whole seconds, and this lease (TTL %v, RenewalInterval %v) may renew %v after the previous renewal, "+
		"so a client-go contender could take the Lease while this process holds it: set RenewalInterval to at least %v and TTL to at least 2.2s (at the default RenewalInterval, TTL/3: TTL 3.336s or more), or keep client-go off this Lease",
		ErrUnsafeWithClientGo, l.s.Namespace, l.s.Name, why, l.s.TTL, l.s.RenewalInterval, gap.Round(time.Millisecond), MinMixedFleetRenewalInterval)
}
