package lease

import (
	"context"
	"errors"
	"time"

	"github.com/kubelease/lease/internal/wire"
)

// Wait returns when an Acquire may succeed: when a watch on the Lease shows
// it deleted or without a holder, when the last record seen would have
// expired (rules (a) and (b) of the package documentation), when the watch
// cannot say (a 410, a broken stream that could not be resumed), or at
// once when no record has been seen or the lease is ours. It returns ctx's
// error when ctx ends first. RunSingleton uses it, so contenders wake
// within a round trip of a Release instead of polling.
//
// Wait implements Waker.
func (l *KubernetesLease) Wait(ctx context.Context) error {
	l.mu.Lock()
	seen, obj := l.seen, l.seenObj
	l.mu.Unlock()
	if seen == nil || obj == nil || l.mayTakeOver(obj) {
		return ctx.Err()
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	woke := make(chan struct{}, 1)
	wake := func() {
		select {
		case woke <- struct{}{}:
		default:
		}
	}
	gone := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if l.watchForFree(wctx, obj.ResourceVersion, wake) {
			close(gone)
		}
	}()
	defer func() {
		cancel()
		<-done
	}()
	for {
		d := l.untilExpiry()
		if d <= 0 {
			return nil
		}
		t := l.clock.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-gone: // only a fresh read can tell
			t.Stop()
			return nil
		case <-woke:
			t.Stop()
			l.mu.Lock()
			obj := l.seenObj
			l.mu.Unlock()
			if obj == nil || l.mayTakeOver(obj) {
				return nil
			}
			// A renewal or a new holder: wait for the new expiry.
		case <-t.C():
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

// watchForFree watches the Lease from rv, recording what it sees for the
// expiry rules and calling wake on every change; a deletion is recorded as
// "no record". It reconnects with backoff until ctx ends, and gives up,
// returning true, on a 410, since only a fresh read can tell.
func (l *KubernetesLease) watchForFree(ctx context.Context, rv string, wake func()) (gone bool) {
	b := l.watchBackoff()
	for ctx.Err() == nil {
		err := l.watch(ctx, rv, func(typ string, obj *wire.Lease) bool {
			rv = obj.ResourceVersion
			b.Reset()
			switch typ {
			case "BOOKMARK":
				return true
			case "DELETED":
				l.mu.Lock()
				l.seen, l.seenObj = nil, nil
				l.mu.Unlock()
			default:
				l.observe(obj, l.now())
			}
			wake()
			return true
		})
		if ctx.Err() != nil {
			return false
		}
		if errors.Is(err, errWatchGone) {
			return true
		}
		if !l.pause(ctx, b.NextBackOff()) {
			return false
		}
	}
	return false
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
