package leasetest

import (
	"encoding/pem"
	"net/http/httptest"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubelease/lease"
)

// firstResourceVersion is the global resourceVersion of a new Server; the
// first write gets the next one.
const firstResourceVersion = 100

// Server is a fake kube-apiserver that serves Leases over HTTP. Its methods
// are safe for concurrent use.
type Server struct {
	// URL is the base URL of the server, like "http://127.0.0.1:34567",
	// without a trailing slash. It is set once the server has started.
	URL string

	ts *httptest.Server

	// closing is closed by Close; it releases every blocked request.
	closing chan struct{}

	// mu guards every field below: the store, the namespaces, the faults,
	// the users, the open watches, the counters and the request log. It is held only for short, non-blocking
	// sections: never while a request waits or while anything is written to
	// the network.
	mu         sync.Mutex
	closed     bool
	token      string
	namespaces map[string]bool
	leases     map[objKey]*Lease
	rv         uint64
	changes    []change
	changed    chan struct{}

	// cle is the CoordinatedLeaderElection feature gate: off (as on a
	// default kube-apiserver 1.37), spec.strategy and spec.preferredHolder
	// are dropped on create, and on update unless the stored object has them.
	cle bool

	faults []*faultState
	unhang chan struct{}
	paused chan struct{}

	// users are the restricted users AddUser registered, by bearer token.
	users map[string]*user

	// watchers is every open watch stream not dropped yet.
	watchers map[*watcher]struct{}
	// compacted is the global resourceVersion at the last CompactLog: no
	// new watch may start from an older one.
	compacted uint64

	// events are the Events accepted (events.go), in order.
	events []Event

	seq      int
	received int
	counts   map[string]int
	log      []Request
	notify   chan struct{}
}

// NewServer starts and returns a new Server on plain HTTP on 127.0.0.1. The
// caller should call Close when finished, to shut it down.
func NewServer() *Server {
	s := NewUnstartedServer()
	s.Start()
	return s
}

// NewServerT starts a Server as NewServer does and closes it when t and
// its subtests have finished, with t.Cleanup (as miniredis's RunT does).
// Cleanups run last-in first-out, so leases a test makes after the server
// can still be released by cleanups of their own:
//
//	func TestJob(t *testing.T) {
//		srv := leasetest.NewServerT(t)
//		l, err := lease.NewKubernetesLease(lease.Settings{
//			Name: "job", Owner: "pod-a", Config: srv.Config(),
//		})
//		...
//	}
func NewServerT(t testing.TB) *Server {
	s := NewServer()
	t.Cleanup(s.Close)
	return s
}

// NewTLSServerT is NewServerT on HTTPS with HTTP/2 enabled (see
// StartTLS): the server's Config carries its CA certificate in CAData.
func NewTLSServerT(t testing.TB) *Server {
	s := NewUnstartedServer()
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// NewUnstartedServer returns a new Server that is not started yet. Call
// Start or StartTLS before using it, and Close when finished.
func NewUnstartedServer() *Server {
	s := &Server{
		closing:    make(chan struct{}),
		namespaces: map[string]bool{},
		leases:     map[objKey]*Lease{},
		rv:         firstResourceVersion,
		changed:    make(chan struct{}),
		unhang:     make(chan struct{}),
		users:      map[string]*user{},
		watchers:   map[*watcher]struct{}{},
		counts:     map[string]int{},
		notify:     make(chan struct{}),
	}
	for _, ns := range []string{
		metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, "kube-node-lease",
	} {
		s.namespaces[ns] = true
	}
	s.ts = httptest.NewUnstartedServer(s)
	return s
}

// Start starts a server from NewUnstartedServer on plain HTTP/1.1.
func (s *Server) Start() {
	s.ts.Start()
	s.URL = s.ts.URL
}

// StartTLS starts a server from NewUnstartedServer on HTTPS with HTTP/2
// enabled, as a real API server is. Config then carries the server's CA.
func (s *Server) StartTLS() {
	s.ts.EnableHTTP2 = true
	s.ts.StartTLS()
	s.URL = s.ts.URL
}

// Close releases every request held by a fault or by Pause, then shuts the
// server down and blocks until all outstanding requests have completed.
// Close may be called more than once.
func (s *Server) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.closing)
	}
	s.mu.Unlock()
	s.ts.Close()
}

// Config returns a lease.Config for this server: Host is the server's URL,
// Namespace is empty, BearerToken is the token set by RequireToken, and for a
// server started with StartTLS, CAData holds its certificate.
func (s *Server) Config() *lease.Config {
	s.mu.Lock()
	tok := s.token
	s.mu.Unlock()
	c := &lease.Config{Host: s.URL, BearerToken: tok}
	if s.ts.TLS != nil {
		if cert := s.ts.Certificate(); cert != nil {
			c.CAData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
		}
	}
	return c
}

// RequireToken makes the server answer 401 Unauthorized to every request
// that does not carry "Authorization: Bearer tok". An empty tok turns the
// check off again.
func (s *Server) RequireToken(tok string) {
	s.mu.Lock()
	s.token = tok
	s.mu.Unlock()
}

// EnableCoordinatedLeaderElection turns on the CoordinatedLeaderElection
// feature gate: spec.strategy and spec.preferredHolder are then stored. With
// it off, the default as on a real kube-apiserver 1.37, the server silently
// drops them on create, and on update unless the stored object has them.
func (s *Server) EnableCoordinatedLeaderElection() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cle = true
}

// AddNamespace makes namespace ns exist. The namespaces default,
// kube-system, kube-public and kube-node-lease always exist; creating a Lease
// in any other namespace fails with 404 NotFound for the namespace.
func (s *Server) AddNamespace(ns string) {
	s.mu.Lock()
	s.namespaces[ns] = true
	s.mu.Unlock()
}
