package leasetest

import (
	"context"
	"math"
	"strconv"

	"github.com/kubelease/lease"
)

// MemoryLease is an in-memory lease.Lease for unit tests of code that uses
// a lease. It follows the semantics of lease.KubernetesLease as far as they
// apply without time and without a network:
//
//   - Acquire returns true when the lease is free, when its record has been
//     expired (see Arbiter.Expire), when this instance already holds it (no
//     change, same token), or when the record names this instance's owner:
//     as with KubernetesLease, a second instance with the same owner takes
//     the lease over. The instance that held it then loses it with
//     lease.LostConflict at once (a KubernetesLease would only notice at its
//     next renewal). Acquire returns false, nil while another instance with
//     a different owner holds the lease. When the lease is not held and ctx
//     is already done, Acquire returns ctx.Err().
//   - Every successful acquire starts a tenure with a fresh token: the
//     ResourceVersion comes from a counter shared by the whole Arbiter (so
//     tokens of later tenures compare greater), and Transitions is the
//     record's leaseTransitions, incremented (saturating at math.MaxInt32)
//     when the holder identity changes, and 0 for a new record.
//   - CheckAlive is true while this instance's tenure is current. A tenure
//     never ends by itself: only Release, a takeover, or Arbiter.Revoke,
//     Delete or Expire end it.
//   - Release removes the record when it is this instance's, as
//     KubernetesLease deletes the Lease object; it never touches a record
//     another instance wrote. It returns nil, also when the lease is not
//     held, and ignores ctx — unless a RunSingleton's work runs on the
//     instance and does not stop within its grace period (see
//     BeforeRelease).
//   - OnLost handlers stay registered across tenures and are called once
//     per lost tenure, never for a Release, each on a goroutine of its own,
//     after CheckAlive has turned false (see Arbiter.Wait).
//   - Wait (lease.Waker) returns as soon as Acquire may succeed: at once
//     when the record is free or names this instance's owner, else at the
//     Release, Revoke, Delete or Expire that frees it. lease.RunSingleton
//     therefore hands the lease over at once, without polling.
//   - OnHolderChange (lease.HolderWatcher) reports every change of the
//     record's holder, in order, starting with the holder this instance
//     first saw (its first Acquire, Wait or Holder), and LastSeenHolder
//     (lease.HolderReporter) returns the last one. Unlike a
//     KubernetesLease, which sees only what it reads, watches or writes, a
//     MemoryLease sees every change once it has looked, so
//     SingletonOptions.OnNewHolder fires for each one. Holder returns the
//     record as the Arbiter has it, with no times (there is no clock).
//
// After a Release or a loss the same instance may Acquire again. A
// MemoryLease is safe for concurrent use; its state is guarded by its
// Arbiter's mutex.
type MemoryLease struct {
	a     *Arbiter
	name  string
	owner string

	// Guarded by a.mu.
	held     bool
	token    lease.Token
	handlers map[uint64]func(error)
	hooks    map[uint64]func(ctx context.Context) error // BeforeRelease hooks
	nextID   uint64

	// Guarded by a.mu: reporting the holder (see OnHolderChange).
	following  bool                    // it has looked at the record: it is in a.followers
	lastHolder string                  // the holder last seen, reported to holderFns
	holderFns  map[uint64]func(string) // OnHolderChange handlers
	holderNews []string                // holders queued for holderFns, oldest first
	delivering bool                    // a goroutine delivers holderNews
}

var (
	_ lease.Lease          = (*MemoryLease)(nil)
	_ lease.ReleaseHooker  = (*MemoryLease)(nil)
	_ lease.Waker          = (*MemoryLease)(nil)
	_ lease.HolderWatcher  = (*MemoryLease)(nil)
	_ lease.HolderReporter = (*MemoryLease)(nil)
)

// Acquire tries to take the lease; see MemoryLease for the rules.
func (m *MemoryLease) Acquire(ctx context.Context) (bool, error) {
	_, ok, err := m.AcquireWithToken(ctx)
	return ok, err
}

