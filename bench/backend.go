package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/kubelease/lease"
	"github.com/kubelease/lease/e2e/cluster"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

func init() {
	// client-go's leader election logs every attempt through klog.
	klog.SetLogger(logr.Discard())
}

// Backend is an API server both libraries talk to.
type Backend interface {
	// Name is "fake" or "kube-apiserver".
	Name() string
	// Namespace is where the benchmark's Leases live.
	Namespace() string
	// LeaseConfig is a kubelease Config. With a nil tap the library builds
	// its own transport (as users get it); with a tap, requests go through
	// tap, whose Inner is set to a transport shared by all such configs of
	// this backend.
	LeaseConfig(tap *Tap) *lease.Config
	// RestConfig is a client-go config. With a tap, requests go through
	// it: its Inner is client-go's own (cached, shared) transport.
	RestConfig(tap *Tap) *rest.Config
	// ServerCounts returns the server's own request counts by verb, when
	// it keeps them (the fake does).
	ServerCounts() (map[string]int, bool)
	// ResetServerCounts zeroes them.
	ResetServerCounts()
	// Close stops the backend, unless it is shared.
	Close()
}

// endpoint is what both kinds of backend have in common: where the server
// is and how to trust and authenticate to it.
type endpoint struct {
	url, token, namespace string
	caPEM                 []byte
	shared                *http.Transport
	// jsonOnly: the server speaks only JSON (the fake), so client-go must
	// not send protobuf.
	jsonOnly bool
}

func newEndpoint(url, token, namespace string, caPEM []byte) (*endpoint, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("bench: no CA certificate for %s", url)
	}
	return &endpoint{
		url: url, token: token, namespace: namespace, caPEM: caPEM,
		// Like the transport kubelease builds for itself, less the pings.
		shared: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 32,
			IdleConnTimeout:     90 * time.Second,
		},
	}, nil
}

func (e *endpoint) Namespace() string { return e.namespace }

func (e *endpoint) LeaseConfig(tap *Tap) *lease.Config {
	c := &lease.Config{Host: e.url, Namespace: e.namespace, BearerToken: e.token, CAData: e.caPEM}
	if tap != nil {
		tap.Inner = e.shared
		c.HTTPClient = &http.Client{Transport: tap}
	}
	return c
}

func (e *endpoint) RestConfig(tap *Tap) *rest.Config {
	c := &rest.Config{
		Host:            e.url,
		BearerToken:     e.token,
		TLSClientConfig: rest.TLSClientConfig{CAData: e.caPEM},
	}
	if e.jsonOnly {
		c.ContentType = "application/json"
		c.AcceptContentTypes = "application/json"
	}
	if tap != nil {
		c.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			tap.Inner = rt
			return tap
		}
	}
	return c
}

// Real is a running kube-apiserver with etcd, from e2e/cluster, run by a
// child process (so that etcd, which e2e/cluster runs in-process, is not
// counted in this process's CPU time and allocations). It is shared by
// every scenario: its Close is a no-op, Stop ends it.
type Real struct {
	*endpoint
	child   *child
	version string
}

// StartReal starts a child process that builds kube-apiserver if it is not
// cached yet (about 10 minutes the first time), starts it with etcd on
// 127.0.0.1 and waits until it is ready.
func StartReal(ctx context.Context) (*Real, error) {
	c, err := startChild("real", nil)
	if err != nil {
		return nil, err
	}
	type answer struct {
		hello serverHello
		err   error
	}
	got := make(chan answer, 1)
	go func() {
		var a answer
		a.err = c.decode(&a.hello)
		got <- a
	}()
	var a answer
	select {
	case a = <-got:
	case <-ctx.Done():
		c.stop(30 * time.Second)
		return nil, ctx.Err()
	}
	if a.err == nil && a.hello.Err != "" {
		a.err = errors.New(a.hello.Err)
	}
	if a.err != nil {
		c.stop(30 * time.Second)
		return nil, fmt.Errorf("bench: kube-apiserver did not start: %w", a.err)
	}
	e, err := newEndpoint(a.hello.URL, a.hello.Token, a.hello.Namespace, a.hello.CA)
	if err != nil {
		c.stop(30 * time.Second)
		return nil, err
	}
	return &Real{endpoint: e, child: c, version: a.hello.Version}, nil
}

// serveReal is the child process of StartReal.
func serveReal() {
	hello := serverHello{Version: cluster.KubernetesVersion, Token: cluster.AdminToken, Namespace: cluster.Namespace}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	var c *cluster.Cluster
	bin, err := cluster.Binary(ctx)
	dir := ""
	if err == nil {
		dir, err = os.MkdirTemp("", "kubelease-bench-")
	}
	if err == nil {
		c, err = cluster.New(ctx, bin, dir)
	}
	if err != nil {
		hello.Err = err.Error()
	} else {
		hello.URL, hello.CA = c.URL, c.CAData()
	}
	_ = json.NewEncoder(os.Stdout).Encode(hello)
	if err == nil {
		awaitParent()
		c.Stop()
	}
	if dir != "" {
		os.RemoveAll(dir)
	}
}

// Name implements Backend.
func (r *Real) Name() string { return "kube-apiserver" }

// ServerCounts implements Backend: a real server's counts are not read.
func (r *Real) ServerCounts() (map[string]int, bool) { return nil, false }

// ResetServerCounts implements Backend.
func (r *Real) ResetServerCounts() {}

// Close implements Backend: the cluster is shared; see Stop.
func (r *Real) Close() {}

// Stop stops kube-apiserver and etcd and removes their files.
func (r *Real) Stop() {
	r.shared.CloseIdleConnections()
	r.child.stop(30 * time.Second)
}

// Version is the kube-apiserver version.
func (r *Real) Version() string { return r.version }

// Source gives a scenario its backend: a fresh fake for each call, or the
// one shared real server.
type Source struct {
	// Name is "fake" or "kube-apiserver".
	Name string
	// New returns a backend; the caller closes it.
	New func() (Backend, error)
}

// FakeSource starts a new fake API server process for each backend.
func FakeSource() Source {
	return Source{Name: "fake", New: func() (Backend, error) { return StartFake() }}
}

// RealSource shares r.
func RealSource(r *Real) Source {
	return Source{Name: "kube-apiserver", New: func() (Backend, error) { return r, nil }}
}
