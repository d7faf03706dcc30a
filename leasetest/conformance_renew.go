package leasetest

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
)

// checkHeld requires that c still holds its tenure tok, with no OnLost.
func (sc *scenario) checkHeld(c *contender, tok lease.Token) {
	sc.t.Helper()
	sc.noLoss(c)
	if !c.CheckAlive() {
		sc.t.Errorf("%s: CheckAlive: got false, want true", c.owner)
	}
	if got, ok := c.Token(); !ok || got != tok {
		sc.t.Errorf("%s: Token(): got (%v, %v), want (%v, true)", c.owner, got, ok, tok)
	}
}

// scRenewalKeepsLease: renewals move renewTime forward and keep the
// tenure: same token, holder, acquireTime, transitions, uid and nonce.
func scRenewalKeepsLease(sc *scenario) {
	a := sc.newLease("conf-a")
	tok := sc.acquire(a)
	prev := sc.rest.mustGet(sc.name)
	for i := range 3 {
		rec := sc.awaitRenewal(a, prev.Spec.RenewTime.Time)
		if rec.ResourceVersion == prev.ResourceVersion {
			sc.t.Errorf("renewal %d: resourceVersion unchanged (%s)", i+1, rec.ResourceVersion)
		}
		if now := a.clk.Now(); rec.Spec.RenewTime.After(now) {
			sc.t.Errorf("renewal %d: renewTime %v is after the holder's clock %v", i+1, rec.Spec.RenewTime, now)
		}
		if rec.UID != prev.UID || rec.Spec.Holder() != prev.Spec.Holder() ||
			rec.Spec.Transitions() != prev.Spec.Transitions() ||
			!rec.Spec.AcquireTime.Equal(prev.Spec.AcquireTime) ||
			rec.Annotations[lease.NonceAnnotation] != prev.Annotations[lease.NonceAnnotation] {
			sc.t.Errorf("renewal %d changed more than renewTime:\n got uid %s holder %q transitions %d acquireTime %v nonce %q\nwant uid %s holder %q transitions %d acquireTime %v nonce %q",
				i+1, rec.UID, rec.Spec.Holder(), rec.Spec.Transitions(), rec.Spec.AcquireTime, rec.Annotations[lease.NonceAnnotation],
				prev.UID, prev.Spec.Holder(), prev.Spec.Transitions(), prev.Spec.AcquireTime, prev.Annotations[lease.NonceAnnotation])
		}
		prev = rec
	}
	sc.checkHeld(a, tok)
}

// scLabelEditNotLoss: a label edited by a third party between renewals
// makes the next renewal's PUT conflict; that is not a loss, and the label
// is kept.
func scLabelEditNotLoss(sc *scenario) {
	a := sc.newLease("conf-a")
	tok := sc.acquire(a)
	sc.awaitRenewal(a, confEpoch)
	edited := sc.rest.edit(sc.name, func(l *Lease) {
		if l.Labels == nil {
			l.Labels = map[string]string{}
		}
		l.Labels["conf-edited"] = "yes"
	})
	rec := sc.awaitRenewal(a, edited.Spec.RenewTime.Time)
	if rec.Labels["conf-edited"] != "yes" {
		sc.t.Errorf("labels after the renewal: got %v, want conf-edited=yes kept", rec.Labels)
	}
	sc.checkHeld(a, tok)
	rec = sc.awaitRenewal(a, rec.Spec.RenewTime.Time)
	if rec.Labels["conf-edited"] != "yes" {
		sc.t.Errorf("labels after a second renewal: got %v, want conf-edited=yes kept", rec.Labels)
	}
	sc.checkHeld(a, tok)
}

