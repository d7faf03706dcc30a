package leasetest_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
)

// TestConformance runs the conformance suite against the fake: a fresh
// Server per scenario that requires an admin token, and for NoAccess403, a
// user that may not touch Leases.
func TestConformance(t *testing.T) {
	t.Parallel()
	leasetest.Conformance(t, leasetest.ConformanceBackend{
		Config: func(t *testing.T) *lease.Config {
			return newConformanceServer(t, false).Config()
		},
		NoAccess: func(t *testing.T) *lease.Config {
			cfg := newConformanceServer(t, false).Config()
			cfg.BearerToken = "conf-nobody"
			return cfg
		},
	})
}

// TestConformanceTLS runs the suite over HTTPS and HTTP/2, as a real API
// server speaks, in a namespace other than "default", with the backend's
// own HTTPClient (which the suite's third-party requests use too).
func TestConformanceTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("the plain-HTTP run covers the scenarios")
	}
	t.Parallel()
	tlsConfig := func(t *testing.T) *lease.Config {
		srv := newConformanceServer(t, true)
		srv.AddNamespace("conf")
		cfg := srv.Config()
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CAData) {
			t.Fatal("no CA certificate in the Config of a TLS server")
		}
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
		t.Cleanup(tr.CloseIdleConnections)
		cfg.HTTPClient = &http.Client{Transport: tr}
		return cfg
	}
	leasetest.Conformance(t, leasetest.ConformanceBackend{
		Config: tlsConfig,
		NoAccess: func(t *testing.T) *lease.Config {
			cfg := tlsConfig(t)
			cfg.BearerToken = "conf-nobody"
			return cfg
		},
		Namespace: "conf",
	})
}

// newConformanceServer starts a Server for one scenario, closed when it
// ends, with an admin token and a user "conf-nobody" with no access.
func newConformanceServer(t *testing.T, useTLS bool) *leasetest.Server {
	newServer := leasetest.NewServerT
	if useTLS {
		newServer = leasetest.NewTLSServerT
	}
	srv := newServer(t)
	srv.RequireToken("conf-admin")
	srv.AddUser("conf-nobody")
	return srv
}
