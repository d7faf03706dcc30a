package leasetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubelease/lease/internal/wire"
)

// eventTimeout bounds the wait for one watch event; it is only reached
// when a test fails.
const eventTimeout = 10 * time.Second

// watchStream is an open watch over real HTTP.
type watchStream struct {
	t      *testing.T
	resp   *http.Response
	dec    *json.Decoder
	cancel context.CancelFunc
}

// gotEvent is a watch event as read off the wire.
type gotEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// openWatch sends a watch GET of path (query included) and returns the
// response, whatever its code; the stream is closed at the end of the test.
func (c *testClient) openWatch(path string) *watchStream {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	require.NoError(c.t, err)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		cancel()
		require.NoError(c.t, err)
	}
	ws := &watchStream{t: c.t, resp: resp, dec: json.NewDecoder(resp.Body), cancel: cancel}
	c.t.Cleanup(ws.close)
	return ws
}

// watch opens a watch that must be established: 200 with a JSON stream.
func (c *testClient) watch(path string) *watchStream {
	c.t.Helper()
	ws := c.openWatch(path)
	body := ""
	if ws.resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(ws.resp.Body)
		body = string(b)
	}
	require.Equal(c.t, http.StatusOK, ws.resp.StatusCode, "body: %s", body)
	require.Equal(c.t, "application/json", ws.resp.Header.Get("Content-Type"))
	return ws
}

// close ends the stream from the client's side.
func (w *watchStream) close() {
	w.cancel()
	_ = w.resp.Body.Close()
}

// next reads the next event, failing the test if none comes in time.
func (w *watchStream) next() gotEvent {
	w.t.Helper()
	timer := time.AfterFunc(eventTimeout, w.cancel)
	defer timer.Stop()
	var ev gotEvent
	require.NoError(w.t, w.dec.Decode(&ev), "reading a watch event")
	return ev
}

// nextLease reads the next event, which must be of type typ, and returns
// its Lease, checking that it carries apiVersion and kind.
func (w *watchStream) nextLease(typ string) *Lease {
	w.t.Helper()
	ev := w.next()
	require.Equal(w.t, typ, ev.Type, "object: %s", ev.Object)
	var l Lease
	require.NoError(w.t, json.Unmarshal(ev.Object, &l))
	assert.Equal(w.t, wire.APIVersion, l.APIVersion)
	assert.Equal(w.t, wire.Kind, l.Kind)
	return &l
}

// end checks that the stream ends cleanly next: the client reads EOF.
func (w *watchStream) end() {
	w.t.Helper()
	timer := time.AfterFunc(eventTimeout, w.cancel)
	defer timer.Stop()
	var ev gotEvent
	err := w.dec.Decode(&ev)
	require.Error(w.t, err, "got an event instead of the end: %s %s", ev.Type, ev.Object)
	assert.True(w.t, errors.Is(err, io.EOF), "got %v, want io.EOF", err)
}

// watchPath is the watch of the default namespace's Leases, with query
// parameters added.
func watchPath(query string) string {
	p := wire.Path("default", "") + "?watch=true"
	if query != "" {
		p += "&" + query
	}
	return p
}

// put PUTs l back as read, with its spec edited by fn.
func (c *testClient) put(l *Lease, fn func(*Lease)) *Lease {
	c.t.Helper()
	l = l.DeepCopy()
	if fn != nil {
		fn(l)
	}
	r := c.must(http.MethodPut, wire.Path(l.Namespace, l.Name), l)
	require.Equal(c.t, http.StatusOK, r.code, "body: %s", r.body)
	return r.lease(c.t)
}

// renew moves the renewTime of l forward.
func renew(l *Lease) {
	t := metav1.NewMicroTime(l.Spec.RenewTime.Add(time.Second))
	l.Spec.RenewTime = &t
}

func TestWatchInitialEvents(t *testing.T) {
	for _, rv := range []string{"", "resourceVersion=", "resourceVersion=0"} {
		t.Run(fmt.Sprintf("%q", rv), func(t *testing.T) {
			s, c := newTestServer(t)
			b := c.create("default", "b")
			a := c.create("default", "a")
			c.create("kube-system", "c")
			w := c.watch(watchPath(rv))
			assert.Equal(t, a, w.nextLease(eventAdded), "sorted by name")
			assert.Equal(t, b, w.nextLease(eventAdded))
			// Then changes after the snapshot.
			d := c.create("default", "d")
			assert.Equal(t, d, w.nextLease(eventAdded))
			assert.Equal(t, 1, s.Count("watch"))
		})
	}
}

