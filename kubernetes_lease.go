package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubelease/lease/internal/wire"
	"k8s.io/utils/clock"
)

// NonceAnnotation is the annotation in which each KubernetesLease instance
// writes a random value of its own, so that two live processes that were
// (wrongly) given the same Owner are still told apart.
const NonceAnnotation = "kubelease.io/nonce"

// KubernetesLease is a Lease backed by a coordination.k8s.io/v1 Lease
// object, spoken to over the Kubernetes REST API. See the package
// documentation for its guarantees and their limits.
//
// A KubernetesLease is safe for concurrent use. Acquire and Release are
// serialized: one waits for the other to finish. After a Release or a loss
// the same instance may Acquire again, starting a new tenure with a new token.
type KubernetesLease struct {
	s     resolved
	rest  *restClient
	clock clock.WithTicker
	log   *slog.Logger
	nonce string
	path  string

	// test holds this package's test seams; nil outside its tests.
	test atomic.Pointer[testHooks]

	// op is a one-slot lock that serializes Acquire and Release, so that
	// tenures start and end one at a time. Unlike a mutex, waiting for it
	// gives up when the caller's context ends.
	op chan struct{}

	mu       sync.Mutex // guards the fields below and every *tenure's fields
	handlers map[uint64]func(error)
	hooks    map[uint64]func(ctx context.Context) error // BeforeRelease hooks
	nextID   uint64
	ten      *tenure      // the current or the last tenure; nil before the first
	seen     *observation // the last record seen, for expiry rule (a)
	seenObj  *wire.Lease  // that record; nil when none, or deleted
	seenAt   time.Time    // when (wall clock) it was received
	// changed is closed, and replaced, whenever what was seen changes, so
	// that every Wait re-checks; nil until first needed.
	changed chan struct{}
	// sb is the standby watch a contender keeps open across Waits; nil
	// when none runs.
	sb *standby
	// holderWatchers are OnHolderChange handlers; holderNews are the
	// changes not yet delivered to them, in order, by one goroutine at a
	// time (delivering); lastHolder is the holder last reported.
	holderWatchers map[uint64]func(holder string)
	holderNews     []string
	delivering     bool
	lastHolder     string
	reported       bool // lastHolder is set
	// watchRefusedLogged is set once the refusal of a watch was logged.
	watchRefusedLogged bool
	// sharedMissLogged is set once it was logged that Settings.SharedWatch
	// cannot see the Lease (not under mu: it is logged outside).
	sharedMissLogged atomic.Bool
	// mixedWarned is set once a client-go record was warned about (see
	// warnMixedFleet).
	mixedWarned atomic.Bool
	// cancelAcquire cancels the Acquire in flight, if any, so that Release
	// does not wait behind it.
	cancelAcquire context.CancelFunc
	// createFirst lets Acquire create the Lease without reading it when
	// its standby last saw it deleted (seenAbsent); set only by a ShardSet
	// for its shards, before first use.
	createFirst bool
	// deferred is when a record naming another preferred holder was first
	// seen takeable; nil when none was.
	deferred *deferral
	// events posts Kubernetes Events about the Lease; nil when
	// Settings.EventSource is empty.
	events *eventSink
	// unsure is set when an acquiring write may have been applied without
	// starting a tenure (its answer was lost or came too late): the record
	// may name us, and Release then deletes it if it does.
	unsure bool
}

// tenure is one period of holding the lease, from the write that acquired
// it to its loss or Release.
type tenure struct {
	token Token
	start stamp       // stamp of the last successful write: the deadline runs from it
	obj   *wire.Lease // the object as last written (the server's answer)

	ended    bool       // CheckAlive is false for good
	lost     *LostError // why it ended; nil for a voluntary Release
	released bool       // Release has run for this tenure
	handoff  string     // the preferred holder this tenure steps down for; "" when none
	// specPreferred is the record's spec.preferredHolder when this tenure
	// acquired it: only a change from it asks for a handoff.
	specPreferred string
	lastErr       error // the last renewal error, wrapped by a deadline loss

	cancel context.CancelFunc // stops the renewal goroutine and its request
	done   chan struct{}      // closed when the renewal goroutine has returned
}

// stamp is one instant read from the clock: mono keeps the monotonic
// reading (when the clock has one), wall does not.
type stamp struct {
	mono time.Time
	wall time.Time
}

// NewKubernetesLease validates s and returns a lease for it. No request is
// made until Acquire. The error matches ErrInvalidSettings and names every
// invalid field and its value, on one line.
func NewKubernetesLease(s Settings) (*KubernetesLease, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	r := s.withDefaults()
	if s.Namespace == "" && s.Config.Namespace != "" {
		if msg := namespaceProblem(s.Config.Namespace); msg != "" {
			return nil, fmt.Errorf("%w: Config.Namespace %s; set Settings.Namespace or fix the kubeconfig context", ErrInvalidSettings, msg)
		}
	}
	rest, err := newRESTClient(s.Config, r)
	if err != nil {
		return nil, invalidSettings(err)
	}
	var nb [12]byte
	_, _ = rand.Read(nb[:])
	l := &KubernetesLease{
		s:        r,
		rest:     rest,
		clock:    r.Clock,
		nonce:    hex.EncodeToString(nb[:]),
		path:     wire.Path(r.Namespace, r.Name),
		handlers: map[uint64]func(error){},
		hooks:    map[uint64]func(ctx context.Context) error{},

		holderWatchers: map[uint64]func(string){},
		op:             make(chan struct{}, 1),
	}
	l.log = r.Logger.With("lease", r.Namespace+"/"+r.Name, "owner", r.Owner)
	l.events = newEventSink(l)
	return l, nil
}

// now reads the clock once: the monotonic reading (when the clock has one)
// and the wall reading of the same instant.
func (l *KubernetesLease) now() stamp {
	t := l.clock.Now()
	wall := t.Round(0)
	if h := l.test.Load(); h != nil {
		wall = wall.Add(time.Duration(h.wallOffset.Load()))
	}
	return stamp{mono: t, wall: wall}
}
