package lease

import (
	"context"
	"errors"

	"github.com/kubelease/lease/internal/wire"
)

// holderWatch ends tenure t at once when a watch shows the Lease deleted
// (LostDeleted) or naming another holder or instance (LostConflict),
// instead of at the next renewal, and starts a step-down at once when a
// record of ours names another preferred holder (a planned handoff). It
// reconnects with backoff; our own renewals are recognised by holder and
// nonce.
func (l *KubernetesLease) holderWatch(ctx context.Context, t *tenure) {
	b := l.watchBackoff()
	l.mu.Lock()
	rv, uid := t.obj.ResourceVersion, t.obj.UID
	l.mu.Unlock()
	for ctx.Err() == nil {
		err := l.watch(ctx, rv, func(typ string, obj *wire.Lease) bool {
			rv = obj.ResourceVersion
			b.Reset()
			if typ == "BOOKMARK" {
				return true
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			switch {
			case !l.aliveLocked():
				return false
			case typ == "DELETED" || obj.UID != uid:
				l.endLocked(t, LostDeleted, holderOf(typ, obj), nil)
				return false
			case !l.isOurs(obj):
				l.endLocked(t, LostConflict, obj.Spec.Holder(), nil)
				return false
			}
			l.noteHandoffLocked(t, obj)
			return true
		})
		if ctx.Err() != nil || err == nil {
			return
		}
		if errors.Is(err, errWatchGone) {
			rv = "" // start over from the current object (a synthetic ADDED)
		}
		if !l.pause(ctx, b.NextBackOff()) {
			return
		}
	}
}

// holderOf is the holder an event shows: none for a deletion.
func holderOf(typ string, obj *wire.Lease) string {
	if typ == "DELETED" {
		return ""
	}
	return obj.Spec.Holder()
}
