package transport

import (
	"context"
	"net"
	"net/http"
	"sync"
)

// execTransport is the transport of a Config with an exec plugin. A TLS
// connection keeps the client certificate it was opened with, so when the
// plugin hands out another certificate, requests move to a new inner
// transport (dialling afresh with the new certificate) and the connections
// of the old one are closed, as client-go does; requests under way on them
// fail.
type execTransport struct {
	ex           *execCache
	newTransport func(conns *connTracker) *http.Transport

	mu      sync.Mutex // guards the fields below
	certGen uint64     // the certificate generation cur is for
	cur     *http.Transport
	conns   *connTracker // cur's connections
}

// RoundTrip sends req with the transport for the plugin's current client
// certificate.
func (t *execTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.current().RoundTrip(req)
}

// current returns the transport for the current certificate, replacing
// the one for an older certificate.
func (t *execTransport) current() *http.Transport {
	gen := t.ex.certGeneration()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur != nil && t.certGen == gen {
		return t.cur
	}
	if t.cur != nil {
		t.cur.CloseIdleConnections()
		t.conns.closeAll()
	}
	t.conns = &connTracker{}
	t.cur = t.newTransport(t.conns)
	t.certGen = gen
	return t.cur
}

// CloseIdleConnections closes the idle connections of the current
// transport.
func (t *execTransport) CloseIdleConnections() {
	t.mu.Lock()
	cur := t.cur
	t.mu.Unlock()
	if cur != nil {
		cur.CloseIdleConnections()
	}
}

// connTracker records the connections a transport dials, so that they can
// all be closed at once, busy or not.
type connTracker struct {
	mu    sync.Mutex // guards conns
	conns map[*trackedConn]struct{}
}

// dialer wraps dial so that the connections it makes are tracked.
func (t *connTracker) dialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, t: t}
		t.mu.Lock()
		if t.conns == nil {
			t.conns = map[*trackedConn]struct{}{}
		}
		t.conns[tc] = struct{}{}
		t.mu.Unlock()
		return tc, nil
	}
}

// closeAll closes every tracked connection that is still open.
func (t *connTracker) closeAll() {
	t.mu.Lock()
	conns := t.conns
	t.conns = nil
	t.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
}

// trackedConn is a connection that leaves its tracker when closed.
type trackedConn struct {
	net.Conn
	t *connTracker
}

func (c *trackedConn) Close() error {
	c.t.mu.Lock()
	delete(c.t.conns, c)
	c.t.mu.Unlock()
	return c.Conn.Close()
}
