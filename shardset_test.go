package lease_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"
)

// shardRig runs members of one shard set against the env's fake server and
// records who runs which shard.
type shardRig struct {
	e      *env
	shards []string
	mu     sync.Mutex
	owner  map[string]string // shard → member whose work runs it
	events chan string       // "start <member> <shard>", "stop <member> <shard>", "assigned <member> <n>"
}

type rigMember struct {
	name   string
	clk    *clocktesting.FakeClock
	set    *lease.ShardSet
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

func newShardRig(e *env, n int) *shardRig {
	r := &shardRig{e: e, owner: map[string]string{}, events: make(chan string, 10000)}
	for i := range n {
		r.shards = append(r.shards, fmt.Sprintf("part-%02d", i))
	}
	return r
}

func (r *shardRig) join(name string) *rigMember {
	t := r.e.t
	t.Helper()
	clk := clocktesting.NewFakeClock(epoch)
	set, err := lease.NewShardSet(lease.ShardSettings{
		Set: "orders", Shards: r.shards,
		Lease: lease.Settings{Owner: name, Config: r.e.srv.Config(), Clock: clk, TTL: 15 * time.Second},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	m := &rigMember{name: name, clk: clk, set: set, cancel: cancel, done: make(chan error, 1)}
	go func() {
		m.done <- set.Run(ctx, func(ctx context.Context, shard string, tok lease.Token) error {
			r.mu.Lock()
			if o := r.owner[shard]; o != "" {
				r.mu.Unlock()
				panic(fmt.Sprintf("shard %s: %s starts while %s runs it", shard, name, o))
			}
			r.owner[shard] = name
			r.mu.Unlock()
			r.events <- "start " + name + " " + shard
			<-ctx.Done()
			r.mu.Lock()
			delete(r.owner, shard)
			r.mu.Unlock()
			r.events <- "stop " + name + " " + shard
			return nil
		}, lease.ShardOptions{})
		set.Close()
	}()
	t.Cleanup(func() { _ = m.leave(t) })
	return m
}

// leave ends the member's Run and returns what it returned.
func (m *rigMember) leave(t *testing.T) error {
	m.once.Do(func() {
		m.cancel()
		select {
		case m.err = <-m.done:
		case <-time.After(waitFor):
			t.Errorf("member %s did not leave within %v", m.name, waitFor)
		}
	})
	return m.err
}

// settled waits until every shard runs on one member and the counts per
// member are within one of each other, and returns the owners.
func (r *shardRig) settled(t *testing.T, members int) map[string]string {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		r.mu.Lock()
		owners := make(map[string]string, len(r.owner))
		for k, v := range r.owner {
			owners[k] = v
		}
		r.mu.Unlock()
		if len(owners) == len(r.shards) {
			count := map[string]int{}
			for _, m := range owners {
				count[m]++
			}
			if len(count) == members {
				var cs []int
				for _, c := range count {
					cs = append(cs, c)
				}
				if slices.Max(cs)-slices.Min(cs) <= 1 {
					return owners
				}
			}
		}
		select {
		case <-r.events:
		case <-deadline:
			t.Fatalf("not settled over %d members within %v: %v", members, waitFor, owners)
		}
	}
}

func TestShardSetJoinLeave(t *testing.T) {
	e := newEnv(t)
	r := newShardRig(e, 12)
	a := r.join("a")
	r.settled(t, 1)
	b := r.join("b")
	r.settled(t, 2)
	r.join("c")
	before := r.settled(t, 3)
	require.Equal(t, lease.AssignShards(r.shards, []string{"a", "b", "c"}), before)
	require.ErrorIs(t, b.leave(t), context.Canceled)
	after := r.settled(t, 2)
	require.Equal(t, lease.AssignShards(r.shards, []string{"a", "c"}), after)
	st := a.set.Status()
	require.Equal(t, []string{"a", "c"}, st.Members)
}
