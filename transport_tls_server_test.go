package lease_test

// The TLS rig of transport_tls_test.go: certificate authorities made for
// one test, and a leasetest fake served over HTTPS by them.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tlsCA is a certificate authority made for one test.
type tlsCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var tlsSerial atomic.Int64

func tlsKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return key
}

func newTLSCA(t *testing.T, name string) *tlsCA {
	t.Helper()
	key := tlsKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(tlsSerial.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &tlsCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf certificate from tmpl and returns it and its key as PEM.
func (ca *tlsCA) issue(t *testing.T, tmpl *x509.Certificate) (certPEM, keyPEM []byte) {
	t.Helper()
	key := tlsKey(t)
	tmpl.SerialNumber = big.NewInt(tlsSerial.Add(1))
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// serving returns a server certificate for the given DNS names and IPs.
func (ca *tlsCA) serving(t *testing.T, dns []string, ips ...net.IP) tls.Certificate {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    dns,
		IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	return cert
}

// localhost returns a server certificate for 127.0.0.1 and localhost.
func (ca *tlsCA) localhost(t *testing.T) tls.Certificate {
	t.Helper()
	return ca.serving(t, []string{"localhost"}, net.IPv4(127, 0, 0, 1), net.IPv6loopback)
}

// client returns a client certificate for user cn, as PEM.
func (ca *tlsCA) client(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	return ca.issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// tlsServer is a leasetest fake behind an HTTPS server with a TLS
// configuration of the test's choosing. It records the protocol and client
// certificate of every request and counts new connections.
type tlsServer struct {
	fake *leasetest.Server
	ts   *httptest.Server
	ca   *tlsCA // signed the serving certificate

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
	s := &tlsServer{fake: leasetest.NewUnstartedServer(), ca: newTLSCA(t, "test-server-ca")}
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if len(cfg.Certificates) == 0 {
		cfg.Certificates = []tls.Certificate{s.ca.localhost(t)}
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
	return &lease.Config{Host: s.ts.URL, CAData: s.ca.pem}
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
