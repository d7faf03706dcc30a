package prometheus_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kubelease/lease"
	kprom "github.com/kubelease/lease/adapters/prometheus"
	"github.com/kubelease/lease/leasetest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestShardCollector(t *testing.T) {
	srv := leasetest.NewServer()
	defer srv.Close()
	set, err := lease.NewShardSet(lease.ShardSettings{
		Set: "orders", Shards: []string{"a", "b", "c"},
		Lease: lease.Settings{Owner: "m1", Config: srv.Config(), TTL: 5 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(kprom.NewShardCollector(set, "orders"))

	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan string, 3)
	done := make(chan error, 1)
	go func() {
		done <- set.Run(ctx, func(ctx context.Context, shard string, _ lease.Token) error {
			started <- shard
			<-ctx.Done()
			return nil
		}, lease.ShardOptions{})
	}()
	for range 3 {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("shards did not start within 10s")
		}
	}
	want := `
# HELP kubelease_shard_moves_in_total Shard tenures this member started.
# TYPE kubelease_shard_moves_in_total counter
kubelease_shard_moves_in_total{set="orders"} 3
# HELP kubelease_shards_assigned Shards the assignment gives this member.
# TYPE kubelease_shards_assigned gauge
kubelease_shards_assigned{set="orders"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kubelease_shard_moves_in_total", "kubelease_shards_assigned"); err != nil {
		t.Error(err)
	}
	cancel()
	<-done
	if n := testutil.CollectAndCount(kprom.NewShardCollector(set, "orders")); n != 7 {
		t.Errorf("collected %d metrics, want 7", n)
	}
}
