package leasetest

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubelease/lease/internal/wire"
)

func TestServerFaultStatus(t *testing.T) {
	tests := []struct {
		name       string
		fault      Fault
		code       int
		reason     metav1.StatusReason
		retryAfter string
		retrySecs  int32
	}{
		{"500", Fault{Status: 500}, 500, metav1.StatusReasonInternalError, "", 0},
		{"500 server timeout", Fault{Status: 500, RetryAfter: "1"}, 500, metav1.StatusReasonServerTimeout, "1", 1},
		{"503 with Retry-After", Fault{Status: 503, RetryAfter: "2"}, 503, metav1.StatusReasonServiceUnavailable, "2", 2},
		{"504", Fault{Status: 504}, 504, metav1.StatusReasonTimeout, "", 0},
		{"429 JSON", Fault{Status: 429, RetryAfter: "3"}, 429, metav1.StatusReasonTooManyRequests, "3", 3},
		{"403", Fault{Status: 403}, 403, metav1.StatusReasonForbidden, "", 0},
		{"409", Fault{Status: 409}, 409, metav1.StatusReasonConflict, "", 0},
		{"reason override", Fault{Status: 500, Reason: "Custom", Message: "boom"}, 500, "Custom", "", 0},
		{"502", Fault{Status: 502}, 502, metav1.StatusReasonInternalError, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := newTestServer(t)
			s.InjectFault(tt.fault)
			r := c.must(http.MethodPost, wire.Path("default", ""), leaseBody("x", validSpec()))
			require.Equal(t, tt.code, r.code, "body: %s", r.body)
			assert.Equal(t, tt.retryAfter, r.header.Get("Retry-After"))
			st := r.status(t)
			assert.Equal(t, tt.reason, st.Reason)
			assert.Equal(t, int32(tt.code), st.Code)
			if tt.retrySecs != 0 {
				require.NotNil(t, st.Details)
				assert.Equal(t, tt.retrySecs, st.Details.RetryAfterSeconds)
			}
			if tt.fault.Message != "" {
				assert.Contains(t, st.Message, tt.fault.Message)
			}
			_, ok := s.Get("default", "x")
			assert.False(t, ok, "a faulted create is not applied")
			assert.Equal(t, []Request{{Seq: 1, Verb: "create", Namespace: "default", Faulted: true, Code: tt.code}}, s.Requests())
		})
	}
}

func TestServerFaultPlainText429(t *testing.T) {
	s, c := newTestServer(t)
	s.InjectFault(Fault{PlainText: true, RetryAfter: "1"})
	r := c.must(http.MethodGet, wire.Path("default", "x"), nil)
	assert.Equal(t, http.StatusTooManyRequests, r.code)
	assert.Equal(t, "text/plain; charset=utf-8", r.header.Get("Content-Type"))
	assert.Equal(t, "1", r.header.Get("Retry-After"))
	assert.Equal(t, "Too many requests, please try again later.\n", string(r.body))
}

func TestServerFaultBody(t *testing.T) {
	s, c := newTestServer(t)
	s.InjectFault(Fault{Body: []byte(`{"kind":"Lea`)})
	s.InjectFault(Fault{Body: []byte("<html>bad gateway</html>"), Status: 502, PlainText: true})
	r := c.must(http.MethodGet, wire.Path("default", "x"), nil)
	assert.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	assert.Equal(t, `{"kind":"Lea`, string(r.body))
	r = c.must(http.MethodGet, wire.Path("default", "x"), nil)
	assert.Equal(t, http.StatusBadGateway, r.code)
	assert.Equal(t, "text/plain; charset=utf-8", r.header.Get("Content-Type"))
	assert.Equal(t, "<html>bad gateway</html>", string(r.body))
}

func TestServerFaultReset(t *testing.T) {
	s, c := newTestServer(t)
	s.InjectFault(Fault{Verb: "create", Reset: true})
	_, err := c.do(context.Background(), http.MethodPost, wire.Path("default", ""), leaseBody("x", validSpec()))
	require.Error(t, err, "a reset connection is a client error")
	_, ok := s.Get("default", "x")
	assert.False(t, ok, "a reset request is not applied")
	assert.Equal(t, 1, s.Count("create"))
	require.NoError(t, s.AwaitRequests(testCtx(t), 1))
	assert.Equal(t, []Request{{Seq: 1, Verb: "create", Namespace: "default", Faulted: true}}, s.Requests())

	// The fault is used up: the retry works.
	c.create("default", "x")
}

func TestServerFaultDropAnswer(t *testing.T) {
	s, c := newTestServer(t)
	l := c.create("default", "x")
	s.InjectFault(Fault{Verb: "update", DropAnswer: true})
	next := l.DeepCopy()
	next.Spec.HolderIdentity = ptr("b")
	_, err := c.do(context.Background(), http.MethodPut, wire.Path("default", "x"), next)
	require.Error(t, err, "the answer is never written")
	got, ok := s.Get("default", "x")
	require.True(t, ok)
	assert.Equal(t, "b", got.Spec.Holder(), "the write was applied")
	assert.Greater(t, rvOf(t, got), rvOf(t, l))
	require.NoError(t, s.AwaitRequests(testCtx(t), 2))
	reqs := s.Requests()
	assert.Equal(t, Request{Seq: 2, Verb: "update", Namespace: "default", Name: "x", Faulted: true, Code: 200}, reqs[1])

	// Retrying the same body is now a conflict, as with a real server.
	r := c.must(http.MethodPut, wire.Path("default", "x"), next)
	assert.Equal(t, http.StatusConflict, r.code)
}

