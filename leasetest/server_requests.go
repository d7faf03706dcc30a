package leasetest

import (
	"context"
	"maps"
)

// Request is the log entry of one request the server has finished with.
type Request struct {
	// Seq numbers requests in order of arrival, from 1; it is never reset.
	Seq int
	// Verb is the Kubernetes verb ("get", "create", "update", "delete",
	// "list", "watch", ...), or the lower-case method for a path that is
	// no Lease resource.
	Verb string
	// Resource is "events" for an Event a lease posted (see
	// Server.Events), "" for a Lease request or a path that is no
	// resource.
	Resource string
	// Namespace and Name are those of the path; for a create, Name is
	// that of the object in the body, when it could be decoded.
	Namespace, Name string
	// Faulted says that an injected fault matched the request.
	Faulted bool
	// Code is the HTTP status code answered, or that would have been
	// answered under DropAnswer; 0 when no answer was made.
	Code int
}

// finish logs a finished request and wakes the waiters.
func (s *Server) finish(req Request) {
	s.mu.Lock()
	s.log = append(s.log, req)
	s.broadcastLocked()
	s.mu.Unlock()
}

// broadcastLocked wakes everyone waiting in await.
func (s *Server) broadcastLocked() {
	close(s.notify)
	s.notify = make(chan struct{})
}

// await blocks until cond, called with s.mu held, holds.
func (s *Server) await(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ok, ch := cond(), s.notify
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Count returns the number of requests received with the given Kubernetes
// verb ("get", "create", "update", "delete", "list", "watch") since the
// start or ResetCounts, faulted ones included. Event POSTs (see Events)
// count as "create": Requests tells them apart by Resource.
func (s *Server) Count(verb string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[verb]
}

// Counts returns the number of requests received per verb since the start
// or ResetCounts.
func (s *Server) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.counts)
}

// ResetCounts zeroes the counters and empties the request log. Requests
// in flight are logged when they finish.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	s.counts = map[string]int{}
	s.received = 0
	s.log = nil
	s.broadcastLocked()
	s.mu.Unlock()
}

// AwaitRequests blocks until at least n requests have finished (answered,
// faulted or abandoned) since the start or ResetCounts, or returns ctx's
// error.
func (s *Server) AwaitRequests(ctx context.Context, n int) error {
	return s.await(ctx, func() bool { return len(s.log) >= n })
}

// AwaitReceived blocks until at least n requests have arrived since the
// start or ResetCounts, whether or not they have finished (a request held by
// Hang, Gate or Pause has arrived), or returns ctx's error.
func (s *Server) AwaitReceived(ctx context.Context, n int) error {
	return s.await(ctx, func() bool { return s.received >= n })
}

// Requests returns the log of finished requests, in the order they
// finished, since the start or ResetCounts.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// Received returns the number of requests that have arrived since the start
// or ResetCounts, finished or not. With AwaitReceived it lets a test wait
// for "one more request" without sleeping.
func (s *Server) Received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received
}
