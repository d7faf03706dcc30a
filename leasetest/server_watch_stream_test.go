package leasetest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
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

// ending reads on where the stream must end, and returns the error that
// ends it: EOF for a clean end. The read is cut short after eventTimeout.
func (w *watchStream) ending() error {
	w.t.Helper()
	timer := time.AfterFunc(eventTimeout, w.cancel)
	defer timer.Stop()
	var ev gotEvent
	err := w.dec.Decode(&ev)
	require.Error(w.t, err, "got an event instead of the end: %s %s", ev.Type, ev.Object)
	return err
}

// end checks that the stream ends cleanly next: the client reads EOF.
func (w *watchStream) end() {
	w.t.Helper()
	err := w.ending()
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

// broken checks that the stream ends next, with EOF or an error.
func (w *watchStream) broken() {
	w.t.Helper()
	err := w.ending()
	assert.False(w.t, errors.Is(err, context.Canceled), "the stream did not end in time")
}