func TestWatchFromResourceVersion(t *testing.T) {
	s, c := newTestServer(t)
	c.create("default", "before")
	from := s.ResourceVersion()

	x := c.create("default", "x")
	x2 := c.put(x, func(l *Lease) { renew(l) })
	same := c.put(x2, nil) // no-op: no event
	require.Equal(t, x2.ResourceVersion, same.ResourceVersion)
	require.NoError(t, s.Edit("default", "x", func(l *Lease) { l.Labels = map[string]string{"k": "v"} }))
	x3, _ := s.Get("default", "x")
	c.create("kube-system", "elsewhere") // another namespace: not seen
	r := c.must(http.MethodDelete, wire.Path("default", "x"), nil)
	require.Equal(t, http.StatusOK, r.code)
	deleteRV := s.ResourceVersion()

	check := func(w *watchStream) {
		t.Helper()
		assert.Equal(t, x, w.nextLease(eventAdded))
		assert.Equal(t, x2, w.nextLease(eventModified))
		assert.Equal(t, x3, w.nextLease(eventModified), "a label-only edit is an event")
		gone := w.nextLease(eventDeleted)
		assert.Equal(t, deleteRV, gone.ResourceVersion, "a DELETED event has the deletion's resourceVersion")
		assert.Equal(t, x3.UID, gone.UID)
		assert.Equal(t, x3.Labels, gone.Labels, "the last state")
		assert.Equal(t, x3.Spec.RenewTime, gone.Spec.RenewTime)
	}
	// Replayed from the log...
	check(c.watch(watchPath("resourceVersion=" + from)))

	// ...and live, as they happen.
	w := c.watch(watchPath("resourceVersion=" + s.ResourceVersion() + "&allowWatchBookmarks=true"))
	x = c.create("default", "x")
	assert.Equal(t, x, w.nextLease(eventAdded))
	x2 = c.put(x, func(l *Lease) { renew(l) })
	assert.Equal(t, x2, w.nextLease(eventModified))
	c.put(x2, nil)
	s.Bookmark() // nothing came between: the no-op update made no event
	assert.Equal(t, x2.ResourceVersion, w.nextLease(eventBookmark).ResourceVersion)
}

func TestWatchOrderUnderConcurrentWrites(t *testing.T) {
	s, c := newTestServer(t)
	w := c.watch("/apis/" + wire.APIVersion + "/leases?watch=true&resourceVersion=" + s.ResourceVersion())
	const writers, writes = 4, 10
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			name := "l" + strconv.Itoa(i)
			l := c.create("default", name)
			for range writes {
				l = c.put(l, func(l *Lease) { renew(l) })
			}
		})
	}
	wg.Wait()
	var last uint64
	for i := range writers * (writes + 1) {
		ev := w.next()
		assert.Contains(t, []string{eventAdded, eventModified}, ev.Type, "event %d", i)
		var l Lease
		require.NoError(t, json.Unmarshal(ev.Object, &l))
		rv := rvOf(t, &l)
		assert.Greater(t, rv, last, "events in resourceVersion order")
		last = rv
	}
	assert.Equal(t, s.ResourceVersion(), strconv.FormatUint(last, 10))
}

func TestWatchFieldSelector(t *testing.T) {
	s, c := newTestServer(t)
	now := s.ResourceVersion()
	all := "/apis/" + wire.APIVersion + "/leases?watch=true&resourceVersion=" + now
	byName := c.watch(all + "&fieldSelector=metadata.name%3Dx")
	byNS := c.watch(all + "&fieldSelector=metadata.namespace%3Dkube-system")
	inDefault := c.watch(watchPath("resourceVersion=" + now + "&fieldSelector=metadata.name%3Dx"))

	c.create("default", "y")
	x := c.create("default", "x")
	sx := c.create("kube-system", "x")
	sy := c.create("kube-system", "y")

	assert.Equal(t, x, byName.nextLease(eventAdded))
	assert.Equal(t, sx, byName.nextLease(eventAdded))
	assert.Equal(t, sx, byNS.nextLease(eventAdded))
	assert.Equal(t, sy, byNS.nextLease(eventAdded))
	assert.Equal(t, x, inDefault.nextLease(eventAdded))
	require.NoError(t, s.Delete("default", "x"))
	assert.Equal(t, "x", inDefault.nextLease(eventDeleted).Name)

	for _, q := range []string{"fieldSelector=spec.holderIdentity%3Da", "fieldSelector=%3D%3D%3D", "labelSelector=a%20in"} {
		w := c.openWatch(watchPath(q))
		assert.Equal(t, http.StatusBadRequest, w.resp.StatusCode, q)
	}
}

