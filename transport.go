package lease

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// transportKey identifies the TLS, proxy, credential-plugin and
// health-check setup of a transport, so that leases with the same setup
// share one connection pool.
type transportKey struct {
	caData, caFile, certData, keyData, certFile, keyFile, serverName string
	insecure                                                         bool
	proxyURL                                                         string
	execKey                                                          string // fingerprint of the exec plugin setup
	pingEvery, pingTimeout                                           time.Duration
}

var (
	transportsMu sync.Mutex // guards transports
	transports   = map[transportKey]http.RoundTripper{}
)

// sharedTransport returns the process-wide transport for cfg's TLS, proxy
// and exec plugin setup, with HTTP/2 pings every pingEvery of idle reading
// and a ping timeout, so a dead connection is noticed within about a
// renewal interval rather than the many minutes TCP takes. It validates
// Config.ProxyURL and Config.Exec. With Config.Exec it is an
// *execTransport, else an *http.Transport.
func sharedTransport(cfg *Config, pingEvery, pingTimeout time.Duration) (http.RoundTripper, error) {
	proxy, err := proxyFunc(cfg.ProxyURL)
	if err != nil {
		return nil, err
	}
	var ex *execCache
	if cfg.Exec != nil {
		if ex, err = execCacheFor(cfg); err != nil {
			return nil, err
		}
	}
	key := transportKey{
		caData: string(cfg.CAData), caFile: cfg.CAFile,
		certData: string(cfg.CertData), keyData: string(cfg.KeyData),
		certFile: cfg.CertFile, keyFile: cfg.KeyFile,
		serverName: cfg.ServerName, insecure: cfg.Insecure,
		proxyURL:  cfg.ProxyURL,
		pingEvery: pingEvery, pingTimeout: pingTimeout,
	}
	if ex != nil {
		key.execKey = ex.key
	}
	transportsMu.Lock()
	defer transportsMu.Unlock()
	if tr, ok := transports[key]; ok {
		return tr, nil
	}
	tlsCfg, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	newTransport := func(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
		return &http.Transport{
			Proxy:               proxy,
			DialContext:         dial,
			TLSClientConfig:     tlsCfg.Clone(),
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 32,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
			HTTP2: &http.HTTP2Config{
				SendPingTimeout: pingEvery,
				PingTimeout:     max(pingTimeout, time.Second),
			},
		}
	}
	dial := (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	var tr http.RoundTripper
	if ex == nil {
		tr = newTransport(dial)
	} else {
		// The plugin's client certificate, as of the handshake.
		tlsCfg.GetClientCertificate = ex.clientCertificate
		tr = &execTransport{ex: ex, newTransport: func(conns *connTracker) *http.Transport {
			return newTransport(conns.dialer(dial))
		}}
	}
	transports[key] = tr
	return tr, nil
}

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

// proxyFunc returns the transport's proxy function for Config.ProxyURL:
// the environment's proxy when it is empty.
func proxyFunc(raw string) (func(*http.Request) (*url.URL, error), error) {
	if raw == "" {
		return http.ProxyFromEnvironment, nil
	}
	u, problem := parseProxyURL(raw)
	if problem != "" {
		return nil, fmt.Errorf("lease: Config.ProxyURL %q %s", redactURL(raw), problem)
	}
	return http.ProxyURL(u), nil
}

// parseProxyURL parses a proxy URL; problem says what is wrong with it,
// without its user information.
func parseProxyURL(raw string) (u *url.URL, problem string) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "is not a URL"
	}
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
	default:
		return nil, fmt.Sprintf("has scheme %q; want http, https, socks5 or socks5h", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, "has no host"
	}
	return u, ""
}

// redactURL returns a URL (or something meant to be one) without the
// password of its user information.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		if _, ok := u.User.Password(); ok {
			return u.Redacted()
		}
		return raw
	}
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + len("://")
	}
	if j := strings.LastIndex(raw[start:], "@"); j >= 0 {
		return raw[:start] + "xxxxx" + raw[start+j:]
	}
	return raw
}

// tlsConfig builds the client TLS configuration: verified, TLS 1.2 or later.
func tlsConfig(cfg *Config) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ServerName, InsecureSkipVerify: cfg.Insecure}
	ca := cfg.CAData
	if len(ca) == 0 && cfg.CAFile != "" {
		b, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("lease: reading Config.CAFile: %w", err)
		}
		ca = b
	}
	if len(ca) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("lease: Config CA data holds no PEM certificate")
		}
		c.RootCAs = pool
	}
	certPEM, keyPEM := cfg.CertData, cfg.KeyData
	if len(certPEM) == 0 && cfg.CertFile != "" {
		b, err := os.ReadFile(cfg.CertFile)
		if err != nil {
			return nil, fmt.Errorf("lease: reading Config.CertFile: %w", err)
		}
		certPEM = b
	}
	if len(keyPEM) == 0 && cfg.KeyFile != "" {
		b, err := os.ReadFile(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("lease: reading Config.KeyFile: %w", err)
		}
		keyPEM = b
	}
	if len(certPEM) > 0 || len(keyPEM) > 0 {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("lease: client certificate and key: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
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
