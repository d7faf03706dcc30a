package leasetest

import (
	"testing"
	"time"

	"github.com/kubelease/lease"
)

// ConformanceBackend says how to reach a server for the suite.
type ConformanceBackend struct {
	// Config returns a Config with full access to Leases for scenario t. It
	// may return the same server for every scenario; the suite gives each
	// scenario its own lease name (and namespace "default" unless Namespace
	// is set). When Config().HTTPClient is nil the suite's own third-party
	// requests use http.DefaultClient (so for TLS servers the backend must
	// set HTTPClient); they authenticate with Config().BearerToken (or, when
	// that is empty, the token in Config().BearerTokenFile).
	Config func(t *testing.T) *lease.Config
	// NoAccess, if set, returns a Config whose user may not touch Leases
	// (403 expected). Nil skips that scenario.
	NoAccess func(t *testing.T) *lease.Config
	// Namespace is where scenarios run; "" means "default".
	Namespace string

	// DropWatches, if set, ends every watch stream open on the server that
	// Config(t) returned for scenario t, without losing the server's
	// history of changes: the clients see their streams end, as when a
	// server ends a watch at its timeout or a load balancer drops it. A
	// real kube-apiserver offers no such control; nil skips
	// StandbyResumesAfterDrop.
	DropWatches func(t *testing.T)
	// CompactLog, if set, makes the server that Config(t) returned for
	// scenario t forget its history of changes, as an etcd compaction
	// does: a watch from a resourceVersion older than the current one then
	// gets 410 Gone. A real kube-apiserver serves recent resourceVersions
	// from its watch cache whatever etcd compacts; nil skips
	// StandbyRelistsOnGone.
	CompactLog func(t *testing.T)
}

// Conformance runs the lease conformance suite against backend b, one
// named subtest per scenario, one after another: Create, TakeOverFree,
// TakeOverOwn, TakeOverExpiredObserved, TakeOverExpiredFastPath,
// LiveConflictFalse, ConcurrentAcquirers, RenewalKeepsLease,
// LabelEditNotLoss, UnmodelledFieldsSurvive, CompetitorTakeoverConflict,
// DeleteLost, SameOwnerTwoInstances, DeadlineLossReleaseFrees,
// ReleaseThenPeerAcquires, ReleaseNeverDeletesOthers, TokensIncrease,
// MicroTimeRoundTrip, NoAccess403, MissingNamespace404, ReleaseWakesWaiter,
// HolderWatchSeesDelete, StandbyWakesOnExpiry, StandbyResumesAfterDrop and
// StandbyRelistsOnGone (the last five need watch; the last two also the
// backend's DropWatches and CompactLog hooks, and are skipped without
// them). Each scenario calls b.Config (and NoAccess403 b.NoAccess, the
// standby scenarios b.DropWatches or b.CompactLog) on its own goroutine,
// uses a lease name of its own ("conf-<scenario>-<random>"), releases every
// lease it made and deletes every object it created.
//
// It is shaped like testing/fstest.TestFS: the same suite runs against the
// fake Server in this package and against a real kube-apiserver, and any
// difference between the two is a bug in the fake (or the library).
//
// The leases under test run with TTL 60s and RenewalInterval 5s on fake
// clocks (k8s.io/utils/clock/testing), which drive only the clients' stamps,
// timers and request timeouts, so the suite works against a real server
// too; only ConcurrentAcquirers runs on real clocks. Since a real server
// offers no hooks (DropWatches and CompactLog are optional), the suite
// waits for the server-side effect of stepping a fake clock (a renewal,
// say) by reading the Lease over REST, or for an OnLost handler, in loops
// that yield 10 ms of real time between tries and fail the test after 10 s
// of real time. To see what a waiting lease sends, StandbyResumesAfterDrop
// and StandbyRelistsOnGone give it an http.Client of their own that counts
// its requests: a copy of Config().HTTPClient (or of the zero Client) whose
// transport wraps the original one (or http.DefaultTransport).
func Conformance(t *testing.T, b ConformanceBackend) {
	t.Helper()
	if b.Config == nil {
		t.Fatal("leasetest.Conformance: ConformanceBackend.Config is nil")
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) { sc.run(newScenario(t, b, sc.name)) })
	}
}

// scenarioFunc is one named scenario of the suite.
type scenarioFunc struct {
	name string
	run  func(sc *scenario)
}

// scenarios is the suite, in the order it runs.
var scenarios = []scenarioFunc{
	{"Create", scCreate},
	{"TakeOverFree", scTakeOverFree},
	{"TakeOverOwn", scTakeOverOwn},
	{"TakeOverExpiredObserved", scTakeOverExpiredObserved},
	{"TakeOverExpiredFastPath", scTakeOverExpiredFastPath},
	{"LiveConflictFalse", scLiveConflictFalse},
	{"ConcurrentAcquirers", scConcurrentAcquirers},
	{"RenewalKeepsLease", scRenewalKeepsLease},
	{"LabelEditNotLoss", scLabelEditNotLoss},
	{"UnmodelledFieldsSurvive", scUnmodelledFieldsSurvive},
	{"CompetitorTakeoverConflict", scCompetitorTakeoverConflict},
	{"DeleteLost", scDeleteLost},
	{"SameOwnerTwoInstances", scSameOwnerTwoInstances},
	{"DeadlineLossReleaseFrees", scDeadlineLossReleaseFrees},
	{"ReleaseThenPeerAcquires", scReleaseThenPeerAcquires},
	{"ReleaseNeverDeletesOthers", scReleaseNeverDeletesOthers},
	{"TokensIncrease", scTokensIncrease},
	{"MicroTimeRoundTrip", scMicroTimeRoundTrip},
	{"NoAccess403", scNoAccess403},
	{"MissingNamespace404", scMissingNamespace404},
	{"ReleaseWakesWaiter", scReleaseWakesWaiter},
	{"HolderWatchSeesDelete", scHolderWatchSeesDelete},
	{"StandbyWakesOnExpiry", scStandbyWakesOnExpiry},
	{"StandbyResumesAfterDrop", scStandbyResumesAfterDrop},
	{"StandbyRelistsOnGone", scStandbyRelistsOnGone},
}

// Timing of the suite's leases and waits.
const (
	// confTTL and confInterval are the Settings of the suite's leases:
	// the TTL leaves far more fake time than any wait steps, so stepping a
	// clock never loses a lease by deadline unless a scenario means to.
	confTTL      = 60 * time.Second
	confInterval = 5 * time.Second
	// realWait bounds, in real time, every wait of the suite.
	realWait = 10 * time.Second
	// yield is the real time given to the other side between two tries.
	yield = 10 * time.Millisecond
	// fakeStep is a small step of a fake clock, made at most every
	// stepEvery of real time; maxFakeWait bounds the fake time one wait may
	// step (well below confTTL).
	fakeStep    = confInterval / 10
	stepEvery   = 50 * time.Millisecond
	maxFakeWait = 40 * time.Second
)

// confEpoch is where every fake clock of the suite starts.
var confEpoch = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
