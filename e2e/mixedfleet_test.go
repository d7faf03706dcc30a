package e2e

// Mixed fleet (issue 15): client-go's LeaderElector (LeaseLock) and
// kubelease (KubernetesLease + RunSingleton) contending for the same Lease
// on the real kube-apiserver, as during a rolling migration from one to the
// other, in both directions. Every leader records its tenure in a tenureLog
// (start/stop on this process's monotonic clock); tenureLog.check fails the
// test if two tenures ever overlap.
//
// Durations (see mixedfleet_helpers_test.go): client-go 4/3/0.5 s
// (LeaseDuration/RenewDeadline/RetryPeriod, its 15/10/2 s defaults scaled
// down), kubelease TTL 4 s at its defaults (RenewalInterval 1.33 s,
// MaxClockSkew 1 s).
//
// A "crash" cuts the candidate's transport: it can neither renew nor
// release but keeps believing it leads until its own deadline (client-go:
// RetryPeriod + RenewDeadline after its last renewal; kubelease: its
// stamp + TTL − TTL/50), which is harder on the peer than a SIGKILL (whose
// leadership ends at once).

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/e2e/cluster"
	"k8s.io/client-go/tools/leaderelection"
)

// TestMixedFleetClientGoToKubeleaseRelease: a client-go leader with
// ReleaseOnCancel steps down (holderIdentity "", leaseDurationSeconds 1);
// the kubelease standby, woken by its watch, takes over at once, never
// while client-go leads, keeping client-go's labels and counting the
// transition.
func TestMixedFleetClientGoToKubeleaseRelease(t *testing.T) {
	c := needCluster(t)
	name, rec := leaseName(t), newTenureLog()
	cg := startClientGo(t, c, name, "cg-"+randHex(3), rec, cgOpts{releaseOnCancel: true,
		labels: map[string]string{"mixedfleet.example/written-by": "client-go"}})
	if _, ok := rec.waitStart(cg.id, 0, 10*time.Second); !ok {
		t.Fatal("client-go never led")
	}
	kl := startKubelease(t, c, name, "kl-"+randHex(3), rec, klOpts{})
	time.Sleep(3 * time.Second) // the standby sees client-go renew and stays out
	if l := rec.leader(); l != cg.id {
		t.Fatalf("leader %q, want client-go %q still leading", l, cg.id)
	}
	before := getLease(t, c, name)
	cg.stop(t)
	from, _ := rec.waitStop(cg.id, time.Second)
	to, ok := rec.waitStart(kl.id, 0, 5*time.Second)
	if !ok {
		t.Fatal("kubelease did not take over within 5 s of client-go's release")
	}
	if gap := logGap(t, "client-go → kubelease, ReleaseOnCancel", from, to); gap > time.Second {
		t.Errorf("gap %v, want < 1 s (the watch sees the empty holder at once)", gap)
	}
	after := getLease(t, c, name)
	if h := holderOf(after); h != kl.id {
		t.Errorf("holder %q, want %q", h, kl.id)
	}
	if got, want := transitionsOf(after), transitionsOf(before)+1; got != want {
		t.Errorf("leaseTransitions %d, want %d (client-go's count continued)", got, want)
	}
	if d := durationOf(after); d != 4 {
		t.Errorf("leaseDurationSeconds %d, want kubelease's 4 (not client-go's release value 1)", d)
	}
	if v := after.Labels["mixedfleet.example/written-by"]; v != "client-go" {
		t.Errorf("client-go's label lost: labels %v", after.Labels)
	}
	if after.Annotations[lease.NonceAnnotation] == "" {
		t.Errorf("no %s on kubelease's record: %v", lease.NonceAnnotation, after.Annotations)
	}
	rec.check(t)
}

