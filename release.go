package lease

import (
	"context"
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
// Release returns nil when the lease is not held, and is idempotent. After
// a loss by deadline it still deletes a record that names us, so peers need
// not wait for it to expire; that first call returns the DELETE's error,
// if any, and later calls return nil. OnLost handlers are not called for a
// Release. The DELETE is bounded by its own timeout (min(TTL, 10 s)) even
// when ctx is already cancelled.
func (l *KubernetesLease) Release(ctx context.Context) error {
	l.opMu.Lock()
	defer l.opMu.Unlock()
	l.mu.Lock()
	t := l.ten
	if t == nil || t.released {
		l.mu.Unlock()
		return nil
	}
	t.released = true
	lost := t.lost
	if !t.ended {
		t.ended = true
	}
	t.cancel()
	l.mu.Unlock()
	<-t.done
	if lost != nil && lost.Reason != LostDeadline {
		return nil // the record is someone else's, or gone
	}
	l.mu.Lock()
	obj := t.obj
	l.mu.Unlock()
	dctx, cancel := withTimeout(context.WithoutCancel(ctx), l.clock, min(l.s.TTL, MaxRenewAttemptTimeout))
	defer cancel()
	err := l.deleteOurs(dctx, obj)
	if err == nil {
		l.log.Info("kubelease: released")
		l.emit("released")
	}
	return err
}

// deleteOurs deletes the Lease if it is still the one we wrote, or if a
// fresh read shows it still names us.
func (l *KubernetesLease) deleteOurs(ctx context.Context, obj *wire.Lease) error {
	for range 3 {
		err := l.deleteIf(ctx, obj)
		if err == nil || isLeaseNotFound(err) {
			return nil
		}
		if !apierrors.IsConflict(err) {
			return err
		}
		res, err := l.rest.do(ctx, http.MethodGet, l.path, nil)
		if isLeaseNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := l.checkObject(res.obj); err != nil {
			return err
		}
		if res.obj.UID != obj.UID || !l.isOurs(res.obj) {
			return nil // someone else's now: leave it alone
		}
		obj = res.obj
	}
	return nil
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
