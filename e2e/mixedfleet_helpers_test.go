package e2e

// Helpers of mixedfleet_test.go: client-go's LeaderElector and kubelease's
// RunSingleton contending for one Lease in this process, each behind a
// transport that can be cut (a crash or a partition: no more renewals, no
// release), and a recorder of every leader's tenure on this process's
// monotonic clock.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/kubelease/lease"
	"github.com/kubelease/lease/e2e/cluster"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// The scaled-down durations of the mixed-fleet tests. client-go's defaults
// are 15/10/2 s; these keep the same order (LeaseDuration > RetryPeriod +
// RenewDeadline, so a client-go holder that stops renewing steps down
// before a peer may take over) at about a quarter of the time. kubelease
// runs with TTL = LeaseDuration (so leaseDurationSeconds is 4 in both
// libraries' records) and everything else at its defaults:
// RenewalInterval TTL/3 = 1.33 s, deadline TTL − TTL/50 = 3.92 s after
// each renewal's stamp, MaxClockSkew 1 s.
const (
	mfLeaseDuration = 4 * time.Second
	mfRenewDeadline = 3 * time.Second
	mfRetryPeriod   = 500 * time.Millisecond
	mfTTL           = mfLeaseDuration
)

var quietKlog sync.Once

// silenceKlog stops client-go's leader election from logging every attempt.
func silenceKlog() {
	quietKlog.Do(func() {
		klog.SetLogger(logr.Discard())
	})
}

// errCut is what a cut transport answers.
var errCut = errors.New("e2e: transport cut (simulated crash or partition)")

// cutTap is a RoundTripper that can be cut: from then on every request
// fails at once without reaching the server. onResponse, when set, sees
// every answer (before the caller does).
type cutTap struct {
	inner      http.RoundTripper
	cut        atomic.Bool
	onResponse func(req *http.Request, resp *http.Response)
}

func (c *cutTap) RoundTrip(req *http.Request) (*http.Response, error) {
	if c.cut.Load() {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errCut
	}
	resp, err := c.inner.RoundTrip(req)
	if err == nil && c.onResponse != nil {
		c.onResponse(req, resp)
	}
	return resp, err
}

// span is one tenure as its leader saw it: from when its work (kubelease)
// or OnStartedLeading (client-go) started to when it saw its context end.
type span struct {
	who         string
	start, stop time.Time // stop is zero while it runs
}

// tenureLog records every leader's tenures, in-process, on the monotonic
// clock, and reports a start while another leader runs.
type tenureLog struct {
	mu       sync.Mutex
	spans    []span
	active   map[string]int // who → index in spans
	overlaps []string
}

func newTenureLog() *tenureLog { return &tenureLog{active: map[string]int{}} }

func (r *tenureLog) start(who string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for other := range r.active {
		if other != who {
			r.overlaps = append(r.overlaps, fmt.Sprintf("%s started at %s while %s led (since %s)",
				who, now.Format("15:04:05.000"), other, r.spans[r.active[other]].start.Format("15:04:05.000")))
		}
	}
	r.spans = append(r.spans, span{who: who, start: now})
	r.active[who] = len(r.spans) - 1
}

func (r *tenureLog) stop(who string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i, ok := r.active[who]; ok {
		r.spans[i].stop = time.Now()
		delete(r.active, who)
	}
}

// leader returns who leads now ("" when none).
func (r *tenureLog) leader() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for who := range r.active {
		return who
	}
	return ""
}

// all returns a copy of the spans.
func (r *tenureLog) all() []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]span(nil), r.spans...)
}