// TestMixedFleetClientGoToKubeleaseCrash: a client-go leader is cut off
// (no renewal, no release); it steps down at its RenewDeadline, and only
// after that, once the record has stood unchanged for its
// leaseDurationSeconds, does the kubelease standby take over.
func TestMixedFleetClientGoToKubeleaseCrash(t *testing.T) {
	c := needCluster(t)
	name, rec := leaseName(t), newTenureLog()
	cg := startClientGo(t, c, name, "cg-"+randHex(3), rec, cgOpts{releaseOnCancel: true})
	if _, ok := rec.waitStart(cg.id, 0, 10*time.Second); !ok {
		t.Fatal("client-go never led")
	}
	kl := startKubelease(t, c, name, "kl-"+randHex(3), rec, klOpts{})
	time.Sleep(2 * time.Second)
	cut := time.Now()
	cg.crash()
	from, ok := rec.waitStop(cg.id, mfRetryPeriod+mfRenewDeadline+2*time.Second)
	if !ok {
		t.Fatal("client-go did not step down after its transport was cut")
	}
	to, ok := rec.waitStart(kl.id, 0, mfLeaseDuration+3*time.Second)
	if !ok {
		t.Fatal("kubelease did not take over after client-go's crash")
	}
	t.Logf("client-go stepped down %v after the cut; kubelease started %v after the cut",
		from.stop.Sub(cut).Round(time.Millisecond), to.start.Sub(cut).Round(time.Millisecond))
	logGap(t, "client-go → kubelease, crash", from, to)
	rec.check(t)
}

// TestMixedFleetKubeleaseToClientGoRelease: kubelease's RunSingleton stops
// its work, then deletes the Lease; the client-go standby creates it at
// its next poll (every RetryPeriod × [1, 2.2]).
func TestMixedFleetKubeleaseToClientGoRelease(t *testing.T) {
	c := needCluster(t)
	name, rec := leaseName(t), newTenureLog()
	kl := startKubelease(t, c, name, "kl-"+randHex(3), rec, klOpts{})
	if _, ok := rec.waitStart(kl.id, 0, 10*time.Second); !ok {
		t.Fatal("kubelease never led")
	}
	cg := startClientGo(t, c, name, "cg-"+randHex(3), rec, cgOpts{releaseOnCancel: true})
	time.Sleep(3 * time.Second) // client-go sees kubelease renew and stays out
	if l := rec.leader(); l != kl.id {
		t.Fatalf("leader %q, want kubelease %q still leading", l, kl.id)
	}
	kl.stop(t)
	from, _ := rec.waitStop(kl.id, time.Second)
	to, ok := rec.waitStart(cg.id, 0, 5*time.Second)
	if !ok {
		t.Fatal("client-go did not take over within 5 s of kubelease's release")
	}
	// client-go polls every RetryPeriod × [1, 1 + JitterFactor] (0.5–1.1 s).
	maxPoll := time.Duration(float64(mfRetryPeriod) * (1 + leaderelection.JitterFactor))
	if gap := logGap(t, "kubelease → client-go, Release (DELETE)", from, to); gap > maxPoll+500*time.Millisecond {
		t.Errorf("gap %v, want < %v + 500 ms (client-go creates the deleted Lease at its next poll)", gap, maxPoll)
	}
	if h := holderOf(getLease(t, c, name)); h != cg.id {
		t.Errorf("holder %q, want %q", h, cg.id)
	}
	rec.check(t)
}

