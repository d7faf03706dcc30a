// Package lease holds a lease on a Kubernetes coordination.k8s.io/v1 Lease,
// so that at most one process at a time does a job: a ClusterSingleton, a
// leader, a migration, a cron that must not run twice. It speaks the
// Kubernetes REST API over net/http; it does not need client-go.
//
// # Use
//
//	l, err := lease.NewKubernetesLease(lease.Settings{
//		Name:   "nightly-report",
//		Owner:  podName + "-" + randomSuffix, // unique per live process
//		Config: cfg,                           // lease.DefaultConfig()
//	})
//	ok, err := l.Acquire(ctx)
//	if ok {
//		defer l.Release(context.Background())
//		for work remains && l.CheckAlive() { do a bounded step of it }
//	}
//
// # The guarantee
//
// At most one process has CheckAlive() == true for a lease at any instant,
// provided that
//
//   - Owners are unique among live processes (use the pod name plus a random
//     suffix per process start),
//   - nobody but kubelease writes the Lease object, and
//   - for the wall-clock fast path only (rule (b) below), the wall clocks of
//     the contending processes agree within Settings.MaxClockSkew. Set
//     MaxClockSkew < 0 to turn the fast path off; the guarantee then holds
//     under any clock offset.
//
// The Kubernetes API server is the arbiter: every acquiring or renewing write
// is a compare-and-swap on the Lease's resourceVersion.
//
// # Timing
//
// A holder stamps every acquiring or renewing write with one clock reading
// taken before it is sent. If the write succeeds, the holder believes it holds
// the lease until stamp + TTL − margin, where margin is TTL/50 (2 %, 300 ms for
// the default 15 s TTL); it absorbs clock-rate differences between processes.
// CheckAlive checks this deadline on both the monotonic clock and the wall
// clock on every call, with no I/O: a process that was suspended (its
// monotonic clock stopped, its wall clock did not) wakes up with
// CheckAlive() == false. The first failed check ends the tenure for good.
// CheckAlive turns false on time even while a renewal request hangs.
// Limit: a process suspended past its deadline whose wall clock is also
// stepped back before it resumes (both clocks then say little time passed)
// cannot tell, and believes it holds until its next renewal finds the
// Lease taken; nothing local can detect that, and only fencing with the
// token protects against it (the runner fault campaign meets it in about
// one schedule in a thousand, and reports it apart).
//
// The holder renews every RenewalInterval (default TTL/3) ± 10 % uniform
// jitter, so on average once per RenewalInterval (12 PUTs a minute at the
// default TTL), with one PUT of the object it last wrote: no GET on the
// happy path. The wait is cut, if need be, so that a full attempt of
// min(10 s, RenewalInterval) fits before the deadline. Each attempt takes a
// stamp of its own, and only its own success moves the deadline. Its
// timeout is min(10 s, RenewalInterval, max(R/3, 1 s), R), where R is the
// time left before the deadline: shorter as the deadline nears, never past
// it. An attempt that times out closes the connection it went out on (on
// the library's own transport), so the retry dials afresh. A failed attempt
// is retried after a jittered exponential backoff from 100–200 ms, capped at
// 1 s (and at RenewalInterval), or after the server's Retry-After when
// longer; no wait ends later than 250 ms before the deadline, so a last
// attempt always fits.
//
// So the lease is kept through any outage that ends 1.5 s or more before
// the deadline: connections refused or reset, error answers, or a blackhole
// that holds or drops the bytes; provided that, once reachable, the server
// answers within 250 ms on a fresh connection and asks for no Retry-After
// over 1 s, and that the transport is the library's own (Config.HTTPClient
// unset). After a refusal, reset or error answer, an attempt starts within
// 1 s of the server answering again, unless the deadline comes first.
//
// A 409 or 404 makes it re-read the Lease: if the record still names
// this instance (same Owner, same nonce, same uid) it writes again from the
// fresh copy, keeping what others changed; a 404 or a new uid ends the tenure
// with LostDeleted; another holder, or none, ends it with LostConflict. When
// the deadline passes without a successful renewal the tenure ends with
// LostDeadline, wrapping the last error.
//
// A contender takes over a Lease that names no holder, names its own Owner (a
// restarted process, or an acquire whose answer was lost), or has expired. A
// record has expired when either
//
//	(a) its spec (holder, renewTime, leaseDurationSeconds, leaseTransitions)
//	    has been seen unchanged for its own leaseDurationSeconds, timed on the
//	    contender's monotonic clock from when the answer carrying it was
//	    received. This is client-go's rule and is safe under any clock offset.
//	    Edits of labels or annotations do not reset it.
//	(b) renewTime + leaseDurationSeconds + MaxClockSkew is before the
//	    contender's wall clock: the fast path, which lets a process that starts
//	    after a crash take over without waiting a full lease duration.
//
// The record's own duration is used, not the contender's TTL; a missing or
// non-positive duration counts as the contender's TTL, and a duration above
// MaxLeaseDuration (1 h) is capped.
//
// # Fencing tokens
//
// AcquireWithToken and Token return a Token: the resourceVersion of the write
// that acquired the tenure and the leaseTransitions it wrote. On Kubernetes
// 1.35 and later resourceVersions are comparable integers, so tokens of later
// tenures are strictly greater (Token.Compare), across releases and
// re-creations of the Lease. A lease alone cannot stop a holder that was
// paused after its last CheckAlive from acting late; a fenced store can. The
// recipe: a new holder first writes its token to the fenced store, which
// remembers the highest token it has seen and refuses writes carrying a
// smaller one; only then does it start work, passing its token with every
// write.
//
// # Limits
//
//   - Owner uniqueness is part of the promise. Two live instances with one
//     Owner are told apart by a random per-instance nonce written in the
//     annotation kubelease.io/nonce: the one that wrote last keeps the lease
//     and the other loses at its next renewal, but until then both report
//     CheckAlive() == true.
//   - A third party that deletes the Lease or edits its spec can let a
//     contender in before the holder notices, at its next renewal at the
//     latest (client-go has the same limit). The overlap ends by the old
//     holder's deadline.
//   - CheckAlive() == true is a statement about the instant it was called.
//     Work done after it returns must be fenced (above) or bounded well below
//     the remaining time.
//   - The wall-clock fast path trusts MaxClockSkew. If clocks may disagree by
//     more, set MaxClockSkew accordingly or turn the fast path off.
//
// # Release and loss
//
// Release stops renewing and deletes the Lease with uid and resourceVersion
// preconditions, so a peer can acquire at once and no one else's lease is
// ever deleted. OnLost handlers run once per tenure lost without a Release,
// each on a goroutine of its own, after CheckAlive has turned false, with a
// *LostError that says why (LostConflict, LostDeleted, LostDeadline) and which
// tenure (its Token) ended.
//
// # Running work
//
// RunSingleton runs a function only while the lease is held, and at most one
// at a time per lease instance (a second call on a busy instance returns
// ErrBusy). Its context is cancelled when the tenure ends: with the
// *LostError as cause when OnLost reports a loss, at most 250 ms of awake time
// after CheckAlive turned false when no timer saw it (a system suspend, a
// forward wall-clock step), and before a Release made elsewhere ends the
// tenure (that Release waits for the function to return). The lease is
// released only after the function has returned, and RunSingleton never
// returns holding a tenure it started (except ErrWorkDidNotStop). A loss can
// let a peer start while the function winds down: fence side effects with
// the token. While another
// process holds the lease, KubernetesLease.Wait watches it, so a Release
// wakes contenders within a round trip instead of a polling interval.
// Settings.WatchWhileHolding makes the holder watch too, ending its tenure at
// once when a third party deletes or takes the Lease. An Observer receives
// metrics events; HealthCheck reports a holder whose renewals have stopped.
//
// # Many leases, one watch
//
// A process that stands by for many Leases of one namespace (a shard set, a
// lease per tenant) can share one list+watch of them: NewNamespaceWatch
// selects them by label, Settings.Labels puts the label on every Lease a
// lease creates or takes over, and Settings.SharedWatch makes Wait and
// Holder use the shared watch instead of one watch per Lease. What it
// delivers counts for the expiry rules exactly as a lease's own reads. It
// needs "list" and "watch" on leases in the namespace, which a Role cannot
// restrict by resourceNames; the per-lease watch works with a Role that
// grants "watch" only on the Lease's name.
//
// # Namespace
//
// The Lease lives in Settings.Namespace, else the Config's namespace (from the
// kubeconfig context or the pod's service account), else "default".
package lease
