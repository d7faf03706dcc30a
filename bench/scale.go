package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubelease/lease"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Scale roles: what the measured process does with its N leases.
const (
	// ScaleHold: it holds them (the default, Role "").
	ScaleHold = ""
	// ScaleStandby: it is a standby on each, with RunSingleton at its
	// defaults (one watch per lease), while another process holds them.
	ScaleStandby = "standby"
)

// ScaleLabels are the labels of the leases of a shared-watch scale run;
// scaleSelector selects them.
var ScaleLabels = map[string]string{"kubelease-bench": "scale"}

const scaleSelector = "kubelease-bench=scale"

// ScaleParams configure one scale run.
type ScaleParams struct {
	Lib Lib `json:"lib"`
	// Role is ScaleHold or ScaleStandby.
	Role string `json:"role,omitempty"`
	// Shared: the leases carry ScaleLabels, and (standby runs) share one
	// lease.NamespaceWatch selecting them (Settings.SharedWatch) instead of
	// one watch each.
	Shared bool `json:"shared,omitempty"`
	// N leases are held (or stood by for) in one process.
	N int `json:"n"`
	// Hold is how long they are held once all are, watching for losses
	// (for standbys: how long they stand by once each has seen its holder).
	Hold time.Duration `json:"hold"`
	// Ramp spreads the acquisitions over about this long, so renewals
	// are spread too (as in a process that acquired its leases over time).
	Ramp time.Duration `json:"ramp"`

	// Set by RunScale for the child.
	URL       string `json:"url,omitempty"`
	CA        []byte `json:"ca,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// ScaleResult is the outcome of a scale run.
type ScaleResult struct {
	ScaleParams
	// Held is how many leases were held at the end (must be N).
	Held int `json:"held"`
	// Acquire is how long acquiring all N took.
	Acquire time.Duration `json:"acquire"`
	// Losses counts tenures that ended during the hold (must be 0):
	// kubelease OnLost calls, client-go OnStoppedLeading calls.
	Losses int `json:"losses"`
	// Per held lease, after a GC at the end of the hold: Go heap, goroutine
	// stacks, goroutines.
	HeapPerLease       float64 `json:"heapPerLease"`
	StackPerLease      float64 `json:"stackPerLease"`
	GoroutinesPerLease float64 `json:"goroutinesPerLease"`
	// RSS is the process's resident set at the end, in bytes.
	RSS int64 `json:"rss"`
	// CPU is the process's CPU time during the hold.
	CPU time.Duration `json:"cpu"`
	// Server is the fake's request counts during the hold.
	Server map[string]int `json:"server,omitempty"`

	// Standby runs only (the Per-lease figures above are then per standby
	// lease, Held is how many standbys saw their holder, Acquire how long
	// until all had):
	//
	// Client is the standby process's own requests during the hold
	// (Server counts the same at the server: the holders make none).
	Client *Counts `json:"client,omitempty"`
	// Watches is how many watch streams were open at the server at the
	// end of the hold.
	Watches int `json:"watches,omitempty"`
	// Spurious counts holder changes the standbys were told of other than
	// their lease's holder (OnNewHolder), plus takeovers (work started),
	// over the whole run (must be 0).
	Spurious int `json:"spurious"`
	// HolderRenewals is how many renewals the simulated holders made
	// during the hold: each is an event on a standby's watch.
	HolderRenewals int `json:"holderRenewals,omitempty"`
}

// RunScale runs p in a child process against a fresh fake API server
// process, so that both memory and CPU are the client's alone.
func RunScale(p ScaleParams) (ScaleResult, error) {
	if p.Role == ScaleStandby {
		return runScaleStandby(p)
	}
	f, err := StartFake()
	if err != nil {
		return ScaleResult{ScaleParams: p}, err
	}
	defer f.Close()
	p.URL, p.CA, p.Namespace = f.url, f.caPEM, f.namespace
	c, err := startChild("scale", p)
	if err != nil {
		return ScaleResult{ScaleParams: p}, err
	}
	defer c.stop(10 * time.Second)
	p.URL, p.CA = "", nil
	// The child says "held" once every lease is held, then prints its
	// result at the end of the hold.
	if l, _ := c.line(); l != "held" {
		return ScaleResult{ScaleParams: p}, fmt.Errorf("bench: scale child (%s, %d) failed before holding all leases: %q", p.Lib, p.N, l)
	}
	f.ResetServerCounts()
	var r ScaleResult
	if err := c.decode(&r); err != nil {
		return ScaleResult{ScaleParams: p}, fmt.Errorf("bench: scale child (%s, %d) result: %w", p.Lib, p.N, err)
	}
	r.Server, _ = f.ServerCounts()
	return r, nil
}

// scaleChild is the child process of RunScale.
func scaleChild() {
	var p ScaleParams
	if err := childArgs(&p); err != nil {
		fmt.Fprintln(os.Stderr, "bench: scale child:", err)
		os.Exit(2)
	}
	go func() { // die with the parent
		awaitParent()
		os.Exit(3)
	}()
	var r ScaleResult
	var err error
	if p.Role == ScaleStandby {
		r, err = standbyMany(p)
	} else {
		r, err = holdMany(p)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: scale child:", err)
		fmt.Println("failed")
		os.Exit(1)
	}
	data, _ := json.Marshal(r)
	fmt.Println(string(data))
	if p.Role == ScaleStandby {
		// Keep the standbys (and their watches) until the parent has
		// counted the server's open watches and stops us.
		awaitParent()
	}
}

// memSample is the process's memory state after a GC.
type memSample struct {
	heap, stack int64
	goroutines  int
}

func sampleMem() memSample {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heap: int64(ms.HeapAlloc), stack: int64(ms.StackInuse), goroutines: runtime.NumGoroutine()}
}

// rss is the resident set size of this process, from /proc.
func rss() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// holdMany acquires p.N leases with p.Lib, says "held", holds them for
// p.Hold counting losses, and measures.
func holdMany(p ScaleParams) (ScaleResult, error) {
	r := ScaleResult{ScaleParams: p}
	r.URL, r.CA = "", nil
	e, err := newEndpoint(p.URL, "", p.Namespace, p.CA)
	if err != nil {
		return r, err
	}
	e.jsonOnly = true // the fake
	var losses atomic.Int64
	var stopping atomic.Bool
	base := sampleMem()
	start := time.Now()
	var alive func() int
	switch p.Lib {
	case Kubelease:
		alive, err = holdKubelease(e, p, &losses)
	case ClientGo:
		alive, err = holdClientGo(e, p, &losses, &stopping)
	default:
		err = fmt.Errorf("unknown library %q", p.Lib)
	}
	if err != nil {
		return r, err
	}
	r.Acquire = time.Since(start)
	fmt.Println("held")
	cpu0 := cpuTime()
	time.Sleep(p.Hold)
	r.CPU = cpuTime() - cpu0
	end := sampleMem()
	r.RSS = rss()
	r.Held = alive()
	r.Losses = int(losses.Load())
	stopping.Store(true)
	n := float64(p.N)
	r.HeapPerLease = float64(end.heap-base.heap) / n
	r.StackPerLease = float64(end.stack-base.stack) / n
	r.GoroutinesPerLease = float64(end.goroutines-base.goroutines) / n
	return r, nil
}

// holdKubelease acquires p.N KubernetesLeases sharing one Config (so one
// connection pool, as in a real process), each with an OnLost counter.
func holdKubelease(e *endpoint, p ScaleParams, losses *atomic.Int64) (alive func() int, err error) {
	cfg := e.LeaseConfig(nil)
	leases := make([]*lease.KubernetesLease, p.N)
	for i := range leases {
		l, err := lease.NewKubernetesLease(lease.Settings{
			Name: fmt.Sprintf("scale-%d", i), Owner: "scale-" + strconv.Itoa(i), Config: cfg, TTL: LeaseDuration,
		})
		if err != nil {
			return nil, err
		}
		l.OnLost(func(error) { losses.Add(1) })
		leases[i] = l
	}
	if err := rampEach(p, func(i int) error {
		// A few tries: with thousands of acquisitions a second on 2 cores,
		// an HTTP/2 connection is now and then closed under a request.
		var ok bool
		var err error
		for try := 0; try < 3; try++ {
			if ok, err = leases[i].Acquire(context.Background()); err == nil {
				break
			}
		}
		if err == nil && !ok {
			err = fmt.Errorf("lease %d is held by another", i)
		}
		return err
	}); err != nil {
		return nil, err
	}
	return func() int {
		n := 0
		for _, l := range leases {
			if l.CheckAlive() {
				n++
			}
		}
		return n
	}, nil
}

// holdClientGo runs p.N LeaderElectors sharing one clientset (with
// client-go's client-side rate limit off: its default 5 QPS cannot carry
// p.N leases' renewals), each on its own Lease.
func holdClientGo(e *endpoint, p ScaleParams, losses *atomic.Int64, stopping *atomic.Bool) (alive func() int, err error) {
	rc := e.RestConfig(nil)
	rc.QPS = -1
	cs, err := coordinationv1client.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	electors := make([]*leaderelection.LeaderElector, p.N)
	var wg sync.WaitGroup
	wg.Add(p.N)
	for i := range electors {
		name := fmt.Sprintf("scale-%d", i)
		var once sync.Once
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: &resourcelock.LeaseLock{
				LeaseMeta:  metav1.ObjectMeta{Name: name, Namespace: e.namespace},
				Client:     cs,
				LockConfig: resourcelock.ResourceLockConfig{Identity: "scale-" + strconv.Itoa(i)},
			},
			LeaseDuration: LeaseDuration, RenewDeadline: RenewDeadline, RetryPeriod: RetryPeriod,
			ReleaseOnCancel: true, Name: name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) { once.Do(wg.Done) },
				OnStoppedLeading: func() {
					if !stopping.Load() {
						losses.Add(1)
					}
				},
			},
		})
		if err != nil {
			return nil, err
		}
		electors[i] = le
	}
	if err := rampEach(p, func(i int) error {
		go electors[i].Run(context.Background())
		return nil
	}); err != nil {
		return nil, err
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	select {
	case <-all:
	case <-time.After(2 * time.Minute):
		return nil, fmt.Errorf("client-go did not acquire all %d leases within 2 minutes", p.N)
	}
	return func() int {
		n := 0
		for _, le := range electors {
			if le.IsLeader() {
				n++
			}
		}
		return n
	}, nil
}

// rampEach calls fn for 0..p.N-1 from 32 workers, paced so that the calls
// spread over about p.Ramp.
func rampEach(p ScaleParams, fn func(i int) error) error {
	const workers = 32
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	start := time.Now()
	var err error
loop:
	for i := range p.N {
		if p.Ramp > 0 {
			time.Sleep(time.Until(start.Add(p.Ramp * time.Duration(i) / time.Duration(p.N))))
		}
		select {
		case next <- i:
		case err = <-errs:
			break loop
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

// standbySettle is how long a standby scale run waits after every standby
// has seen its holder before it starts counting.
const standbySettle = 3 * time.Second

// runScaleStandby runs a standby scale run: a fake API server process
// that holds p.N Leases itself (SimHolders: renewed as a kubelease holder
// at its defaults would, by direct writes), and the measured process, a
// standby on each of them.
func runScaleStandby(p ScaleParams) (ScaleResult, error) {
	fail := func(err error) (ScaleResult, error) { return ScaleResult{ScaleParams: p}, err }
	if p.Lib != Kubelease {
		return fail(fmt.Errorf("bench: standby scale runs are for kubelease only, not %s", p.Lib))
	}
	f, err := StartFake()
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	h := SimHolders{Prefix: "scale-", N: p.N, Namespace: f.namespace}
	if p.Shared {
		h.Labels = ScaleLabels
	}
	if err := f.Hold(h); err != nil {
		return fail(err)
	}
	sp := p
	sp.URL, sp.CA, sp.Namespace = f.url, f.caPEM, f.namespace
	c, err := startChild("scale", sp)
	if err != nil {
		return fail(err)
	}
	defer c.stop(10 * time.Second)
	if l, _ := c.line(); l != "held" {
		return fail(fmt.Errorf("bench: scale standbys (%d) failed before all saw their holder: %q", p.N, l))
	}
	f.ResetServerCounts()
	renewals0 := f.SimRenewals()
	var r ScaleResult
	if err := c.decode(&r); err != nil {
		return fail(fmt.Errorf("bench: scale standbys (%d) result: %w", p.N, err))
	}
	r.Server, _ = f.ServerCounts()
	r.Watches = f.Watchers()
	r.HolderRenewals = f.SimRenewals() - renewals0
	return r, nil
}

// standbyMany is the measured process of a standby scale run: p.N
// KubernetesLeases sharing one Config (one connection pool), each with
// RunSingleton at its defaults, started over about p.Ramp; with p.Shared
// they share one NamespaceWatch (Settings.SharedWatch), else each watches
// its Lease. Once every one
// has seen its holder it says "held", stands by for p.Hold, and measures.
// Its requests are counted by a Tap in front of a transport like the one
// kubelease builds (less the HTTP/2 pings).
func standbyMany(p ScaleParams) (ScaleResult, error) {
	r := ScaleResult{ScaleParams: p}
	r.URL, r.CA = "", nil
	e, err := newEndpoint(p.URL, "", p.Namespace, p.CA)
	if err != nil {
		return r, err
	}
	e.jsonOnly = true
	ctr := NewCounter()
	cfg := e.LeaseConfig(&Tap{Counter: ctr})
	var spurious atomic.Int64
	seen := make(chan int, p.N)
	base := sampleMem()
	start := time.Now()
	// The standbys run until the process ends: the parent counts the
	// server's open watches after our answer, then stops us.
	ctx := context.Background()
	var shared *lease.NamespaceWatch
	if p.Shared {
		if shared, err = lease.NewNamespaceWatch(cfg, p.Namespace, scaleSelector, lease.NamespaceWatchOptions{}); err != nil {
			return r, err
		}
	}
	runs := make([]func(), p.N)
	for i := range runs {
		name := fmt.Sprintf("scale-%d", i)
		s := lease.Settings{
			Name: name, Owner: "standby-" + strconv.Itoa(i), Config: cfg, TTL: LeaseDuration,
		}
		if shared != nil {
			s.Labels, s.SharedWatch = ScaleLabels, shared
		}
		l, err := lease.NewKubernetesLease(s)
		if err != nil {
			return r, err
		}
		var once sync.Once
		opts := lease.SingletonOptions{OnNewHolder: func(h string) {
			if h == name { // holdKubelease's owner of scale-i is scale-i
				once.Do(func() { seen <- i })
				return
			}
			spurious.Add(1)
		}}
		runs[i] = func() {
			_ = lease.RunSingleton(ctx, l, func(wctx context.Context) error {
				spurious.Add(1) // a standby must never take over here
				<-wctx.Done()
				return nil
			}, opts)
		}
	}
	if err := rampEach(p, func(i int) error {
		go runs[i]()
		return nil
	}); err != nil {
		return r, err
	}
	if err := awaitN(context.Background(), seen, p.N, time.Minute, "standbys to see their holder"); err != nil {
		return r, err
	}
	r.Acquire = time.Since(start)
	r.Held = p.N
	// Let the last standbys' watches open before counting.
	time.Sleep(standbySettle)
	fmt.Println("held")
	ctr.Reset()
	cpu0 := cpuTime()
	time.Sleep(p.Hold)
	r.CPU = cpuTime() - cpu0
	counts := ctr.Snapshot()
	r.Client = &counts
	end := sampleMem()
	r.RSS = rss()
	r.Spurious = int(spurious.Load())
	n := float64(p.N)
	r.HeapPerLease = float64(end.heap-base.heap) / n
	r.StackPerLease = float64(end.stack-base.stack) / n
	r.GoroutinesPerLease = float64(end.goroutines-base.goroutines) / n
	return r, nil
}
