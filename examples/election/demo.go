package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
)

const (
	leaseName   = "election-demo"
	ttl         = 3 * time.Second
	retryEvery  = 500 * time.Millisecond // how often a replica tries Acquire
	stepTimeout = 10 * time.Second       // bound on every wait in this demo
)

var start = time.Now()

// say prints one line prefixed with the time elapsed since the start.
func say(format string, args ...any) {
	fmt.Printf("%6.2fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}

func fail(format string, args ...any) {
	say("FAILED: "+format, args...)
	os.Exit(1)
}

// event is something a replica reports to main: it acquired the lease
// (lost == nil), or it lost it (lost != nil).
type event struct {
	r     *replica
	token lease.Token
	lost  *lease.LostError
}

// replica is one process contending for the lease.
type replica struct {
	name  string
	owner string
	l     *lease.KubernetesLease
	net   *partition
	stop  context.CancelFunc // stops contending; does not release
	done  chan struct{}      // closed when the contend loop has returned
}

// partition is an http.RoundTripper that can be switched to fail every
// request, as a crash or a network partition would look to the API server.
type partition struct {
	base http.RoundTripper
	cut  atomic.Bool
}

func (p *partition) RoundTrip(req *http.Request) (*http.Response, error) {
	if p.cut.Load() {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errors.New("simulated network partition")
	}
	return p.base.RoundTrip(req)
}

// apiServer returns the Config of the in-process fake API server the demo's
// replicas talk to and a function that shuts it down. (Against a real
// cluster, see real.go: one replica per process.)
func apiServer() (*lease.Config, func(), error) {
	srv := leasetest.NewServer()
	return srv.Config(), srv.Close, nil
}

// newReplica makes a replica with its own HTTP client, so that its traffic
// alone can be cut off.
func newReplica(name string, base *lease.Config, events chan<- event) (*replica, error) {
	cfg := *base
	p := &partition{base: http.DefaultTransport.(*http.Transport).Clone()}
	cfg.HTTPClient = &http.Client{Transport: p}
	owner := name + "-" + randomSuffix() // unique per process start
	l, err := lease.NewKubernetesLease(lease.Settings{
		Name:   leaseName,
		Owner:  owner,
		TTL:    ttl,
		Config: &cfg,
	})
	if err != nil {
		return nil, err
	}
	r := &replica{name: name, owner: owner, l: l, net: p, done: make(chan struct{})}
	l.OnLost(func(reason error) {
		var lost *lease.LostError
		errors.As(reason, &lost)
		events <- event{r: r, lost: lost}
	})
	return r, nil
}

// contend tries to acquire the lease every retryEvery until stopped.
func (r *replica) contend(events chan<- event) {
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() {
		defer close(r.done)
		tick := time.NewTicker(retryEvery)
		defer tick.Stop()
		for {
			if !r.l.CheckAlive() {
				tok, ok, err := r.l.AcquireWithToken(ctx)
				switch {
				case ctx.Err() != nil:
				case err != nil:
					say("%s: acquire failed: %v", r.name, err)
				case ok:
					events <- event{r: r, token: tok}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// await returns the next event that want accepts, printing the others; it
// fails the demo after stepTimeout.
func await(events <-chan event, what string, want func(event) bool) event {
	timeout := time.After(stepTimeout)
	for {
		select {
		case e := <-events:
			if want(e) {
				return e
			}
			report(e)
		case <-timeout:
			fail("%s did not happen within %v", what, stepTimeout)
		}
	}
}

func report(e event) {
	if e.lost != nil {
		say("%s lost the lease: reason %q (%v)", e.r.name, e.lost.Reason, e.lost)
		return
	}
	say("%s acquired the lease as %s, token %s", e.r.name, e.r.owner, e.token)
}

func acquired(e event) bool { return e.lost == nil }

// runDemo is the demo of the package documentation: three replicas on an
// in-process fake API server. It exits the process with 1 on failure.
func runDemo() {
	cfg, shutdown, err := apiServer()
	if err != nil {
		fail("%v", err)
	}
	defer shutdown()
	events := make(chan event, 64)
	var replicas []*replica
	for i := 1; i <= 3; i++ {
		r, err := newReplica(fmt.Sprintf("replica-%d", i), cfg, events)
		if err != nil {
			fail("%v", err)
		}
		replicas = append(replicas, r)
	}
	say("3 replicas contend for Lease %q (TTL %v, renewed every %v)", leaseName, ttl, ttl/3)
	for _, r := range replicas {
		r.contend(events)
	}

	// 1. Someone wins.
	first := await(events, "a first acquire", acquired)
	report(first)
	time.Sleep(time.Second)

	// 2. The holder crashes: no Release, no more renewals.
	say("%s crashes (network cut off, no Release)", first.r.name)
	crashed := time.Now()
	first.r.net.cut.Store(true)
	first.r.stop()
	report(await(events, "the crashed holder's loss", func(e event) bool { return e.r == first.r && e.lost != nil }))
	second := await(events, "a takeover", acquired)
	report(second)
	cmp, err := second.token.Compare(first.token)
	if err != nil || cmp <= 0 {
		fail("new token %s does not compare greater than %s (%d, %v)", second.token, first.token, cmp, err)
	}
	say("takeover %d ms after the crash; new token %s vs old %s: Compare = %+d", time.Since(crashed).Milliseconds(), second.token, first.token, cmp)
	time.Sleep(time.Second)

	// 3. Graceful handoff: the holder steps down and releases.
	say("%s steps down and calls Release", second.r.name)
	second.r.stop()
	<-second.r.done
	released := time.Now()
	if err := second.r.l.Release(context.Background()); err != nil {
		fail("release: %v", err)
	}
	third := await(events, "a handoff", acquired)
	report(third)
	cmp, err = third.token.Compare(second.token)
	if err != nil || cmp <= 0 {
		fail("new token %s does not compare greater than %s (%d, %v)", third.token, second.token, cmp, err)
	}
	say("handoff %d ms after Release (at most one %v retry interval, no TTL wait); Compare = %+d",
		time.Since(released).Milliseconds(), retryEvery, cmp)

	// 4. Shut down: stop contending, release, close the server.
	first.r.net.cut.Store(false)
	for _, r := range replicas {
		r.stop()
		<-r.done
		if err := r.l.Release(context.Background()); err != nil {
			fail("%s: release: %v", r.name, err)
		}
	}
	for len(events) > 0 {
		report(<-events)
	}
	say("all replicas stopped and released; done")
}
