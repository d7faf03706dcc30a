package leasetest_test

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

// BenchmarkMemoryHandoff measures graceful handoff over MemoryLeases: from
// the holder's work returning (RunSingleton then releases) to the peer's
// work starting, between two RunSingleton loops at the default
// SingletonOptions on real clocks, b.N handoffs. Each handoff starts once
// the peer has tried to acquire and failed, so that it measures a standby
// that waits, not a peer that happens to try just after the release. Run:
//
//	go test -run '^$' -bench BenchmarkMemoryHandoff -benchtime 200x ./leasetest
func BenchmarkMemoryHandoff(b *testing.B) {
	arb := leasetest.NewArbiter()
	defer arb.Wait()
	type start struct {
		who int
		at  time.Time
	}
	starts := make(chan start, 1)
	stepDown := [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)}
	// resume lets a replica that stepped down contend again, once its peer
	// has taken over.
	resume := [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)}
	// contending says a replica's Acquire found the peer holding.
	contending := [2]chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 2 {
		l, err := arb.NewLease("handoff", fmt.Sprintf("replica-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_ = lease.RunSingleton(ctx, l, func(ctx context.Context) error {
					at := time.Now()
					select { // forget the attempts before this tenure
					case <-contending[i]:
					default:
					}
					starts <- start{who: i, at: at}
					select {
					case <-stepDown[i]:
					case <-ctx.Done():
					}
					return nil
				}, lease.SingletonOptions{OnAttempt: func(err error) {
					if err == nil {
						select {
						case contending[i] <- struct{}{}:
						default:
						}
					}
				}})
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
	for range b.N {
		<-contending[1-cur.who]
		t0 := time.Now()
		stepDown[cur.who] <- struct{}{}
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