func TestServerFaultHangReleasedByClient(t *testing.T) {
	s, c := newTestServer(t)
	l := c.create("default", "x")
	s.ResetCounts()
	s.InjectFault(Fault{Verb: "update", Hang: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		next := l.DeepCopy()
		next.Spec.HolderIdentity = ptr("b")
		_, err := c.do(ctx, http.MethodPut, wire.Path("default", "x"), next)
		errc <- err
	}()
	require.NoError(t, s.AwaitReceived(testCtx(t), 1))
	assert.Empty(t, s.Requests(), "the request is held")
	cancel()
	err := <-errc
	assert.True(t, errors.Is(err, context.Canceled), "got %v, want context.Canceled", err)
	require.NoError(t, s.AwaitRequests(testCtx(t), 1))
	assert.Equal(t, []Request{{Seq: 2, Verb: "update", Namespace: "default", Name: "x", Faulted: true}}, s.Requests())
	got, _ := s.Get("default", "x")
	assert.Equal(t, "a", got.Spec.Holder(), "an abandoned request is not applied")
}

func TestServerFaultHangReleasedByUnhang(t *testing.T) {
	s, c := newTestServer(t)
	s.InjectFault(Fault{Verb: "get", Hang: true, Times: 2})
	codes := make(chan int, 2)
	for range 2 {
		c.getAsync(t, codes)
	}
	require.NoError(t, s.AwaitReceived(testCtx(t), 2))
	s.Unhang()
	assert.Equal(t, http.StatusNotFound, <-codes, "released requests are handled normally")
	assert.Equal(t, http.StatusNotFound, <-codes)
}

func TestServerFaultHangReleasedByClose(t *testing.T) {
	s := NewServer()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &testClient{t: t, hc: &http.Client{Transport: tr}, base: s.URL}
	s.InjectFault(Fault{Hang: true, Times: -1})
	errc := make(chan error, 1)
	go func() {
		_, err := c.do(context.Background(), http.MethodGet, wire.Path("default", "x"), nil)
		errc <- err
	}()
	require.NoError(t, s.AwaitReceived(testCtx(t), 1))
	s.Close() // must not block on the hung request
	assert.Error(t, <-errc)
}

func TestServerFaultGate(t *testing.T) {
	s, c := newTestServer(t)
	gate := make(chan struct{})
	s.InjectFault(Fault{Verb: "create", Gate: gate})
	done := make(chan *response, 1)
	go func() {
		r, err := c.do(testCtx(t), http.MethodPost, wire.Path("default", ""), leaseBody("x", validSpec()))
		if err != nil {
			r = nil
		}
		done <- r
	}()
	require.NoError(t, s.AwaitReceived(testCtx(t), 1))
	_, ok := s.Get("default", "x")
	assert.False(t, ok, "not applied while gated")
	close(gate)
	r := <-done
	require.NotNil(t, r)
	assert.Equal(t, http.StatusCreated, r.code)
	_, ok = s.Get("default", "x")
	assert.True(t, ok)
}

func TestServerFaultGateThenStatus(t *testing.T) {
	s, c := newTestServer(t)
	gate := make(chan struct{})
	close(gate)
	s.InjectFault(Fault{Gate: gate, Latency: time.Millisecond, Status: 503})
	r := c.must(http.MethodGet, wire.Path("default", "x"), nil)
	assert.Equal(t, http.StatusServiceUnavailable, r.code)
}

func TestServerFaultTimesAndOrder(t *testing.T) {
	s, c := newTestServer(t)
	s.InjectFault(Fault{Verb: "get", Status: 500, Times: 2})
	s.InjectFault(Fault{Verb: "get", Status: 503})
	s.InjectFault(Fault{Verb: "list", Status: 429, Times: -1})
	var got []int
	for range 4 {
		got = append(got, c.must(http.MethodGet, wire.Path("default", "x"), nil).code)
	}
	assert.Equal(t, []int{500, 500, 503, 404}, got, "first match wins, each used up in turn")
	for range 3 {
		assert.Equal(t, http.StatusTooManyRequests, c.must(http.MethodGet, wire.Path("default", ""), nil).code)
	}
	s.ClearFaults()
	assert.Equal(t, http.StatusOK, c.must(http.MethodGet, wire.Path("default", ""), nil).code)
}

func TestServerPauseResume(t *testing.T) {
	s, c := newTestServer(t)
	s.Pause()
	s.Pause() // idempotent
	codes := make(chan int, 1)
	c.getAsync(t, codes)
	require.NoError(t, s.AwaitReceived(testCtx(t), 1))
	assert.Empty(t, s.Requests())
	s.Resume()
	assert.Equal(t, http.StatusNotFound, <-codes)
	assert.Equal(t, []Request{{Seq: 1, Verb: "get", Namespace: "default", Name: "x", Code: 404}}, s.Requests())
	s.Resume() // idempotent
	assert.Equal(t, http.StatusNotFound, c.must(http.MethodGet, wire.Path("default", "x"), nil).code)
}

func TestServerAuthAfterFaults(t *testing.T) {
	s, c := newTestServer(t)
	s.RequireToken("t")
	s.InjectFault(Fault{Status: 503})
	assert.Equal(t, http.StatusServiceUnavailable, c.must(http.MethodGet, wire.Path("default", "x"), nil).code)
	assert.Equal(t, http.StatusUnauthorized, c.must(http.MethodGet, wire.Path("default", "x"), nil).code)
	assert.Equal(t, 2, s.Count("get"), "unauthorized and faulted requests count")
}

// getAsync GETs Lease default/x on a goroutine of its own and sends the
// answer's status code to codes, or -1 if the request failed.
func (c *testClient) getAsync(t *testing.T, codes chan<- int) {
	go func() {
		r, err := c.do(testCtx(t), http.MethodGet, wire.Path("default", "x"), nil)
		if err != nil {
			codes <- -1
			return
		}
		codes <- r.code
	}()
}
