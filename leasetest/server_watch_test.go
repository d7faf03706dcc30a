package leasetest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubelease/lease/internal/wire"
)

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
