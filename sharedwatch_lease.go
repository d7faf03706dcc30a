package lease

import (
	"time"

	"github.com/kubelease/lease/internal/wire"
	"k8s.io/apimachinery/pkg/util/resourceversion"
)

// closedDone is the done channel of a standby on a NamespaceWatch: it has
// no goroutine of its own to wait for.
var closedDone = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// shareLocked returns a standby that listens to Settings.SharedWatch, or
// nil when there is none, it is closed, or it cannot see the record seen
// last (which then needs a watch of its own).
func (l *KubernetesLease) shareLocked() *standby {
	w := l.s.SharedWatch
	if w == nil || (l.seenObj != nil && !w.selects(l.seenObj)) {
		return nil
	}
	sb := &standby{shared: w, done: closedDone}
	n, ok := w.subscribe(l.s.Name, l, sb)
	if !ok {
		return nil
	}
	name := l.s.Name
	sb.cancel = func() { w.unsubscribe(name, sb) }
	l.hearSharedLocked(sb, n)
	return sb
}

// sharedMissesLocked reports whether sb listens to a NamespaceWatch that
// cannot see the record seen last: it left the selection (its labels
// changed), so the watch would never tell of it again.
func (l *KubernetesLease) sharedMissesLocked(sb *standby) bool {
	return sb.shared != nil && l.seenObj != nil && !sb.shared.selects(l.seenObj)
}

// noteSharedMiss logs, once per lease, that Settings.SharedWatch cannot
// see obj, so that Wait watches the Lease alone.
func (l *KubernetesLease) noteSharedMiss(obj *wire.Lease) {
	w := l.s.SharedWatch
	if w == nil || w.selects(obj) || l.sharedMissLogged.Swap(true) {
		return
	}
	l.log.Info("kubelease: the Lease does not match the shared watch's label selector; watching it alone (a holder with Settings.Labels adds them when it acquires)",
		"labelSelector", w.selector, "labels", obj.Labels)
}

// hearShared takes news from sb's NamespaceWatch, unless sb is no longer
// this lease's standby.
func (l *KubernetesLease) hearShared(sb *standby, n sharedNews) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sb == sb {
		l.hearSharedLocked(sb, n)
	}
}

// hearSharedLocked records news from sb's NamespaceWatch: its status, and
// the Lease's state as an observation received now (expiry rule (a)),
// unless this lease has already seen that record or a newer one.
func (l *KubernetesLease) hearSharedLocked(sb *standby, n sharedNews) {
	sb.live = n.live
	if n.refused {
		l.dropSharedLocked(sb)
		return
	}
	if !n.state || !l.newerThanSeenLocked(n.obj, n.rv) {
		return
	}
	l.observeLocked(n.obj, l.now())
}

// newerThanSeenLocked reports whether a record (obj, nil for none) known
// at resourceVersion rv should replace the last one seen: it differs and
// is not older. ResourceVersions that do not compare as integers are
// taken as newer.
func (l *KubernetesLease) newerThanSeenLocked(obj *wire.Lease, rv string) bool {
	seen := l.seenObj
	if seen == nil {
		return obj != nil
	}
	if obj != nil && obj.ResourceVersion == seen.ResourceVersion {
		return false
	}
	c, err := resourceversion.CompareResourceVersion(rv, seen.ResourceVersion)
	return err != nil || c > 0
}

// sharedClosed is told by a NamespaceWatch's Close.
func (l *KubernetesLease) sharedClosed(sb *standby) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropSharedLocked(sb)
}

// dropSharedLocked gives up sb's NamespaceWatch, closed or refused to
// list: a Wait on sb polls, and the next Wait opens a watch of this
// lease's own.
func (l *KubernetesLease) dropSharedLocked(sb *standby) {
	if l.sb == sb {
		l.detachStandbyLocked()
	}
	sb.live, sb.refused = false, true
	l.noteChangeLocked()
}

// viewShared records what Settings.SharedWatch, when current, knows of the
// Lease, and reports whether it knew it, so that Holder need not GET. A
// Lease the watch does not have may exist unselected: that takes a GET.
func (l *KubernetesLease) viewShared() bool {
	w := l.s.SharedWatch
	if w == nil {
		return false
	}
	w.mu.Lock()
	n := w.newsLocked(l.s.Name, true)
	w.mu.Unlock()
	if !n.state || n.obj == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.newerThanSeenLocked(n.obj, n.rv) {
		l.observeLocked(n.obj, l.now())
	}
	return true
}

// addLabels sets on body each of Settings.Labels it lacks. Labels already
// on the Lease, whoever wrote them, are kept as they are.
func (l *KubernetesLease) addLabels(body *wire.Lease) {
	for k, v := range l.s.Labels {
		if _, ok := body.Labels[k]; ok {
			continue
		}
		if body.Labels == nil {
			body.Labels = map[string]string{}
		}
		body.Labels[k] = v
	}
}

// heldByOtherListed records obj (nil: none), listed at resourceVersion
// rv, as an observation received now, unless this lease has seen it or a
// newer record, and reports whether the record it has seen is held by
// another holder that may not be taken over yet: a caller with other
// Leases to try (a Semaphore) then skips this one without a request.
func (l *KubernetesLease) heldByOtherListed(obj *wire.Lease, rv string) bool {
	l.mu.Lock()
	if l.newerThanSeenLocked(obj, rv) {
		l.observeLocked(obj, l.now())
	}
	seen := l.seenObj
	l.mu.Unlock()
	return seen != nil && !l.mayTakeOver(seen)
}

// primeSeen records obj, which the caller (a ShardSet, through its own
// NamespaceWatch) has received and seen unchanged since since, on this
// lease's clock, as this lease's observation, unless the lease has seen a
// newer record: expiry rule (a) then counts from when this process first
// received the record, not from when this lease first looked at it. A
// ShardSet that starts contending for the shards of a member that vanished
// takes them about one TTL after that member's last renewal, also with
// the wall-clock rule (b) turned off.
func (l *KubernetesLease) primeSeen(obj *wire.Lease, since time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.newerThanSeenLocked(obj, obj.ResourceVersion) {
		l.observeLocked(obj, l.now())
	}
	if l.seen != nil && l.seen.key == keyOf(obj) && since.Before(l.seen.since) {
		l.seen.since = since
	}
}
