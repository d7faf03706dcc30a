// Package faultproxy is a fault-injecting proxy for one client of a
// kube-apiserver on 127.0.0.1, controlled at runtime: put one Proxy in
// front of the server for each client whose network or server you want to
// degrade, point the client at Proxy.URL (Proxy.Config does it for a
// lease.Config), and Set a Fault for as long as you want it.
//
// Two modes:
//
//   - ModeTCP (the default) passes TCP through: TLS goes from the client to
//     the server untouched, so the client keeps trusting the server's CA.
//     Faults: Latency (every byte from the server held Fault.Latency),
//     Blackhole, Reset.
//   - ModeHTTP also terminates TLS with a certificate of the proxy's own CA
//     (Proxy.CAData; Proxy.Config puts it in the client's Config) and
//     forwards each request to the server over TLS, trusting
//     Options.UpstreamCA. Watches are streamed (every write is flushed).
//     Faults: those of ModeTCP on the client's connections, Status (an
//     answer such as 429 with Retry-After or 503, in the server's stead),
//     and Latency is per request: each request is forwarded Fault.Latency
//     after it arrived, so the server answers that much later (HTTP/2 pings
//     are still answered at once).
//
// A partition of one client is a Blackhole on its proxy.
//
// Faults take effect at once, and end when their Duration has passed, when
// Clear is called or when another Set replaces them. Set returns a channel
// closed when the fault ends. Durations are the caller's to draw (from a
// seeded source, for reproducible schedules).
package faultproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubelease/lease"
)

// Mode says at which layer a Proxy works.
type Mode int

const (
	// ModeTCP passes TCP (and the TLS within) through untouched.
	ModeTCP Mode = iota
	// ModeHTTP terminates TLS with the proxy's own CA and forwards each
	// HTTP request, so that it can answer in the server's stead (Status).
	ModeHTTP
)

// Kind is the kind of a Fault.
type Kind int

const (
	// None: traffic passes (the zero Fault).
	None Kind = iota
	// Latency delays the server's answers by Fault.Latency: in ModeTCP
	// every byte from the server is held that long after the proxy read it
	// (order kept; HTTP/2 pings are delayed too), in ModeHTTP every request
	// is forwarded that long after it arrived (a slow server).
	Latency
	// Blackhole accepts connections and reads what the client sends, but
	// nothing passes either way. Existing connections are caught too. When
	// the fault ends, new connections work again; with Fault.Deliver the
	// held bytes are then delivered (the requests in flight are answered,
	// as after a network that lost packets for a while and retransmitted),
	// without it every connection that was open during the blackhole stays
	// silent for good (as after a middlebox that lost its state).
	Blackhole
	// Reset closes every existing connection (with a TCP RST) and resets
	// every new one as soon as it is accepted, as a server that refuses
	// connections would.
	Reset
	// Status answers every new request with Fault.Status (e.g. 429, 500,
	// 503) and, if Fault.RetryAfter > 0, a Retry-After header, with a
	// Kubernetes Status body. ModeHTTP only. Streams already open (watches)
	// go on.
	Status
)

