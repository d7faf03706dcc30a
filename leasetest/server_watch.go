package leasetest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kubelease/lease/internal/wire"
)

// Watch serves GET .../namespaces/{ns}/leases?watch=true and
// GET .../leases?watch=true (all namespaces) as kube-apiserver does:
//
//   - The answer is 200 with Content-Type application/json and a chunked
//     body of watch events, one JSON object per line:
//     {"type":"ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK"|"ERROR","object":{...}}.
//     The headers are flushed as soon as the watch is established, and each
//     event is flushed as it is written. Lease objects carry apiVersion and
//     kind; the object of a DELETED event is the last state of the Lease
//     with the resourceVersion of the deletion.
//   - resourceVersion "" or "0" sends a synthetic ADDED event for every
//     matching Lease (sorted by namespace and name, each with its own
//     resourceVersion), then every change after the current global
//     resourceVersion. A resourceVersion N sends every change with a
//     resourceVersion greater than N, replayed from the change log, then
//     live changes; N may be ahead of the server, as with etcd. If N is
//     older than the oldest change kept (see CompactLog), the stream holds
//     one ERROR event whose object is a 410 Expired metav1.Status with the
//     message "too old resource version: N (M)", M being the oldest
//     resourceVersion a watch may start from, and then ends. A
//     resourceVersion that is no number is a 422 Invalid.
//   - Events come in resourceVersion order. A no-op update makes none; any
//     other write, a label-only edit included, makes one.
//   - fieldSelector may test metadata.name and metadata.namespace (other
//     fields are a 400), and labelSelector the labels. As with the watch
//     cache, a MODIFIED change that moves a Lease into the selection is
//     sent as ADDED, and one that moves it out as DELETED (with the previous
//     content and the new resourceVersion).
//   - With allowWatchBookmarks=true, each call of Server.Bookmark sends one
//     BOOKMARK event whose object is a Lease with only apiVersion, kind and
//     metadata.resourceVersion set: the global resourceVersion at the time
//     of the call, after every change up to it. There are no timed
//     bookmarks.
//   - timeoutSeconds=N ends the stream cleanly after N seconds of real
//     time; without it a stream has no time limit.
//   - A stream ends cleanly (the chunked body ends, the client reads EOF)
//     on timeoutSeconds, DropWatches, Close, when it falls more than the
//     change log's length behind (as a real server drops a watcher that
//     does not keep up), and when the client goes away.
//   - sendInitialEvents (streaming lists) is not supported (400), and
//     resourceVersionMatch is a 422, as for a real watch.
//
// A watch counts as verb "watch". Faults and Pause apply before the stream
// starts; under DropAnswer the watch is validated and its connection
// closed without an answer. In the request log (Requests, AwaitRequests) a
// watch is finished only once its stream has ended, and its Code is 200
// (or that of the error answered instead of a stream).

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

// watchOptions are the parsed query parameters of a watch.
type watchOptions struct {
	filter    *watchFilter
	rv        uint64 // 0 for "" and "0": start from the current state
	bookmarks bool
	timeout   time.Duration // 0: none
}

// parseWatchOptions reads and checks the query parameters of a watch.
func parseWatchOptions(r *http.Request, rt *route) (*watchOptions, *apierrors.StatusError) {
	q := r.URL.Query()
	if boolParam(q, "sendInitialEvents") {
		return nil, badRequestf("leasetest: sendInitialEvents (streaming lists) is not supported")
	}
	if q.Get("resourceVersionMatch") != "" {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "ListOptions"}, "", field.ErrorList{
			field.Forbidden(field.NewPath("resourceVersionMatch"), "resourceVersionMatch is forbidden for watch"),
		})
	}
	lsel, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	fsel, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	for _, req := range fsel.Requirements() {
		if req.Field != "metadata.name" && req.Field != "metadata.namespace" {
			return nil, badRequestf("field label not supported: %s", req.Field)
		}
	}
	o := &watchOptions{
		filter:    &watchFilter{ns: rt.ns, labels: lsel, fields: fsel},
		bookmarks: boolParam(q, "allowWatchBookmarks"),
	}
	if v := q.Get("timeoutSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		if n > 0 {
			o.timeout = time.Duration(min(n, math.MaxInt64/int64(time.Second))) * time.Second
		}
	}
	if v := q.Get("resourceVersion"); v != "" && v != "0" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, apierrors.NewInvalid(leasesAsKind, "", field.ErrorList{
				field.Invalid(field.NewPath("resourceVersion"), v, err.Error()),
			})
		}
		o.rv = n
	}
	return o, nil
}

// oldestWatchRVLocked returns the oldest resourceVersion a new watch may
// start from: every change after it is in the log.
func (s *Server) oldestWatchRVLocked() uint64 {
	oldest := s.rv
	if len(s.changes) > 0 {
		oldest = s.changes[0].rv - 1
	}
	return max(oldest, s.compacted)
}

