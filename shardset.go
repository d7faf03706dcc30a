package lease

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"
)

// ShardSet spreads a fixed list of shards over the processes that run it
// (its members), so that each shard is worked on by one live member at a
// time and every member has about as many as any other.
//
// Each shard is a Lease (ShardLeaseName) with the guarantees of a
// KubernetesLease: at most one holder at a time, a fencing token per
// tenure. Each member announces itself with a Lease of its own
// (MemberLeaseName) and sees the others, and the shards, through one
// NamespaceWatch of the set's Leases (label LabelShardSet): the API server
// is the only thing members share. A member is live while its member Lease
// is held and not expired by the rules (a) and (b) of the package
// documentation; one that crashes or is cut off drops out when its Lease
// expires.
//
// Every member computes the same assignment from the members it sees live
// (AssignShards: even to within one shard, a join or leave moving a small
// multiple of N/M shards). A member runs work for each shard assigned to
// it, under that shard's Lease, as RunSingleton does. When a shard is assigned elsewhere,
// the member cancels its work, waits for it to return (up to GracePeriod),
// then releases the shard's Lease, and the new owner, woken by the watch,
// takes it within a round trip or two. Shards of a member that vanished are
// taken when their Leases expire (TTL + MaxClockSkew after its last
// renewal, by rule (b)). Members that see
// different memberships for a moment (an event not yet arrived) may both
// want a shard: the shard's Lease still lets only one of them hold it, so
// a disagreement delays a move and never doubles a shard.
//
// What a set costs: per member one renewal of its member Lease and of each
// shard it holds every RenewalInterval, plus one open watch. Permissions:
// get, create, update, delete, list and watch on leases in the namespace
// (list and watch cannot be restricted by resourceNames).
//
// A ShardSet runs one Run at a time; Status may be called at any time.
type ShardSet struct {
	s      ShardSettings
	shards []string          // sorted, unique
	names  []string          // names[i] is the Lease name of shards[i]
	byName map[string]string // shard Lease name → shard
	t      resolved          // the Lease template, with defaults
	sl     setLeases         // makes the set's Leases
	watch  *NamespaceWatch
	member *KubernetesLease
	clock  clock.WithTicker
	test   atomic.Pointer[shardTestHooks] // nil outside this package's tests

	mu        sync.Mutex
	running   bool
	closed    bool
	stopRun   context.CancelCauseFunc     // ends the Run in progress; nil when none
	runDone   chan struct{}               // closed when that Run has returned
	leases    map[string]*KubernetesLease // shard → its Lease, made on first use
	announced bool                        // we hold our member Lease
	members   []string                    // live members, as last computed
	mine      []string                    // shards assigned to us
	active    map[string]Token            // shards whose work runs, with its token
	freeSince map[string]time.Time        // shards last seen without a holder, since when
	movedIn   int
	movedOut  int
	unowned   time.Duration
}

// ShardStatus is what a member of a shard set knows and has done.
type ShardStatus struct {
	// Announced is true while this member holds its member Lease.
	Announced bool
	// Members are the live members this member sees, sorted, itself
	// included while Announced.
	Members []string
	// Assigned are the shards the assignment gives this member, sorted.
	Assigned []string
	// Running are the shards whose work runs now, with their tokens.
	Running map[string]Token
	// MovedIn counts the shard tenures this member started; MovedOut the
	// shards it gave up because they were assigned elsewhere.
	MovedIn, MovedOut int
	// Unowned is the total time, over the shards this member took, from
	// when it first saw the shard without a holder (released, deleted, or
	// never created) to its tenure's start. A shard taken over after its
	// holder vanished is not counted: it had a holder until it expired.
	Unowned time.Duration
}

// NewShardSet validates s and returns a ShardSet for it. No request is made
// until Run. The error matches ErrInvalidSettings and names every invalid
// field and its value, on one line.
func NewShardSet(s ShardSettings) (*ShardSet, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	s.Shards = slices.Clone(s.Shards)
	sl, err := newSetLeases(s.Lease, LabelShardSet, s.Set)
	if err != nil {
		return nil, err
	}
	set := &ShardSet{
		s:         s,
		shards:    uniqueSorted(s.Shards, false),
		t:         sl.r,
		sl:        sl,
		watch:     sl.watch,
		clock:     sl.r.Clock,
		leases:    map[string]*KubernetesLease{},
		active:    map[string]Token{},
		freeSince: map[string]time.Time{},
	}
	set.byName = make(map[string]string, len(set.shards))
	for _, shard := range set.shards {
		n := ShardLeaseName(s.Set, shard)
		set.names = append(set.names, n)
		set.byName[n] = shard
	}
	set.member, err = set.newLease(MemberLeaseName(s.Set, s.Lease.Owner), RoleMember)
	if err != nil {
		return nil, err
	}
	return set, nil
}

