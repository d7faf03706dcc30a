package leasetest

import (
	"context"
	"errors"
	"math"
	"strconv"
	"sync"

	"github.com/kubelease/lease"
)

// Arbiter is the shared state that MemoryLeases contend on: one record per
// lease name, in memory, with no HTTP and no clock. It plays the part the
// Kubernetes API server plays for KubernetesLease, and lets a test end a
// holder's tenure from outside with Revoke, Delete and Expire.
//
// An Arbiter is safe for concurrent use: one mutex guards all of its state
// and the state of every MemoryLease made from it. The zero value is not
// usable; call NewArbiter.
type Arbiter struct {
	mu      sync.Mutex
	cond    sync.Cond // signalled (with mu) when running drops to 0
	rv      uint64    // the last resourceVersion handed out
	records map[string]*record
	running int // OnLost handler goroutines that have not returned yet
}

// record is the stored state of one lease name, like a Lease object.
type record struct {
	holder      string       // holderIdentity; "" when none
	transitions int32        // leaseTransitions
	writer      *MemoryLease // the instance that wrote holder (its "nonce"); nil when holder is ""
	live        bool         // writer's tenure is current (not revoked or expired)
}

// NewArbiter returns an Arbiter with no leases held. Its resourceVersions
// start at 1.
func NewArbiter() *Arbiter {
	a := &Arbiter{records: map[string]*record{}}
	a.cond.L = &a.mu
	return a
}

// NewLease returns a MemoryLease on the lease called name, held as owner.
// Leases made from the same Arbiter with the same name contend with each
// other. It returns an error when name or owner is empty.
func (a *Arbiter) NewLease(name, owner string) (*MemoryLease, error) {
	switch {
	case name == "":
		return nil, errors.New("leasetest: NewLease: name is empty")
	case owner == "":
		return nil, errors.New("leasetest: NewLease: owner is empty")
	}
	return &MemoryLease{a: a, name: name, owner: owner, handlers: map[uint64]func(error){}, hooks: map[uint64]func(ctx context.Context) error{}}, nil
}

// Holder returns the owner of the current, live tenure of the lease called
// name, and whether there is one. A record left behind by Expire still names
// its old holder, but Holder reports it as not held, because any contender
// may take it.
func (a *Arbiter) Holder(name string) (owner string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.records[name]
	if r == nil || !r.live {
		return "", false
	}
	return r.holder, true
}

// Revoke ends the current tenure of the lease called name as if another
// process had taken it over and then let it go: the record is left naming no
// holder, the holder's CheckAlive turns false and its OnLost handlers run
// once with a *lease.LostError whose Reason is lease.LostConflict and whose
// Holder is empty. Any instance may then acquire the lease. Revoke reports
// whether the lease was held.
func (a *Arbiter) Revoke(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.records[name]
	if r == nil || !r.live {
		return false
	}
	a.loseLocked(r.writer, lease.LostConflict, "")
	r.holder, r.writer, r.live = "", nil, false
	return true
}

// Delete removes the record of the lease called name, as a third party
// deleting the Lease object would. If the lease was held, the holder's
// CheckAlive turns false and its OnLost handlers run once with a
// *lease.LostError whose Reason is lease.LostDeleted. The next acquire
// starts again from leaseTransitions 0 (resourceVersions keep growing).
// Delete reports whether the lease was held.
func (a *Arbiter) Delete(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.records[name]
	if r == nil {
		return false
	}
	delete(a.records, name)
	if !r.live {
		return false
	}
	a.loseLocked(r.writer, lease.LostDeleted, "")
	return true
}

// Expire ends the current tenure of the lease called name as if the holder
// had missed its deadline: its CheckAlive turns false and its OnLost
// handlers run once with a *lease.LostError whose Reason is
// lease.LostDeadline (and a nil Err). The record still names the old holder,
// as an expired Lease object does, so a Release by that instance still
// removes it and a re-acquire by the same Owner does not count a transition;
// any instance may acquire it. Expire reports whether the lease was held.
func (a *Arbiter) Expire(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.records[name]
	if r == nil || !r.live {
		return false
	}
	a.loseLocked(r.writer, lease.LostDeadline, "")
	r.live = false
	return true
}

// Wait blocks until every OnLost handler that has been started so far by
// leases of this Arbiter has returned. Tests that check for leaked
// goroutines can call it before they end.
func (a *Arbiter) Wait() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for a.running > 0 {
		a.cond.Wait()
	}
}

// loseLocked ends m's tenure: CheckAlive turns false, then every handler
// registered on m is started on a goroutine of its own with a LostError.
// holder is the new holder's identity, if any. a.mu must be held.
func (a *Arbiter) loseLocked(m *MemoryLease, reason lease.LostReason, holder string) {
	if !m.held {
		return
	}
	lost := &lease.LostError{Reason: reason, Holder: holder, Token: m.token}
	m.held, m.token = false, lease.Token{}
	for _, h := range m.handlers {
		a.running++
		go func() {
			defer a.handlerDone()
			h(lost)
		}()
	}
}

// handlerDone is deferred by every OnLost handler goroutine.
func (a *Arbiter) handlerDone() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.running--
	if a.running == 0 {
		a.cond.Broadcast()
	}
}

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
}

var (
	_ lease.Lease         = (*MemoryLease)(nil)
	_ lease.ReleaseHooker = (*MemoryLease)(nil)
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
	r.holder, r.writer, r.live = m.owner, m, true
	m.held = true
	m.token = lease.Token{ResourceVersion: strconv.FormatUint(a.rv, 10), Transitions: r.transitions}
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
	m.a.mu.Lock()
	defer m.a.mu.Unlock()
	id := m.nextID
	m.nextID++
	m.handlers[id] = handler
	return func() {
		m.a.mu.Lock()
		defer m.a.mu.Unlock()
		delete(m.handlers, id)
	}
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
	m.a.mu.Lock()
	defer m.a.mu.Unlock()
	id := m.nextID
	m.nextID++
	m.hooks[id] = hook
	return func() {
		m.a.mu.Lock()
		defer m.a.mu.Unlock()
		delete(m.hooks, id)
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
	}
	return nil
}
