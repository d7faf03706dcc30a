package leasetest

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubelease/lease/internal/wire"
)

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
