package lease_test

import (
	"context"
	"net"
	"net/http"
	"sync"
)

// pipeNet is an in-memory network to one http.Handler: every dial is a
// net.Pipe whose far end an http.Server accepts. The runner campaign runs
// in a testing/synctest bubble, where a goroutine blocked on a pipe is
// durably blocked (one blocked on a loopback socket is not), so that
// synctest.Wait can tell when the simulation has settled.
type pipeNet struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	hs    *http.Server
	// served is closed when the server's accept loop has returned.
	served chan struct{}
}

func newPipeNet(h http.Handler) *pipeNet {
	n := &pipeNet{
		conns:  make(chan net.Conn),
		done:   make(chan struct{}),
		hs:     &http.Server{Handler: h},
		served: make(chan struct{}),
	}
	go func() {
		defer close(n.served)
		_ = n.hs.Serve(n)
	}()
	return n
}

// transport returns a new client transport that dials n.
func (n *pipeNet) transport() *http.Transport {
	return &http.Transport{DialContext: n.dial}
}

func (n *pipeNet) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case n.conns <- server:
		return client, nil
	case <-n.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Accept implements net.Listener for the server.
func (n *pipeNet) Accept() (net.Conn, error) {
	select {
	case c := <-n.conns:
		return c, nil
	case <-n.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener: no more dials succeed.
func (n *pipeNet) Close() error {
	n.once.Do(func() { close(n.done) })
	return nil
}

// Addr implements net.Listener.
func (n *pipeNet) Addr() net.Addr { return pipeAddr{} }

// shutdown closes the listener and every connection, and waits for the
// accept loop to return.
func (n *pipeNet) shutdown() {
	_ = n.hs.Close()
	<-n.served
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "kube.sim:80" }
