package leasetest

import (
	"context"
	"errors"
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
	running int // OnLost handler and holder delivery goroutines that have not returned yet
	// changed is closed, and replaced, at every change of a record: it
	// wakes every MemoryLease.Wait, which then looks again.
	changed chan struct{}
	// followers are, per lease name, the MemoryLeases that have looked at
	// its record: each change of holder is reported to them.
	followers map[string][]*MemoryLease
}

// record is the stored state of one lease name, like a Lease object.
type record struct {
	holder      string       // holderIdentity; "" when none
	transitions int32        // leaseTransitions
	rv          uint64       // resourceVersion of the last write
	writer      *MemoryLease // the instance that wrote holder (its "nonce"); nil when holder is ""
	live        bool         // writer's tenure is current (not revoked or expired)
}

// NewArbiter returns an Arbiter with no leases held. Its resourceVersions
// start at 1.
func NewArbiter() *Arbiter {
	a := &Arbiter{records: map[string]*record{}, changed: make(chan struct{}), followers: map[string][]*MemoryLease{}}
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
	return &MemoryLease{
		a: a, name: name, owner: owner,
		handlers:  map[uint64]func(error){},
		hooks:     map[uint64]func(ctx context.Context) error{},
		holderFns: map[uint64]func(string){},
	}, nil
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
// holder (with a new resourceVersion), the holder's CheckAlive turns false
// and its OnLost handlers run once with a *lease.LostError whose Reason is
// lease.LostConflict and whose Holder is empty. Any instance may then
// acquire the lease. Revoke reports whether the lease was held.
func (a *Arbiter) Revoke(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.endLocked(name, lease.LostConflict)
	if r != nil {
		a.rv++
		r.holder, r.writer, r.rv = "", nil, a.rv
		a.changedLocked(name)
	}
	return r != nil
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
	if r.live {
		a.loseLocked(r.writer, lease.LostDeleted, "")
	}
	a.changedLocked(name)
	return r.live
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
	if a.endLocked(name, lease.LostDeadline) == nil {
		return false
	}
	a.changedLocked(name)
	return true
}

// endLocked ends the live tenure of the lease called name with reason (see
// loseLocked) and returns its record, no longer live; it returns nil when
// the lease is not held. a.mu must be held.
func (a *Arbiter) endLocked(name string, reason lease.LostReason) *record {
	r := a.records[name]
	if r == nil || !r.live {
		return nil
	}
	a.loseLocked(r.writer, reason, "")
	r.live = false
	return r
}

// changedLocked notes a change of the record of the lease called name: it
// wakes every Wait and reports the record's holder to the leases that
// follow it. a.mu must be held.
func (a *Arbiter) changedLocked(name string) {
	close(a.changed)
	a.changed = make(chan struct{})
	holder := a.holderLocked(name)
	for _, m := range a.followers[name] {
		m.noteHolderLocked(holder)
	}
}

// holderLocked returns the holderIdentity of the record of the lease called
// name, "" when it has none or there is no record. a.mu must be held.
func (a *Arbiter) holderLocked(name string) string {
	if r := a.records[name]; r != nil {
		return r.holder
	}
	return ""
}

// Wait blocks until every OnLost handler that has been started so far by
// leases of this Arbiter has returned, and every change of holder reported
// so far has been delivered to the OnHolderChange handlers. Tests that
// check for leaked goroutines can call it before they end.
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

// handlerDone is deferred by every OnLost handler goroutine and every
// holder delivery goroutine.
func (a *Arbiter) handlerDone() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.running--
	if a.running == 0 {
		a.cond.Broadcast()
	}
}