// scUnmodelledFieldsSurvive: labels, annotations, ownerReferences and the
// spec fields kubelease does not model survive acquiring and renewing.
func scUnmodelledFieldsSurvive(sc *scenario) {
	// The owner is a real object, so that a garbage collector leaves the
	// Lease alone.
	ownerName := sc.name + "-owner"
	sc.t.Cleanup(func() { sc.rest.remove(ownerName) })
	owner := &Lease{}
	owner.Name = ownerName
	owner = sc.rest.create(owner)

	rec := sc.record("", time.Time{}, 0, 0)
	rec.Labels = map[string]string{"app": "conf", "tier": "x"}
	rec.Annotations = map[string]string{"example.com/note": "keep me"}
	rec.OwnerReferences = []metav1.OwnerReference{{APIVersion: wire.APIVersion, Kind: wire.Kind, Name: ownerName, UID: owner.UID}}
	rec.Spec.Unknown = map[string]json.RawMessage{
		"strategy":        json.RawMessage(`"OldestEmulationVersion"`),
		"preferredHolder": json.RawMessage(`"conf-preferred"`),
	}
	stored := sc.rest.create(rec)
	// Whatever the server kept on create must survive; it must keep
	// metadata as written.
	if !maps.Equal(stored.Labels, rec.Labels) || stored.Annotations["example.com/note"] != "keep me" ||
		!reflect.DeepEqual(stored.OwnerReferences, rec.OwnerReferences) {
		sc.t.Fatalf("server did not store the metadata as written: labels %v annotations %v ownerReferences %v",
			stored.Labels, stored.Annotations, stored.OwnerReferences)
	}
	sc.t.Logf("unmodelled spec fields the server kept: %v", keys(stored.Spec.Unknown))

	a := sc.newLease("conf-a")
	tok := sc.acquire(a)
	got := sc.rest.mustGet(sc.name)
	sc.checkKept("after acquiring", stored, got)
	for i := range 2 {
		got = sc.awaitRenewal(a, got.Spec.RenewTime.Time)
		sc.checkKept("after renewal "+string(rune('1'+i)), stored, got)
	}
	sc.checkHeld(a, tok)
}

// checkKept requires that got has every label, annotation, ownerReference
// and unmodelled spec field of want.
func (sc *scenario) checkKept(when string, want, got *Lease) {
	sc.t.Helper()
	if !maps.Equal(got.Labels, want.Labels) {
		sc.t.Errorf("%s: labels: got %v, want %v", when, got.Labels, want.Labels)
	}
	for k, v := range want.Annotations {
		if got.Annotations[k] != v {
			sc.t.Errorf("%s: annotation %s: got %q, want %q", when, k, got.Annotations[k], v)
		}
	}
	if !reflect.DeepEqual(got.OwnerReferences, want.OwnerReferences) {
		sc.t.Errorf("%s: ownerReferences: got %v, want %v", when, got.OwnerReferences, want.OwnerReferences)
	}
	if len(got.Spec.Unknown) != len(want.Spec.Unknown) {
		sc.t.Errorf("%s: unmodelled spec fields: got %v, want %v", when, keys(got.Spec.Unknown), keys(want.Spec.Unknown))
	}
	for k, v := range want.Spec.Unknown {
		if !jsonEqual(got.Spec.Unknown[k], v) {
			sc.t.Errorf("%s: spec.%s: got %s, want %s", when, k, got.Spec.Unknown[k], v)
		}
	}
}

// keys returns the keys of m, sorted.
func keys(m map[string]json.RawMessage) []string {
	return slices.Sorted(maps.Keys(m))
}

// jsonEqual reports whether a and b are the same JSON value.
func jsonEqual(a, b json.RawMessage) bool {
	var x, y bytes.Buffer
	if json.Compact(&x, a) != nil || json.Compact(&y, b) != nil {
		return false
	}
	return bytes.Equal(x.Bytes(), y.Bytes())
}

// scCompetitorTakeoverConflict: a third party that writes another holder
// into the spec ends the tenure at the next renewal with LostConflict
// naming that holder, and the holder does not write over it.
func scCompetitorTakeoverConflict(sc *scenario) {
	a := sc.newLease("conf-a")
	tok := sc.acquire(a)
	taken := sc.rest.edit(sc.name, func(l *Lease) {
		holder := "conf-competitor"
		l.Spec.HolderIdentity = &holder
		l.Spec.RenewTime = &metav1.MicroTime{Time: a.clk.Now()}
		l.Annotations[lease.NonceAnnotation] = "competitor"
	})
	le := sc.awaitLoss(a)
	if le.Reason != lease.LostConflict || le.Holder != "conf-competitor" || le.Token != tok {
		sc.t.Errorf("LostError: got reason %q holder %q token %v, want %q %q %v",
			le.Reason, le.Holder, le.Token, lease.LostConflict, "conf-competitor", tok)
	}
	sc.release(a)
	after := sc.rest.mustGet(sc.name)
	if after.ResourceVersion != taken.ResourceVersion || after.Spec.Holder() != "conf-competitor" {
		sc.t.Errorf("competitor's record after the loss and Release: holder %q resourceVersion %s, want %q %s (untouched)",
			after.Spec.Holder(), after.ResourceVersion, "conf-competitor", taken.ResourceVersion)
	}
}

