package lease

import (
	"context"
	"fmt"
	"net/http"

	"github.com/kubelease/lease/internal/wire"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Release ends the current tenure and deletes the Lease so that a peer can
// take it at once. It stops the renewal goroutine and any renewal in flight
// and waits for it (CheckAlive is false from then on), then sends a DELETE
// with uid and resourceVersion preconditions. A 404 counts as success; on
// a 409 it re-reads and deletes only a record that still names our Owner
// with our nonce. It never deletes or clears a lease someone else holds.
//
// A Release cancels an Acquire of the same instance that is in flight. If
// an acquiring write's outcome was unknown (its answer was lost or came too
// late), Release also deletes the record when it still names us.
//
// Release returns nil when the lease is not held, and is idempotent. After
// a loss by deadline it still deletes a record that names us, so peers need
// not wait for it to expire; that first call returns the DELETE's error,
// if any, and later calls return nil. OnLost handlers are not called for a
// Release. The DELETE is bounded by its own timeout (min(TTL, 10 s)) even
// when ctx is already cancelled.
//
// While RunSingleton's work runs on this instance, Release first cancels
// that work and waits for it to return (up to the runner's GracePeriod,
// whatever ctx says): work never runs past the end of its tenure. If work
// does not return in time, Release returns an error matching
// ErrWorkDidNotStop and the lease stays held (see BeforeRelease).
func (l *KubernetesLease) Release(ctx context.Context) error {
	return l.release(ctx, nil)
}

// release is Release; want, when not nil, is the only tenure it may end (a
// step-down for a handoff must not end a later tenure).
func (l *KubernetesLease) release(ctx context.Context, want *tenure) error {
	if want != nil && !l.isCurrent(want) {
		return nil
	}
	if err := l.runHooks(ctx); err != nil {
		return err
	}
	l.stopStandby()
	rctx, cancel := withTimeout(context.WithoutCancel(ctx), l.clock, min(l.s.TTL, MaxRenewAttemptTimeout))
	defer cancel()
	l.mu.Lock()
	if l.cancelAcquire != nil {
		l.cancelAcquire() // do not wait behind an Acquire in flight
	}
	l.mu.Unlock()
	if err := l.lock(rctx); err != nil {
		return err
	}
	defer l.unlock()
	l.mu.Lock()
	t := l.ten
	if want != nil && t != want {
		l.mu.Unlock()
		return nil
	}
	if t == nil || t.released {
		l.mu.Unlock()
		l.cleanUnsure(rctx)
		return nil
	}
	t.released = true
	lost := t.lost
	if !t.ended {
		l.s.Observer.Released()
		if t.handoff == "" { // a handoff posts its own event (handedOff)
			l.postEventLocked(t.obj, eventNormal, EventReasonLeaderElection, stoppedLeading(l.s.Owner))
		}
	}
	t.ended = true
	t.cancel()
	l.mu.Unlock()
	select {
	case <-t.done:
	case <-rctx.Done():
		return fmt.Errorf("lease: releasing %s: waiting for the renewal to stop: %w", l.path, context.Cause(rctx))
	}
	if lost != nil && lost.Reason != LostDeadline {
		l.cleanUnsure(rctx)
		return nil // the record is someone else's, or gone
	}
	l.mu.Lock()
	obj, to := t.obj, t.handoff
	l.mu.Unlock()
	if to != "" {
		return l.handedOff(rctx, t, obj, to, want != nil)
	}
	if err := l.deleteOurs(rctx, obj); err != nil {
		return err
	}
	l.log.Info("kubelease: released")
	l.emit("released")
	return nil
}

// handedOff ends tenure t, stepped down for a handoff: it leaves the
// record without a holder, naming the target (see vacate). When the
// step-down itself ends the tenure (stepDown), it tells the OnLost handlers
// (LostHandoff), since no one called Release — unless they were told of a
// loss already (a deadline passed while the work was stopping; the record,
// still ours, is vacated all the same). A Release called meanwhile
// (RunSingleton's once work returned, or a shutdown hook's) that gets there
// first ends the tenure the same way, but as a Release: OnLost is not
// called.
func (l *KubernetesLease) handedOff(ctx context.Context, t *tenure, obj *wire.Lease, fallback string, stepDown bool) error {
	to, err := l.vacateOurs(ctx, obj, fallback)
	l.mu.Lock()
	lostBefore := t.lost != nil // LeaseLost was posted then
	if stepDown && t.lost == nil {
		lost := &LostError{Reason: LostHandoff, Holder: to, Token: t.token, Err: err}
		t.lost = lost
		for _, h := range l.handlers {
			go h(lost)
		}
	}
	switch {
	case err == nil:
		l.postEventLocked(obj, eventNormal, EventReasonLeaderElection, handedTo(l.s.Owner, to))
	case !lostBefore:
		l.postEventLocked(obj, eventNormal, EventReasonLeaderElection, stoppedLeading(l.s.Owner))
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}
	l.log.Info("kubelease: handed off", "to", to)
	l.emit("handed-off")
	return nil
}

// isCurrent reports whether t is the current tenure and has not ended.
func (l *KubernetesLease) isCurrent(t *tenure) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ten == t && !t.ended
}

