package lease

import (
	"context"
	"crypto/tls"
	"net"
	"net/http/httptrace"
	"sync"
)

// usedConn records the connection a request went out on (the last one, if
// it was sent twice), so that the connection can be dropped when the
// request times out.
type usedConn struct {
	mu   sync.Mutex // guards conn
	conn net.Conn
}

// traceConn returns ctx with a trace that records in u the connection each
// request made with it is sent on.
func traceConn(ctx context.Context) (_ context.Context, u *usedConn) {
	u = &usedConn{}
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			u.mu.Lock()
			u.conn = info.Conn
			u.mu.Unlock()
		},
	}), u
}

// drop closes the recorded connection, if any, and with it every request
// multiplexed on it. Under TLS it closes the raw connection, so that no
// close alert waits to be written into a connection that does not drain.
// The transport notices and never reuses it.
func (u *usedConn) drop() {
	u.mu.Lock()
	c := u.conn
	u.mu.Unlock()
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if c != nil {
		_ = c.Close()
	}
}
