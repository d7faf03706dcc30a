package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
)

const (
	leaseName   = "election-demo"
	ttl         = 3 * time.Second
	stepTimeout = 10 * time.Second // bound on every wait in this demo
	// pollEvery is RunSingleton's RetryInterval in the demo: long on
	// purpose, so that what wakes a waiting replica is the watch of its
	// Waker (a Release, an expiry), not a poll.
	pollEvery = 5 * time.Second
)

var (
	start time.Time
	outMu sync.Mutex
)

// say prints one line prefixed with the time elapsed since the start.
func say(format string, args ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Printf("%6.3fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}

func fail(format string, args ...any) {
	say("FAILED: "+format, args...)
	os.Exit(1)
}

// kind is what a replica reports to main.
type kind int

const (
	started     kind = iota // OnStarted: its work is starting
	steppedDown             // its work is returning by itself
	stopped                 // OnStopped: its work has returned
)

type event struct {
	r      *replica
	kind   kind
	token  lease.Token
	reason error     // why work stopped (stopped)
	at     time.Time // when it happened
}

// replica is one process contending for the lease with RunSingleton.
type replica struct {
	name, owner string
	l           *lease.KubernetesLease
	net         *partition
	stepDown    chan struct{} // closed to make its work return
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

// newReplica makes a replica with its own HTTP client, so that its traffic
// alone can be cut off.
func newReplica(name string, base *lease.Config) (*replica, error) {
	cfg := *base
	p := &partition{base: http.DefaultTransport.(*http.Transport).Clone()}
	cfg.HTTPClient = &http.Client{Transport: p}
	owner := name + "-" + randomSuffix() // unique per process start
	l, err := lease.NewKubernetesLease(lease.Settings{Name: leaseName, Owner: owner, TTL: ttl, Config: &cfg})
	if err != nil {
		return nil, err
	}
	return &replica{name: name, owner: owner, l: l, net: p, stepDown: make(chan struct{})}, nil
}

// work is what the replica does while it leads: here, wait until the lease
// is lost (or the demo ends), or until it is told to step down.
func (r *replica) work(events chan<- event) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			say("%s: work cancelled; context.Cause(ctx) = %v", r.name, context.Cause(ctx))
		case <-r.stepDown:
			say("%s: work steps down and returns; RunSingleton will Release", r.name)
			events <- event{r: r, kind: steppedDown, at: time.Now()}
		}
		return nil
	}
}

// run runs RunSingleton for r on its own goroutine until parent ends or r
// has led once: a replica that crashed or stepped down does not contend
// again in this demo.
func (r *replica) run(parent context.Context, events chan<- event, wg *sync.WaitGroup) {
	ctx, leave := context.WithCancelCause(parent)
	opts := lease.SingletonOptions{
		RetryInterval: pollEvery,
		OnStarted: func(tok lease.Token) {
			now := time.Now()
			say("%s: leading as %s, token %s; work starts", r.name, r.owner, tok)
			events <- event{r: r, kind: started, token: tok, at: now}
		},
		OnStopped: func(tok lease.Token, reason error) {
			why := "work returned by itself"
			if reason != nil {
				why = reason.Error()
			}
			say("%s: work stopped (token %s): %s", r.name, tok, why)
			leave(errors.New("led once; leaves the demo"))
			events <- event{r: r, kind: stopped, token: tok, reason: reason}
		},
		OnNewHolder: func(holder string) { say("%s: new holder observed: %q", r.name, holder) },
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := lease.RunSingleton(ctx, r.l, r.work(events), opts)
		say("%s: RunSingleton returned: %v", r.name, err)
	}()
}

// inbox hands main the events it waits for, keeping the others, which may
// arrive in another order, for later waits.
type inbox struct {
	ch      <-chan event
	pending []event
}