// scDeleteLost: a third-party delete ends the tenure at the next renewal
// with LostDeleted, the Lease is not re-created by the renewal, and the
// same instance can then acquire a new tenure with a larger token.
func scDeleteLost(sc *scenario) {
	a := sc.newLease("conf-a")
	tok := sc.acquire(a)
	sc.rest.remove(sc.name)
	le := sc.awaitLoss(a)
	if le.Reason != lease.LostDeleted || le.Token != tok {
		sc.t.Errorf("LostError: got reason %q token %v, want %q %v", le.Reason, le.Token, lease.LostDeleted, tok)
	}
	if rec := sc.rest.get(sc.name); rec != nil {
		sc.t.Fatalf("lease re-created after the delete (holder %q): a renewal must not re-create it", rec.Spec.Holder())
	}
	tok2 := sc.acquire(a)
	sc.tokenAfter(tok2, tok)
	sc.checkHeld(a, tok2)
}

// scSameOwnerTwoInstances: two live instances with one Owner are told
// apart by their nonces: the one that wrote last keeps the lease, the
// other ends with LostConflict at its next renewal and writes nothing.
func scSameOwnerTwoInstances(sc *scenario) {
	a := sc.newLease("conf-same")
	b := sc.newLease("conf-same")
	tokA := sc.acquire(a)
	nonceA := sc.rest.mustGet(sc.name).Annotations[lease.NonceAnnotation]
	tokB := sc.acquire(b)
	recB := sc.rest.mustGet(sc.name)
	nonceB := recB.Annotations[lease.NonceAnnotation]
	if nonceB == nonceA || nonceB == "" {
		sc.t.Errorf("nonces: got %q then %q, want two different ones", nonceA, nonceB)
	}
	sc.tokenAfter(tokB, tokA)
	if tokB.Transitions != tokA.Transitions {
		sc.t.Errorf("transitions: got %d, want %d (same holder)", tokB.Transitions, tokA.Transitions)
	}
	le := sc.awaitLoss(a)
	if le.Reason != lease.LostConflict || le.Holder != "conf-same" || le.Token != tokA {
		sc.t.Errorf("LostError: got reason %q holder %q token %v, want %q %q %v",
			le.Reason, le.Holder, le.Token, lease.LostConflict, "conf-same", tokA)
	}
	if rec := sc.rest.mustGet(sc.name); rec.ResourceVersion != recB.ResourceVersion {
		sc.t.Errorf("record after the loser's renewal: resourceVersion %s, want %s (untouched)", rec.ResourceVersion, recB.ResourceVersion)
	}
	rec := sc.awaitRenewal(b, recB.Spec.RenewTime.Time)
	if n := rec.Annotations[lease.NonceAnnotation]; n != nonceB {
		sc.t.Errorf("nonce after the winner's renewal: got %q, want %q", n, nonceB)
	}
	sc.checkHeld(b, tokB)
}

// scDeadlineLossReleaseFrees: a holder whose deadline passes loses with
// LostDeadline; its Release then still deletes the record that names it,
// so that a peer acquires at once.
func scDeadlineLossReleaseFrees(sc *scenario) {
	a := sc.newLease("conf-a")
	tok := sc.acquire(a)
	b := sc.newLease("conf-b")
	sc.acquireFalse(b, "live holder")
	a.clk.Step(confTTL) // past the deadline in one step: no renewal in between
	if a.CheckAlive() {
		sc.t.Fatalf("CheckAlive a TTL after the last renewal: got true, want false")
	}
	le := sc.waitLost(a)
	if le.Reason != lease.LostDeadline || le.Token != tok {
		sc.t.Errorf("LostError: got reason %q token %v, want %q %v", le.Reason, le.Token, lease.LostDeadline, tok)
	}
	if got := sc.rest.mustGet(sc.name).Spec.Holder(); got != "conf-a" {
		sc.t.Errorf("holder before Release: got %q, want %q", got, "conf-a")
	}
	sc.release(a)
	if rec := sc.rest.get(sc.name); rec != nil {
		sc.t.Errorf("lease after Release of a tenure lost by deadline: present (holder %q), want deleted", rec.Spec.Holder())
	}
	tokB := sc.acquire(b)
	sc.tokenAfter(tokB, tok)
}

// waitLost waits, without stepping any clock, for c's OnLost handler.
func (sc *scenario) waitLost(c *contender) *lease.LostError {
	sc.t.Helper()
	select {
	case err := <-c.lost:
		return sc.lostError(c, err)
	case <-time.After(realWait):
		sc.t.Fatalf("%s: OnLost not called within %v", c.owner, realWait)
		return nil
	}
}
