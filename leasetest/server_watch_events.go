package leasetest

import (
	"math"
	"sort"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubelease/lease/internal/wire"
)

// watcher is one open watch stream. Its fields, but wake and filter, are
// guarded by the Server's mu.
type watcher struct {
	filter    *watchFilter
	bookmarks bool
	// pending holds the resourceVersions of the Bookmark calls not sent yet.
	pending []uint64
	// dropped is set by DropWatches.
	dropped bool
	// wake is signalled (without blocking; it has room for one) when
	// pending or dropped change.
	wake chan struct{}
}

// signal wakes the watcher's stream.
func (w *watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// watchFilter is what a watch selects.
type watchFilter struct {
	ns     string // "" for all namespaces
	labels labels.Selector
	fields fields.Selector
}

// matches reports whether l is selected.
func (f *watchFilter) matches(l *Lease) bool {
	if f.ns != "" && l.Namespace != f.ns {
		return false
	}
	return f.labels.Matches(labels.Set(l.Labels)) &&
		f.fields.Matches(fields.Set{"metadata.name": l.Name, "metadata.namespace": l.Namespace})
}

// watchEvent is one event of a watch stream.
type watchEvent struct {
	Type   string `json:"type"`
	Object any    `json:"object"`
}

// Watch event types beyond those of the change log.
const (
	eventBookmark = "BOOKMARK"
	eventError    = "ERROR"
)

// event returns the event c makes for the watch, as the watch cache
// decides it from the object and the previous object, and whether there is
// one.
func (f *watchFilter) event(c change) (watchEvent, bool) {
	switch c.typ {
	case eventAdded, eventDeleted:
		if f.matches(c.lease) {
			return watchEvent{Type: c.typ, Object: withType(c.lease)}, true
		}
		return watchEvent{}, false
	}
	cur := f.matches(c.lease)
	old := c.prev != nil && f.matches(c.prev)
	switch {
	case cur && old:
		return watchEvent{Type: eventModified, Object: withType(c.lease)}, true
	case cur:
		return watchEvent{Type: eventAdded, Object: withType(c.lease)}, true
	case old:
		gone := withType(c.prev)
		gone.ResourceVersion = c.lease.ResourceVersion
		return watchEvent{Type: eventDeleted, Object: gone}, true
	}
	return watchEvent{}, false
}

// bookmarkEvent is a BOOKMARK at resourceVersion rv.
func bookmarkEvent(rv uint64) watchEvent {
	return watchEvent{Type: eventBookmark, Object: &Lease{
		TypeMeta:   metav1.TypeMeta{APIVersion: wire.APIVersion, Kind: wire.Kind},
		ObjectMeta: metav1.ObjectMeta{ResourceVersion: strconv.FormatUint(rv, 10)},
	}}
}

// pendingLocked returns the events of wt after resourceVersion sent, its
// pending bookmarks merged in order, and the resourceVersion up to which
// it has then taken events. It returns false if the log no longer holds
// every change after sent: the watcher fell too far behind.
func (s *Server) pendingLocked(wt *watcher, sent uint64) ([]watchEvent, uint64, bool) {
	if len(s.changes) > 0 && s.changes[0].rv-1 > sent {
		return nil, sent, false
	}
	marks := wt.pending
	wt.pending = nil
	var out []watchEvent
	// A bookmark at rv goes after every change up to rv; one older than
	// what the stream has already sent (a watch started ahead of the
	// server) is skipped.
	bookmarksBefore := func(rv uint64) {
		for len(marks) > 0 && marks[0] < rv {
			if marks[0] >= sent {
				out = append(out, bookmarkEvent(marks[0]))
				sent = marks[0]
			}
			marks = marks[1:]
		}
	}
	i := sort.Search(len(s.changes), func(i int) bool { return s.changes[i].rv > sent })
	for _, c := range s.changes[i:] {
		bookmarksBefore(c.rv)
		if ev, ok := wt.filter.event(c); ok {
			out = append(out, ev)
		}
		sent = c.rv
	}
	bookmarksBefore(math.MaxUint64)
	return out, sent, true
}
