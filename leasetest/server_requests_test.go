package leasetest

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubelease/lease/internal/wire"
)

func TestServerCountsAndLog(t *testing.T) {
	s, c := newTestServer(t)
	l := c.create("default", "x")
	c.must(http.MethodGet, wire.Path("default", "x"), nil)
	c.must(http.MethodGet, wire.Path("default", "x"), nil)
	c.must(http.MethodPut, wire.Path("default", "x"), l)
	c.must(http.MethodGet, wire.Path("default", ""), nil)
	c.must(http.MethodGet, wire.Path("default", "")+"?watch=true&resourceVersion=1", nil) // too old: ends at once
	c.must(http.MethodDelete, wire.Path("default", "x"), nil)
	c.must(http.MethodGet, "/nope", nil)

	assert.Equal(t, 3, s.Count("get"), "a path that is no resource counts by its method")
	assert.Equal(t, 0, s.Count("patch"))
	assert.Equal(t, map[string]int{"create": 1, "get": 3, "update": 1, "list": 1, "watch": 1, "delete": 1}, s.Counts())
	require.NoError(t, s.AwaitRequests(testCtx(t), 8))
	reqs := s.Requests()
	require.Len(t, reqs, 8)
	for i, r := range reqs {
		assert.Equal(t, i+1, r.Seq)
	}
	assert.Equal(t, Request{Seq: 1, Verb: "create", Namespace: "default", Name: "x", Code: 201}, reqs[0])
	assert.Equal(t, Request{Seq: 4, Verb: "update", Namespace: "default", Name: "x", Code: 200}, reqs[3])
	assert.Equal(t, Request{Seq: 7, Verb: "delete", Namespace: "default", Name: "x", Code: 200}, reqs[6])
	assert.Equal(t, Request{Seq: 8, Verb: "get", Code: 404}, reqs[7], "a path that is no resource counts by method")

	s.ResetCounts()
	assert.Empty(t, s.Counts())
	assert.Empty(t, s.Requests())
	c.must(http.MethodGet, wire.Path("default", "x"), nil)
	require.NoError(t, s.AwaitRequests(testCtx(t), 1))
	assert.Equal(t, 9, s.Requests()[0].Seq, "Seq is never reset")
}

func TestServerAwaitRequestsContext(t *testing.T) {
	s, _ := newTestServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.AwaitRequests(ctx, 1)
	assert.True(t, errors.Is(err, context.Canceled), "got %v, want context.Canceled", err)
	err = s.AwaitReceived(ctx, 1)
	assert.True(t, errors.Is(err, context.Canceled), "got %v, want context.Canceled", err)
	assert.NoError(t, s.AwaitRequests(ctx, 0))
}

func TestServerAwaitRequestsWakesUp(t *testing.T) {
	s, c := newTestServer(t)
	errc := make(chan error, 1)
	go func() { errc <- s.AwaitRequests(testCtx(t), 3) }()
	for range 3 {
		c.must(http.MethodGet, wire.Path("default", "x"), nil)
	}
	assert.NoError(t, <-errc)
}
