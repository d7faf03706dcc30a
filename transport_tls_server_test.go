package lease_test

// The TLS rig of transport_tls_test.go: certificate authorities made for
// one test, and a leasetest fake served over HTTPS by them.

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tlsServer is a leasetest fake behind an HTTPS server with a TLS
// configuration of the test's choosing. It records the protocol and client
// certificate of every request and counts new connections.
type tlsServer struct {
	fake *leasetest.Server
	ts   *httptest.Server
	ca   *lease.TLSCA // signed the serving certificate

	newConns atomic.Int32

	mu      sync.Mutex // guards protos and clients
	protos  []int      // r.ProtoMajor of each request
	clients []string   // common name of the client certificate of each request, "" if none
}

// startTLSServer serves a fresh leasetest fake over HTTPS with HTTP/2
// enabled. A nil cfg.Certificates gets a certificate for 127.0.0.1 and
// localhost signed by a new CA. The server is closed when the test ends,
// after the leases made later (cleanups run last-in first-out).
func startTLSServer(t *testing.T, cfg *tls.Config) *tlsServer {
	t.Helper()
	s := &tlsServer{fake: leasetest.NewUnstartedServer(), ca: lease.NewTLSCA(t, "test-server-ca")}
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if len(cfg.Certificates) == 0 {
		cfg.Certificates = []tls.Certificate{s.ca.Localhost(t)}
	}
	s.ts = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := ""
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		s.mu.Lock()
		s.protos = append(s.protos, r.ProtoMajor)
		s.clients = append(s.clients, cn)
		s.mu.Unlock()
		s.fake.ServeHTTP(w, r)
	}))
	s.ts.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.newConns.Add(1)
		}
	}
	// Clients that are refused or fail their handshake are expected here.
	s.ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.ts.TLS = cfg
	s.ts.EnableHTTP2 = true
	s.ts.StartTLS()
	t.Cleanup(func() {
		s.ts.Close()
		s.fake.Close()
	})
	return s
}

// config returns a Config for the server that trusts its CA.
func (s *tlsServer) config() *lease.Config {
	return &lease.Config{Host: s.ts.URL, CAData: s.ca.PEM}
}

func (s *tlsServer) requests() (protos []int, clients []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.protos...), append([]string(nil), s.clients...)
}

// newTLSLease makes a lease on the real clock with its own Owner, released
// when the test ends.
func newTLSLease(t *testing.T, cfg *lease.Config, name string) *lease.KubernetesLease {
	t.Helper()
	l, err := lease.NewKubernetesLease(lease.Settings{Name: name, Owner: "owner-" + name, Config: cfg})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Release(context.Background()) })
	return l
}

// tlsAcquire runs one Acquire with a bound.
func tlsAcquire(t *testing.T, l *lease.KubernetesLease) (bool, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	return l.Acquire(ctx)
}

// tlsRequireAcquired acquires and requires true, nil.
func tlsRequireAcquired(t *testing.T, cfg *lease.Config) {
	t.Helper()
	ok, err := tlsAcquire(t, newTLSLease(t, cfg, "job"))
	require.NoError(t, err)
	require.True(t, ok, "acquire: got false, want true")
}

// tlsRequireError acquires and requires an error (never false, nil) whose
// text contains every one of wants.
func tlsRequireError(t *testing.T, cfg *lease.Config, wants ...string) error {
	t.Helper()
	ok, err := tlsAcquire(t, newTLSLease(t, cfg, "job"))
	require.Error(t, err, "acquire: got ok=%v, nil error; want an error", ok)
	assert.False(t, ok, "acquire ok: got true, want false")
	for _, want := range wants {
		assert.Contains(t, err.Error(), want, "acquire error: got %q, want it to contain %q", err, want)
	}
	return err
}

// tlsWriteFile writes data to a file in a temporary directory of t.
func tlsWriteFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}