func (k Kind) String() string {
	switch k {
	case None:
		return "none"
	case Latency:
		return "latency"
	case Blackhole:
		return "blackhole"
	case Reset:
		return "reset"
	case Status:
		return "status"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Fault is what a Proxy does to its client's traffic while it is set.
type Fault struct {
	Kind Kind
	// Duration, when > 0, ends the fault by itself that long after Set.
	// 0: until Clear or the next Set.
	Duration time.Duration
	// Latency is the delay of a Latency fault.
	Latency time.Duration
	// Deliver: a Blackhole delivers the bytes it held when it ends.
	Deliver bool
	// Status is the HTTP status code of a Status fault.
	Status int
	// RetryAfter, when > 0, is sent with a Status fault as Retry-After (in
	// whole seconds, rounded up) and as the Status's retryAfterSeconds.
	RetryAfter time.Duration
}

func (f Fault) String() string {
	s := f.Kind.String()
	switch f.Kind {
	case Latency:
		s += " " + f.Latency.String()
	case Blackhole:
		if f.Deliver {
			s += " (deliver)"
		}
	case Status:
		s += " " + strconv.Itoa(f.Status)
		if f.RetryAfter > 0 {
			s += " retry-after " + f.RetryAfter.String()
		}
	}
	if f.Duration > 0 {
		s += " for " + f.Duration.String()
	}
	return s
}

// Options configure a Proxy.
type Options struct {
	// Mode: ModeTCP (default) or ModeHTTP.
	Mode Mode
	// UpstreamCA is the PEM of the CA that signed the server's certificate:
	// ModeHTTP verifies the server with it (required), and CAData returns
	// it in ModeTCP.
	UpstreamCA []byte
	// UpstreamServerName, when set, is the name the server's certificate is
	// checked for in ModeHTTP (default: the host of the upstream address).
	UpstreamServerName string
}

// Stats count what a Proxy saw.
type Stats struct {
	// Conns is the number of client connections accepted.
	Conns int64
	// Resets is the number of connections reset (existing ones by Reset,
	// and new ones accepted while it was set).
	Resets int64
	// Requests is the number of HTTP requests seen (ModeHTTP).
	Requests int64
	// Faulted is the number of requests answered by a Status fault.
	Faulted int64
}

// Proxy is a fault-injecting proxy for one client. Its methods are safe
// for concurrent use.
type Proxy struct {
	opts     Options
	upstream string
	ln       net.Listener
	target   string // where the TCP front forwards: upstream, or the HTTP server

	// ModeHTTP
	caPEM   []byte
	httpLn  net.Listener
	httpSrv *http.Server

	mu      sync.Mutex
	cur     Fault
	gen     uint64
	changed chan struct{} // closed and replaced on every change of cur
	ended   chan struct{} // closed when cur ends
	conns   map[*conn]struct{}
	closed  bool

	done chan struct{} // closed by Close
	wg   sync.WaitGroup

	nConns, nResets, nRequests, nFaulted atomic.Int64
}

// New starts a proxy on 127.0.0.1 (a free port) in front of upstreamAddr,
// a host:port of the kube-apiserver. Close it when done.
func New(upstreamAddr string, opts Options) (*Proxy, error) {
	if _, _, err := net.SplitHostPort(upstreamAddr); err != nil {
		return nil, fmt.Errorf("faultproxy: upstream %q: %w", upstreamAddr, err)
	}
	p := &Proxy{
		opts:     opts,
		upstream: upstreamAddr,
		target:   upstreamAddr,
		changed:  make(chan struct{}),
		ended:    closedChan(),
		conns:    map[*conn]struct{}{},
		done:     make(chan struct{}),
	}
	if opts.Mode == ModeHTTP {
		if err := p.startHTTP(); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.closeHTTP()
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p.ln = ln
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// UpstreamAddr returns the host:port of the URL u (https://host:port), for
// New.
func UpstreamAddr(u string) (string, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	if pu.Port() == "" {
		return net.JoinHostPort(pu.Hostname(), "443"), nil
	}
	return pu.Host, nil
}

// Addr is the proxy's address, 127.0.0.1:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is the base URL clients use, https://127.0.0.1:port.
func (p *Proxy) URL() string { return "https://" + p.Addr() }

// CAData is the PEM of the CA a client must trust to talk through the
// proxy: the proxy's own in ModeHTTP, Options.UpstreamCA in ModeTCP.
func (p *Proxy) CAData() []byte {
	if p.opts.Mode == ModeHTTP {
		return append([]byte(nil), p.caPEM...)
	}
	return append([]byte(nil), p.opts.UpstreamCA...)
}

// Config returns a copy of base that goes through the proxy: Host is URL,
// and in ModeHTTP the proxy's CA is trusted instead of base's (CAData set,
// CAFile and ServerName cleared). Credentials are kept: the proxy forwards
// them.
func (p *Proxy) Config(base *lease.Config) *lease.Config {
	c := *base
	c.Host = p.URL()
	if p.opts.Mode == ModeHTTP {
		c.CAData, c.CAFile, c.ServerName = p.CAData(), "", ""
	}
	return &c
}

// Set makes f the current fault (replacing any other, which then ends) and
// returns a channel closed when f ends. A Status fault panics in ModeTCP.
func (p *Proxy) Set(f Fault) <-chan struct{} {
	if f.Kind == Status && p.opts.Mode != ModeHTTP {
		panic("faultproxy: a Status fault needs ModeHTTP")
	}
	var reset []*conn
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return closedChan()
	}
	p.changeLocked(f)
	gen, ended := p.gen, p.ended
	switch {
	case f.Kind == Blackhole && !f.Deliver:
		for c := range p.conns {
			c.dead.Store(true)
		}
	case f.Kind == Reset:
		for c := range p.conns {
			reset = append(reset, c)
		}
	}
	if f.Duration > 0 {
		time.AfterFunc(f.Duration, func() { p.endIf(gen) })
	}
	p.mu.Unlock()
	for _, c := range reset {
		p.nResets.Add(1)
		c.reset()
	}
	return ended
}

// Clear ends the current fault, if any.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.changeLocked(Fault{})
	}
}

// Current returns the fault in effect (the zero Fault when none).
func (p *Proxy) Current() Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur
}

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	return Stats{Conns: p.nConns.Load(), Resets: p.nResets.Load(), Requests: p.nRequests.Load(), Faulted: p.nFaulted.Load()}
}

