package bench

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kubelease/lease"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	clocktesting "k8s.io/utils/clock/testing"
)

// The per-renewal benchmarks talk to one fake API server process, started
// on first use. Its CPU time and allocations are not this process's, so
// what they report is the client's alone.
var (
	benchFakeOnce sync.Once
	benchFake     *Fake
	benchFakeErr  error
)

// SharedFake returns the fake API server process of the benchmarks run
// by `go test -bench`, starting it on first use.
func SharedFake(b *testing.B) Backend {
	benchFakeOnce.Do(func() { benchFake, benchFakeErr = StartFake() })
	if benchFakeErr != nil {
		b.Fatal(benchFakeErr)
	}
	return benchFake
}

// CloseBenchFake stops the fake API server of the per-renewal benchmarks,
// if one was started.
func CloseBenchFake() {
	if benchFake != nil {
		benchFake.Close()
	}
}

// cpuTime is the user + system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process CPU time per op since cpu0.
func reportCPU(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// renewSignal is a lease.Observer that signals each successful renewal.
type renewSignal struct{ renewed chan struct{} }

func (r renewSignal) Acquired(lease.Token)                 {}
func (r renewSignal) Renewed(time.Duration, time.Duration) { r.renewed <- struct{}{} }
func (r renewSignal) RenewFailed(error)                    {}
func (r renewSignal) Lost(lease.LostReason)                {}
func (r renewSignal) Released()                            {}

var benchSeq atomic.Int64

// BenchRenewKubelease drives b.N renewals of one held kubelease lease (15 s
// TTL, 5 s RenewalInterval, the library's own transport) with a fake
// clock: each op steps the clock by the renewal interval plus its largest
// jitter (10 %), which fires the renewal timer, and waits for the
// renewal's answer to be processed (the Observer's Renewed call). One op is
// exactly one renewal: one PUT.
//
// ns/op includes the round trip to the fake API server process;
// cpu-ns/op is this process's CPU time per renewal.
func BenchRenewKubelease(b *testing.B, f Backend) {
	clk := clocktesting.NewFakeClock(time.Now())
	sig := renewSignal{renewed: make(chan struct{}, 1)}
	l, err := lease.NewKubernetesLease(lease.Settings{
		Name: fmt.Sprintf("renew-kubelease-%d", benchSeq.Add(1)), Owner: "bench",
		Config: f.LeaseConfig(nil), TTL: LeaseDuration, Clock: clk, Observer: sig,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if ok, err := l.Acquire(ctx); err != nil || !ok {
		b.Fatalf("acquire: %v %v", ok, err)
	}
	defer func() { _ = l.Release(ctx) }()
	step := func() {
		// The renewal timer is armed right after the previous renewal's
		// Renewed call; it is the only timer on the fake clock then.
		for !clk.HasWaiters() {
			runtime.Gosched()
		}
		// RenewalInterval (TTL/3) plus its largest jitter (10 %): the
		// renewal wait is RenewalInterval ± 10 %.
		clk.Step(LeaseDuration / 3 * 11 / 10)
		<-sig.renewed
	}
	for range 20 { // warm up the connection and the pools
		step()
	}
	b.ReportAllocs()
	runtime.GC()
	cpu0 := cpuTime()
	b.ResetTimer()
	for range b.N {
		step()
	}
	b.StopTimer()
	reportCPU(b, cpu0)
	if !l.CheckAlive() {
		b.Fatal("lease lost during the benchmark")
	}
}

// renewCounter is a lease.Observer that counts successful renewals and
// signals when the count reaches a target.
type renewCounter struct{ updateCounter }

func (r *renewCounter) Acquired(lease.Token)                 {}
func (r *renewCounter) Renewed(time.Duration, time.Duration) { r.onAnswer("update", 200) }
func (r *renewCounter) RenewFailed(error)                    {}
func (r *renewCounter) Lost(lease.LostReason)                {}
func (r *renewCounter) Released()                            {}

// ShortCadence is the renewal cadence of the real-clock per-renewal
// benchmarks: short, so that a run is quick, but long enough that
// kubelease's per-attempt timeout (min(10 s, RenewalInterval)) is never hit.
const ShortCadence = 10 * time.Millisecond

// BenchRenewKubeleaseRealClock drives b.N renewals of one held kubelease
// lease with the real clock and RenewalInterval ShortCadence (TTL 1 s):
// the renewal loop sleeps ~10 ms between renewals, as
// BenchRenewClientGoElector does with RetryPeriod ShortCadence, so the two
// are directly comparable (both pay for parking and waking goroutines).
// ns/op is mostly the sleep: compare cpu-ns/op, B/op and allocs/op.
func BenchRenewKubeleaseRealClock(b *testing.B, f Backend) {
	rc := &renewCounter{}
	l, err := lease.NewKubernetesLease(lease.Settings{
		Name: fmt.Sprintf("renew-kubelease-real-%d", benchSeq.Add(1)), Owner: "bench",
		Config: f.LeaseConfig(nil), TTL: time.Second, RenewalInterval: ShortCadence, Observer: rc,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if ok, err := l.Acquire(ctx); err != nil || !ok {
		b.Fatalf("acquire: %v %v", ok, err)
	}
	defer func() { _ = l.Release(ctx) }()
	rc.awaitUpdates(b, 20)
	b.ReportAllocs()
	runtime.GC()
	cpu0 := cpuTime()
	b.ResetTimer()
	rc.awaitUpdates(b, b.N)
	b.StopTimer()
	reportCPU(b, cpu0)
	if !l.CheckAlive() {
		b.Fatal("lease lost during the benchmark")
	}
}

// updateCounter is a Tap hook that counts successful PUTs and signals
// when the count reaches a target.
type updateCounter struct {
	mu      sync.Mutex
	n       int64
	target  int64
	waiting bool
	done    chan struct{}
}

func (u *updateCounter) onAnswer(verb string, code int) {
	if verb != "update" || code != 200 {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.n++
	if u.waiting && u.n >= u.target {
		u.waiting = false
		close(u.done)
	}
}

// awaitUpdates waits for n more successful PUTs.
func (u *updateCounter) awaitUpdates(b *testing.B, n int) {
	u.mu.Lock()
	u.done = make(chan struct{})
	u.target = u.n + int64(n)
	u.waiting = true
	done := u.done
	u.mu.Unlock()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("timed out waiting for %d renewals", n)
	}
}

// BenchRenewClientGoElector drives client-go's LeaderElector through b.N
// renewals of one held Lease: with RetryPeriod ShortCadence (RenewDeadline
// 1 s, LeaseDuration 2 s) its renew loop calls tryAcquireOrRenew every
// 10 ms, which for the leader is one optimistic LeaseLock.Update (one PUT,
// no GET) plus the wait.Until/PollUntilContextTimeout machinery around it.
// Client-go cannot take a fake clock, so ns/op is mostly the RetryPeriod
// sleep: compare cpu-ns/op, B/op and allocs/op. Renewals are counted by a Tap that counts 200 answers to
// PUTs (two atomic operations per request).
func BenchRenewClientGoElector(b *testing.B, f Backend) {
	u := &updateCounter{}
	tap := &Tap{OnAnswer: u.onAnswer}
	rc := f.RestConfig(tap)
	rc.QPS = -1 // no client-side rate limit: the default 5 QPS would pace the loop
	cs, err := coordinationv1client.NewForConfig(rc)
	if err != nil {
		b.Fatal(err)
	}
	name := fmt.Sprintf("renew-client-go-%d", benchSeq.Add(1))
	started := make(chan struct{})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Name: name, Namespace: f.Namespace()},
			Client:     cs,
			LockConfig: resourcelock.ResourceLockConfig{Identity: "bench"},
		},
		LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: ShortCadence,
		ReleaseOnCancel: true, Name: name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { close(started) },
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); le.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-started:
	case <-time.After(time.Minute):
		b.Fatal("client-go did not acquire the lease within a minute")
	}
	u.awaitUpdates(b, 20)
	b.ReportAllocs()
	runtime.GC()
	cpu0 := cpuTime()
	b.ResetTimer()
	u.awaitUpdates(b, b.N)
	b.StopTimer()
	reportCPU(b, cpu0)
	if !le.IsLeader() {
		b.Fatal("leadership lost during the benchmark")
	}
}

// BenchRenewClientGoLock measures the floor of a client-go renewal: b.N
// calls of LeaseLock.Update with a new renewTime, as tryAcquireOrRenew
// makes for the leader, without the elector's loop around them.
func BenchRenewClientGoLock(b *testing.B, f Backend) {
	rc := f.RestConfig(nil)
	rc.QPS = -1 // as above
	cs, err := coordinationv1client.NewForConfig(rc)
	if err != nil {
		b.Fatal(err)
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: fmt.Sprintf("renew-lock-%d", benchSeq.Add(1)), Namespace: f.Namespace()},
		Client:     cs,
		LockConfig: resourcelock.ResourceLockConfig{Identity: "bench"},
	}
	ctx := context.Background()
	now := metav1.NewTime(time.Now())
	rec := resourcelock.LeaderElectionRecord{
		HolderIdentity: "bench", LeaseDurationSeconds: int(LeaseDuration / time.Second),
		AcquireTime: now, RenewTime: now,
	}
	if err := lock.Create(ctx, rec); err != nil {
		b.Fatal(err)
	}
	update := func() {
		rec.RenewTime = metav1.NewTime(time.Now())
		if err := lock.Update(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
	for range 20 {
		update()
	}
	b.ReportAllocs()
	runtime.GC()
	cpu0 := cpuTime()
	b.ResetTimer()
	for range b.N {
		update()
	}
	b.StopTimer()
	reportCPU(b, cpu0)
}
