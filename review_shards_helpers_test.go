package lease_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"time"

	"github.com/kubelease/lease"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"
)

// joinWith starts member name on clk, with mod
// applied to its Lease template and opts to its Run.
func (r *shardRig) joinWith(name string, clk *clocktesting.FakeClock, mod func(*lease.Settings), opts lease.ShardOptions) *rigMember {
	t := r.e.t
	t.Helper()
	m := &rigMember{name: name, clk: clk, done: make(chan error, 1)}
	cfg := r.e.srv.Config()
	cfg.HTTPClient = &http.Client{Transport: cutTransport{m}}
	s := lease.Settings{Owner: name, Config: cfg, Clock: clk, TTL: 15 * time.Second}
	if mod != nil {
		mod(&s)
	}
	set, err := lease.NewShardSet(lease.ShardSettings{Set: "orders", Shards: r.shards, Lease: s})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	m.set, m.cancel = set, cancel
	go func() {
		m.done <- set.Run(ctx, func(ctx context.Context, shard string, tok lease.Token) error {
			r.mu.Lock()
			if o := r.owner[shard]; o != nil {
				r.mu.Unlock()
				panic(fmt.Sprintf("shard %s: %s starts while %s runs it", shard, name, o.name))
			}
			r.owner[shard] = m
			r.mu.Unlock()
			r.wake()
			<-ctx.Done()
			r.mu.Lock()
			if !m.dead {
				delete(r.owner, shard)
				r.causes = append(r.causes, context.Cause(ctx))
			}
			r.mu.Unlock()
			r.wake()
			return nil
		}, opts)
		set.Close()
	}()
	t.Cleanup(func() { _ = m.leave(t) })
	return m
}

// owners returns who runs which shard now.
func (r *shardRig) owners() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := make(map[string]string, len(r.owner))
	for k, v := range r.owner {
		got[k] = v.name
	}
	return got
}

// settledWithin is settled with a bound of d and a result instead of a
// fatal error: it reports whether every shard ran on one of members as
// AssignShards says, within d of real time.
func (r *shardRig) settledWithin(d time.Duration, step func(), members ...string) (map[string]string, bool) {
	want := lease.AssignShards(r.shards, members)
	deadline := time.After(d)
	for {
		got := r.owners()
		if maps.Equal(got, want) {
			return got, true
		}
		var tick <-chan time.Time
		if step != nil {
			tick = time.After(10 * time.Millisecond)
		}
		select {
		case <-r.poke:
		case <-tick:
			step()
		case <-deadline:
			return got, false
		}
	}
}