// Close stops the proxy and closes every connection through it. It is
// idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.changeLocked(Fault{})
	conns := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	close(p.done)
	err := p.ln.Close()
	for _, c := range conns {
		c.close()
	}
	p.closeHTTP()
	p.wg.Wait()
	return err
}

// changeLocked makes f current, waking whoever waits on a change and
// ending the previous fault.
func (p *Proxy) changeLocked(f Fault) {
	p.gen++
	p.cur = f
	close(p.changed)
	p.changed = make(chan struct{})
	select {
	case <-p.ended: // None's: closed already
	default:
		close(p.ended)
	}
	if f.Kind == None {
		p.ended = closedChan()
	} else {
		p.ended = make(chan struct{})
	}
}

// endIf clears the fault set as generation gen if it is still current.
func (p *Proxy) endIf(gen uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed && p.gen == gen {
		p.changeLocked(Fault{})
	}
}

// snapshot returns the current fault and a channel closed at its next
// change.
func (p *Proxy) snapshot() (Fault, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur, p.changed
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// acceptLoop accepts client connections until Close.
func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.nConns.Add(1)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(cc)
		}()
	}
}

// handle proxies one client connection.
func (p *Proxy) handle(cc net.Conn) {
	f, _ := p.snapshot()
	if f.Kind == Reset {
		p.nResets.Add(1)
		resetConn(cc)
		return
	}
	var d net.Dialer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	uc, err := d.DialContext(ctx, "tcp", p.target)
	cancel()
	if err != nil {
		resetConn(cc)
		return
	}
	c := &conn{p: p, client: cc, up: uc, gone: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.close()
		return
	}
	if p.cur.Kind == Blackhole && !p.cur.Deliver {
		c.dead.Store(true)
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.pump(cc, uc, false) }()
	go func() { defer wg.Done(); c.pump(uc, cc, true) }()
	wg.Wait()
	c.close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// conn is one client connection and its upstream connection.
type conn struct {
	p          *Proxy
	client, up net.Conn
	dead       atomic.Bool   // a dropping blackhole caught it: nothing passes, ever
	gone       chan struct{} // closed by close and reset
	closeOnce  sync.Once
}

// chunk is data read from one side, with when it may be written.
type chunk struct {
	data []byte
	at   time.Time
}

// pump copies src to dst, applying the proxy's faults; down says the
// direction is from the server to the client.
func (c *conn) pump(src, dst net.Conn, down bool) {
	chunks := make(chan chunk, 64)
	stop := make(chan struct{})
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				at := time.Now()
				if f, _ := c.p.snapshot(); f.Kind == Latency && down && c.p.opts.Mode == ModeTCP {
					at = at.Add(f.Latency)
				}
				select {
				case chunks <- chunk{buf[:n], at}:
				case <-stop:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	defer close(stop)
	for ch := range chunks {
		if !c.wait(ch.at) {
			c.close()
			return
		}
		if _, err := dst.Write(ch.data); err != nil {
			c.close()
			return
		}
	}
	// src ended: pass the half-close on (a dead connection just ends).
	if c.dead.Load() {
		c.close()
	} else if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	} else {
		c.close()
	}
}

// wait blocks until a chunk due at may be written: after at, and while no
// blackhole holds it. It reports false when the connection or the proxy is
// closed meanwhile; a dead connection stays silent until then.
func (c *conn) wait(at time.Time) bool {
	if d := time.Until(at); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-c.gone:
			t.Stop()
			return false
		case <-c.p.done:
			t.Stop()
			return false
		}
	}
	for {
		f, changed := c.p.snapshot()
		if c.dead.Load() {
			changed = nil // silent for good
		} else if f.Kind != Blackhole {
			return true
		}
		select {
		case <-changed:
		case <-c.gone:
			return false
		case <-c.p.done:
			return false
		}
	}
}

