package lease_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/kubelease/lease"
)

// errInjected is what a contender's transport answers for a partition, a
// reset or a dropped answer.
var errInjected = errors.New("chaos: injected network failure")

// netFault is a per-request fault applied by a contender's transport.
type netFault int

const (
	netNone      netFault = iota
	netHang               // held until the client gives up or faults end
	netDrop               // applied by the server, answer lost
	netReset              // connection reset before the server sees it
	netLateApply          // client gives up; the server applies it later
)

// chaosTransport is one contender's network. It counts requests in flight
// and those deliberately held, so the simulation knows when the contender
// is idle, and applies the faults the schedule picks.
type chaosTransport struct {
	base http.RoundTripper
	sim  *sim
	c    *simContender
}

func (tr *chaosTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	s, c := tr.sim, tr.c
	s.mu.Lock()
	c.inflight++
	fault := netNone
	if len(c.pending) > 0 {
		fault, c.pending = c.pending[0], c.pending[1:]
	}
	partitioned, paused, release := c.partitioned, s.paused, s.release
	s.mu.Unlock()
	s.poke()
	defer func() {
		s.mu.Lock()
		c.inflight--
		s.mu.Unlock()
		s.poke()
	}()

	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	switch {
	case partitioned:
		return nil, errInjected
	case paused:
		if !tr.hold(req.Context(), release) {
			return nil, req.Context().Err()
		}
	}
	switch fault {
	case netReset:
		return nil, errInjected
	case netHang:
		tr.hold(req.Context(), release)
		return nil, errors.Join(errInjected, req.Context().Err())
	case netLateApply:
		tr.hold(req.Context(), release)
		s.lateApply(req, body)
		return nil, errors.Join(errInjected, req.Context().Err())
	case netDrop:
		resp, err := tr.base.RoundTrip(req)
		if err == nil {
			// A watch's body does not end: the connection just dies.
			if req.URL.Query().Get("watch") != "true" {
				_, _ = io.Copy(io.Discard, resp.Body)
			}
			resp.Body.Close()
		}
		return nil, errInjected
	}
	return tr.base.RoundTrip(req)
}

// hold blocks until ctx is done or faults are released; it reports whether
// the request may go on.
func (tr *chaosTransport) hold(ctx context.Context, release <-chan struct{}) bool {
	s, c := tr.sim, tr.c
	due, _ := lease.RequestDeadline(ctx)
	s.mu.Lock()
	c.held++
	c.heldDue = append(c.heldDue, due)
	s.mu.Unlock()
	s.poke()
	defer func() {
		s.mu.Lock()
		c.held--
		for i, d := range c.heldDue {
			if d.Equal(due) {
				c.heldDue = append(c.heldDue[:i], c.heldDue[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
		s.poke()
	}()
	select {
	case <-ctx.Done():
		return false
	case <-release:
		return ctx.Err() == nil
	}
}