// TestMixedFleetKubeleaseToClientGoCrash: a kubelease holder is cut off;
// its work is cancelled at its deadline (stamp + TTL − TTL/50), before the
// client-go standby, which waits for the record to stand unchanged for
// leaseDurationSeconds from when it read it, takes over. client-go keeps
// kubelease's annotations and labels (stale ones included).
func TestMixedFleetKubeleaseToClientGoCrash(t *testing.T) {
	c := needCluster(t)
	name, rec := leaseName(t), newTenureLog()
	kl := startKubelease(t, c, name, "kl-"+randHex(3), rec, klOpts{
		labels: map[string]string{"app.kubernetes.io/part-of": "mixedfleet"}})
	if _, ok := rec.waitStart(kl.id, 0, 10*time.Second); !ok {
		t.Fatal("kubelease never led")
	}
	cg := startClientGo(t, c, name, "cg-"+randHex(3), rec, cgOpts{releaseOnCancel: true})
	time.Sleep(3 * time.Second) // at least one renewal: the token annotation is written
	before := getLease(t, c, name)
	cut := time.Now()
	kl.crash()
	from, ok := rec.waitStop(kl.id, mfTTL+2*time.Second)
	if !ok {
		t.Fatal("kubelease's work was not cancelled after its transport was cut")
	}
	to, ok := rec.waitStart(cg.id, 0, mfLeaseDuration+3*time.Second)
	if !ok {
		t.Fatal("client-go did not take over after kubelease's crash")
	}
	t.Logf("kubelease stopped %v after the cut; client-go started %v after the cut",
		from.stop.Sub(cut).Round(time.Millisecond), to.start.Sub(cut).Round(time.Millisecond))
	logGap(t, "kubelease → client-go, crash", from, to)

	after := getLease(t, c, name)
	if h := holderOf(after); h != cg.id {
		t.Errorf("holder %q, want %q", h, cg.id)
	}
	if got, want := transitionsOf(after), transitionsOf(before)+1; got != want {
		t.Errorf("leaseTransitions %d, want %d", got, want)
	}
	for _, k := range []string{lease.NonceAnnotation, lease.TokenAnnotation} {
		if after.Annotations[k] == "" || after.Annotations[k] != before.Annotations[k] {
			t.Errorf("annotation %s: %q before, %q after client-go's takeover; want kept", k, before.Annotations[k], after.Annotations[k])
		}
	}
	if after.Labels["app.kubernetes.io/part-of"] != "mixedfleet" {
		t.Errorf("kubelease's label lost: %v", after.Labels)
	}
	info, err := lease.ReadLease(ctxFor(t, 10*time.Second), c.AdminConfig(), cluster.Namespace, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ReadLease (kubelease status) after client-go's takeover: holder %q, HolderToken %v "+
		"(the stale %s of kubelease's tenure, which client-go leaves in place)", info.Holder, info.HolderToken, lease.TokenAnnotation)
	rec.check(t)
}

// TestMixedFleetSteadyContention: with both running, the follower never
// takes over while the leader renews, for three lease durations, in both
// orders.
func TestMixedFleetSteadyContention(t *testing.T) {
	c := needCluster(t)
	for _, first := range []string{"client-go", "kubelease"} {
		t.Run(first+" leads", func(t *testing.T) {
			name, rec := leaseName(t), newTenureLog()
			start := map[string]func() *candidate{
				"client-go": func() *candidate {
					return startClientGo(t, c, name, "cg-"+randHex(3), rec, cgOpts{releaseOnCancel: true})
				},
				"kubelease": func() *candidate { return startKubelease(t, c, name, "kl-"+randHex(3), rec, klOpts{}) },
			}
			second := "kubelease"
			if first == "kubelease" {
				second = "client-go"
			}
			leader := start[first]()
			if _, ok := rec.waitStart(leader.id, 0, 10*time.Second); !ok {
				t.Fatalf("%s never led", first)
			}
			rv0 := getLease(t, c, name).ResourceVersion
			follower := start[second]()
			time.Sleep(3 * mfLeaseDuration)
			if spans := rec.all(); len(spans) != 1 || spans[0].who != leader.id || !spans[0].stop.IsZero() {
				t.Errorf("want one running tenure of %s, got:\n%s", leader.id, rec)
			}
			obj := getLease(t, c, name)
			if h := holderOf(obj); h != leader.id {
				t.Errorf("holder %q, want %q", h, leader.id)
			}
			if obj.ResourceVersion == rv0 {
				t.Errorf("the leader did not renew (resourceVersion still %s)", rv0)
			}
			_ = follower
			rec.check(t)
		})
	}
}