// reset closes both sides with an RST.
func (c *conn) reset() {
	c.closeOnce.Do(func() {
		resetConn(c.client)
		resetConn(c.up)
		close(c.gone)
	})
}

// close closes both sides.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		_ = c.client.Close()
		_ = c.up.Close()
		close(c.gone)
	})
}

// resetConn closes nc with an RST rather than a FIN.
func resetConn(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = nc.Close()
}

// startHTTP starts the TLS-terminating reverse proxy of ModeHTTP on a
// loopback port of its own; the TCP front forwards to it.
func (p *Proxy) startHTTP() error {
	if len(p.opts.UpstreamCA) == 0 {
		return errors.New("faultproxy: ModeHTTP needs Options.UpstreamCA")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(p.opts.UpstreamCA) {
		return errors.New("faultproxy: no certificate in Options.UpstreamCA")
	}
	caPEM, cert, err := newServingCert()
	if err != nil {
		return err
	}
	p.caPEM = caPEM
	up := &url.URL{Scheme: "https", Host: p.upstream}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, ServerName: p.opts.UpstreamServerName},
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 16,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(up)
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("faultproxy: listen: %w", err)
	}
	p.httpLn = ln
	p.target = ln.Addr().String()
	p.httpSrv = &http.Server{
		Handler:           p.handler(rp),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}},
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_ = p.httpSrv.ServeTLS(ln, "", "")
	}()
	go func() {
		<-p.done
		tr.CloseIdleConnections()
	}()
	return nil
}

func (p *Proxy) closeHTTP() {
	if p.httpSrv != nil {
		_ = p.httpSrv.Close()
	}
}

// handler applies Status and per-request Latency faults, then forwards.
func (p *Proxy) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.nRequests.Add(1)
		f, _ := p.snapshot()
		switch f.Kind {
		case Status:
			p.nFaulted.Add(1)
			writeStatus(w, f)
			return
		case Latency:
			t := time.NewTimer(f.Latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			case <-p.done:
				t.Stop()
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// writeStatus answers with f's status code, Retry-After and a Kubernetes
// Status body, as kube-apiserver does when it sheds load.
func writeStatus(w http.ResponseWriter, f Fault) {
	secs := int((f.RetryAfter + time.Second - 1) / time.Second)
	reason := map[int]string{
		http.StatusTooManyRequests:     "TooManyRequests",
		http.StatusInternalServerError: "InternalError",
		http.StatusServiceUnavailable:  "ServiceUnavailable",
		http.StatusGatewayTimeout:      "Timeout",
	}[f.Status]
	details := ""
	if secs > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		details = fmt.Sprintf(`,"details":{"retryAfterSeconds":%d}`, secs)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.Status)
	fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"faultproxy: injected %d","reason":%q,"code":%d%s}`+"\n",
		f.Status, reason, f.Status, details)
}
