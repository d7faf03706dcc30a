package leasetest_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"sync"
	"testing"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
)

// TestConformance runs the conformance suite against the fake: a fresh
// Server per scenario that requires an admin token, and for NoAccess403, a
// user that may not touch Leases. DropWatches and CompactLog act on the
// scenario's Server.
func TestConformance(t *testing.T) {
	t.Parallel()
	var servers scenarioServers
	leasetest.Conformance(t, leasetest.ConformanceBackend{
		Config: func(t *testing.T) *lease.Config {
			return servers.add(t, newConformanceServer(t, false)).Config()
		},
		NoAccess: func(t *testing.T) *lease.Config {
			cfg := newConformanceServer(t, false).Config()
			cfg.BearerToken = "conf-nobody"
			return cfg
		},
		DropWatches: func(t *testing.T) { servers.get(t).DropWatches() },
		CompactLog:  func(t *testing.T) { servers.get(t).CompactLog() },
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
	var servers scenarioServers
	tlsServer := func(t *testing.T) *leasetest.Server {
		srv := newConformanceServer(t, true)
		srv.AddNamespace("conf")
		return srv
	}
	tlsConfig := func(t *testing.T, srv *leasetest.Server) *lease.Config {
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
		Config: func(t *testing.T) *lease.Config { return tlsConfig(t, servers.add(t, tlsServer(t))) },
		NoAccess: func(t *testing.T) *lease.Config {
			cfg := tlsConfig(t, tlsServer(t))
			cfg.BearerToken = "conf-nobody"
			return cfg
		},
		Namespace:   "conf",
		DropWatches: func(t *testing.T) { servers.get(t).DropWatches() },
		CompactLog:  func(t *testing.T) { servers.get(t).CompactLog() },
	})
}

// scenarioServers remembers the Server each scenario's Config came from,
// for the backend's DropWatches and CompactLog.
type scenarioServers struct {
	mu  sync.Mutex // guards byT
	byT map[*testing.T]*leasetest.Server
}

// add remembers srv as scenario t's until t ends, and returns it.
func (s *scenarioServers) add(t *testing.T, srv *leasetest.Server) *leasetest.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byT == nil {
		s.byT = map[*testing.T]*leasetest.Server{}
	}
	s.byT[t] = srv
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.byT, t)
	})
	return srv
}

// get returns scenario t's Server; it fails t when Config made none.
func (s *scenarioServers) get(t *testing.T) *leasetest.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	srv := s.byT[t]
	if srv == nil {
		t.Fatal("no Server for this scenario: Config was not called")
	}
	return srv
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