// AcquireWithToken tries to take the lease and returns the token of the
// tenure it holds; the token is the zero Token unless ok is true. See
// MemoryLease for the rules.
func (m *MemoryLease) AcquireWithToken(ctx context.Context) (lease.Token, bool, error) {
	a := m.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if m.held {
		return m.token, true, nil
	}
	if err := ctx.Err(); err != nil {
		return lease.Token{}, false, err
	}
	m.followLocked()
	r := a.records[m.name]
	switch {
	case r == nil:
		r = &record{}
		a.records[m.name] = r
	case r.live && r.holder != m.owner:
		return lease.Token{}, false, nil
	default:
		if r.live {
			// Another instance with our owner: take over, as a restarted
			// process would. It loses at once.
			a.loseLocked(r.writer, lease.LostConflict, m.owner)
		}
		if r.holder != m.owner && r.transitions < math.MaxInt32 {
			r.transitions++
		}
	}
	a.rv++
	r.holder, r.writer, r.live, r.rv = m.owner, m, true, a.rv
	m.held = true
	m.token = lease.Token{ResourceVersion: strconv.FormatUint(a.rv, 10), Transitions: r.transitions}
	a.changedLocked(m.name)
	return m.token, true, nil
}

// CheckAlive reports whether this instance's tenure is current.
func (m *MemoryLease) CheckAlive() bool {
	m.a.mu.Lock()
	defer m.a.mu.Unlock()
	return m.held
}

// Token returns the token of the current tenure, and whether there is one:
// ok is true exactly when CheckAlive would return true.
func (m *MemoryLease) Token() (lease.Token, bool) {
	m.a.mu.Lock()
	defer m.a.mu.Unlock()
	return m.token, m.held
}

// OnLost registers handler to be called, on a goroutine of its own, once
// for every tenure of this instance that ends without a Release, with a
// *lease.LostError. The returned function unregisters it; calling that more
// than once is harmless. A nil handler is ignored.
func (m *MemoryLease) OnLost(handler func(reason error)) (unregister func()) {
	if handler == nil {
		return func() {}
	}
	return register(m, m.handlers, handler)
}

// BeforeRelease registers hook to be called by every later Release, on the
// caller's goroutine and while the tenure is still held, before Release
// does anything else; if it returns an error, Release returns it and does
// not release. lease.RunSingleton uses it to stop its work before a Release
// made elsewhere ends the tenure. The returned function unregisters hook;
// calling it more than once is harmless. A nil hook is ignored.
func (m *MemoryLease) BeforeRelease(hook func(ctx context.Context) error) (unregister func()) {
	if hook == nil {
		return func() {}
	}
	return register(m, m.hooks, hook)
}

// register adds f to fns, one of m's maps of handlers, under a new id and
// returns the function that removes it again.
func register[F any](m *MemoryLease, fns map[uint64]F, f F) (unregister func()) {
	m.a.mu.Lock()
	defer m.a.mu.Unlock()
	id := m.nextID
	m.nextID++
	fns[id] = f
	return func() {
		m.a.mu.Lock()
		defer m.a.mu.Unlock()
		delete(fns, id)
	}
}

// Release ends this instance's tenure, if any, without calling OnLost
// handlers, and removes the record if this instance wrote it (also after an
// Expire that nobody has followed up). It never frees a tenure of another
// instance. It first calls the BeforeRelease hooks (so a RunSingleton's
// work is stopped before the tenure ends) and returns the first error one
// of them returns, without releasing; otherwise it returns nil. It is
// idempotent; ctx is not used.
func (m *MemoryLease) Release(ctx context.Context) error {
	a := m.a
	a.mu.Lock()
	hooks := make([]func(ctx context.Context) error, 0, len(m.hooks))
	for _, h := range m.hooks {
		hooks = append(hooks, h)
	}
	a.mu.Unlock()
	for _, h := range hooks {
		if err := h(ctx); err != nil {
			return err
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	m.held, m.token = false, lease.Token{}
	if r := a.records[m.name]; r != nil && r.writer == m {
		delete(a.records, m.name)
		a.changedLocked(m.name)
	}
	return nil
}
