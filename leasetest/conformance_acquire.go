package leasetest

import (
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubelease/lease"
)

// record returns a Lease named like the scenario's, as a third party
// writes it: holder (none if ""), renewTime = acquireTime = renew (none if
// zero), leaseDurationSeconds dur (none if 0) and leaseTransitions.
func (sc *scenario) record(holder string, renew time.Time, dur, transitions int32) *Lease {
	l := &Lease{}
	l.Name = sc.name
	if holder != "" {
		l.Spec.HolderIdentity = &holder
	}
	if dur != 0 {
		l.Spec.LeaseDurationSeconds = &dur
	}
	if !renew.IsZero() {
		l.Spec.RenewTime = &metav1.MicroTime{Time: renew}
		l.Spec.AcquireTime = &metav1.MicroTime{Time: renew}
	}
	l.Spec.LeaseTransitions = &transitions
	return l
}

// checkTakenOver requires that rec, the Lease after c took over before
// with token tok, names c, has the given transitions and the same uid as
// before, and that tok is rec's and larger than before's resourceVersion.
func (sc *scenario) checkTakenOver(c *contender, before, rec *Lease, tok lease.Token, transitions int32) {
	sc.t.Helper()
	if got := rec.Spec.Holder(); got != c.owner {
		sc.t.Errorf("holderIdentity: got %q, want %q", got, c.owner)
	}
	if got := rec.Spec.Transitions(); got != transitions {
		sc.t.Errorf("leaseTransitions: got %d, want %d", got, transitions)
	}
	if rec.UID != before.UID {
		sc.t.Errorf("uid: got %s, want %s (taken over, not re-created)", rec.UID, before.UID)
	}
	if want := (lease.Token{ResourceVersion: rec.ResourceVersion, Transitions: transitions}); tok != want {
		sc.t.Errorf("token: got %v, want %v", tok, want)
	}
	sc.tokenAfter(tok, lease.Token{ResourceVersion: before.ResourceVersion})
	if !c.CheckAlive() {
		sc.t.Errorf("CheckAlive after taking over: got false, want true")
	}
}

// tokenAfter requires that later compares strictly greater than earlier.
func (sc *scenario) tokenAfter(later, earlier lease.Token) {
	sc.t.Helper()
	cmp, err := later.Compare(earlier)
	if err != nil || cmp != 1 {
		sc.t.Errorf("%v.Compare(%v): got (%d, %v), want (1, nil)", later, earlier, cmp, err)
	}
}

// scCreate: Acquire on an absent Lease creates it and holds it.
func scCreate(sc *scenario) {
	if sc.rest.get(sc.name) != nil {
		sc.t.Fatalf("lease %s exists before the scenario", sc.name)
	}
	a := sc.newLease("conf-a")
	tok := sc.acquire(a)
	rec := sc.rest.mustGet(sc.name)
	if got := rec.Spec.Holder(); got != "conf-a" {
		sc.t.Errorf("holderIdentity: got %q, want %q", got, "conf-a")
	}
	if d := rec.Spec.LeaseDurationSeconds; d == nil || *d != int32(confTTL/time.Second) {
		sc.t.Errorf("leaseDurationSeconds: got %v, want %d", d, confTTL/time.Second)
	}
	if rec.Spec.LeaseTransitions == nil || *rec.Spec.LeaseTransitions != 0 {
		sc.t.Errorf("leaseTransitions: got %v, want 0", rec.Spec.LeaseTransitions)
	}
	if rt := rec.Spec.RenewTime; rt == nil || !rt.Time.Equal(confEpoch) {
		sc.t.Errorf("renewTime: got %v, want %v", rt, confEpoch)
	}
	if at := rec.Spec.AcquireTime; at == nil || !at.Time.Equal(confEpoch) {
		sc.t.Errorf("acquireTime: got %v, want %v", at, confEpoch)
	}
	if rec.Annotations[lease.NonceAnnotation] == "" {
		sc.t.Errorf("annotation %s: missing", lease.NonceAnnotation)
	}
	if want := (lease.Token{ResourceVersion: rec.ResourceVersion}); tok != want {
		sc.t.Errorf("token: got %v, want %v", tok, want)
	}
	if !a.CheckAlive() {
		sc.t.Errorf("CheckAlive: got false, want true")
	}
	if got, ok := a.Token(); !ok || got != tok {
		sc.t.Errorf("Token(): got (%v, %v), want (%v, true)", got, ok, tok)
	}
	// Acquire while held: the same token, and nothing written.
	if again := sc.acquire(a); again != tok {
		sc.t.Errorf("second Acquire: got token %v, want %v", again, tok)
	}
	if after := sc.rest.mustGet(sc.name); after.ResourceVersion != rec.ResourceVersion {
		sc.t.Errorf("resourceVersion after a second Acquire: got %s, want %s (no write)", after.ResourceVersion, rec.ResourceVersion)
	}
}

// scTakeOverFree: a Lease that names no holder is taken over at once.
func scTakeOverFree(sc *scenario) {
	before := sc.rest.create(sc.record("", confEpoch, 60, 7))
	a := sc.newLease("conf-a")
	tok := sc.acquire(a)
	sc.checkTakenOver(a, before, sc.rest.mustGet(sc.name), tok, 8)
}

