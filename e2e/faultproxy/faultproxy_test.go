package faultproxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubelease/lease"
)

// bound is the longest any wait in these tests may take.
const bound = 10 * time.Second

// echoServer is a TCP upstream that echoes what it reads.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func newProxy(t *testing.T, upstream string, opts Options) *Proxy {
	t.Helper()
	p, err := New(upstream, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), bound)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads it back within d; it returns what was
// read and the error.
func roundTrip(c net.Conn, msg string, d time.Duration) (string, error) {
	if msg != "" {
		if _, err := c.Write([]byte(msg)); err != nil {
			return "", err
		}
	}
	return readFor(c, len(msg), d)
}

func readFor(c net.Conn, n int, d time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, max(n, 1))
	got, err := io.ReadFull(c, buf)
	return string(buf[:got]), err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestFaultProxyPassThrough(t *testing.T) {
	p := newProxy(t, echoServer(t), Options{})
	c := dial(t, p)
	if got, err := roundTrip(c, "hello", bound); err != nil || got != "hello" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	if s := p.Stats(); s.Conns != 1 || s.Resets != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestFaultProxyLatencyTCP(t *testing.T) {
	p := newProxy(t, echoServer(t), Options{})
	c := dial(t, p)
	p.Set(Fault{Kind: Latency, Latency: 300 * time.Millisecond})
	start := time.Now()
	if got, err := roundTrip(c, "x", bound); err != nil || got != "x" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("answer after %v, want ≥ 300ms", took)
	}
}

func TestFaultProxyBlackholeDrop(t *testing.T) {
	p := newProxy(t, echoServer(t), Options{})
	old := dial(t, p)
	if _, err := roundTrip(old, "a", bound); err != nil {
		t.Fatal(err)
	}
	ended := p.Set(Fault{Kind: Blackhole})
	if _, err := roundTrip(old, "b", 200*time.Millisecond); !isTimeout(err) {
		t.Fatalf("during blackhole, existing conn: %v, want a timeout", err)
	}
	during := dial(t, p) // accepted, never answered
	if _, err := roundTrip(during, "c", 200*time.Millisecond); !isTimeout(err) {
		t.Fatalf("during blackhole, new conn: %v, want a timeout", err)
	}
	p.Clear()
	select {
	case <-ended:
	case <-time.After(bound):
		t.Fatal("Clear did not end the fault")
	}
	for name, c := range map[string]net.Conn{"existing": old, "made during": during} {
		if got, err := readFor(c, 1, 200*time.Millisecond); !isTimeout(err) {
			t.Errorf("after blackhole, %s conn: read %q, %v; want silence", name, got, err)
		}
	}
	if got, err := roundTrip(dial(t, p), "d", bound); err != nil || got != "d" {
		t.Fatalf("after blackhole, new conn: %q, %v", got, err)
	}
}

func TestFaultProxyBlackholeDeliver(t *testing.T) {
	p := newProxy(t, echoServer(t), Options{})
	c := dial(t, p)
	if _, err := roundTrip(c, "a", bound); err != nil {
		t.Fatal(err)
	}
	p.Set(Fault{Kind: Blackhole, Deliver: true})
	if _, err := roundTrip(c, "held", 200*time.Millisecond); !isTimeout(err) {
		t.Fatalf("during blackhole: %v, want a timeout", err)
	}
	p.Clear()
	if got, err := readFor(c, 4, bound); err != nil || got != "held" {
		t.Fatalf("after blackhole: %q, %v; want the held bytes", got, err)
	}
}

func TestFaultProxyReset(t *testing.T) {
	p := newProxy(t, echoServer(t), Options{})
	c := dial(t, p)
	if _, err := roundTrip(c, "a", bound); err != nil {
		t.Fatal(err)
	}
	p.Set(Fault{Kind: Reset})
	if _, err := readFor(c, 1, bound); err == nil || isTimeout(err) {
		t.Fatalf("existing conn after Reset: %v, want reset", err)
	}
	n, err := net.DialTimeout("tcp", p.Addr(), bound)
	if err == nil {
		defer n.Close()
		if _, err := readFor(n, 1, bound); err == nil || isTimeout(err) {
			t.Fatalf("new conn during Reset: %v, want reset", err)
		}
	}
	if s := p.Stats(); s.Resets < 2 {
		t.Errorf("stats %+v, want ≥ 2 resets", s)
	}
	p.Clear()
	if got, err := roundTrip(dial(t, p), "b", bound); err != nil || got != "b" {
		t.Fatalf("after Reset: %q, %v", got, err)
	}
}

