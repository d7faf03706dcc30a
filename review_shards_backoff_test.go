package lease_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"
)

// Review: runShard's restart backoff (shard_run.go:265-306) is made once
// per runner and never Reset, unlike RunSingleton's (singleton.go:273). A
// shard whose work has returned by itself about ten times in the runner's
// life (a failing dependency once, say) is thereafter restarted only after
// ~MaxBackoff (30 s), however long its last run was: the shard runs nowhere
// meanwhile, since no other member is assigned it.
func TestReviewShardsRestartBackoffResetsAfterALongRun(t *testing.T) {
	e := newEnv(t)
	clk := clocktesting.NewFakeClock(epoch)
	set, err := lease.NewShardSet(lease.ShardSettings{Set: "orders", Shards: []string{"x"},
		Lease: lease.Settings{Owner: "a", Config: e.srv.Config(), Clock: clk, TTL: 15 * time.Second}})
	require.NoError(t, err)
	const quick = 10
	var starts atomic.Int32
	started := make(chan int32, 64)
	finish := make(chan struct{})
	cut := make(chan struct{}, 1) // the long run's context ended before finish
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- set.Run(ctx, func(wctx context.Context, _ string, _ lease.Token) error {
			n := starts.Add(1)
			started <- n
			switch {
			case n <= quick:
				return errors.New("dependency down")
			case n == quick+1:
				select {
				case <-finish:
				case <-wctx.Done():
					cut <- struct{}{}
				}
				return errors.New("dependency down again, after a long run")
			default:
				<-wctx.Done()
				return nil
			}
		}, lease.ShardOptions{})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitFor):
			t.Error("Run did not return")
		}
		set.Close()
	})
	// awaitStart steps the clock by step every 5 ms of real time until
	// start n, and returns the clock time it took.
	awaitStart := func(n int32, step time.Duration) time.Duration {
		t.Helper()
		from := clk.Now()
		deadline := time.After(waitFor)
		for {
			select {
			case got := <-started:
				if got == n {
					return clk.Since(from)
				}
			case <-time.After(5 * time.Millisecond):
				clk.Step(step)
			case <-deadline:
				t.Fatalf("start %d not seen within %v", n, waitFor)
			}
		}
	}
	for n := int32(1); n <= quick+1; n++ {
		awaitStart(n, time.Second)
	}
	// The 11th run lasts two minutes of the member's clock, renewing.
	for range 480 {
		select {
		case <-cut:
			t.Fatal("the long run was cut short")
		case <-time.After(5 * time.Millisecond):
			clk.Step(250 * time.Millisecond)
		}
	}
	close(finish)
	took := awaitStart(quick+2, 100*time.Millisecond)
	require.Less(t, took, 3*time.Second,
		"after a 2-minute run the work was started again only %v later: the backoff kept growing since the quick failures", took)
}
