package leasetest

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubelease/lease"
)

// scReleaseThenPeerAcquires: Release deletes the Lease, so a peer that was
// refused acquires at once, with no clock moving; Release is idempotent
// and calls no OnLost handler.
func scReleaseThenPeerAcquires(sc *scenario) {
	a := sc.newLease("conf-a")
	tokA := sc.acquire(a)
	b := sc.newLease("conf-b")
	sc.acquireFalse(b, "live holder")
	sc.release(a)
	if rec := sc.rest.get(sc.name); rec != nil {
		sc.t.Errorf("lease after Release: present (holder %q), want deleted", rec.Spec.Holder())
	}
	tokB := sc.acquire(b)
	sc.tokenAfter(tokB, tokA)
	sc.release(a) // again: not held, nil, and b's lease untouched
	if got := sc.rest.mustGet(sc.name); got.Spec.Holder() != "conf-b" || got.ResourceVersion != tokB.ResourceVersion {
		sc.t.Errorf("record after a second Release by the old holder: holder %q resourceVersion %s, want %q %s",
			got.Spec.Holder(), got.ResourceVersion, "conf-b", tokB.ResourceVersion)
	}
	sc.noLoss(a)
	sc.checkHeld(b, tokB)
}

// scReleaseNeverDeletesOthers: a holder that has not yet noticed that
// someone else holds the Lease now (a spec edit, or a delete and a peer's
// re-create) releases without deleting or changing it.
func scReleaseNeverDeletesOthers(sc *scenario) {
	a := sc.newLease("conf-a")
	sc.acquire(a)
	taken := sc.rest.edit(sc.name, func(l *Lease) {
		holder := "conf-other"
		l.Spec.HolderIdentity = &holder
		l.Spec.RenewTime = &metav1.MicroTime{Time: a.clk.Now()}
		l.Annotations[lease.NonceAnnotation] = "other"
	})
	sc.release(a)
	if got := sc.rest.get(sc.name); got == nil || got.ResourceVersion != taken.ResourceVersion {
		sc.t.Fatalf("record taken by a third party after the old holder's Release: got %v, want resourceVersion %s untouched", describe(got), taken.ResourceVersion)
	}
	sc.noLoss(a)

	// Deleted and re-created by a peer behind the holder's back.
	sc.rest.remove(sc.name)
	sc.acquire(a)
	sc.rest.remove(sc.name)
	b := sc.newLease("conf-b")
	tokB := sc.acquire(b)
	sc.release(a)
	if got := sc.rest.get(sc.name); got == nil || got.ResourceVersion != tokB.ResourceVersion || got.Spec.Holder() != "conf-b" {
		sc.t.Fatalf("peer's re-created record after the old holder's Release: got %v, want holder conf-b resourceVersion %s", describe(got), tokB.ResourceVersion)
	}
	sc.checkHeld(b, tokB)
}

// describe summarizes a Lease (or its absence) for a failure message.
func describe(l *Lease) string {
	if l == nil {
		return "absent"
	}
	return "holder " + l.Spec.Holder() + " uid " + string(l.UID) + " resourceVersion " + l.ResourceVersion
}

// scTokensIncrease: fencing tokens strictly increase across acquires by
// create, release, re-create by a third party, take-over of a free record
// and take-over of an expired one; and a token survives String/ParseToken.
func scTokensIncrease(sc *scenario) {
	a := sc.newLease("conf-a")
	b := sc.newLease("conf-b")
	var toks []lease.Token
	toks = append(toks, sc.acquire(a)) // create
	sc.release(a)
	toks = append(toks, sc.acquire(b)) // create again: a new uid
	sc.release(b)
	sc.rest.create(sc.record("", confEpoch, 60, 0)) // re-created free by a third party
	toks = append(toks, sc.acquire(a))              // take over a free record
	if toks[2].Transitions != 1 {
		sc.t.Errorf("transitions after taking over a free record: got %d, want 1", toks[2].Transitions)
	}
	sc.rest.remove(sc.name) // behind a's back
	sc.rest.create(sc.record("conf-ghost", confEpoch.Add(-time.Hour), 15, 5))
	toks = append(toks, sc.acquire(b)) // take over an expired record
	if toks[3].Transitions != 6 {
		sc.t.Errorf("transitions after taking over an expired record: got %d, want 6", toks[3].Transitions)
	}
	for i := 1; i < len(toks); i++ {
		sc.tokenAfter(toks[i], toks[i-1])
	}
	for _, tok := range toks {
		if got, err := lease.ParseToken(tok.String()); err != nil || got != tok {
			sc.t.Errorf("ParseToken(%q): got (%v, %v), want (%v, nil)", tok.String(), got, err, tok)
		}
	}
	sc.release(a) // a never noticed: its Release must leave b's lease alone
	if got := sc.rest.get(sc.name); got == nil || got.ResourceVersion != toks[3].ResourceVersion {
		sc.t.Errorf("b's record after a's Release: got %v, want resourceVersion %s", describe(got), toks[3].ResourceVersion)
	}
}