func TestWatchLabelSelector(t *testing.T) {
	s, c := newTestServer(t)
	w := c.watch(watchPath("allowWatchBookmarks=true&labelSelector=app%3Da&resourceVersion=" + s.ResourceVersion()))
	c.create("default", "x") // no label: not selected
	setLabel := func(v string) *Lease {
		require.NoError(t, s.Edit("default", "x", func(l *Lease) { l.Labels = map[string]string{"app": v} }))
		l, _ := s.Get("default", "x")
		return l
	}
	in := setLabel("a")
	assert.Equal(t, in, w.nextLease(eventAdded), "entering the selection is ADDED")
	require.NoError(t, s.Edit("default", "x", func(l *Lease) { renew(l) }))
	in, _ = s.Get("default", "x")
	assert.Equal(t, in, w.nextLease(eventModified))
	out := setLabel("b")
	gone := w.nextLease(eventDeleted)
	assert.Equal(t, out.ResourceVersion, gone.ResourceVersion, "leaving it is DELETED at the new resourceVersion...")
	assert.Equal(t, "a", gone.Labels["app"], "...with the previous content")
	setLabel("c")
	s.Bookmark()
	assert.Equal(t, s.ResourceVersion(), w.nextLease(eventBookmark).ResourceVersion, "nothing about a Lease outside the selection")
}

func TestWatchExpired(t *testing.T) {
	s, c := newTestServer(t)
	x := c.create("default", "x")
	old := s.ResourceVersion()
	open := c.watch(watchPath("resourceVersion=" + old))
	x = c.put(x, func(l *Lease) { renew(l) })
	s.CompactLog()

	// A watch from before the compaction gets one ERROR event, then ends.
	w := c.watch(watchPath("resourceVersion=" + old))
	ev := w.next()
	require.Equal(t, eventError, ev.Type)
	var st metav1.Status
	require.NoError(t, json.Unmarshal(ev.Object, &st))
	assert.Equal(t, "Status", st.Kind)
	assert.Equal(t, "v1", st.APIVersion)
	assert.Equal(t, metav1.StatusFailure, st.Status)
	assert.Equal(t, int32(http.StatusGone), st.Code)
	assert.Equal(t, metav1.StatusReasonExpired, st.Reason)
	assert.Equal(t, fmt.Sprintf("too old resource version: %s (%s)", old, x.ResourceVersion), st.Message)
	w.end()
	require.NoError(t, s.AwaitRequests(testCtx(t), 3))
	assert.Equal(t, 1, s.Watchers(), "an expired watch never counts")

	// One from the current resourceVersion is fine, and an open watch
	// keeps its events.
	cur := c.watch(watchPath("resourceVersion=" + x.ResourceVersion))
	assert.Equal(t, x, open.nextLease(eventModified))
	x = c.put(x, func(l *Lease) { renew(l) })
	assert.Equal(t, x, cur.nextLease(eventModified))
	assert.Equal(t, x, open.nextLease(eventModified))
}

func TestWatchExpiredBeforeFirst(t *testing.T) {
	// Without CompactLog, a resourceVersion older than the oldest change
	// kept: before the server's first one.
	_, c := newTestServer(t)
	c.create("default", "x")
	w := c.watch(watchPath("resourceVersion=1"))
	ev := w.next()
	require.Equal(t, eventError, ev.Type)
	var st metav1.Status
	require.NoError(t, json.Unmarshal(ev.Object, &st))
	assert.Equal(t, fmt.Sprintf("too old resource version: 1 (%d)", firstResourceVersion), st.Message)
	w.end()

	// The oldest one kept is fine.
	w = c.watch(watchPath("resourceVersion=" + strconv.Itoa(firstResourceVersion)))
	assert.Equal(t, "x", w.nextLease(eventAdded).Name)
}

