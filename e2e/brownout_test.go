package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/e2e/cluster"
	"github.com/kubelease/lease/e2e/faultproxy"
)

// TestBrownoutKeepsLease is the short seeded brownout check: kubelease at
// its defaults (RunSingleton, TTL 15 s) holds a Lease behind a fault
// proxy, a standby contends behind another; an outage — blackhole (the
// connections open meanwhile stay dead), blackhole delivering the held
// bytes, reset, or a 429 storm with Retry-After: 1 — starts at a seeded
// phase of the renewal cycle and ends a seeded 1.5–2.5 s before the
// holder's deadline. The holder must keep its lease through every one (the
// schedule in renew.go promises it), and the fenced store that every
// leader writes its Token to every 100 ms must see no stale write and no
// overlapping tenures. The trials run at once, one Lease each; about a
// minute in all.
func TestBrownoutKeepsLease(t *testing.T) {
	c := needCluster(t)
	kinds := []faultproxy.Fault{
		{Kind: faultproxy.Blackhole},
		{Kind: faultproxy.Blackhole, Deliver: true},
		{Kind: faultproxy.Reset},
		{Kind: faultproxy.Status, Status: http.StatusTooManyRequests, RetryAfter: time.Second},
	}
	const perKind = 2
	rng := rand.New(rand.NewPCG(15, 2026))
	type trial struct {
		fault        faultproxy.Fault
		phase, early float64
	}
	var trials []trial
	for _, f := range kinds {
		for range perKind {
			trials = append(trials, trial{f, rng.Float64(), rng.Float64()})
		}
	}
	var wg sync.WaitGroup
	for i, tr := range trials {
		wg.Add(1)
		go func() {
			defer wg.Done()
			brownoutTrial(t, c, fmt.Sprintf("%d-%s", i, tr.fault.Kind), tr.fault, tr.phase, tr.early)
		}()
	}
	wg.Wait()
}

// brownoutTrial runs one trial; see TestBrownoutKeepsLease.
func brownoutTrial(t *testing.T, c *cluster.Cluster, name string, f faultproxy.Fault, phase, early float64) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	leaseName := "e2e-brownout-" + name + "-" + randHex(3)
	fence := &tokenFence{}
	var cands [2]*brownoutCand
	for i := range cands {
		px, err := faultproxy.New(mustUpstream(t, c.URL), faultproxy.Options{Mode: faultproxy.ModeHTTP, UpstreamCA: c.CAData()})
		if err != nil {
			t.Error(err)
			return
		}
		defer px.Close()
		cands[i] = startBrownoutCand(t, ctx, px, c, leaseName, fmt.Sprintf("%s-%c", name, 'a'+i), fence)
		if cands[i] == nil {
			return
		}
		defer cands[i].stop()
	}
	// The holder, settled: it has renewed since it started.
	var h *brownoutCand
	for h == nil {
		for _, cd := range cands {
			if cd.leading() && cd.renewedSinceStart() {
				h = cd
			}
		}
		if h == nil && !fence.waitChange(ctx, cands[0].renewCh(), cands[1].renewCh()) {
			t.Errorf("%s: no settled holder", name)
			return
		}
	}
	select {
	case <-h.renewCh():
	case <-ctx.Done():
		t.Errorf("%s: no renewal", name)
		return
	}
	time.Sleep(time.Duration(phase * float64(5*time.Second))) // the seeded phase of the renewal cycle (a schedule, not a synchronisation)
	last, deadline := h.renewal()
	start := time.Now()
	f.Duration = time.Until(deadline) - goalMarginE2E - time.Duration(early*float64(time.Second))
	if f.Duration <= 0 {
		t.Errorf("%s: no room for an outage (deadline in %v)", name, time.Until(deadline))
		return
	}
	targets := []*brownoutCand{h}
	if f.Kind == faultproxy.Status {
		targets = cands[:] // the server sheds for everyone
	}
	var ends []<-chan struct{}
	for _, cd := range targets {
		ends = append(ends, cd.px.Set(f))
	}
	for _, e := range ends {
		<-e
	}
	end := time.Now()
	// Kept: it renews after the outage, before its deadline.
	for {
		lastOK := h.answered()
		if !h.leading() {
			t.Errorf("%s: LOST the lease: outage %v from %v after the last renewal to %v before the deadline; trace:\n%s",
				name, f, start.Sub(last).Round(time.Millisecond), deadline.Sub(end).Round(time.Millisecond), h.traceSince(start))
			break
		}
		if lastOK.After(end) {
			t.Logf("%s: kept through %v (started %v after a renewal, ended %v before the deadline)", name, f, start.Sub(last).Round(time.Millisecond), deadline.Sub(end).Round(time.Millisecond))
			break
		}
		select {
		case <-h.renewCh():
		case <-h.endedCh():
		case <-time.After(time.Until(deadline.Add(time.Second))):
		case <-ctx.Done():
			t.Errorf("%s: timed out", name)
			return
		}
		if time.Now().After(deadline.Add(time.Second)) && h.leading() {
			if !h.answered().After(end) {
				t.Errorf("%s: no renewal after the outage, yet still leading past the deadline", name)
			}
			break
		}
	}
	fence.check(t, name)
}