// newLease returns a KubernetesLease named name, from the template, with
// the set's labels and watch.
func (set *ShardSet) newLease(name, role string) (*KubernetesLease, error) {
	return set.sl.lease(name, role)
}

// shardLease returns the Lease of shard, making it on first use.
func (set *ShardSet) shardLease(shard string) (*KubernetesLease, error) {
	set.mu.Lock()
	defer set.mu.Unlock()
	if l := set.leases[shard]; l != nil {
		return l, nil
	}
	i, _ := slices.BinarySearch(set.shards, shard)
	l, err := set.newLease(set.names[i], RoleShard)
	if err != nil {
		return nil, err
	}
	// A shard handed over is deleted by its old owner and seen so by the
	// new one's standby: create it at once, a round trip sooner.
	l.createFirst = true
	set.leases[shard] = l
	return l, nil
}

// Status returns what this member knows and has done, as of now.
func (set *ShardSet) Status() ShardStatus {
	set.mu.Lock()
	defer set.mu.Unlock()
	return ShardStatus{
		Announced: set.announced,
		Members:   slices.Clone(set.members),
		Assigned:  slices.Clone(set.mine),
		Running:   maps.Clone(set.active),
		MovedIn:   set.movedIn,
		MovedOut:  set.movedOut,
		Unowned:   set.unowned,
	}
}

// ErrClosed is the cause with which Close ends a Run in progress, and what
// Run returns on a closed ShardSet.
var ErrClosed = errors.New("lease: the shard set was closed")

// Close ends the Run in progress, if any, as if its ctx had ended (cause
// ErrClosed), waits for it to return, and stops the set's NamespaceWatch.
// It is idempotent; Run on a closed set returns ErrClosed.
func (set *ShardSet) Close() {
	set.mu.Lock()
	set.closed = true
	stop, done := set.stopRun, set.runDone
	set.mu.Unlock()
	if stop != nil {
		stop(ErrClosed)
		<-done
	}
	set.watch.Close()
}

// RunShards is NewShardSet, then Run, then Close.
func RunShards(ctx context.Context, s ShardSettings, work func(ctx context.Context, shard string, token Token) error, opts ShardOptions) error {
	set, err := NewShardSet(s)
	if err != nil {
		return err
	}
	defer set.Close()
	return set.Run(ctx, work, opts)
}

// Run makes this process a member of the set until ctx ends, running work
// for each shard assigned to it, with the shard's name and its tenure's
// fencing token, under a context cancelled when the shard is assigned
// elsewhere (cause: an error matching ErrNotHeld), when its Lease is lost
// (the *LostError) or when ctx ends (ctx's cause).
//
// Work is meant to run until its context ends. If it returns by itself the
// shard's Lease is released (its error is logged and passed to OnStopped)
// and, while the shard is still assigned here, work is started again after
// a backoff. Work must return promptly once its context is cancelled: the
// shard is handed over only after it has. One that does not return within
// GracePeriod keeps its shard held, so that no other member starts, until
// it returns (see ErrWorkDidNotStop).
//
// When ctx ends, Run withdraws: it releases its member Lease at once, so
// that the others take over, cancels every work, releases each shard as its
// work returns, and returns ctx's cause (joined with an error matching
// ErrWorkDidNotStop for a work that did not return in time). Errors from
// the API server are retried with backoff for as long as ctx lasts. A
// second Run on the same ShardSet while one runs returns ErrBusy; Close
// ends a Run as ctx would.
//
// A member announces itself only while it can see the set: its
// NamespaceWatch has listed the set's Leases and keeps them current. One
// that cannot (list or watch refused, the API server unreachable) for a
// TTL withdraws, as a leaving member does, and announces itself again once
// it sees the set, so that the others do not hand it shards it would not
// know to take.
func (set *ShardSet) Run(ctx context.Context, work func(ctx context.Context, shard string, token Token) error, opts ShardOptions) error {
	if work == nil {
		return errors.New("lease: ShardSet.Run: work is nil; pass the function to run for each shard held")
	}
	set.mu.Lock()
	switch {
	case set.closed:
		set.mu.Unlock()
		return ErrClosed
	case set.running:
		set.mu.Unlock()
		return ErrBusy
	}
	ctx, stop := context.WithCancelCause(ctx)
	done := make(chan struct{})
	set.running, set.stopRun, set.runDone = true, stop, done
	set.mu.Unlock()
	defer func() {
		set.mu.Lock()
		set.running, set.stopRun, set.runDone = false, nil, nil
		set.mu.Unlock()
		stop(nil)
		close(done)
	}()
	r := newSetRun(set, work, opts)
	return r.run(ctx)
}

// logger is the set's logger for a Run with opts.
func (set *ShardSet) logger(opts ShardOptions) *slog.Logger {
	log := opts.Logger
	if log == nil {
		log = set.t.Logger
	}
	return log.With("shardSet", set.s.Set, "owner", set.s.Lease.Owner)
}