// scTakeOverOwn: a Lease that names our Owner (a restarted process, with
// another nonce) is taken over at once, without counting a transition.
func scTakeOverOwn(sc *scenario) {
	rec := sc.record("conf-a", confEpoch, 60, 3)
	rec.Annotations = map[string]string{lease.NonceAnnotation: "previous-process"}
	before := sc.rest.create(rec)
	a := sc.newLease("conf-a")
	tok := sc.acquire(a)
	after := sc.rest.mustGet(sc.name)
	sc.checkTakenOver(a, before, after, tok, 3)
	if n := after.Annotations[lease.NonceAnnotation]; n == "previous-process" || n == "" {
		sc.t.Errorf("nonce annotation: got %q, want this instance's own", n)
	}
}

// scTakeOverExpiredObserved: with the fast path off, a record is expired
// once it has been observed unchanged for its own leaseDurationSeconds,
// however old its renewTime.
func scTakeOverExpiredObserved(sc *scenario) {
	before := sc.rest.create(sc.record("conf-other", confEpoch.Add(-time.Hour), 15, 2))
	a := sc.newLease("conf-a", func(s *lease.Settings) { s.MaxClockSkew = -1 })
	sc.acquireFalse(a, "first look at a live record, fast path off")
	a.clk.Step(15*time.Second - time.Millisecond)
	sc.acquireFalse(a, "observed unchanged for 1ms less than its duration")
	if got := sc.rest.mustGet(sc.name); got.ResourceVersion != before.ResourceVersion {
		sc.t.Fatalf("record written by failed acquires: resourceVersion %s, want %s", got.ResourceVersion, before.ResourceVersion)
	}
	a.clk.Step(time.Millisecond)
	tok := sc.acquire(a)
	sc.checkTakenOver(a, before, sc.rest.mustGet(sc.name), tok, 3)
}

// scTakeOverExpiredFastPath: with the fast path on, a record whose
// renewTime + leaseDurationSeconds + MaxClockSkew is before our wall clock
// is expired at first sight; one at exactly that instant is not.
func scTakeOverExpiredFastPath(sc *scenario) {
	sc.rest.create(sc.record("conf-other", confEpoch.Add(-16*time.Second), 15, 2))
	a := sc.newLease("conf-a") // MaxClockSkew: the default, 1s
	sc.acquireFalse(a, "renewTime + 15s + 1s skew is now")
	before := sc.rest.edit(sc.name, func(l *Lease) {
		l.Spec.RenewTime = &metav1.MicroTime{Time: confEpoch.Add(-16*time.Second - time.Microsecond)}
	})
	tok := sc.acquire(a)
	sc.checkTakenOver(a, before, sc.rest.mustGet(sc.name), tok, 3)
}

// scLiveConflictFalse: a live holder makes Acquire return false, nil, and
// the record is not written.
func scLiveConflictFalse(sc *scenario) {
	a := sc.newLease("conf-a")
	sc.acquire(a)
	before := sc.rest.mustGet(sc.name)
	b := sc.newLease("conf-b")
	sc.acquireFalse(b, "live holder")
	b.clk.Step(30 * time.Second)
	sc.acquireFalse(b, "live holder, renewed 30s ago by our clock, duration 60s")
	if after := sc.rest.mustGet(sc.name); after.ResourceVersion != before.ResourceVersion || after.Spec.Holder() != "conf-a" {
		sc.t.Errorf("record after failed acquires: holder %q resourceVersion %s, want %q %s",
			after.Spec.Holder(), after.ResourceVersion, "conf-a", before.ResourceVersion)
	}
	if !a.CheckAlive() {
		sc.t.Errorf("holder's CheckAlive: got false, want true")
	}
}

// scConcurrentAcquirers: eight leases on real clocks race for an absent
// Lease: exactly one gets true, the others false with no error.
func scConcurrentAcquirers(sc *scenario) {
	const n = 8
	cs := make([]*contender, n)
	for i := range cs {
		cs[i] = sc.newLease("conf-racer-"+string(rune('a'+i)), func(s *lease.Settings) { s.Clock = nil })
	}
	start := make(chan struct{})
	oks := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, c := range cs {
		ctx := sc.ctx()
		wg.Go(func() {
			<-start
			oks[i], errs[i] = c.Acquire(ctx)
		})
	}
	close(start)
	wg.Wait()
	winner := ""
	for i, c := range cs {
		if errs[i] != nil {
			sc.t.Errorf("%s: Acquire: got error %v, want nil", c.owner, errs[i])
		}
		if !oks[i] {
			continue
		}
		if winner != "" {
			sc.t.Errorf("two winners: %s and %s", winner, c.owner)
		}
		winner = c.owner
	}
	if winner == "" {
		sc.t.Fatalf("no winner among %d acquirers", n)
	}
	if got := sc.rest.mustGet(sc.name).Spec.Holder(); got != winner {
		sc.t.Errorf("holderIdentity: got %q, want the winner %q", got, winner)
	}
}
