package lease

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/kubelease/lease/internal/wire"
)

// standby is the watch a contender keeps open across Waits, one per
// instance: every record it sees is recorded for the expiry rules (stamped
// on receipt, as a GET's), it resumes from the last resourceVersion it saw
// (bookmarks on), reads the Lease afresh on a 410 and resumes from there,
// and reconnects with backoff after a broken stream. Wait starts it; it
// stops when a tenure starts, on Release, and one TTL after the last Wait
// returned without another starting. With Settings.SharedWatch it is a
// subscription to that NamespaceWatch instead, with no goroutine of its own.
type standby struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when its goroutine has returned
	// shared is the NamespaceWatch (Settings.SharedWatch) this standby
	// listens to instead of a watch of its own; nil for its own.
	shared *NamespaceWatch

	// Guarded by the lease's mu.
	waiters int           // Waits in progress
	idle    chan struct{} // closed to call off the idle stop; nil when none is pending
	live    bool          // a stream is open and has answered
	refused bool          // the server refused the watch: Waits poll
}

// joinStandbyLocked makes the caller a waiter on the standby watch,
// starting one when none runs: on Settings.SharedWatch when it can see the
// record seen last, else one of its own from resourceVersion rv.
func (l *KubernetesLease) joinStandbyLocked(rv string) *standby {
	sb := l.sb
	if sb != nil && l.sharedMissesLocked(sb) {
		l.detachStandbyLocked()
		sb = nil
	}
	if sb == nil {
		if sb = l.shareLocked(); sb == nil {
			ctx, cancel := context.WithCancel(context.Background())
			sb = &standby{cancel: cancel, done: make(chan struct{})}
			go l.runStandby(ctx, sb, rv)
		}
		l.sb = sb
	}
	sb.waiters++
	if sb.idle != nil {
		close(sb.idle)
		sb.idle = nil
	}
	return sb
}

// leaveStandby ends a Wait on sb; the watch stays open for a TTL in case
// another Wait follows (RunSingleton's next one comes after an Acquire).
func (l *KubernetesLease) leaveStandby(sb *standby) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sb.waiters--
	if sb.waiters > 0 || l.sb != sb {
		return
	}
	idle := make(chan struct{})
	sb.idle = idle
	t := l.clock.NewTimer(l.s.TTL)
	go func() {
		defer t.Stop()
		select {
		case <-idle:
		case <-t.C():
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.sb == sb && sb.idle == idle {
				l.detachStandbyLocked()
			}
		}
	}()
}

// detachStandbyLocked stops the standby watch, if any, without waiting for
// its goroutine (which ignores what it sees from then on).
func (l *KubernetesLease) detachStandbyLocked() *standby {
	sb := l.sb
	if sb == nil {
		return nil
	}
	l.sb = nil
	if sb.idle != nil {
		close(sb.idle)
		sb.idle = nil
	}
	sb.cancel()
	return sb
}

// stopStandby stops the standby watch, if any, and waits for it.
func (l *KubernetesLease) stopStandby() {
	l.mu.Lock()
	sb := l.detachStandbyLocked()
	l.mu.Unlock()
	if sb != nil {
		<-sb.done
	}
}

// refusedRetry is how long a standby whose watch has been refused for a
// RenewalInterval waits before trying the watch again (its Waits poll
// meanwhile): a refusal can pass, as when a kube-apiserver that has just
// started answers 403 until its RBAC is loaded.
const refusedRetry = time.Minute

// runStandby is sb's goroutine.
func (l *KubernetesLease) runStandby(ctx context.Context, sb *standby, rv string) {
	defer close(sb.done)
	b := l.watchBackoff()
	gone := 0                  // 410s in a row
	var refusedSince time.Time // first refusal of a run of them
	for ctx.Err() == nil {
		err := l.watch(ctx, rv, func(typ string, obj *wire.Lease) bool {
			rv = obj.ResourceVersion
			b.Reset()
			gone, refusedSince = 0, time.Time{}
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.sb != sb {
				return false
			}
			sb.live = true
			if sb.refused { // the watch is served again: Waits stop polling
				sb.refused = false
				l.noteChangeLocked()
			}
			switch typ {
			case "BOOKMARK":
			case "DELETED":
				l.observeLocked(nil, l.now())
			default:
				l.observeLocked(obj, l.now())
			}
			return true
		})
		if ctx.Err() != nil {
			return
		}
		l.mu.Lock()
		sb.live = false
		l.mu.Unlock()
		switch {
		case errors.Is(err, errWatchGone):
			// Compacted past rv, or a restarted server that no longer
			// serves it: read afresh, then watch from now (no
			// resourceVersion: the server first sends the current
			// object). Only the first 410 in a row goes straight on; a
			// server that keeps answering 410 gets the backoff.
			obj, gerr := l.read(ctx, l.s.TTL-margin(l.s.TTL))
			if gerr != nil {
				break
			}
			l.mu.Lock()
			if l.sb == sb {
				l.observeLocked(obj, l.now())
			}
			l.mu.Unlock()
			rv = ""
			if gone++; gone == 1 {
				continue
			}
		case watchRefused(err):
			// A refusal may pass (a kube-apiserver that has just
			// started answers 403 until its RBAC is loaded): only
			// refusals for a RenewalInterval make the Waits poll.
			now := l.clock.Now()
			if refusedSince.IsZero() {
				refusedSince = now
			}
			if now.Sub(refusedSince) < l.s.RenewalInterval {
				break
			}
			l.mu.Lock()
			sb.refused = true
			l.noteChangeLocked()
			logIt := !l.watchRefusedLogged
			l.watchRefusedLogged = true
			l.mu.Unlock()
			if logIt {
				l.log.Warn("kubelease: the API server refused to watch the Lease; contenders poll every RenewalInterval instead, and try the watch again every minute (grant watch on leases)",
					"err", err, "every", l.s.RenewalInterval)
			}
			if !l.pause(ctx, refusedRetry) {
				return
			}
			continue
		}
		if !l.pause(ctx, b.NextBackOff()) {
			return
		}
	}
}

// watchRefused reports an answer that means the watch will not be served:
// not allowed (401 after a re-read, 403) or not supported (405, a 404 that
// is not about the Lease).
func watchRefused(err error) bool {
	var e *APIError
	if !errors.As(err, &e) {
		return false
	}
	switch e.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusMethodNotAllowed, http.StatusNotFound:
		return true
	}
	return false
}
