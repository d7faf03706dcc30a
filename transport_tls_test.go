package lease_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"
)

// Transport tests: the library's own transport (no Config.HTTPClient)
// against a leasetest fake served over TLS with certificates made for the
// test (the rig is in transport_tls_server_test.go).

func TestTLSCAData(t *testing.T) {
	s := startTLSServer(t, nil)
	tlsRequireAcquired(t, s.config())
	assert.Equal(t, 2, s.fake.Count("create")+s.fake.Count("get"), "GET+POST count: got %d, want 2", s.fake.Count("create")+s.fake.Count("get"))
}

func TestTLSCAFile(t *testing.T) {
	s := startTLSServer(t, nil)
	tlsRequireAcquired(t, &lease.Config{Host: s.ts.URL, CAFile: tlsWriteFile(t, "ca.crt", s.ca.PEM)})
}

func TestTLSWrongCAIsACertificateError(t *testing.T) {
	s := startTLSServer(t, nil)
	other := lease.NewTLSCA(t, "some-other-ca")
	err := tlsRequireError(t, &lease.Config{Host: s.ts.URL, CAData: other.PEM}, "x509", "certificate")
	var apiErr *lease.APIError
	assert.NotErrorAs(t, err, &apiErr, "acquire error: got an *APIError %v, want a transport error", err)
	assert.Zero(t, s.fake.Received(), "requests reaching the fake: got %d, want 0", s.fake.Received())
}

func TestTLSSystemRootsRejectTestCA(t *testing.T) {
	s := startTLSServer(t, nil)
	tlsRequireError(t, &lease.Config{Host: s.ts.URL}, "x509", "certificate")
}

func TestTLSInsecureSkipsVerification(t *testing.T) {
	s := startTLSServer(t, nil)
	tlsRequireAcquired(t, &lease.Config{Host: s.ts.URL, Insecure: true})
}

func TestTLSServerName(t *testing.T) {
	ca := lease.NewTLSCA(t, "server-name-ca")
	// Valid only for a name, not for the address dialled.
	s := startTLSServer(t, &tls.Config{Certificates: []tls.Certificate{ca.Serving(t, []string{"apiserver.test"})}})
	cfg := func(serverName string) *lease.Config {
		return &lease.Config{Host: s.ts.URL, CAData: ca.PEM, ServerName: serverName}
	}
	t.Run("good", func(t *testing.T) {
		tlsRequireAcquired(t, cfg("apiserver.test"))
	})
	t.Run("bad", func(t *testing.T) {
		tlsRequireError(t, cfg("other.test"), "x509", "other.test")
	})
	t.Run("unset", func(t *testing.T) {
		tlsRequireError(t, cfg(""), "x509", "127.0.0.1")
	})
}

func TestTLSClientCertificate(t *testing.T) {
	clientCA := lease.NewTLSCA(t, "client-ca")
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.Cert)
	s := startTLSServer(t, &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool})
	certPEM, keyPEM := clientCA.Client(t, "kubelease-tester")

	t.Run("data", func(t *testing.T) {
		cfg := s.config()
		cfg.CertData, cfg.KeyData = certPEM, keyPEM
		tlsRequireAcquired(t, cfg)
	})
	t.Run("files", func(t *testing.T) {
		cfg := s.config()
		cfg.CertFile, cfg.KeyFile = tlsWriteFile(t, "client.crt", certPEM), tlsWriteFile(t, "client.key", keyPEM)
		tlsRequireAcquired(t, cfg)
	})
	_, clients := s.requests()
	require.NotEmpty(t, clients)
	for i, cn := range clients {
		assert.Equal(t, "kubelease-tester", cn, "request %d client certificate: got %q, want %q", i, cn, "kubelease-tester")
	}

	// Refused in the handshake: nothing reaches the fake, and the answer is
	// an error, never false, nil (nor a 401 as with a token).
	refused := func(t *testing.T, cfg *lease.Config) {
		err := tlsRequireError(t, cfg)
		var apiErr *lease.APIError
		assert.NotErrorAs(t, err, &apiErr, "acquire error: got an *APIError %v, want a transport error", err)
	}
	t.Run("missing", func(t *testing.T) { refused(t, s.config()) })
	t.Run("untrusted", func(t *testing.T) {
		cfg := s.config()
		cfg.CertData, cfg.KeyData = lease.NewTLSCA(t, "rogue-ca").Client(t, "intruder")
		refused(t, cfg)
	})
	_, after := s.requests()
	assert.Equal(t, len(clients), len(after), "requests served: got %d, want %d (none without a valid client certificate)", len(after), len(clients))
}