// TestMixedFleetRuleBOnClientGoRecord: a kubelease contender started after
// a client-go leader was cut off takes over by rule (b) — renewTime +
// leaseDurationSeconds + MaxClockSkew on its wall clock, from client-go's
// record — without watching the record for a full duration; with the fast
// path off it waits the full duration by rule (a). Either way after
// client-go has stepped down.
func TestMixedFleetRuleBOnClientGoRecord(t *testing.T) {
	c := needCluster(t)
	for _, tc := range []struct {
		name string
		skew time.Duration
	}{{"fast path", 0}, {"fast path off", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			name, rec := leaseName(t), newTenureLog()
			cg := startClientGo(t, c, name, "cg-"+randHex(3), rec, cgOpts{releaseOnCancel: true})
			if _, ok := rec.waitStart(cg.id, 0, 10*time.Second); !ok {
				t.Fatal("client-go never led")
			}
			time.Sleep(time.Second)
			cg.crash()
			from, ok := rec.waitStop(cg.id, mfRetryPeriod+mfRenewDeadline+2*time.Second)
			if !ok {
				t.Fatal("client-go did not step down")
			}
			obj := getLease(t, c, name)
			renew := obj.Spec.RenewTime.Time
			if holderOf(obj) != cg.id || durationOf(obj) != 4 {
				t.Fatalf("record: holder %q duration %d", holderOf(obj), durationOf(obj))
			}
			launch := time.Now()
			kl := startKubelease(t, c, name, "kl-"+randHex(3), rec, klOpts{maxClockSkew: tc.skew})
			to, ok := rec.waitStart(kl.id, 0, mfLeaseDuration+4*time.Second)
			if !ok {
				t.Fatal("kubelease did not take over")
			}
			sinceRenew := to.start.Round(0).Sub(renew) // wall clock, as rule (b)
			sinceLaunch := to.start.Sub(launch)
			t.Logf("kubelease took over %v after client-go's renewTime, %v after it started (client-go stepped down %v after its renewTime)",
				sinceRenew.Round(time.Millisecond), sinceLaunch.Round(time.Millisecond), from.stop.Round(0).Sub(renew).Round(time.Millisecond))
			logGap(t, "client-go → kubelease, crash, late contender ("+tc.name+")", from, to)
			ruleB := mfLeaseDuration + lease.DefaultMaxClockSkew
			if tc.skew == 0 {
				if sinceRenew < ruleB || sinceRenew > ruleB+time.Second {
					t.Errorf("took over %v after renewTime, want within 1 s after renewTime + duration + skew = %v", sinceRenew, ruleB)
				}
				if sinceLaunch >= mfLeaseDuration {
					t.Errorf("took over %v after starting: rule (a)'s wait, not the fast path", sinceLaunch)
				}
			} else if sinceLaunch < mfLeaseDuration {
				t.Errorf("fast path off, yet took over %v after starting, before watching the record for its duration %v", sinceLaunch, mfLeaseDuration)
			}
			rec.check(t)
		})
	}
}

