package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/kubelease/lease"
)

// errCrash is the cause of a crashed replica's contexts; errShutdown of
// the others' at the end of the demo.
var (
	errCrash    = errors.New("simulated crash")
	errShutdown = errors.New("demo shutting down")
)

// partition is an http.RoundTripper that can be switched to fail every
// request, as a crashed process looks to the API server.
type partition struct {
	base http.RoundTripper
	cut  atomic.Bool
}

func (p *partition) RoundTrip(req *http.Request) (*http.Response, error) {
	if p.cut.Load() {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errors.New("simulated crash: the process is gone")
	}
	return p.base.RoundTrip(req)
}

// replica is one process of the shard set.
type replica struct {
	name, owner string
	set         *lease.ShardSet
	net         *partition
	stop        context.CancelCauseFunc
	done        chan error // Run's result
}

// newReplica makes a replica with its own HTTP client, so that its traffic
// alone can be cut off.
func newReplica(name string, base *lease.Config, shards []string, log *slog.Logger) (*replica, error) {
	cfg := *base
	p := &partition{base: http.DefaultTransport.(*http.Transport).Clone()}
	cfg.HTTPClient = &http.Client{Transport: p}
	owner := name + "-" + randomSuffix() // unique per process start
	set, err := lease.NewShardSet(lease.ShardSettings{
		Set:    setName,
		Shards: shards,
		Lease:  lease.Settings{Owner: owner, TTL: ttl, Config: &cfg, Logger: log.With("replica", name)},
	})
	if err != nil {
		return nil, err
	}
	return &replica{name: name, owner: owner, set: set, net: p, done: make(chan error, 1)}, nil
}

// run starts the replica's Run on its own goroutine; t hears what it does.
// Each partition's work runs until its context is cancelled.
func (r *replica) run(t *tracker) {
	ctx, stop := context.WithCancelCause(context.Background())
	r.stop = stop
	work := func(ctx context.Context, shard string, tok lease.Token) error {
		<-ctx.Done()
		return nil
	}
	opts := lease.ShardOptions{
		OnStarted:  func(shard string, tok lease.Token) { t.started(r, shard, tok) },
		OnStopped:  func(shard string, tok lease.Token, reason error) { t.stopped(r, shard, reason) },
		OnAssigned: func(members, mine []string) { t.poke() },
	}
	go func() {
		err := r.set.Run(ctx, work, opts)
		r.set.Close()
		r.done <- err
	}()
}

// crash cuts the replica off from the API server, then stops its Run: its
// works end, and the Releases its Run tries on the way out fail, so its
// Leases stay in the API server as a crash leaves them. It returns when
// Run has returned, with Run's error.
func (r *replica) crash() error {
	r.net.cut.Store(true)
	r.stop(errCrash)
	return r.wait()
}

// wait returns Run's error once Run has returned.
func (r *replica) wait() error {
	select {
	case err := <-r.done:
		return err
	case <-timeout():
		fail("%s: Run did not return within %v", r.name, stepTimeout)
		return nil
	}
}

// randomSuffix returns 6 random hex digits, so that every process start
// gets an Owner of its own.
func randomSuffix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