// waitStart waits up to d for the n-th (0-based) tenure of who to start and
// returns it.
func (r *tenureLog) waitStart(who string, n int, d time.Duration) (span, bool) {
	end := time.Now().Add(d)
	for {
		k := 0
		for _, s := range r.all() {
			if s.who == who {
				if k == n {
					return s, true
				}
				k++
			}
		}
		if time.Now().After(end) {
			return span{}, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitStop waits up to d for the first tenure of who to stop.
func (r *tenureLog) waitStop(who string, d time.Duration) (span, bool) {
	end := time.Now().Add(d)
	for {
		for _, s := range r.all() {
			if s.who == who && !s.stop.IsZero() {
				return s, true
			}
		}
		if time.Now().After(end) {
			return span{}, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// check fails t if two tenures ever overlapped: as seen at each start, and
// again pairwise over every recorded span (one still running counts until
// now).
func (r *tenureLog) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	overlaps := append([]string(nil), r.overlaps...)
	r.mu.Unlock()
	spans := r.all()
	now := time.Now()
	end := func(s span) time.Time {
		if s.stop.IsZero() {
			return now
		}
		return s.stop
	}
	for i := range spans {
		for j := i + 1; j < len(spans); j++ {
			a, b := spans[i], spans[j]
			if a.who != b.who && a.start.Before(end(b)) && b.start.Before(end(a)) {
				lo := a.start
				if b.start.After(lo) {
					lo = b.start
				}
				hi := end(a)
				if end(b).Before(hi) {
					hi = end(b)
				}
				overlaps = append(overlaps, fmt.Sprintf("%s and %s both led for %v", a.who, b.who, hi.Sub(lo)))
			}
		}
	}
	t.Logf("tenures:\n%s", r.String())
	if len(overlaps) > 0 {
		t.Errorf("TWO LEADERS AT ONCE:\n  %s", strings.Join(overlaps, "\n  "))
	}
}

func (r *tenureLog) String() string {
	spans := r.all()
	sort.Slice(spans, func(i, j int) bool { return spans[i].start.Before(spans[j].start) })
	var b strings.Builder
	for _, s := range spans {
		stop := "(running)"
		if !s.stop.IsZero() {
			stop = fmt.Sprintf("%s (%v)", s.stop.Format("15:04:05.000"), s.stop.Sub(s.start).Round(time.Millisecond))
		}
		fmt.Fprintf(&b, "  %-28s %s → %s\n", s.who, s.start.Format("15:04:05.000"), stop)
	}
	return b.String()
}

// candidate is one contender of either library.
type candidate struct {
	id     string
	tap    *cutTap
	cancel context.CancelFunc
	done   chan struct{}
	kl     *lease.KubernetesLease // kubelease only
}

// crash cuts the candidate off the server: it can neither renew nor
// release, as a process that was SIGKILLed or partitioned, except that it
// keeps believing it leads until its own deadline says otherwise.
func (c *candidate) crash() { c.tap.cut.Store(true) }

// stop cancels the candidate's context and waits for it to return
// (kubelease: work stops, then the Lease is deleted; client-go: with
// ReleaseOnCancel, holderIdentity "" and leaseDurationSeconds 1 are
// written).
func (c *candidate) stop(t *testing.T) {
	t.Helper()
	c.cancel()
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		t.Errorf("%s did not return within 15 s of its cancel", c.id)
	}
}

// cgOpts configure a client-go candidate.
type cgOpts struct {
	leaseDuration, renewDeadline, retryPeriod time.Duration // 0: the mf* constants
	releaseOnCancel                           bool
	labels                                    map[string]string
}

func restConfig(c *cluster.Cluster, tap *cutTap) *rest.Config {
	return &rest.Config{
		Host:            c.URL,
		BearerToken:     cluster.AdminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CAData()},
		QPS:             100,
		Burst:           100,
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
			tap.inner = rt
			return tap
		},
	}
}

// startClientGo starts a client-go LeaderElector (LeaseLock) for name whose
// OnStartedLeading records its tenure in rec.
func startClientGo(t *testing.T, c *cluster.Cluster, name, id string, rec *tenureLog, o cgOpts) *candidate {
	t.Helper()
	silenceKlog()
	if o.leaseDuration == 0 {
		o.leaseDuration, o.renewDeadline, o.retryPeriod = mfLeaseDuration, mfRenewDeadline, mfRetryPeriod
	}
	tap := &cutTap{}
	cs, err := coordinationv1client.NewForConfig(restConfig(c, tap))
	if err != nil {
		t.Fatal(err)
	}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Name: name, Namespace: cluster.Namespace},
			Client:     cs,
			LockConfig: resourcelock.ResourceLockConfig{Identity: id},
			Labels:     o.labels,
		},
		LeaseDuration:   o.leaseDuration,
		RenewDeadline:   o.renewDeadline,
		RetryPeriod:     o.retryPeriod,
		ReleaseOnCancel: o.releaseOnCancel,
		Name:            name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				rec.start(id)
				<-ctx.Done()
				rec.stop(id)
			},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cand := &candidate{id: id, tap: tap, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(cand.done)
		le.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-cand.done:
		case <-time.After(15 * time.Second):
		}
	})
	return cand
}

