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
// timeout is min(10 s, RenewalInterval, max(R/2, 1 s), R), where R is the
// time left before the deadline: a renewal on time waits up to 4.85 s at
// the default TTL for a slow server's answer, shorter as the deadline
// nears, never past it. An attempt that times out closes the connection it went out on (on
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
// A holder that lost by deadline and can reach the server again deletes its
// record (Release does, and RunSingleton calls it after a loss), so a peer
// may then take over at once — always after that holder's deadline, never
// before (the partition campaign on kube-apiserver, e2e
// TestPartitionCampaign, meets it: the new Lease starts again at
// leaseTransitions 0, its token still greater).
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
//   - client-go's LeaderElector may contend for the same Lease (a rolling
//     migration) as long as kubelease's renewals are at least a second
//     apart (RenewalInterval ≥ MinMixedFleetRenewalInterval): client-go
//     sees renewTime in whole seconds only. A lease that may renew sooner
//     warns once (at Warn, naming the fix) when it finds a Lease another
//     library wrote, and contends as usual. See
//     docs/migrating-from-client-go.md.
//
// # Release and loss
//
// Release stops renewing and deletes the Lease with uid and resourceVersion
// preconditions, so a peer can acquire at once and no one else's lease is
// ever deleted. OnLost handlers run once per tenure lost without a Release,
// each on a goroutine of its own, after CheckAlive has turned false, with a
// *LostError that says why (LostConflict, LostDeleted, LostDeadline, or
// LostHandoff for a planned handoff) and which tenure (its Token) ended.
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
// # Kubernetes Events
//
// With Settings.EventSource set (off by default), a lease posts core/v1
// Events about its Lease, as client-go's leader election does, so that
// kubectl describe lease and kubectl get events show who led when: Normal,
// reason LeaderElection (EventReasonLeaderElection), "<Owner> became
// leader" on each acquire, "<Owner> stopped leading" on a Release of a held
// lease, "<Owner> handed the lease to <target>" on a planned handoff; and
// Warning, reason LeaseLost (EventReasonLeaseLost), "<Owner> lost the lease
// (<LostReason>[, now held by <holder>])" on a loss. They are best effort:
// queued without blocking (at most 32; more are dropped, counted and
// logged), posted in order by one goroutine that exists only while events
// are pending, each tried at most three times (no answer, 429 or 5xx; a
// refusal is not retried), with real-time timeouts and waits so that a test
// on a fake clock need not step it for them. A failure (a 403 when the
// Role lacks "create" on events in the core group) is logged once at Warn,
// later ones at Debug, and never affects the lease.
//
// # Planned handoff
//
// RequestHandoff(ctx, cfg, namespace, name, to) asks the holder to hand the
// lease to the contender whose Owner is to, for draining a node or a
// rolling update without a gap: it writes the annotation
// kubelease.io/preferred-holder (PreferredHolderAnnotation). A holder that
// sees a preferred holder other than itself — that annotation, or a
// spec.preferredHolder that changed during its tenure, where the server
// keeps that field (a default kube-apiserver 1.37 drops it) — ends its
// tenure as on a Release: RunSingleton cancels its work (cause: a
// *LostError with Reason LostHandoff and Holder to) and waits for it, then
// the Lease is left without a holder, naming to; OnLost handlers get the
// same LostHandoff, and RunSingleton contends again. It notices at once with
// WatchWhileHolding, else at its next renewal. Other contenders defer to
// to for Settings.HandoffWait (default TTL, from when each first sees the
// record free and naming to, on its own monotonic clock), then contend as
// usual; the acquiring write removes the annotation. The hooks get a
// context that ends after DefaultGracePeriod (or the TTL, if longer); if a
// hook refuses (returns an error), the lease stays held and the next
// Release hands it off. With no BeforeRelease hook (Acquire used directly)
// nothing stops work before the Lease is left to the target: CheckAlive
// turns false first and OnLost is told after the write, so register a
// BeforeRelease hook, fence with the token, or set DisableHandoff. A
// Release called while a step-down waits (RunSingleton's, a shutdown
// hook's) hands the Lease off too, as a Release: without OnLost.
// Settings.DisableHandoff turns it off for an instance;
// a ShardSet's and a Semaphore's Leases ignore it (their holders follow
// the assignment and the slots).
//
// The holder also publishes its fencing token in the annotation
// kubelease.io/token (TokenAnnotation) at its first renewal, and ReadLease,
// ListLeases and ForceRelease (a delete with the uid and resourceVersion
// that were read) serve operators; cmd/kubelease is the command line.
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
// # Shard sets
//
// A ShardSet spreads a fixed list of shards (partitions, tenants, queues)
// over the processes that run it, its members: NewShardSet, then Run
// (RunShards does both). Each member announces itself with a Lease of its
// own (MemberLeaseName), each shard is a Lease (ShardLeaseName), all
// labelled LabelShardSet, and each member sees them all through one
// NamespaceWatch: the API server is all that members share. A member
// counts the others live while their member Leases are held and not
// expired by rule (a) or (b) above, and itself while it holds its own.
// Every member computes the assignment (AssignShards) from the members it
// sees, and runs work for each shard assigned to it, under that shard's
// Lease as RunSingleton would, with the shard's fencing token.
//
// What carries over from the Lease: at most one member holds a shard at any
// instant, work for a shard runs only while its member holds the shard's
// Lease, and each new tenure of a shard has a greater token. A planned move
// does not overlap either: the old owner cancels its work (cause: an error
// matching ErrNotHeld), waits for it to return, and only then releases the
// shard's Lease; work that does not return within GracePeriod keeps the
// shard held until it does. What can overlap: a tenure that is lost rather
// than handed over (renewals failing until the deadline, a process paused)
// cancels its work within 250 ms of awake time after CheckAlive turned
// false, as RunSingleton does, but a member that takes the shard over once
// its Lease has expired may start while that work is still returning. Fence
// a shard's side effects with its token.
//
// Assignment: rendezvous hashing with exact quotas, so that every member
// has ⌊N/M⌋ or ⌈N/M⌉ of N shards over M members, and a member that joins
// or leaves moves a small multiple of N/M shards rather than reshuffling
// all of them: 1.2–1.3 × N/M with 10 or more shards per member, up to 5 or
// 6 × with fewer, since the exact quotas also move shards between members
// that stay (AssignShards gives the measurements). Members whose views
// differ for a moment (an event not yet delivered) may both want a shard;
// its Lease lets only one hold it, so a disagreement delays a move and
// never runs a shard twice. A planned move takes a release, a watch event
// and a create (the new owner, having seen the shard deleted, creates it
// without reading it first): milliseconds on a healthy API server. A member that leaves
// releases its member Lease first, then cancels its works (after the
// release, or 1 s or TTL/10 at most), so that the others stand by for its
// shards before it lets them go. A member contends for at most 64 shards
// at a time, so that members starting together, each alone for a moment,
// do not send an Acquire for every shard at once.
//
// A member that crashes or is cut off stops renewing: the others drop it
// when its member Lease expires, then take each of its shards when that
// shard's Lease expires, judged from when the set's watch first received
// its last record. That is about one TTL after its last renewal (with the
// fast path (rule (b)), at most TTL + MaxClockSkew; in examples/shards,
// TTL 3 s: between 3 and 4 s after the crash).
//
// Limits:
//   - A member that loses its own member Lease (its renewals failed past
//     the deadline) counts itself out: it stops the work of all its shards
//     (cause: an error matching ErrNotHeld that says so) and releases them
//     until it holds its member Lease again.
//   - A member announces itself (and so is handed shards) only once its
//     NamespaceWatch has listed the set's Leases: without list permission
//     it never joins. One that is refused list for a TTL later on (its
//     Role changed) withdraws as above, and announces itself again once it
//     may list. While its watch is not current for other reasons (a broken
//     stream, the API server unreachable) it keeps what it runs and starts
//     nothing. When only watch is refused it lists every
//     DefaultNamespacePollInterval (5 s) instead, and moves wait for it.
//   - A runner stopped in the middle of an Acquire (its shard moved
//     elsewhere) may have its write applied by the server after it gave up:
//     the member deletes such a record of its own once it sees it, rather
//     than have the new owner wait for it to expire.
//   - The member Lease of a crashed member is left behind, expired: nothing
//     deletes it (kubectl delete lease does). Members ignore it by rule (b);
//     with the fast path off, a member that joins counts it live for one
//     TTL, which delays the moves that member makes.
//   - Every member must be given the same Shards (in any order); members
//     with different lists compute different assignments.
//
// Permissions: get, create, update, delete, list and watch on leases in
// the set's namespace; list and watch cannot be restricted by
// resourceNames, and neither, in practice, can the others, since member
// Lease names come from Owners. Give a set a namespace of its own if the
// other Leases there are not to be read. Cost per member: one renewal of
// its member Lease and of each shard it holds every RenewalInterval, and
// one open watch; so the whole set renews M + N Leases per
// RenewalInterval.
//
// # Semaphores
//
// A Semaphore lets at most Slots processes hold it at once (NewSemaphore).
// Each slot is a Lease (SlotLeaseName) with the guarantees above, so each
// holder holds one slot of its own with that slot's token. Tokens of
// different slots are tokens of different Leases: fence per slot (Slot
// says which). A Semaphore is a Lease (Acquire lists the slots, one
// request, and takes a free one, trying first the one its Owner hashes to
// and skipping those held by a live holder), a Waker and a ReleaseHooker,
// so RunSingleton
// runs work under it: at most Slots works at once across all processes,
// the others standing by on the Semaphore's watch. The limits of a Lease
// apply per slot: a holder that loses its slot may still be winding down
// when another process takes that slot, so more than Slots works can
// overlap for that long. Every process must be given the same Name and
// Slots: a process given more slots uses slots the others do not count. It
// needs the permissions of a shard set; when list is refused, Acquire
// reads each slot instead, and a standby watches each slot alone. Cost:
// one renewal per RenewalInterval for the slot held; a standby keeps one
// open watch (the Semaphore's, from its first Wait) and makes one list per
// attempt, that is when a slot may be free and at most every
// ResyncInterval under RunSingleton.
//
// # Namespace
//
// The Lease lives in Settings.Namespace, else the Config's namespace (from the
// kubeconfig context or the pod's service account), else "default".
package lease