// await returns the first event that want accepts; it fails the demo after
// stepTimeout.
func (in *inbox) await(what string, want func(event) bool) event {
	if i := slices.IndexFunc(in.pending, want); i >= 0 {
		e := in.pending[i]
		in.pending = slices.Delete(in.pending, i, i+1)
		return e
	}
	timeout := time.After(stepTimeout)
	for {
		select {
		case e := <-in.ch:
			if want(e) {
				return e
			}
			in.pending = append(in.pending, e)
		case <-timeout:
			fail("%s did not happen within %v", what, stepTimeout)
		}
	}
}

func is(k kind, r *replica) func(event) bool {
	return func(e event) bool { return e.kind == k && e.r == r }
}

func startedBy(notR ...*replica) func(event) bool {
	return func(e event) bool { return e.kind == started && !slices.Contains(notR, e.r) }
}

// newer fails the demo unless token a compares greater than b.
func newer(a, b lease.Token) int {
	cmp, err := a.Compare(b)
	if err != nil || cmp <= 0 {
		fail("token %s does not compare greater than %s (%d, %v)", a, b, cmp, err)
	}
	return cmp
}

// runDemo is the demo of the package documentation: three replicas on an
// in-process fake API server. It exits the process with 1 on failure.
func runDemo() {
	start = time.Now()
	srv := leasetest.NewServer()
	defer srv.Close()
	events := make(chan event, 64)
	in := &inbox{ch: events}
	var replicas []*replica
	for i := 1; i <= 3; i++ {
		r, err := newReplica(fmt.Sprintf("replica-%d", i), srv.Config())
		if err != nil {
			fail("%v", err)
		}
		replicas = append(replicas, r)
	}
	say("3 replicas run lease.RunSingleton on Lease %q (TTL %v, renewed every %v)", leaseName, ttl, ttl/3)
	ctx, shutdown := context.WithCancelCause(context.Background())
	var wg sync.WaitGroup
	for _, r := range replicas {
		r.run(ctx, events, &wg)
	}

	// 1. One replica leads.
	first := in.await("a first leader", startedBy())
	say("==> %s holds the lease, token %s", first.r.name, first.token)
	time.Sleep(time.Second)

	// 2. The holder crashes: its requests fail, it renews no more and does
	// not Release. Its work is cancelled when its deadline passes; a peer
	// takes over once the record has expired.
	say("==> %s crashes (network cut off, no Release)", first.r.name)
	crashed := time.Now()
	first.r.net.cut.Store(true)
	lost := in.await("the crashed holder's loss", is(stopped, first.r))
	var le *lease.LostError
	if !errors.As(lost.reason, &le) || le.Reason != lease.LostDeadline {
		fail("%s stopped for %v, want a loss by deadline", first.r.name, lost.reason)
	}
	second := in.await("a takeover", startedBy(first.r))
	say("==> %s took over %d ms after the crash; token %s vs %s: Compare = %+d",
		second.r.name, second.at.Sub(crashed).Milliseconds(), second.token, first.token, newer(second.token, first.token))
	time.Sleep(time.Second)

	// 3. Graceful handoff: the holder's work returns, RunSingleton releases,
	// and the last replica, waiting on its watch, starts at once.
	say("==> %s is told to step down", second.r.name)
	close(second.r.stepDown)
	stepped := in.await("the step-down", is(steppedDown, second.r))
	third := in.await("a handoff", startedBy(first.r, second.r))
	say("==> handoff in %.1f ms (Release → peer's work started); %s token %s vs %s: Compare = %+d",
		float64(third.at.Sub(stepped.at).Microseconds())/1000, third.r.name, third.token, second.token, newer(third.token, second.token))

	// 4. Shut down: the last holder's work is cancelled and it releases.
	say("==> shutting down")
	shutdown(errors.New("demo shutting down"))
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(stepTimeout):
		fail("replicas did not stop within %v", stepTimeout)
	}
	if _, ok := srv.Get("default", leaseName); ok {
		fail("the Lease still exists after shutdown")
	}
	say("all replicas stopped; the Lease was released (deleted); done")
}