func TestFaultProxyDurationEnds(t *testing.T) {
	p := newProxy(t, echoServer(t), Options{})
	ended := p.Set(Fault{Kind: Blackhole, Deliver: true, Duration: 100 * time.Millisecond})
	if p.Current().Kind != Blackhole {
		t.Fatalf("current %v", p.Current())
	}
	select {
	case <-ended:
	case <-time.After(bound):
		t.Fatal("fault did not end by itself")
	}
	if f := p.Current(); f.Kind != None {
		t.Fatalf("after its Duration: current %v", f)
	}
	// A replaced fault ends, and a fault set later is not cut by the
	// earlier one's timer.
	first := p.Set(Fault{Kind: Latency, Latency: time.Millisecond, Duration: 50 * time.Millisecond})
	second := p.Set(Fault{Kind: Blackhole})
	select {
	case <-first:
	case <-time.After(bound):
		t.Fatal("replaced fault did not end")
	}
	select {
	case <-second:
		t.Fatal("second fault ended")
	default:
	}
	p.Clear()
	<-second
}

// tlsUpstream is an HTTPS (HTTP/2) server: /ok answers "ok", /watch sends
// a line and then holds the stream open until the client goes.
func tlsUpstream(t *testing.T) (*httptest.Server, []byte) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/watch":
			w.Write([]byte("event 1\n"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		default:
			w.Write([]byte("ok " + r.Header.Get("Authorization")))
		}
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

func httpClient(t *testing.T, ca []byte) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("bad CA")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: bound}
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer x")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestFaultProxyTCPPassesTLS(t *testing.T) {
	srv, ca := tlsUpstream(t)
	addr, err := UpstreamAddr(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, addr, Options{UpstreamCA: ca})
	resp, body := get(t, httpClient(t, p.CAData()), p.URL()+"/ok")
	if resp.StatusCode != 200 || body != "ok Bearer x" || resp.ProtoMajor != 2 {
		t.Fatalf("%s %d %q", resp.Proto, resp.StatusCode, body)
	}
}

func TestFaultProxyHTTPStatus(t *testing.T) {
	srv, ca := tlsUpstream(t)
	addr, _ := UpstreamAddr(srv.URL)
	p := newProxy(t, addr, Options{Mode: ModeHTTP, UpstreamCA: ca})
	c := httpClient(t, p.CAData())
	resp, body := get(t, c, p.URL()+"/ok")
	if resp.StatusCode != 200 || body != "ok Bearer x" || resp.ProtoMajor != 2 {
		t.Fatalf("pass: %s %d %q", resp.Proto, resp.StatusCode, body)
	}
	p.Set(Fault{Kind: Status, Status: 429, RetryAfter: 1500 * time.Millisecond})
	resp, body = get(t, c, p.URL()+"/ok")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" || !strings.Contains(body, `"reason":"TooManyRequests"`) || !strings.Contains(body, `"retryAfterSeconds":2`) {
		t.Fatalf("429: %d %q %q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	p.Set(Fault{Kind: Status, Status: 503})
	if resp, _ = get(t, c, p.URL()+"/ok"); resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "" {
		t.Fatalf("503: %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	p.Clear()
	if resp, _ = get(t, c, p.URL()+"/ok"); resp.StatusCode != 200 {
		t.Fatalf("after Clear: %d", resp.StatusCode)
	}
	if s := p.Stats(); s.Requests != 4 || s.Faulted != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestFaultProxyHTTPLatencyAndWatch(t *testing.T) {
	srv, ca := tlsUpstream(t)
	addr, _ := UpstreamAddr(srv.URL)
	p := newProxy(t, addr, Options{Mode: ModeHTTP, UpstreamCA: ca})
	c := httpClient(t, p.CAData())

	// A watch streams: its first event arrives while the stream is open.
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL()+"/watch", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "event 1\n" {
		t.Fatalf("watch: %q, %v", line, err)
	}
	cancel()
	resp.Body.Close()

	p.Set(Fault{Kind: Latency, Latency: 300 * time.Millisecond})
	start := time.Now()
	if resp, _ := get(t, c, p.URL()+"/ok"); resp.StatusCode != 200 {
		t.Fatalf("latency: %d", resp.StatusCode)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("answer after %v, want ≥ 300ms", took)
	}
}

func TestFaultProxyConfig(t *testing.T) {
	srv, ca := tlsUpstream(t)
	addr, _ := UpstreamAddr(srv.URL)
	base := &lease.Config{Host: srv.URL, CAData: ca, CAFile: "x", BearerToken: "t", Namespace: "ns"}
	tcp := newProxy(t, addr, Options{UpstreamCA: ca})
	if c := tcp.Config(base); c.Host != tcp.URL() || string(c.CAData) != string(ca) || c.BearerToken != "t" || c.Namespace != "ns" {
		t.Errorf("ModeTCP config %+v", c)
	}
	h := newProxy(t, addr, Options{Mode: ModeHTTP, UpstreamCA: ca})
	if c := h.Config(base); c.Host != h.URL() || string(c.CAData) != string(h.CAData()) || c.CAFile != "" || c.BearerToken != "t" {
		t.Errorf("ModeHTTP config %+v", c)
	}
	if base.Host != srv.URL {
		t.Error("Config changed its base")
	}
	defer func() {
		if recover() == nil {
			t.Error("a Status fault in ModeTCP did not panic")
		}
	}()
	tcp.Set(Fault{Kind: Status, Status: 429})
}

func TestMain(m *testing.M) { os.Exit(m.Run()) }