// klOpts configure a kubelease candidate.
type klOpts struct {
	ttl, renewalInterval, maxClockSkew time.Duration // 0: mfTTL, TTL/3, 1 s
	labels                             map[string]string
	onResponse                         func(req *http.Request, resp *http.Response)
}

// startKubelease starts RunSingleton on a KubernetesLease for name, owner
// id, whose work records its tenure in rec.
func startKubelease(t *testing.T, c *cluster.Cluster, name, id string, rec *tenureLog, o klOpts) *candidate {
	t.Helper()
	if o.ttl == 0 {
		o.ttl = mfTTL
	}
	tap := &cutTap{inner: c.NewTransport(2*time.Second, 2*time.Second), onResponse: o.onResponse}
	cfg := c.AdminConfig()
	cfg.HTTPClient = &http.Client{Transport: tap}
	l, err := lease.NewKubernetesLease(lease.Settings{
		Name:            name,
		Namespace:       cluster.Namespace,
		Owner:           id,
		TTL:             o.ttl,
		RenewalInterval: o.renewalInterval,
		MaxClockSkew:    o.maxClockSkew,
		Labels:          o.labels,
		Config:          cfg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cand := &candidate{id: id, tap: tap, cancel: cancel, done: make(chan struct{}), kl: l}
	go func() {
		defer close(cand.done)
		_ = lease.RunSingleton(ctx, l, func(wctx context.Context) error {
			rec.start(id)
			<-wctx.Done()
			rec.stop(id)
			return nil
		}, lease.SingletonOptions{MaxBackoff: time.Second})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-cand.done:
		case <-time.After(15 * time.Second):
		}
	})
	return cand
}

// getLease reads the whole Lease object as an admin, through client-go.
func getLease(t *testing.T, c *cluster.Cluster, name string) *coordinationv1.Lease {
	t.Helper()
	cs, err := coordinationv1client.NewForConfig(restConfig(c, &cutTap{}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	obj, err := cs.Leases(cluster.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get lease %s: %v", name, err)
	}
	return obj
}

func holderOf(obj *coordinationv1.Lease) string {
	if obj.Spec.HolderIdentity == nil {
		return ""
	}
	return *obj.Spec.HolderIdentity
}

func transitionsOf(obj *coordinationv1.Lease) int32 {
	if obj.Spec.LeaseTransitions == nil {
		return 0
	}
	return *obj.Spec.LeaseTransitions
}

func durationOf(obj *coordinationv1.Lease) int32 {
	if obj.Spec.LeaseDurationSeconds == nil {
		return 0
	}
	return *obj.Spec.LeaseDurationSeconds
}

// logGap logs the time without a leader between from's tenure and to's.
func logGap(t *testing.T, what string, from, to span) time.Duration {
	t.Helper()
	gap := to.start.Sub(from.stop)
	t.Logf("GAP %s: %v without a leader (%s stopped %s, %s started %s)", what, gap.Round(time.Millisecond),
		from.who, from.stop.Format("15:04:05.000"), to.who, to.start.Format("15:04:05.000"))
	return gap
}