const goalMarginE2E = 1500 * time.Millisecond

func mustUpstream(t *testing.T, url string) string {
	a, err := faultproxy.UpstreamAddr(url)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// tokenFence is a fenced store: it remembers the highest token written and
// refuses older ones (stale writes); it also counts tenures that start
// while another runs.
type tokenFence struct {
	mu       sync.Mutex
	max      lease.Token
	running  int
	writes   int
	stale    int
	overlaps int
	changed  chan struct{}
}

func (f *tokenFence) write(tok lease.Token) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if !f.max.IsZero() {
		if c, err := tok.Compare(f.max); err != nil || c < 0 {
			f.stale++
			return
		}
	}
	f.max = tok
}

func (f *tokenFence) begin(tok lease.Token) {
	f.mu.Lock()
	if f.running > 0 {
		f.overlaps++
	}
	f.running++
	f.notifyLocked()
	f.mu.Unlock()
	f.write(tok)
}

func (f *tokenFence) end() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running--
	f.notifyLocked()
}

func (f *tokenFence) notifyLocked() {
	if f.changed != nil {
		close(f.changed)
	}
	f.changed = make(chan struct{})
}

// waitChange waits for a tenure to start or end, or for any of chs.
func (f *tokenFence) waitChange(ctx context.Context, chs ...<-chan struct{}) bool {
	f.mu.Lock()
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	ch := f.changed
	f.mu.Unlock()
	select {
	case <-ch:
	case <-chs[0]:
	case <-chs[1]:
	case <-ctx.Done():
		return false
	}
	return true
}

func (f *tokenFence) check(t *testing.T, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stale != 0 || f.overlaps != 0 || f.writes == 0 {
		t.Errorf("%s: fenced store: %d writes, %d stale, %d overlapping tenures; want writes, 0 stale, 0 overlaps", name, f.writes, f.stale, f.overlaps)
	}
}

// brownoutCand is RunSingleton on a KubernetesLease behind its own proxy,
// as the user "shed" (not exempt from API Priority and Fairness).
type brownoutCand struct {
	px     *faultproxy.Proxy
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	started  time.Time
	isLeader bool
	lastOK   time.Time // the stamp of the last successful renewal
	lastDone time.Time // when it was answered
	deadline time.Time
	renewed  chan struct{}
	ended    chan struct{}
	trace    []string
}

