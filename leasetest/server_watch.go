package leasetest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
