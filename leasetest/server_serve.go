package leasetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"time"
)

// ServeHTTP serves one request: it counts it, applies Pause and the first
// matching fault, answers it like a kube-apiserver, and logs it once done.
// Server is an http.Handler, so it can also be mounted on a server of the
// test's own.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := parseRoute(r)
	// Read the body first: only then does net/http notice a client that
	// gives up while the request is held.
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	r.Body = io.NopCloser(bytes.NewReader(body))
	s.mu.Lock()
	s.seq++
	req := Request{Seq: s.seq, Verb: rt.verb, Namespace: rt.ns}
	if rt.kind == routeEvents {
		req.Resource = rt.resource
	}
	s.received++
	s.counts[rt.verb]++
	f := s.matchFaultLocked(rt.verb, rt.resource)
	paused, unhang := s.paused, s.unhang
	s.broadcastLocked()
	s.mu.Unlock()

	req.Faulted = f != nil
	rec := &recorder{ResponseWriter: w}
	defer func() {
		req.Name, req.Code = rt.name, rec.code
		s.finish(req)
	}()

	ctx := r.Context()
	if paused != nil && !s.wait(ctx, paused) {
		abort(rec, false)
		return
	}
	if f == nil {
		s.handleAuthz(rec, r, rt)
		return
	}
	if f.Latency > 0 && !s.sleep(ctx, f.Latency) {
		abort(rec, false)
		return
	}
	if f.Gate != nil && !s.wait(ctx, f.Gate) {
		abort(rec, false)
		return
	}
	if f.Hang && !s.wait(ctx, unhang) {
		abort(rec, false)
		return
	}
	switch {
	case f.Reset:
		abort(rec, true)
	case f.hasAnswer():
		writeFault(rec, rt, f)
	case f.DropAnswer:
		dropped := httptest.NewRecorder()
		s.handleAuthz(dropped, r, rt)
		rec.code = dropped.Code
		abort(rec, false)
	default:
		s.handleAuthz(rec, r, rt)
	}
}

// wait blocks until release is closed (true), or the request's client
// gives up or the server closes (false).
func (s *Server) wait(ctx context.Context, release <-chan struct{}) bool {
	select {
	case <-release:
		return true
	case <-ctx.Done():
		return false
	case <-s.closing:
		return false
	}
}

// sleep waits for d (true), or until the request's client gives up or the
// server closes (false).
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closing:
		return false
	}
}

// abort closes the request's connection without an answer; with reset, so
// that the peer sees a TCP reset. Where the connection cannot be hijacked
// (HTTP/2), the stream is reset instead.
func abort(w http.ResponseWriter, reset bool) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if reset {
		c := conn
		if tc, ok := c.(*tls.Conn); ok {
			c = tc.NetConn()
		}
		if tcp, ok := c.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0)
		}
	}
	_ = conn.Close()
}

// recorder remembers the status code written through it.
type recorder struct {
	http.ResponseWriter
	code int
}

// WriteHeader records code and writes it.
func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200 and writes b.
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter {
	return r.ResponseWriter
}