// TestTLSClientCertificateRefusalIsNamed wants the error for a refused
// client certificate to say so. Today it does not reliably: the library
// passes on what crypto/tls and net/http report, which is "remote error:
// tls: certificate required" most of the time under TLS 1.3, but sometimes
// "write: broken pipe" or "http2: client conn could not be established"
// (the server's alert arrives after the client's handshake has completed),
// and "remote error: tls: handshake failure" under TLS 1.2.
func TestTLSClientCertificateRefusalIsNamed(t *testing.T) {
	t.Skip("known gap: the transport does not yet name a refused client certificate in its errors (see the comment)")
	clientCA := lease.NewTLSCA(t, "client-ca")
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.Cert)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			s := startTLSServer(t, &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MaxVersion: v})
			for range 10 {
				tlsRequireError(t, s.config(), "certificate")
			}
		})
	}
}

func TestTLSRefusesTLS11(t *testing.T) {
	s := startTLSServer(t, &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})

	// The server does speak TLS 1.1: the refusal below is the library's.
	pool := x509.NewCertPool()
	pool.AddCert(s.ca.Cert)
	conn, err := tls.Dial("tcp", s.ts.Listener.Addr().String(), &tls.Config{
		RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11,
	})
	require.NoError(t, err, "control handshake at TLS 1.1")
	v := conn.ConnectionState().Version
	require.NoError(t, conn.Close())
	require.Equal(t, uint16(tls.VersionTLS11), v, "control handshake version: got %s, want TLS 1.1", tls.VersionName(v))

	tlsRequireError(t, s.config(), "tls", "protocol version")
	assert.Zero(t, s.fake.Received(), "requests reaching the fake: got %d, want 0", s.fake.Received())
}

func TestTLSNegotiatesHTTP2(t *testing.T) {
	s := startTLSServer(t, nil)
	l := newTLSLease(t, s.config(), "job")
	ok, err := tlsAcquire(t, l)
	require.NoError(t, err)
	require.True(t, ok, "acquire: got false, want true")
	require.NoError(t, l.Release(context.Background()))
	protos, _ := s.requests()
	require.Len(t, protos, 3, "requests (GET, POST, DELETE): got %d, want 3", len(protos))
	for i, p := range protos {
		assert.Equal(t, 2, p, "request %d ProtoMajor: got %d, want 2", i, p)
	}
}

func TestTLSLeasesWithOneConfigShareAConnection(t *testing.T) {
	s := startTLSServer(t, nil)
	cfg := s.config()
	var cs []*contender
	for _, name := range []string{"job-a", "job-b"} {
		clk := clocktesting.NewFakeClock(epoch)
		l, err := lease.NewKubernetesLease(lease.Settings{
			Name: name, Owner: "owner-" + name, Config: cfg, Clock: clk, TTL: 15 * time.Second,
		})
		require.NoError(t, err)
		ev := &events{ch: make(chan string, 4096)}
		lease.SetEventHook(l, ev.add)
		t.Cleanup(func() { _ = l.Release(context.Background()) })
		cs = append(cs, &contender{KubernetesLease: l, clk: clk, events: ev, lost: &lostLog{}})
	}
	for _, c := range cs {
		c.acquire(t)
	}
	for _, c := range cs {
		c.renewOnce(t)
	}
	assert.Equal(t, 2, s.fake.Count("update"), "renewals: got %d, want 2", s.fake.Count("update"))
	assert.Equal(t, int32(1), s.newConns.Load(), "new connections: got %d, want 1", s.newConns.Load())
}

// A TLS failure is reported without the bearer token that was to be sent.
func TestTLSErrorNamesNoSecrets(t *testing.T) {
	s := startTLSServer(t, nil)
	cfg := &lease.Config{Host: s.ts.URL, CAData: lease.NewTLSCA(t, "other").PEM, BearerToken: "s3cr3t-token"}
	err := tlsRequireError(t, cfg, "x509")
	assert.False(t, strings.Contains(err.Error(), "s3cr3t-token"), "acquire error: got %q, want no token in it", err)
}