func TestWatchBookmarks(t *testing.T) {
	s, c := newTestServer(t)
	w := c.watch(watchPath("allowWatchBookmarks=true"))
	plain := c.watch(watchPath("allowWatchBookmarks=false"))
	rv0 := s.ResourceVersion()
	s.Bookmark()
	x := c.create("default", "x")
	s.Bookmark()
	s.Bookmark()

	ev := w.next()
	require.Equal(t, eventBookmark, ev.Type)
	var obj map[string]any
	require.NoError(t, json.Unmarshal(ev.Object, &obj))
	assert.Equal(t, wire.APIVersion, obj["apiVersion"])
	assert.Equal(t, wire.Kind, obj["kind"])
	meta, _ := obj["metadata"].(map[string]any)
	assert.Equal(t, rv0, meta["resourceVersion"])
	assert.Nil(t, meta["name"], "a bookmark carries only a resourceVersion")
	assert.Equal(t, x, w.nextLease(eventAdded))
	assert.Equal(t, x.ResourceVersion, w.nextLease(eventBookmark).ResourceVersion)
	assert.Equal(t, x.ResourceVersion, w.nextLease(eventBookmark).ResourceVersion, "one per call")

	// Without allowWatchBookmarks, none.
	assert.Equal(t, x, plain.nextLease(eventAdded))
	y := c.create("default", "y")
	assert.Equal(t, y, plain.nextLease(eventAdded))

	// A watch from ahead of the server gets no bookmark behind it.
	ahead := c.watch(watchPath("allowWatchBookmarks=true&resourceVersion=" + strconv.FormatUint(rvOf(t, y)+1, 10)))
	s.Bookmark()
	c.create("default", "z")
	z := c.create("default", "zz")
	s.Bookmark()
	assert.Equal(t, z, ahead.nextLease(eventAdded), "only what comes after its resourceVersion")
	assert.Equal(t, z.ResourceVersion, ahead.nextLease(eventBookmark).ResourceVersion)
}

func TestWatchDropWatches(t *testing.T) {
	s, c := newTestServer(t)
	a := c.watch(watchPath(""))
	b := c.watch("/apis/" + wire.APIVersion + "/leases?watch=true")
	assert.Equal(t, 2, s.Watchers())
	assert.Empty(t, s.Requests(), "an open watch is not finished")

	s.DropWatches()
	assert.Equal(t, 0, s.Watchers(), "dropped watches count no more at once")
	c.create("default", "x") // after the drop: not sent
	a.end()
	b.end()
	require.NoError(t, s.AwaitRequests(testCtx(t), 3))
	for _, r := range s.Requests() {
		if r.Verb == "watch" {
			assert.Equal(t, http.StatusOK, r.Code)
		}
	}

	// A client can watch again.
	again := c.watch(watchPath("resourceVersion=" + s.ResourceVersion()))
	require.NoError(t, s.AwaitWatchers(testCtx(t), 1))
	y := c.create("default", "y")
	assert.Equal(t, y, again.nextLease(eventAdded))
	assert.Equal(t, 3, s.Count("watch"))
}

func TestWatchCloseEndsStreams(t *testing.T) {
	s, c := newTestServer(t)
	w := c.watch(watchPath(""))
	s.Close()
	w.end()
	assert.Equal(t, 0, s.Watchers())
}

func TestWatchAwaitWatchers(t *testing.T) {
	s, c := newTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, s.AwaitWatchers(ctx, 1), context.Canceled)
	require.NoError(t, s.AwaitWatchers(testCtx(t), 0))

	// A watch held by a fault is not open yet.
	s.InjectFault(Fault{Verb: "watch", Hang: true})
	opened := make(chan *watchStream, 1)
	go func() { opened <- c.openWatch(watchPath("")) }()
	require.NoError(t, s.AwaitReceived(testCtx(t), 1))
	assert.Equal(t, 0, s.Watchers())
	s.Unhang()
	require.NoError(t, s.AwaitWatchers(testCtx(t), 1))
	var w *watchStream
	select {
	case w = <-opened:
	case <-time.After(eventTimeout):
		t.Fatal("the watch was not answered")
	}
	require.Equal(t, http.StatusOK, w.resp.StatusCode)
	x := c.create("default", "x")
	assert.Equal(t, x, w.nextLease(eventAdded))

	// The client going away ends the stream.
	w.close()
	require.NoError(t, s.AwaitRequests(testCtx(t), 2))
	assert.Equal(t, 0, s.Watchers())
	reqs := s.Requests()
	assert.Equal(t, Request{Seq: 1, Verb: "watch", Namespace: "default", Faulted: true, Code: 200}, reqs[len(reqs)-1],
		"a watch is finished when its stream ends")
}

func TestWatchTimeoutSeconds(t *testing.T) {
	s, c := newTestServer(t)
	w := c.watch(watchPath("timeoutSeconds=1"))
	x := c.create("default", "x")
	assert.Equal(t, x, w.nextLease(eventAdded))
	w.end()
	assert.Equal(t, 0, s.Watchers())
}

