package leasetest

import (
	"net/http"
	"sync"
	"time"

	"github.com/kubelease/lease"
)

// requestCounter is an http.RoundTripper that counts the requests of one
// lease under test as their answers arrive: the suite's way to see what a
// lease does on the wire, whatever the server.
type requestCounter struct {
	base http.RoundTripper

	mu      sync.Mutex    // guards n and changed
	n       requestCounts // answered so far
	changed chan struct{} // closed and replaced when n changes
}

// requestCounts are the requests of a lease whose answer (headers) came
// back, by kind.
type requestCounts struct {
	reads   int // GETs of the Lease
	watches int // watches: a stream opened (or an error answered)
}

// RoundTrip sends req with the base transport and counts it once it is
// answered.
func (c *requestCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err == nil && req.Method == http.MethodGet {
		c.mu.Lock()
		if req.URL.Query().Get("watch") == "true" {
			c.n.watches++
		} else {
			c.n.reads++
		}
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
	return resp, err
}

// counts returns the counts so far.
func (c *requestCounter) counts() requestCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// newCountedLease is newLease with the lease's requests counted: its
// Config's HTTPClient (the backend's, else one on http.DefaultTransport)
// sends them through a requestCounter.
func (sc *scenario) newCountedLease(owner string, mods ...func(*lease.Settings)) (*contender, *requestCounter) {
	sc.t.Helper()
	client := &http.Client{}
	if sc.cfg.HTTPClient != nil {
		*client = *sc.cfg.HTTPClient
	}
	base := client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	rc := &requestCounter{base: base, changed: make(chan struct{})}
	client.Transport = rc
	cfg := *sc.cfg
	cfg.HTTPClient = client
	mods = append([]func(*lease.Settings){func(s *lease.Settings) { s.Config = &cfg }}, mods...)
	return sc.newLease(owner, mods...), rc
}

// awaitCounts waits until ok holds for c's counts and returns them; it
// fails the test after realWait.
func (sc *scenario) awaitCounts(c *requestCounter, what string, ok func(requestCounts) bool) requestCounts {
	sc.t.Helper()
	deadline := time.After(realWait)
	for {
		c.mu.Lock()
		n, changed := c.n, c.changed
		c.mu.Unlock()
		if ok(n) {
			return n
		}
		select {
		case <-changed:
		case <-deadline:
			sc.t.Fatalf("%s: not seen within %v (requests answered: %d reads, %d watches)", what, realWait, n.reads, n.watches)
		}
	}
}
