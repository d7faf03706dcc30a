package lease_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
)

// BenchmarkHandoff measures graceful handoff on the fake API server: from
// the holder's work returning (RunSingleton then releases) to the peer's
// work starting, over at least 100 handoffs between two RunSingleton
// loops with real clocks. Run:
//
//	go test -run '^$' -bench BenchmarkHandoff -benchtime 200x .
func BenchmarkHandoff(b *testing.B) {
	srv := leasetest.NewServer()
	defer srv.Close()
	n := max(b.N, 100)

	type start struct {
		who int
		at  time.Time
	}
	starts := make(chan start, 1)
	stepDown := [2]chan time.Time{make(chan time.Time, 1), make(chan time.Time, 1)}
	// resume lets a replica that stepped down contend again, once its peer
	// has taken over (a replica that steps down is usually going away).
	resume := [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 2 {
		l, err := lease.NewKubernetesLease(lease.Settings{
			Name: "handoff", Owner: fmt.Sprintf("replica-%d", i), Config: srv.Config(), TTL: 5 * time.Second,
		})
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_ = lease.RunSingleton(ctx, l, func(ctx context.Context) error {
					starts <- start{who: i, at: time.Now()}
					select {
					case <-stepDown[i]:
						return nil // RunSingleton releases, a peer takes over
					case <-ctx.Done():
						return nil
					}
				}, lease.SingletonOptions{RetryInterval: time.Minute}) // handoff must not depend on polling
				select {
				case <-resume[i]:
				case <-ctx.Done():
				}
			}
		}()
	}
	var lat []time.Duration
	cur := <-starts
	b.ResetTimer()
	for range n {
		t0 := time.Now()
		stepDown[cur.who] <- t0
		next := <-starts
		if next.who == cur.who {
			b.Fatalf("replica %d took the lease back instead of its peer", cur.who)
		}
		lat = append(lat, next.at.Sub(t0))
		resume[cur.who] <- struct{}{}
		cur = next
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[int(q*float64(len(lat)-1))] }
	b.ReportMetric(float64(p(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99-ms")
	b.Logf("graceful handoff over %d handoffs: p50 %v, p99 %v, max %v", len(lat), p(0.50), p(0.99), lat[len(lat)-1])
}
