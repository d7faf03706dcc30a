package leasetest

import (
	"context"
	"strconv"

	"github.com/kubelease/lease"
)

// Wait returns nil as soon as an Acquire by this instance may succeed: at
// once when there is no record, when it names no holder, when its tenure
// has ended (Arbiter.Expire) or when it names this instance's owner (this
// instance holds it, or may take it over); otherwise at the Release,
// Arbiter.Revoke, Delete or Expire that makes it so. It returns ctx's
// cause (context.Cause) when ctx is done first, also when ctx is done on
// entry. It never polls: every change of a record wakes it once, to look
// again. Wait counts as looking at the record (see OnHolderChange).
//
// Wait implements lease.Waker, so lease.RunSingleton over a MemoryLease
// takes the lease over as soon as its holder lets it go.
func (m *MemoryLease) Wait(ctx context.Context) error {
	a := m.a
	for {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		a.mu.Lock()
		m.followLocked()
		r, changed := a.records[m.name], a.changed
		free := r == nil || !r.live || r.holder == m.owner
		a.mu.Unlock()
		if free {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-changed:
		}
	}
}

// Holder returns the record of the lease as the Arbiter has it: Exists,
// Holder ("" when none, also after Arbiter.Revoke), Transitions and
// ResourceVersion; Ours and Token while this instance holds the lease. A
// MemoryLease has no clock, so AcquireTime, RenewTime, Duration, ExpiresIn
// and ObservedAt are always zero: ExpiresIn does not tell a live holder
// from an expired one here, Wait does. Holder never writes the record; it
// returns ctx's error when ctx is done, as a request would fail. It counts
// as looking at the record (see OnHolderChange).
func (m *MemoryLease) Holder(ctx context.Context) (lease.HolderInfo, error) {
	if err := ctx.Err(); err != nil {
		return lease.HolderInfo{}, err
	}
	a := m.a
	a.mu.Lock()
	defer a.mu.Unlock()
	m.followLocked()
	h := lease.HolderInfo{Ours: m.held}
	if m.held {
		h.Token = m.token
	}
	if r := a.records[m.name]; r != nil {
		h.Exists, h.Holder, h.Transitions = true, r.holder, r.transitions
		h.ResourceVersion = strconv.FormatUint(r.rv, 10)
	}
	return h, nil
}

// OnHolderChange registers fn to be called with the new holderIdentity of
// the lease's record ("" when it names none or there is no record) at each
// change of it, starting with the holder this instance saw when it first
// looked at the record (its first Acquire, Wait or Holder; a change seen
// before fn was registered is not repeated). As the Arbiter knows every
// write, every change from then on is reported — a Release, Revoke or
// Delete as "", a new holder as its owner — but not an Expire, which
// leaves the record naming its holder, nor a takeover by another instance
// with the same owner. Calls are made in order, one at a time, on a
// goroutine of the lease's (Arbiter.Wait waits for it); fn must not block
// for long and must not wait for other changes of this lease. The
// returned function unregisters fn and may be called more than once (a
// change already being delivered may still reach fn). A nil fn is ignored.
//
// OnHolderChange implements lease.HolderWatcher, so lease.RunSingleton
// over a MemoryLease calls SingletonOptions.OnNewHolder for every holder.
func (m *MemoryLease) OnHolderChange(fn func(holder string)) (unregister func()) {
	if fn == nil {
		return func() {}
	}
	return register(m, m.holderFns, fn)
}

// LastSeenHolder returns the holderIdentity of the record as this instance
// last saw it: after its first Acquire, Wait or Holder, the record's
// current holder ("" when none); before, "". It implements
// lease.HolderReporter.
func (m *MemoryLease) LastSeenHolder() string {
	m.a.mu.Lock()
	defer m.a.mu.Unlock()
	return m.lastHolder
}

// followLocked makes m follow its record's holder from now on, reporting
// the current one, unless it already does. a.mu must be held.
func (m *MemoryLease) followLocked() {
	if m.following {
		return
	}
	m.following = true
	m.a.followers[m.name] = append(m.a.followers[m.name], m)
	m.reportLocked(m.a.holderLocked(m.name))
}

// noteHolderLocked reports holder, the holder of m's record after a
// change, when it differs from the one last seen. a.mu must be held.
func (m *MemoryLease) noteHolderLocked(holder string) {
	if holder != m.lastHolder {
		m.reportLocked(holder)
	}
}

// reportLocked records holder as the last seen and queues it for the
// OnHolderChange handlers, starting a delivery goroutine when none runs.
// a.mu must be held.
func (m *MemoryLease) reportLocked(holder string) {
	m.lastHolder = holder
	if len(m.holderFns) == 0 {
		return
	}
	m.holderNews = append(m.holderNews, holder)
	if !m.delivering {
		m.delivering = true
		m.a.running++
		go m.deliverHolders()
	}
}

// deliverHolders calls the OnHolderChange handlers with each queued holder,
// in order, outside the lock, until the queue is empty.
func (m *MemoryLease) deliverHolders() {
	a := m.a
	defer a.handlerDone()
	for {
		a.mu.Lock()
		if len(m.holderNews) == 0 {
			m.delivering = false
			a.mu.Unlock()
			return
		}
		holder := m.holderNews[0]
		m.holderNews = m.holderNews[1:]
		fns := make([]func(string), 0, len(m.holderFns))
		for _, fn := range m.holderFns {
			fns = append(fns, fn)
		}
		a.mu.Unlock()
		for _, fn := range fns {
			fn(holder)
		}
	}
}
