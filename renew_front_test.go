package lease_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// netFront is a TCP forwarder in front of a server, for the network faults
// that happen below HTTP: refused connections and connections that go dead.
// Its methods are safe for concurrent use.
type netFront struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup // the accept loop and the copying goroutines

	mu       sync.Mutex // guards the fields below
	refusing bool
	dialed   int
	pairs    map[*frontPair]struct{}
}

// frontPair is one forwarded connection: the client's and the server's end.
type frontPair struct {
	client, server net.Conn
	dead           atomic.Bool // bytes are dropped in both directions
}

// newNetFront listens on 127.0.0.1 and forwards every connection to target
// (host:port) until the test ends.
func newNetFront(t *testing.T, target string) *netFront {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("netFront: %v", err)
	}
	f := &netFront{ln: ln, target: target, pairs: map[*frontPair]struct{}{}}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.close)
	return f
}

// Addr is the host:port to connect to.
func (f *netFront) Addr() string { return f.ln.Addr().String() }

// Dialed is the number of connections forwarded so far.
func (f *netFront) Dialed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dialed
}

// Refuse resets every open connection and, until Accept, every new one as
// soon as it is accepted, before reading from it: to the client, a
// connection refused.
func (f *netFront) Refuse() {
	f.mu.Lock()
	f.refusing = true
	pairs := f.takePairsLocked()
	f.mu.Unlock()
	for _, p := range pairs {
		resetConn(p.client)
		resetConn(p.server)
	}
}

// Accept ends Refuse.
func (f *netFront) Accept() {
	f.mu.Lock()
	f.refusing = false
	f.mu.Unlock()
}

// Kill makes every open connection drop all bytes from now on, in both
// directions, without closing it: a dead path, as after a NAT or
// firewall lost its state. New connections are forwarded normally.
func (f *netFront) Kill() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for p := range f.pairs {
		p.dead.Store(true)
	}
}

func (f *netFront) takePairsLocked() []*frontPair {
	var out []*frontPair
	for p := range f.pairs {
		out = append(out, p)
	}
	f.pairs = map[*frontPair]struct{}{}
	return out
}

func (f *netFront) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		refusing := f.refusing
		f.mu.Unlock()
		if refusing {
			resetConn(c)
			continue
		}
		s, err := net.Dial("tcp", f.target)
		if err != nil {
			resetConn(c)
			continue
		}
		p := &frontPair{client: c, server: s}
		f.mu.Lock()
		f.dialed++
		f.pairs[p] = struct{}{}
		f.mu.Unlock()
		f.wg.Add(2)
		go f.copy(p, s, c)
		go f.copy(p, c, s)
	}
}

// copy forwards src to dst until either fails, dropping what it reads once
// the pair is dead.
func (f *netFront) copy(p *frontPair, dst, src net.Conn) {
	defer f.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.dead.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
					return
				}
			}
			break
		}
	}
	_ = dst.Close()
	_ = src.Close()
}

// close stops listening, closes every connection and waits for the
// forwarding goroutines.
func (f *netFront) close() {
	_ = f.ln.Close()
	f.mu.Lock()
	pairs := f.takePairsLocked()
	f.mu.Unlock()
	for _, p := range pairs {
		_ = p.client.Close()
		_ = p.server.Close()
	}
	f.wg.Wait()
}

// resetConn closes c with a TCP reset.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