// cleanUnsure deletes the record an acquiring write with an unknown outcome
// may have left naming us, so peers need not wait for it to expire. It is
// best effort: failures are logged, not returned, since the lease was not
// held.
func (l *KubernetesLease) cleanUnsure(ctx context.Context) {
	l.mu.Lock()
	unsure := l.unsure
	l.unsure = false
	l.mu.Unlock()
	if !unsure {
		return
	}
	cur, err := l.read(ctx, 0)
	if err == nil && cur != nil && l.isOurs(cur) {
		err = l.deleteOurs(ctx, cur)
	}
	if err != nil {
		l.log.Warn("kubelease: cleaning up after an acquire with an unknown outcome", "err", err)
	}
}

// dropStale deletes the Lease if its record names this instance (Owner and
// nonce) while the instance holds no tenure: an acquiring write that the
// server applied after its Acquire had given up, and after Release had
// looked (a late apply). A ShardSet calls it for shards it does not want,
// so that their new owner need not wait for such a record to expire.
func (l *KubernetesLease) dropStale(ctx context.Context) error {
	ctx, cancel := withTimeout(ctx, l.clock, min(l.s.TTL, MaxRenewAttemptTimeout))
	defer cancel()
	if err := l.lock(ctx); err != nil {
		return err
	}
	defer l.unlock()
	if l.CheckAlive() {
		return nil
	}
	cur, err := l.read(ctx, 0)
	if err != nil || cur == nil || !l.isOurs(cur) {
		return err
	}
	l.log.Info("kubelease: deleting a record of ours that no tenure holds (an acquiring write applied after its Acquire gave up)")
	return l.deleteOurs(ctx, cur)
}

// deleteOurs deletes the Lease if it is still the one we wrote, or if a
// fresh read shows it still names us.
func (l *KubernetesLease) deleteOurs(ctx context.Context, obj *wire.Lease) error {
	var err error
	for range 3 {
		err = l.deleteIf(ctx, obj)
		if err == nil || isLeaseNotFound(err) {
			return nil
		}
		if !apierrors.IsConflict(err) {
			return err
		}
		cur, gerr := l.read(ctx, 0)
		switch {
		case gerr != nil:
			return gerr
		case cur == nil:
			return nil // gone
		case cur.UID != obj.UID || !l.isOurs(cur):
			return nil // someone else's now: leave it alone
		}
		obj = cur
	}
	return fmt.Errorf("lease: releasing %s: the record kept changing while still ours: %w", l.path, err)
}

func (l *KubernetesLease) deleteIf(ctx context.Context, obj *wire.Lease) error {
	uid, rv := obj.UID, obj.ResourceVersion
	body := wire.DeleteOptions{
		TypeMeta:      metav1.TypeMeta{APIVersion: "v1", Kind: "DeleteOptions"},
		Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv},
	}
	_, err := l.rest.do(ctx, http.MethodDelete, l.path, body)
	return err
}