// serveWatch answers a watch of the collection rt names.
func (s *Server) serveWatch(w http.ResponseWriter, r *http.Request, rt *route) {
	opts, st := parseWatchOptions(r, rt)
	if st != nil {
		writeStatus(w, st)
		return
	}
	if _, ok := w.(*httptest.ResponseRecorder); ok {
		// DropAnswer: the answer goes nowhere, so there is no stream to
		// serve; the connection is closed at once.
		w.WriteHeader(http.StatusOK)
		return
	}
	wt := &watcher{filter: opts.filter, bookmarks: opts.bookmarks, wake: make(chan struct{}, 1)}

	// Establish the watch: its starting point and initial events are
	// taken under the same lock as its registration, so that no write
	// falls between them.
	var (
		first   []watchEvent
		sent    uint64 // the resourceVersion up to which events are taken
		expired bool
	)
	s.mu.Lock()
	switch oldest := s.oldestWatchRVLocked(); {
	case opts.rv == 0:
		sent = s.rv
		keys := make([]objKey, 0, len(s.leases))
		for k, l := range s.leases {
			if opts.filter.matches(l) {
				keys = append(keys, k)
			}
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].ns != keys[j].ns {
				return keys[i].ns < keys[j].ns
			}
			return keys[i].name < keys[j].name
		})
		for _, k := range keys {
			first = append(first, watchEvent{Type: eventAdded, Object: withType(s.leases[k])})
		}
	case opts.rv < oldest:
		expired = true
		status := apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d (%d)", opts.rv, oldest)).ErrStatus
		status.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
		first = append(first, watchEvent{Type: eventError, Object: &status})
	default:
		sent = opts.rv
	}
	if !expired {
		s.watchers[wt] = struct{}{}
		s.broadcastLocked()
	}
	s.mu.Unlock()
	if !expired {
		defer func() {
			s.mu.Lock()
			delete(s.watchers, wt)
			s.broadcastLocked()
			s.mu.Unlock()
		}()
	}

	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache, private")
	h.Set("Audit-Id", newUID())
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return
	}
	for _, ev := range first {
		if writeEvent(w, rc, ev) != nil {
			return
		}
	}
	if expired {
		return
	}

	var timeout <-chan time.Time
	if opts.timeout > 0 {
		t := time.NewTimer(opts.timeout)
		defer t.Stop()
		timeout = t.C
	}
	ctx := r.Context()
	for {
		s.mu.Lock()
		if wt.dropped {
			s.mu.Unlock()
			return
		}
		evs, next, ok := s.pendingLocked(wt, sent)
		changed := s.changed
		s.mu.Unlock()
		if !ok {
			return
		}
		for _, ev := range evs {
			if writeEvent(w, rc, ev) != nil {
				return
			}
		}
		sent = next
		if !s.waitWatch(ctx, changed, wt.wake, timeout) {
			return
		}
	}
}

// waitWatch blocks until the change log or the watcher changes (true), or
// the stream is to end: its client went away, it timed out, or the server
// is closing (false).
func (s *Server) waitWatch(ctx context.Context, changed <-chan struct{}, wake <-chan struct{}, timeout <-chan time.Time) bool {
	select {
	case <-changed:
		return true
	case <-wake:
		return true
	case <-ctx.Done():
		return false
	case <-timeout:
		return false
	case <-s.closing:
		return false
	}
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

// writeEvent writes one event as a line of JSON and flushes it.
func writeEvent(w http.ResponseWriter, rc *http.ResponseController, ev watchEvent) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return err
	}
	return rc.Flush()
}

// Watchers returns the number of open watch streams. A watch counts from
// the moment it is established, before its response headers are sent (so
// once a client has the headers, the server already counts it and will
// send it every later change), until its stream ends or DropWatches drops
// it.
func (s *Server) Watchers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watchers)
}

// AwaitWatchers blocks until at least n watch streams are open (see
// Watchers), or returns ctx's error. It lets a test wait until a client's
// watch is established before making the change it should see.
func (s *Server) AwaitWatchers(ctx context.Context, n int) error {
	return s.await(ctx, func() bool { return len(s.watchers) >= n })
}

// Bookmark makes every open watch that asked for bookmarks
// (allowWatchBookmarks=true) send a BOOKMARK event at the current global
// resourceVersion, after the events of every change up to it. Each call
// makes one bookmark per such watch.
func (s *Server) Bookmark() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for wt := range s.watchers {
		if wt.bookmarks {
			wt.pending = append(wt.pending, s.rv)
			wt.signal()
		}
	}
}

// DropWatches ends every open watch stream at once, without sending its
// pending events: each body ends cleanly (the client reads EOF), as when a
// real server ends a watch. Watchers counts them no more as soon as
// DropWatches returns, so AwaitWatchers can then wait for the clients to
// watch again. Watches established later are not affected.
func (s *Server) DropWatches() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for wt := range s.watchers {
		wt.dropped = true
		wt.signal()
		delete(s.watchers, wt)
	}
	s.broadcastLocked()
}

// CompactLog forgets the history of changes, as an etcd compaction does: a
// watch from any resourceVersion older than the current global one then
// gets a 410 Expired ERROR event. Open watches are not affected (a real
// server serves them from its watch cache).
func (s *Server) CompactLog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compacted = s.rv
}