func TestWatchFaults(t *testing.T) {
	s, c := newTestServer(t)
	s.InjectFault(Fault{Verb: "watch", Status: http.StatusInternalServerError})
	s.InjectFault(Fault{Verb: "watch", Status: http.StatusGone})
	for _, code := range []int{http.StatusInternalServerError, http.StatusGone} {
		w := c.openWatch(watchPath(""))
		assert.Equal(t, code, w.resp.StatusCode)
		var st metav1.Status
		require.NoError(t, json.NewDecoder(w.resp.Body).Decode(&st))
		assert.Equal(t, int32(code), st.Code)
	}
	assert.Equal(t, 0, s.Watchers())
	w := c.watch(watchPath(""))
	x := c.create("default", "x")
	assert.Equal(t, x, w.nextLease(eventAdded))
	assert.Equal(t, 3, s.Count("watch"))
}

func TestWatchBadRequests(t *testing.T) {
	s, c := newTestServer(t)
	tests := []struct {
		query  string
		code   int
		reason metav1.StatusReason
	}{
		{"resourceVersion=abc", http.StatusUnprocessableEntity, metav1.StatusReasonInvalid},
		{"resourceVersion=-1", http.StatusUnprocessableEntity, metav1.StatusReasonInvalid},
		{"timeoutSeconds=soon", http.StatusBadRequest, metav1.StatusReasonBadRequest},
		{"resourceVersionMatch=NotOlderThan&resourceVersion=1", http.StatusUnprocessableEntity, metav1.StatusReasonInvalid},
		{"sendInitialEvents=true", http.StatusBadRequest, metav1.StatusReasonBadRequest},
	}
	for _, tt := range tests {
		r := c.must(http.MethodGet, watchPath(tt.query), nil)
		require.Equal(t, tt.code, r.code, "%s: %s", tt.query, r.body)
		assert.Equal(t, tt.reason, r.status(t).Reason, tt.query)
	}
	assert.Equal(t, len(tests), s.Count("watch"))
	assert.Equal(t, 0, s.Watchers())

	// watch=false is a list; any other value a watch, as the API server
	// decodes booleans.
	assert.Equal(t, http.StatusOK, c.must(http.MethodGet, wire.Path("default", "")+"?watch=false", nil).code)
	assert.Equal(t, 1, s.Count("list"))
	w := c.watch(wire.Path("default", "") + "?watch=yes")
	x := c.create("default", "x")
	assert.Equal(t, x, w.nextLease(eventAdded))
}

func TestWatchUnauthorized(t *testing.T) {
	s, c := newTestServer(t)
	s.RequireToken("secret")
	w := c.openWatch(watchPath(""))
	assert.Equal(t, http.StatusUnauthorized, w.resp.StatusCode)
	assert.Equal(t, 0, s.Watchers())
	c.token = "secret"
	w = c.watch(watchPath(""))
	x := c.create("default", "x")
	assert.Equal(t, x, w.nextLease(eventAdded))
}

func TestWatchHTTP2(t *testing.T) {
	s := NewUnstartedServer()
	s.StartTLS()
	tr := s.ts.Client().Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = true
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		s.Close()
	})
	c := &testClient{t: t, hc: &http.Client{Transport: tr}, base: s.URL}
	w := c.watch(watchPath("allowWatchBookmarks=true"))
	assert.Equal(t, 2, w.resp.ProtoMajor)
	x := c.create("default", "x")
	assert.Equal(t, x, w.nextLease(eventAdded))
	s.Bookmark()
	assert.Equal(t, x.ResourceVersion, w.nextLease(eventBookmark).ResourceVersion)
	s.DropWatches()
	w.end()

	w = c.watch(watchPath(""))
	assert.Equal(t, x, w.nextLease(eventAdded))
	// Under HTTP/2, Close may close the connection before the end of the
	// stream is written: the stream ends, cleanly or not.
	s.Close()
	w.broken()
}

// broken checks that the stream ends next, with EOF or an error.
func (w *watchStream) broken() {
	w.t.Helper()
	timer := time.AfterFunc(eventTimeout, w.cancel)
	defer timer.Stop()
	var ev gotEvent
	err := w.dec.Decode(&ev)
	require.Error(w.t, err, "got an event instead of the end: %s %s", ev.Type, ev.Object)
	assert.False(w.t, errors.Is(err, context.Canceled), "the stream did not end in time")
}