// TestMixedFleetUnsafeSubSecondRenewals shows where the mix is UNSAFE:
// client-go tells records apart only by their JSON with renewTime in
// whole seconds (observedRawRecord), so a kubelease renewal that lands in
// the same second as the one client-go last saw is invisible to it, and
// client-go's clock keeps running from the older one. With RenewalInterval
// under 1 s (TTL < 3 s at the default TTL/3, or set explicitly) a client-go
// contender can take over while kubelease still holds. Here kubelease runs
// TTL 2 s, RenewalInterval 300 ms, and is cut off right after a renewal
// that shares its second with one written ≥ 700 ms earlier. It fails: it
// records the overlap (0.66–0.75 s in two runs). Run with
// KUBELEASE_E2E_UNSAFE=1. kubelease warns when it contends with such
// settings for a Lease client-go wrote (TestMixedFleetWarnsSubSecondRenewals),
// but here kubelease holds first and never reads the Lease again, so
// nothing can warn: the settings must be kept out of a mixed fleet.
func TestMixedFleetUnsafeSubSecondRenewals(t *testing.T) {
	if os.Getenv("KUBELEASE_E2E_UNSAFE") == "" {
		t.Skip("demonstrates a known unsafe configuration (kubelease renewing more often than once a second against client-go contenders); set KUBELEASE_E2E_UNSAFE=1")
	}
	c := needCluster(t)
	name, rec := leaseName(t), newTenureLog()
	var (
		mu        sync.Mutex
		firstIn   = map[int64]time.Time{} // renewTime second → first renewTime written in it
		cutAt     time.Time
		kl        *candidate
		armed     = make(chan struct{})
		cutDone   = make(chan struct{})
		closeOnce sync.Once
	)
	onResponse := func(req *http.Request, resp *http.Response) {
		if req.Method != http.MethodPut || resp.StatusCode != http.StatusOK || !strings.Contains(req.URL.Path, name) {
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		if err != nil {
			return
		}
		var obj struct {
			Spec struct {
				RenewTime time.Time `json:"renewTime"`
			} `json:"spec"`
		}
		if json.Unmarshal(b, &obj) != nil || obj.Spec.RenewTime.IsZero() {
			return
		}
		rt := obj.Spec.RenewTime
		mu.Lock()
		defer mu.Unlock()
		select {
		case <-armed:
		default:
			return
		}
		first, seen := firstIn[rt.Unix()]
		if !seen {
			firstIn[rt.Unix()] = rt
			return
		}
		if rt.Sub(first) >= 700*time.Millisecond && cutAt.IsZero() {
			kl.crash() // this write is the last; client-go saw its second's first write
			cutAt = rt
			t.Logf("cut kubelease after a renewal at %s; the first renewal of that second was at %s",
				rt.Format("15:04:05.000000"), first.Format("15:04:05.000000"))
			closeOnce.Do(func() { close(cutDone) })
		}
	}
	mu.Lock()
	kl = startKubelease(t, c, name, "kl-"+randHex(3), rec, klOpts{ttl: 2 * time.Second,
		renewalInterval: 300 * time.Millisecond, onResponse: onResponse})
	mu.Unlock()
	if _, ok := rec.waitStart(kl.id, 0, 10*time.Second); !ok {
		t.Fatal("kubelease never led")
	}
	cg := startClientGo(t, c, name, "cg-"+randHex(3), rec, cgOpts{releaseOnCancel: true,
		leaseDuration: 2 * time.Second, renewDeadline: time.Second, retryPeriod: 100 * time.Millisecond})
	time.Sleep(time.Second) // client-go has read the record a few times
	close(armed)
	select {
	case <-cutDone:
	case <-time.After(20 * time.Second):
		t.Fatal("no renewal shared its second with one 700 ms earlier")
	}
	from, _ := rec.waitStop(kl.id, 4*time.Second)
	to, ok := rec.waitStart(cg.id, 0, 6*time.Second)
	if ok {
		logGap(t, "kubelease (RenewalInterval 300 ms) → client-go, crash", from, to)
	}
	rec.check(t)
}

// TestMixedFleetWarnsSubSecondRenewals: what the unsafe case above calls
// for. A kubelease contender that may renew less than a second apart (TTL
// 2 s, RenewalInterval 667 ms) warns, once, naming the fix, when it finds
// a Lease that client-go holds or released (ReleaseOnCancel), and contends
// as usual; one at TTL 4 s does not warn. (It warns rather than refuses: a
// record written by any other tool looks the same. A kubelease holder that
// took the Lease first never reads it, so it cannot warn — see
// docs/migrating-from-client-go.md.)
func TestMixedFleetWarnsSubSecondRenewals(t *testing.T) {
	c := needCluster(t)
	name, rec := leaseName(t), newTenureLog()
	cg := startClientGo(t, c, name, "cg-"+randHex(3), rec, cgOpts{releaseOnCancel: true})
	if _, ok := rec.waitStart(cg.id, 0, 10*time.Second); !ok {
		t.Fatal("client-go never led")
	}
	try := func(ttl time.Duration) (bool, string, error) {
		var logs strings.Builder
		var mu sync.Mutex
		l, err := lease.NewKubernetesLease(lease.Settings{Name: name, Namespace: cluster.Namespace,
			Owner: "kl-" + randHex(3), TTL: ttl, Config: c.AdminConfig(),
			Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release(context.Background())
		ok, err := l.Acquire(ctxFor(t, 10*time.Second))
		mu.Lock()
		defer mu.Unlock()
		return ok, logs.String(), err
	}
	const warning = "not kubelease (client-go?)"
	ok, logs, err := try(2 * time.Second)
	if err != nil || ok || !strings.Contains(logs, warning) {
		t.Fatalf("TTL 2s against a client-go holder: ok %v, err %v, logs %q; want false, nil and the warning", ok, err, logs)
	}
	t.Logf("warned: %s", logs)
	if ok, logs, err := try(mfTTL); err != nil || ok || strings.Contains(logs, warning) {
		t.Fatalf("TTL 4s against a client-go holder: ok %v, err %v, logs %q; want false, nil, no warning", ok, err, logs)
	}
	cg.stop(t) // ReleaseOnCancel: holderIdentity "", leaseDurationSeconds 1
	if ok, logs, err := try(2 * time.Second); err != nil || !ok || !strings.Contains(logs, warning) {
		t.Fatalf("TTL 2s after client-go's release: ok %v, err %v, logs %q; want true, nil and the warning", ok, err, logs)
	}
	rec.check(t)
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (lw lockedWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.w.Write(p)
}
