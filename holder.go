package lease

import (
	"context"
	"time"
)

// HolderInfo is a read-only view of a Lease as this process last saw it:
// who holds it and until when, as this process computes it. It is a
// snapshot; the Lease may have changed since.
type HolderInfo struct {
	// Exists is false when there is no Lease object (never created, or
	// deleted); the other fields are then zero.
	Exists bool
	// Holder is the holderIdentity, "" when none.
	Holder string
	// Transitions is leaseTransitions: how many times the holder changed.
	Transitions int32
	// ResourceVersion is the record's resourceVersion; it changes at every
	// renewal. It is the fencing token's only for the write that acquired.
	ResourceVersion string
	// AcquireTime and RenewTime are the record's acquireTime and renewTime
	// (the holder's wall clock), in UTC; zero when not set.
	AcquireTime, RenewTime time.Time
	// Duration is the record's leaseDurationSeconds (our TTL when missing,
	// capped at MaxLeaseDuration).
	Duration time.Duration
	// ExpiresIn is how long until this process would take the record over
	// by the expiry rules (a) and (b), 0 when it may be taken now (no
	// holder, expired, or held by this instance's Owner).
	ExpiresIn time.Duration
	// ObservedAt is when this process received the record (its wall clock).
	ObservedAt time.Time
	// Ours is true while this instance holds the lease (CheckAlive), and
	// Token is then its tenure's fencing token.
	Ours  bool
	Token Token
	// HolderToken is the fencing token of the holder's tenure as the holder
	// published it (TokenAnnotation, written at its first renewal); zero
	// when not published yet, when there is no holder, or when the
	// annotation is an earlier tenure's (a holder that is not kubelease
	// took the Lease over and kept it).
	HolderToken Token
	// PreferredHolder is the contender a planned handoff asks for
	// (PreferredHolderAnnotation, else spec.preferredHolder); "" when none.
	PreferredHolder string
}

// Holder returns who holds the Lease, as the standby watch last saw it
// when one is open, else as Settings.SharedWatch has it when that is
// running and has the Lease, else after one GET. It never creates or
// writes the Lease, and needs only "get" on it ("watch" for the standby
// watch; "list" and "watch" for a SharedWatch). The GET also counts as an
// observation for the expiry rules.
func (l *KubernetesLease) Holder(ctx context.Context) (HolderInfo, error) {
	l.mu.Lock()
	live := l.sb != nil && l.sb.live && l.seen != nil
	l.mu.Unlock()
	if !live && !l.viewShared() {
		obj, err := l.read(ctx, l.s.TTL-margin(l.s.TTL))
		if err != nil {
			return HolderInfo{}, err
		}
		l.mu.Lock()
		l.observeLocked(obj, l.now())
		l.mu.Unlock()
	}
	l.mu.Lock()
	obj, at := l.seenObj, l.seenAt
	l.mu.Unlock()
	if obj == nil {
		return HolderInfo{}, nil
	}
	h := recordInfo(obj, l.s.TTL)
	h.ObservedAt = at
	if !l.mayTakeOver(obj) {
		h.ExpiresIn = l.untilExpiry()
	}
	h.Token, h.Ours = l.Token()
	return h, nil
}

// OnHolderChange registers fn to be called with the new holderIdentity
// ("" when none, or the Lease deleted) each time a record this instance
// reads, watches or writes names another holder than the one it last
// reported, starting with the first record it sees. Calls are made in
// order, one at a time, on a goroutine of the lease's; fn must not block
// for long. The returned function unregisters fn and may be called more
// than once. A nil fn is ignored. OnHolderChange implements HolderWatcher.
func (l *KubernetesLease) OnHolderChange(fn func(holder string)) (unregister func()) {
	return register(l, l.holderWatchers, fn)
}

// reportHolderLocked queues holder for the OnHolderChange handlers when it
// differs from the holder last reported, and starts delivering.
func (l *KubernetesLease) reportHolderLocked(holder string) {
	if l.reported && holder == l.lastHolder {
		return
	}
	l.reported, l.lastHolder = true, holder
	if len(l.holderWatchers) == 0 {
		return
	}
	l.holderNews = append(l.holderNews, holder)
	if !l.delivering {
		l.delivering = true
		go l.deliverHolders()
	}
}

// deliverHolders calls the OnHolderChange handlers with each queued holder,
// in order, outside the lock, until the queue is empty.
func (l *KubernetesLease) deliverHolders() {
	for {
		l.mu.Lock()
		if len(l.holderNews) == 0 {
			l.delivering = false
			l.mu.Unlock()
			return
		}
		holder := l.holderNews[0]
		l.holderNews = l.holderNews[1:]
		fns := callbacksLocked(l.holderWatchers)
		l.mu.Unlock()
		for _, fn := range fns {
			fn(holder)
		}
	}
}