func startBrownoutCand(t *testing.T, parent context.Context, px *faultproxy.Proxy, c *cluster.Cluster, name, owner string, fence *tokenFence) *brownoutCand {
	cd := &brownoutCand{px: px, renewed: make(chan struct{}), ended: make(chan struct{}), done: make(chan struct{})}
	l, err := lease.NewKubernetesLease(lease.Settings{
		Name: name, Owner: owner, TTL: 15 * time.Second,
		Config:   px.Config(c.Config(cluster.ShedToken)),
		Observer: brownoutObserver{cd},
	})
	if err != nil {
		t.Error(err)
		return nil
	}
	ctx, cancel := context.WithCancel(parent)
	cd.cancel = cancel
	var tok lease.Token
	go func() {
		defer close(cd.done)
		_ = lease.RunSingleton(ctx, l, func(wctx context.Context) error {
			fence.begin(tok)
			cd.setLeading(true)
			defer fence.end()
			defer cd.setLeading(false)
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-wctx.Done():
					return nil
				case <-tick.C:
					fence.write(tok)
				}
			}
		}, lease.SingletonOptions{OnStarted: func(tk lease.Token) { tok = tk }})
	}()
	return cd
}

func (cd *brownoutCand) stop() {
	cd.px.Clear()
	cd.cancel()
	<-cd.done
}

func (cd *brownoutCand) setLeading(on bool) {
	cd.mu.Lock()
	defer cd.mu.Unlock()
	cd.isLeader = on
	if on {
		cd.started = time.Now()
	} else {
		close(cd.ended)
		cd.ended = make(chan struct{})
	}
	cd.traceLocked(fmt.Sprintf("leading=%v", on))
}

func (cd *brownoutCand) leading() bool {
	cd.mu.Lock()
	defer cd.mu.Unlock()
	return cd.isLeader
}

func (cd *brownoutCand) renewedSinceStart() bool {
	cd.mu.Lock()
	defer cd.mu.Unlock()
	return cd.isLeader && cd.lastOK.After(cd.started)
}

func (cd *brownoutCand) renewCh() <-chan struct{} {
	cd.mu.Lock()
	defer cd.mu.Unlock()
	return cd.renewed
}

func (cd *brownoutCand) endedCh() <-chan struct{} {
	cd.mu.Lock()
	defer cd.mu.Unlock()
	return cd.ended
}

func (cd *brownoutCand) renewal() (last, deadline time.Time) {
	cd.mu.Lock()
	defer cd.mu.Unlock()
	return cd.lastOK, cd.deadline
}

// answered is when the last successful renewal was answered.
func (cd *brownoutCand) answered() time.Time {
	cd.mu.Lock()
	defer cd.mu.Unlock()
	return cd.lastDone
}

func (cd *brownoutCand) traceLocked(s string) {
	cd.trace = append(cd.trace, time.Now().Format("15:04:05.000")+" "+s)
	if len(cd.trace) > 200 {
		cd.trace = cd.trace[100:]
	}
}

func (cd *brownoutCand) traceSince(t0 time.Time) string {
	cd.mu.Lock()
	defer cd.mu.Unlock()
	out := "  outage start " + t0.Format("15:04:05.000") + "\n"
	for _, s := range cd.trace {
		out += "  " + s + "\n"
	}
	return out
}

type brownoutObserver struct{ cd *brownoutCand }

func (o brownoutObserver) Acquired(lease.Token) {}

func (o brownoutObserver) Renewed(latency, left time.Duration) {
	cd := o.cd
	now := time.Now()
	cd.mu.Lock()
	defer cd.mu.Unlock()
	cd.lastOK, cd.lastDone, cd.deadline = now.Add(-latency), now, now.Add(left)
	close(cd.renewed)
	cd.renewed = make(chan struct{})
	cd.traceLocked(fmt.Sprintf("renewed after %v, %v left", latency.Round(time.Millisecond), left.Round(time.Millisecond)))
}

func (o brownoutObserver) RenewFailed(err error) {
	o.cd.mu.Lock()
	defer o.cd.mu.Unlock()
	o.cd.traceLocked("renew attempt failed: " + err.Error())
}

func (o brownoutObserver) Lost(r lease.LostReason) {
	o.cd.mu.Lock()
	defer o.cd.mu.Unlock()
	o.cd.traceLocked("lost: " + string(r))
}

func (o brownoutObserver) Released() {}
