package lease

import (
	"context"
	"time"
)

// Wait returns when an Acquire may succeed: when the Lease is seen deleted
// or without a holder, when the last record seen would have expired (rules
// (a) and (b) of the package documentation), or at once when no record has
// been seen or the lease is ours; but while a planned handoff to another
// contender is pending, not before HandoffWait has passed. It returns ctx's error when ctx ends
// first. RunSingleton uses it, so that contenders wake within a round trip
// of a Release instead of polling.
//
// Wait keeps one watch on the Lease open across calls (the standby watch):
// it resumes from the last resourceVersion seen, reads the Lease afresh
// after a 410, reconnects with backoff after a broken stream, and closes one
// TTL after the last Wait returned (or when this instance acquires, or on
// Release). A standby therefore costs about one request for each stream
// the server ends (kube-apiserver ends a watch after 30–60 minutes). When
// the server keeps refusing to watch for a RenewalInterval (no "watch"
// permission, a proxy that does not serve it), which is logged once, Wait
// returns every RenewalInterval instead, so that the caller polls with
// Acquire, and the watch is tried again every minute.
//
// With Settings.SharedWatch, Wait listens to that NamespaceWatch instead of
// opening a watch of its own, unless the record it saw last is not one the
// NamespaceWatch selects (logged once): then it watches the Lease alone.
//
// Wait implements Waker.
func (l *KubernetesLease) Wait(ctx context.Context) error {
	l.mu.Lock()
	obj := l.seenObj
	if l.seen == nil || obj == nil {
		l.mu.Unlock()
		return ctx.Err()
	}
	l.mu.Unlock()
	if l.mayAcquire(obj) {
		return ctx.Err()
	}
	l.noteSharedMiss(obj)
	l.mu.Lock()
	sb := l.joinStandbyLocked(obj.ResourceVersion)
	l.mu.Unlock()
	defer l.leaveStandby(sb)
	for {
		l.mu.Lock()
		changed, obj, refused := l.changedLocked(), l.seenObj, sb.refused
		l.mu.Unlock()
		if obj == nil || l.mayAcquire(obj) {
			return nil
		}
		d := l.untilExpiry()
		if d <= 0 {
			d = l.deferLeft(obj) // takeable, but a handoff to another is pending
		}
		if d <= 0 {
			return nil
		}
		if refused {
			d = min(d, l.s.RenewalInterval)
		}
		t := l.clock.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-changed: // a renewal, a new holder, a release: look again
			t.Stop()
		case <-t.C():
			if refused {
				return nil // poll
			}
		}
	}
}

// untilExpiry is how long until the last record seen expires by rule (a) or
// (b); 0 when there is none.
func (l *KubernetesLease) untilExpiry() time.Duration {
	l.mu.Lock()
	seen, obj := l.seen, l.seenObj
	l.mu.Unlock()
	if seen == nil || obj == nil || obj.Spec.Holder() == "" {
		return 0
	}
	dur := l.recordDuration(obj)
	n := l.now()
	d := dur - n.mono.Sub(seen.since)
	if l.s.MaxClockSkew >= 0 && obj.Spec.RenewTime != nil {
		d = min(d, addSat(obj.Spec.RenewTime.Add(addSat(dur, l.s.MaxClockSkew)).Sub(n.wall), time.Microsecond))
	}
	return max(d, 0)
}

// LastSeenHolder returns the holderIdentity of the last record this
// instance read, watched or wrote — its own Owner while it holds the lease —
// and "" when none (it implements HolderReporter).
func (l *KubernetesLease) LastSeenHolder() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seenObj == nil {
		return ""
	}
	return l.seenObj.Spec.Holder()
}
