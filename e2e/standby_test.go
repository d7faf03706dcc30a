package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/e2e/cluster"
	"sigs.k8s.io/yaml"
)

// The defaults every test here runs at: TTL 15 s, renewals every 5 s.
const (
	defaultTTL     = lease.DefaultTTL
	renewalEvery   = defaultTTL / 3
	leasesCollPath = "/apis/coordination.k8s.io/v1/namespaces/" + cluster.Namespace + "/leases"
	refusedWarning = "refused to watch"
)

// reqRecord is one request a countingTransport sent.
type reqRecord struct {
	at   time.Time // when it was sent
	kind string    // GET, WATCH (a GET with watch=true), PUT, POST, DELETE
	// Set when the answer (its headers) came: done, and status (0: no
	// answer, err says why).
	done   bool
	status int
	err    error
}

// countingTransport records every request a lease sends, on the client
// side: the library's Config.HTTPClient is set to a client over it.
type countingTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	reqs []*reqRecord
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := &reqRecord{at: time.Now(), kind: req.Method}
	if req.Method == http.MethodGet && req.URL.Query().Get("watch") == "true" {
		rec.kind = "WATCH"
	}
	c.mu.Lock()
	c.reqs = append(c.reqs, rec)
	c.mu.Unlock()
	resp, err := c.base.RoundTrip(req)
	c.mu.Lock()
	rec.done, rec.err = true, err
	if resp != nil {
		rec.status = resp.StatusCode
	}
	c.mu.Unlock()
	return resp, err
}

// records returns copies of the requests sent in (from, to]; a zero to
// means no upper bound.
func (c *countingTransport) records(from, to time.Time) []reqRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []reqRecord
	for _, r := range c.reqs {
		if r.at.After(from) && (to.IsZero() || !r.at.After(to)) {
			out = append(out, *r)
		}
	}
	return out
}

// answered returns the requests of kind answered with status, in order.
func (c *countingTransport) answered(kind string, status int) []reqRecord {
	var out []reqRecord
	for _, r := range c.records(time.Time{}, time.Time{}) {
		if r.kind == kind && r.done && r.status == status {
			out = append(out, r)
		}
	}
	return out
}

// byKind counts records by kind, e.g. "GET 1, WATCH 1".
func byKind(recs []reqRecord) string {
	n := map[string]int{}
	for _, r := range recs {
		n[r.kind]++
	}
	var parts []string
	for k, v := range n {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// story lists records relative to t0: "+1.234s WATCH 200", "+2.5s WATCH
// (connection refused)".
func story(recs []reqRecord, t0 time.Time) string {
	var b strings.Builder
	for _, r := range recs {
		fmt.Fprintf(&b, "\n\t%+8.3fs %-6s ", r.at.Sub(t0).Seconds(), r.kind)
		switch {
		case !r.done:
			b.WriteString("(in flight)")
		case r.err != nil:
			fmt.Fprintf(&b, "(%s)", shortErr(r.err))
		default:
			fmt.Fprint(&b, r.status)
		}
	}
	return b.String()
}

// shortErr is the last part of err's message: "connection refused".
func shortErr(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}

// countingConfig is a Config for token whose requests are counted. Its
// transport pings idle HTTP/2 connections as the library's own does at the
// defaults (every RenewalInterval, TTL/10 timeout); Config.HTTPClient turns
// the library's dropping of connections after timed-out attempts off.
func countingConfig(c *cluster.Cluster, token string) (*lease.Config, *countingTransport) {
	tr := &countingTransport{base: c.NewTransport(renewalEvery, defaultTTL/10)}
	cfg := c.Config(token)
	cfg.HTTPClient = &http.Client{Transport: tr}
	return cfg, tr
}

// logRecorder is a slog.Handler that keeps every record's message and
// attributes as a line.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", rec.Level, rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	r.lines = append(r.lines, b.String())
	r.mu.Unlock()
	return nil
}

func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

// matching returns the lines that contain s.
func (r *logRecorder) matching(s string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.lines {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// newDefaultLease makes a KubernetesLease at the default TTL for name,
// logging to logs; it is released at the end of the test.
func newDefaultLease(t *testing.T, cfg *lease.Config, name, owner string, logs *logRecorder) *lease.KubernetesLease {
	t.Helper()
	s := lease.Settings{Name: name, Namespace: cluster.Namespace, Owner: owner + "-" + randHex(3), Config: cfg}
	if logs != nil {
		s.Logger = slog.New(logs)
	}
	l, err := lease.NewKubernetesLease(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l.Release(ctx)
	})
	return l
}

// clearLease deletes the Lease name (as admin) now and at the end of the
// test: the resourceNames-restricted users can only use fixed names.
func clearLease(t *testing.T, c *cluster.Cluster, name string) {
	t.Helper()
	del := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		code, body, err := c.Do(ctx, cluster.AdminToken, http.MethodDelete, leasesPath+name, nil)
		if err != nil || (code != http.StatusOK && code != http.StatusNotFound) {
			t.Errorf("DELETE lease %s as admin: %d %v %.200s", name, code, err, body)
		}
	}
	del()
	t.Cleanup(del)
}

// waitUntil polls cond every 10 ms until it holds, failing t after d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// singleton is one RunSingleton call at the default options, on its own
// goroutine. Its work records when it starts and runs until cancelled.
type singleton struct {
	name    string
	l       *lease.KubernetesLease
	cancel  context.CancelFunc
	done    chan struct{}
	err     error          // RunSingleton's, once done is closed
	started chan time.Time // one per work start
}

func startSingleton(t *testing.T, name string, l *lease.KubernetesLease) *singleton {
	ctx, cancel := context.WithCancel(context.Background())
	s := &singleton{name: name, l: l, cancel: cancel, done: make(chan struct{}), started: make(chan time.Time, 8)}
	go func() {
		defer close(s.done)
		s.err = lease.RunSingleton(ctx, l, func(ctx context.Context) error {
			s.started <- time.Now()
			<-ctx.Done()
			return nil
		}, lease.SingletonOptions{})
	}()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop cancels RunSingleton (which releases the lease if it holds it) and
// waits for it to return.
func (s *singleton) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Errorf("%s: RunSingleton did not return within 30s of its context's end", s.name)
	}
}

// TestDeployRBACMatchesCluster: the Role of examples/deploy/rbac.yaml has
// exactly the rules of the e2e user "byname" (cluster.ByNameRules), so
// the tests below check what the example deploys. No cluster needed.
func TestDeployRBACMatchesCluster(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "examples", "deploy", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules []cluster.PolicyRule
	roles := 0
	for doc := range strings.SplitSeq(string(data), "\n---\n") {
		var obj struct {
			Kind  string               `json:"kind"`
			Rules []cluster.PolicyRule `json:"rules"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("examples/deploy/rbac.yaml: %v", err)
		}
		if obj.Kind == "Role" {
			rules = obj.Rules
			roles++
		}
	}
	if roles != 1 {
		t.Fatalf("examples/deploy/rbac.yaml has %d Roles, want 1", roles)
	}
	if want := cluster.ByNameRules("election-demo", true); !reflect.DeepEqual(rules, want) {
		t.Errorf("examples/deploy/rbac.yaml Role rules = %+v\nwant (cluster.ByNameRules, what the e2e tests check) %+v", rules, want)
	}
}

// TestStandbyWatchByNameRBAC: with the Role of examples/deploy/rbac.yaml
// (create; get, update, delete, watch restricted by resourceNames to one
// Lease), the standby watch (fieldSelector metadata.name=<name>) is
// authorized — kube-apiserver takes the name from the field selector — so a
// Wait wakes on the holder's Release through the watch, well before the
// RenewalInterval at which a refused standby would poll, and nothing says
// the watch was refused. A watch of another name, or of the whole
// namespace, is still forbidden.
func TestStandbyWatchByNameRBAC(t *testing.T) {
	c := needCluster(t)
	name := cluster.ByNameLease
	clearLease(t, c, name)
	ctx := ctxFor(t, time.Minute)

	for _, tc := range []struct {
		what, query string
		want        int
	}{
		{"watch by name", "?watch=true&timeoutSeconds=1&fieldSelector=metadata.name%3D" + name, http.StatusOK},
		{"watch of another name", "?watch=true&timeoutSeconds=1&fieldSelector=metadata.name%3Dother", http.StatusForbidden},
		{"watch of the namespace", "?watch=true&timeoutSeconds=1", http.StatusForbidden},
		{"list", "", http.StatusForbidden},
	} {
		code, body, err := c.Do(ctx, cluster.ByNameToken, http.MethodGet, leasesCollPath+tc.query, nil)
		if err != nil || code != tc.want {
			t.Errorf("%s as byname: %d %v %.200s; want %d", tc.what, code, err, body, tc.want)
		}
	}

	holder := newDefaultLease(t, c.Config(cluster.ByNameToken), name, "holder", nil)
	cfg, tr := countingConfig(c, cluster.ByNameToken)
	logs := &logRecorder{}
	standby := newDefaultLease(t, cfg, name, "standby", logs)

	if ok, err := holder.Acquire(ctx); err != nil || !ok {
		t.Fatalf("holder Acquire = %v, %v; want true, nil", ok, err)
	}
	if ok, err := standby.Acquire(ctx); err != nil || ok {
		t.Fatalf("standby Acquire = %v, %v; want false, nil", ok, err)
	}
	woke := make(chan error, 1)
	var wokeAt time.Time
	go func() {
		err := standby.Wait(ctx)
		wokeAt = time.Now()
		woke <- err
	}()
	waitUntil(t, 10*time.Second, "the standby's watch open (WATCH 200)", func() bool {
		return len(tr.answered("WATCH", http.StatusOK)) > 0 || len(logs.matching(refusedWarning)) > 0
	})
	if refused := logs.matching(refusedWarning); len(refused) > 0 {
		t.Fatalf("the standby's watch was refused: %q\nrequests:%s", refused, story(tr.records(time.Time{}, time.Time{}), time.Now()))
	}
	select {
	case err := <-woke:
		t.Fatalf("Wait returned %v while the holder holds the lease", err)
	default:
	}

	released := time.Now()
	if err := holder.Release(ctx); err != nil {
		t.Fatalf("holder Release: %v", err)
	}
	select {
	case err := <-woke:
		if err != nil {
			t.Fatalf("Wait = %v", err)
		}
	case <-time.After(renewalEvery + 5*time.Second):
		t.Fatalf("Wait did not return within %v of the Release", renewalEvery+5*time.Second)
	}
	latency := wokeAt.Sub(released)
	t.Logf("Wait woke %v after the holder's Release returned (a refused standby polls every %v)", latency.Round(100*time.Microsecond), renewalEvery)
	if latency > time.Second {
		t.Errorf("Wait woke %v after the Release; through the watch it takes a round trip (a standby without watch polls every %v)", latency, renewalEvery)
	}
	if ok, err := standby.Acquire(ctx); err != nil || !ok {
		t.Fatalf("standby Acquire after the Release = %v, %v; want true, nil", ok, err)
	}
	if err := standby.Release(ctx); err != nil {
		t.Errorf("standby Release: %v", err)
	}

	recs := tr.records(time.Time{}, time.Time{})
	t.Logf("standby requests (%s):%s", byKind(recs), story(recs, released))
	watches := 0
	for _, r := range recs {
		if r.kind == "WATCH" {
			watches++
			if r.status != http.StatusOK {
				t.Errorf("standby WATCH answered %d (%v), want 200", r.status, r.err)
			}
		}
		if r.status == http.StatusForbidden {
			t.Errorf("standby %s answered 403", r.kind)
		}
	}
	if watches != 1 {
		t.Errorf("standby sent %d watch requests, want 1", watches)
	}
	if refused := logs.matching(refusedWarning); len(refused) > 0 {
		t.Errorf("logged: %q", refused)
	}
}

// TestStandbyWithoutWatchRBAC: with the same Role without watch, the
// standby's watch gets a 403, which is logged once, and a standby under
// RunSingleton then polls with Acquire (one GET) every RenewalInterval —
// about 12 requests a minute at the defaults instead of about 1 — and still
// takes over within about a RenewalInterval of a Release.
func TestStandbyWithoutWatchRBAC(t *testing.T) {
	c := needCluster(t)
	name := cluster.ByNameNoWatchLease
	clearLease(t, c, name)
	ctx := ctxFor(t, 2*time.Minute)

	holder := newDefaultLease(t, c.Config(cluster.ByNameNoWatchToken), name, "holder", nil)
	if ok, err := holder.Acquire(ctx); err != nil || !ok {
		t.Fatalf("holder Acquire = %v, %v; want true, nil", ok, err)
	}
	cfg, tr := countingConfig(c, cluster.ByNameNoWatchToken)
	logs := &logRecorder{}
	standby := startSingleton(t, "standby", newDefaultLease(t, cfg, name, "standby", logs))

	waitUntil(t, 10*time.Second, "the standby's watch refused (WATCH 403)", func() bool {
		return len(tr.answered("WATCH", http.StatusForbidden)) > 0
	})
	refusedAt := tr.answered("WATCH", http.StatusForbidden)[0].at
	const polls = 4
	getsAfter := func() []reqRecord {
		var gets []reqRecord
		for _, r := range tr.records(refusedAt, time.Time{}) {
			if r.kind == http.MethodGet && r.done {
				gets = append(gets, r)
			}
		}
		return gets
	}
	waitUntil(t, polls*renewalEvery+5*time.Second, fmt.Sprintf("%d polls after the refusal", polls), func() bool {
		return len(getsAfter()) >= polls
	})
	gets := getsAfter()[:polls]
	var intervals []string
	for i := 1; i < len(gets); i++ {
		d := gets[i].at.Sub(gets[i-1].at)
		intervals = append(intervals, d.Round(time.Millisecond).String())
		if d < renewalEvery || d > renewalEvery+time.Second {
			t.Errorf("poll interval %v, want RenewalInterval %v (+ a round trip)", d, renewalEvery)
		}
	}
	span := gets[len(gets)-1].at.Sub(gets[0].at)
	perMin := float64(len(gets)-1) / span.Minutes()
	t.Logf("without watch: first poll %v after the 403, then every %s: %.1f requests/min (GET)", gets[0].at.Sub(refusedAt).Round(time.Millisecond), strings.Join(intervals, ", "), perMin)

	all := tr.records(time.Time{}, time.Time{})
	watches := 0
	for _, r := range all {
		if r.kind == "WATCH" {
			watches++
		}
		if r.kind != "WATCH" && r.kind != http.MethodGet {
			t.Errorf("standby sent a %s while standing by", r.kind)
		}
	}
	if watches != 1 {
		t.Errorf("standby sent %d watch requests, want 1 (refused once, then polls)", watches)
	}
	if refused := logs.matching(refusedWarning); len(refused) != 1 {
		t.Errorf("%d %q warnings, want exactly 1: %q", len(refused), refusedWarning, refused)
	} else {
		t.Logf("logged once: %s", refused[0])
	}

	// Still takes over, at its next poll.
	released := time.Now()
	if err := holder.Release(ctx); err != nil {
		t.Fatalf("holder Release: %v", err)
	}
	select {
	case at := <-standby.started:
		d := at.Sub(released)
		t.Logf("without watch: the standby's work started %v after the Release (polling every %v)", d.Round(time.Millisecond), renewalEvery)
		if d > renewalEvery+time.Second {
			t.Errorf("takeover %v after the Release, want within RenewalInterval %v + 1s", d, renewalEvery)
		}
	case <-time.After(renewalEvery + 5*time.Second):
		t.Fatalf("the standby did not take over within %v of the Release", renewalEvery+5*time.Second)
	}
}

// TestStandbyCost counts, on the client side, every request of one holder
// and two standbys under RunSingleton at the defaults (zero options, TTL
// 15 s), with the Role of examples/deploy, over 60 s that start just after
// a renewal: a standby sends at most 2 requests a minute (its watch stays
// open; the 1 min ResyncInterval adds one GET), the holder at most 12 (its
// renewals, every 5 s on average). Then the holder stops and a standby
// takes over through its watch.
func TestStandbyCost(t *testing.T) {
	c := needCluster(t)
	name := cluster.ByNameLease
	clearLease(t, c, name)
	const window = time.Minute

	type member struct {
		name string
		l    *lease.KubernetesLease
		tr   *countingTransport
		logs *logRecorder
		s    *singleton
	}
	var members []*member
	leases := map[string]lease.Lease{}
	for _, n := range []string{"a", "b", "c"} {
		cfg, tr := countingConfig(c, cluster.ByNameToken)
		m := &member{name: n, tr: tr, logs: &logRecorder{}}
		m.l = newDefaultLease(t, cfg, name, n, m.logs)
		members = append(members, m)
		leases[n] = m.l
	}
	overlap := checkOverlap(t, leases)
	begin := time.Now()
	for _, m := range members {
		m.s = startSingleton(t, m.name, m.l)
	}

	var holder *member
	var standbys []*member
	waitUntil(t, 15*time.Second, "one holder and two standbys with a watch open", func() bool {
		holder, standbys = nil, nil
		for _, m := range members {
			switch {
			case m.l.CheckAlive():
				holder = m
			case len(m.tr.answered("WATCH", http.StatusOK)) > 0:
				standbys = append(standbys, m)
			}
		}
		return holder != nil && len(standbys) == 2
	})
	settled := time.Since(begin)

	// Start the window at a renewal, so that it holds a whole number of
	// renewal intervals' worth of the holder's requests.
	puts := len(holder.tr.answered(http.MethodPut, http.StatusOK))
	waitUntil(t, 2*renewalEvery, "a renewal", func() bool {
		return len(holder.tr.answered(http.MethodPut, http.StatusOK)) > puts
	})
	start := holder.tr.answered(http.MethodPut, http.StatusOK)[puts].at
	end := start.Add(window)
	time.Sleep(time.Until(end)) // the measurement window itself

	perMin := func(n int) float64 { return float64(n) / window.Minutes() }
	recs := holder.tr.records(start, end)
	var renewals []time.Time
	for _, r := range recs {
		if r.kind == http.MethodPut {
			renewals = append(renewals, r.at)
		}
	}
	mean := time.Duration(0)
	if len(renewals) > 1 {
		mean = renewals[len(renewals)-1].Sub(renewals[0]) / time.Duration(len(renewals)-1)
	}
	t.Logf("settled %v after start: holder %s, standbys %s and %s", settled.Round(time.Millisecond), holder.name, standbys[0].name, standbys[1].name)
	byMean := 0.0
	if mean > 0 {
		byMean = float64(time.Minute) / float64(mean)
	}
	t.Logf("holder  %s: %d requests in %v after a renewal = %.1f/min (%s); mean renewal interval %v = %.1f/min",
		holder.name, len(recs), window, perMin(len(recs)), byKind(recs), mean.Round(time.Millisecond), byMean)
	if len(recs) > 12 {
		t.Errorf("holder sent %d requests in %v, want at most 12", len(recs), window)
	}
	for _, m := range standbys {
		recs := m.tr.records(start, end)
		all := m.tr.records(time.Time{}, end)
		t.Logf("standby %s: %d requests in the window = %.1f/min (%s); since its start: %s",
			m.name, len(recs), perMin(len(recs)), byKind(recs), byKind(all))
		if len(recs) > 2 {
			t.Errorf("standby %s sent %d requests in %v, want at most 2:%s", m.name, len(recs), window, story(recs, start))
		}
		if n := len(m.tr.answered("WATCH", http.StatusOK)); n != 1 {
			t.Errorf("standby %s opened %d watches, want 1 (kept open across Waits)", m.name, n)
		}
	}
	for _, m := range members {
		if refused := m.logs.matching(refusedWarning); len(refused) > 0 {
			t.Errorf("%s logged %q", m.name, refused)
		}
	}

	// Graceful handoff: the holder's RunSingleton ends and releases; a
	// standby's watch sees the DELETE.
	stopAt := time.Now()
	holder.s.stop(t)
	released := time.Now()
	if !errors.Is(holder.s.err, context.Canceled) {
		t.Errorf("holder RunSingleton = %v, want context.Canceled (and a clean Release)", holder.s.err)
	}
	select {
	case at := <-standbys[0].s.started:
		t.Logf("handoff: %s's work started %v after the holder's RunSingleton returned (%v after its context ended)",
			standbys[0].name, at.Sub(released).Round(100*time.Microsecond), at.Sub(stopAt).Round(100*time.Microsecond))
	case at := <-standbys[1].s.started:
		t.Logf("handoff: %s's work started %v after the holder's RunSingleton returned (%v after its context ended)",
			standbys[1].name, at.Sub(released).Round(100*time.Microsecond), at.Sub(stopAt).Round(100*time.Microsecond))
	case <-time.After(renewalEvery):
		t.Errorf("no standby took over within %v of the holder's release", renewalEvery)
	}
	overlap.finish(t)
}

// probeAnswers records, every 50 ms until stop is closed, what the
// kube-apiserver answers to a GET of a Lease as a user: the status, or "-"
// while nothing answers.
type probeAnswers struct {
	mu  sync.Mutex
	got []probeAnswer
}

type probeAnswer struct {
	at   time.Time
	code int    // 0: no answer
	err  string // why not, shortened
}

func probeAs(c *cluster.Cluster, token, name string, stop <-chan struct{}) (*probeAnswers, <-chan struct{}) {
	p := &probeAnswers{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			code, _, err := c.Do(ctx, token, http.MethodGet, leasesPath+name, nil)
			cancel()
			a := probeAnswer{at: time.Now(), code: code}
			if err != nil {
				a.code, a.err = 0, shortErr(err)
			}
			p.mu.Lock()
			p.got = append(p.got, a)
			p.mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return p, done
}

// summary describes the answers as runs relative to t0: "-0.1s..+3.2s
// none; +3.2s..+5.0s 403 x12; +5.0s.. 404 x3".
func (p *probeAnswers) summary(t0 time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var parts []string
	for i := 0; i < len(p.got); {
		j := i
		for j < len(p.got) && p.got[j].code == p.got[i].code && p.got[j].err == p.got[i].err {
			j++
		}
		what := "(" + p.got[i].err + ")"
		if p.got[i].code != 0 {
			what = fmt.Sprint(p.got[i].code)
		}
		parts = append(parts, fmt.Sprintf("%+.2fs..%+.2fs %s x%d", p.got[i].at.Sub(t0).Seconds(), p.got[j-1].at.Sub(t0).Seconds(), what, j-i))
		i = j
	}
	return strings.Join(parts, "; ")
}

// TestStandbyAcrossRestart: two standbys (RunSingleton at the defaults)
// wait on their watches while kube-apiserver restarts — "standby" with the
// Role of examples/deploy, "standby-admin" as system:masters, which RBAC
// does not apply to; the holder keeps its lease (the server is down for
// about 7 s, the TTL is 15 s) and releases as soon as the server is back. A
// standby's work starts within the documented bound after the server is
// back:
//
//	the watch's reconnect pause still to run, at most 1.5 × RenewalInterval
//	(exponential backoff from 100 ms capped at RenewalInterval, jittered
//	±50 % around the cap: 7.5 s at the defaults)
//	+ a re-read if the server answers 410, and Acquire's GET and POST
//
// so within 1.5 × RenewalInterval + 2 s = 9.5 s at the defaults. Neither
// standby may take an answer of the restarting server for a refusal to
// watch (which makes it poll for good), nor busy-loop: at most 25 requests
// each from the stop until the takeover.
//
// Real-server facts this test records (t.Logf): kube-apiserver stops
// listening at SIGTERM but does not end an open watch, so the process
// lingers until the harness kills it after StopGrace (3 s here; the default
// 10 s would eat most of the TTL); once started again it answers before
// /readyz says ok, 403 to users outside system:masters until RBAC has
// synced; and a watch from the resourceVersion of a Lease that was not
// written since before the restart gets 410 (the new watch cache starts at
// a later revision), also when that resourceVersion was just read by a GET;
// a watch from a list's resourceVersion is served.
func TestStandbyAcrossRestart(t *testing.T) {
	c := needCluster(t)
	name := cluster.ByNameLease
	clearLease(t, c, name)
	bound := 3*renewalEvery/2 + 2*time.Second
	const maxRequests = 25
	grace := cluster.StopGrace
	cluster.StopGrace = 3 * time.Second
	t.Cleanup(func() { cluster.StopGrace = grace })

	// A Lease nobody writes, to see what a watch from its resourceVersion
	// gets after the restart.
	static := leaseName(t)
	clearLease(t, c, static)
	if code, body, err := c.Do(ctxFor(t, 10*time.Second), cluster.AdminToken, http.MethodPost, leasesCollPath,
		map[string]any{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": map[string]any{"name": static}}); err != nil || code != http.StatusCreated {
		t.Fatalf("POST lease %s: %d %v %.200s", static, code, err, body)
	}

	type member struct {
		name string
		l    *lease.KubernetesLease
		tr   *countingTransport
		logs *logRecorder
		s    *singleton
	}
	newMember := func(who, token string) *member {
		cfg, tr := countingConfig(c, token)
		m := &member{name: who, tr: tr, logs: &logRecorder{}}
		m.l = newDefaultLease(t, cfg, name, who, m.logs)
		return m
	}
	holder := newMember("holder", cluster.ByNameToken)
	standbys := []*member{newMember("standby", cluster.ByNameToken), newMember("standby-admin", cluster.AdminToken)}
	overlap := checkOverlap(t, map[string]lease.Lease{"holder": holder.l, "standby": standbys[0].l, "standby-admin": standbys[1].l})

	holder.s = startSingleton(t, holder.name, holder.l)
	select {
	case <-holder.s.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the holder did not start work within 10s")
	}
	for _, m := range standbys {
		m.s = startSingleton(t, m.name, m.l)
	}
	waitUntil(t, 10*time.Second, "the standbys' watches open", func() bool {
		return len(standbys[0].tr.answered("WATCH", http.StatusOK)) > 0 && len(standbys[1].tr.answered("WATCH", http.StatusOK)) > 0
	})

	// Restart right after a renewal, so the holder's deadline is a whole
	// TTL after the stop.
	puts := len(holder.tr.answered(http.MethodPut, http.StatusOK))
	waitUntil(t, 2*renewalEvery, "a renewal", func() bool {
		return len(holder.tr.answered(http.MethodPut, http.StatusOK)) > puts
	})
	stopProbe := make(chan struct{})
	probe, probed := probeAs(c, cluster.ByNameToken, name, stopProbe)
	stopAt := time.Now()
	c.StopAPIServer()
	stopped := time.Since(stopAt)
	t.Cleanup(func() {
		if c.PID() == 0 { // leave the shared cluster running for the next test
			c.StartAPIServer(context.Background())
		}
	})
	if err := c.StartAPIServer(ctxFor(t, 2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	backAt := time.Now()
	close(stopProbe)
	<-probed
	t.Logf("kube-apiserver restarted: stopped in %v (StopGrace %v), ready %v after exec, down %v in all",
		stopped.Round(time.Millisecond), cluster.StopGrace, c.ReadyAfter().Round(time.Millisecond), backAt.Sub(stopAt).Round(time.Millisecond))
	t.Logf("GET of the Lease as byname every 50 ms, from the stop: %s", probe.summary(stopAt))
	if !holder.l.CheckAlive() {
		t.Fatalf("the holder lost its lease during a %v restart (TTL %v)", backAt.Sub(stopAt), defaultTTL)
	}
	for _, m := range standbys {
		select {
		case at := <-m.s.started:
			t.Fatalf("%s started work %v after the stop, while the holder held", m.name, at.Sub(stopAt))
		default:
		}
	}

	holder.s.stop(t)
	released := time.Now()
	if !errors.Is(holder.s.err, context.Canceled) {
		t.Errorf("holder RunSingleton = %v, want context.Canceled (and a clean Release)", holder.s.err)
	}
	var (
		startedAt time.Time
		first     string
	)
	select {
	case startedAt = <-standbys[0].s.started:
		first = standbys[0].name
	case startedAt = <-standbys[1].s.started:
		first = standbys[1].name
	case <-time.After(bound + 5*time.Second):
		t.Errorf("no standby took over within %v of the server's return", bound+5*time.Second)
	}
	if first != "" {
		t.Logf("%s's work started %v after the server was back, %v after the holder's Release returned (bound: %v after the server is back)",
			first, startedAt.Sub(backAt).Round(time.Millisecond), startedAt.Sub(released).Round(time.Millisecond), bound)
		if d := startedAt.Sub(backAt); d > bound {
			t.Errorf("%s took over %v after the server was back, want within %v", first, d, bound)
		}
	}
	for _, m := range standbys {
		recs := m.tr.records(stopAt, time.Time{})
		t.Logf("%s: %d requests from the stop (t=0; server back at %+.3fs, holder released at %+.3fs): %s%s",
			m.name, len(recs), backAt.Sub(stopAt).Seconds(), released.Sub(stopAt).Seconds(), byKind(recs), story(shorten(recs), stopAt))
		if len(recs) > maxRequests {
			t.Errorf("%s sent %d requests from the stop, want at most %d (reconnects with backoff, one re-read after a 410, Acquire)", m.name, len(recs), maxRequests)
		}
	}
	for _, m := range append(standbys, holder) {
		if refused := m.logs.matching(refusedWarning); len(refused) > 0 {
			t.Errorf("%s took an answer of the restarting kube-apiserver for a refusal to watch and polls every "+
				"RenewalInterval from then on (12 requests/min instead of about 1), although its Role grants watch:\n%s", m.name, refused[0])
		}
	}
	overlap.finish(t)

	// What a watch from an unchanged Lease's resourceVersion gets now.
	ctx := ctxFor(t, 30*time.Second)
	var obj struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	code, body, err := c.Do(ctx, cluster.AdminToken, http.MethodGet, leasesPath+static, nil)
	if err != nil || code != http.StatusOK || json.Unmarshal(body, &obj) != nil {
		t.Fatalf("GET lease %s: %d %v %.200s", static, code, err, body)
	}
	code, body, err = c.Do(ctx, cluster.AdminToken, http.MethodGet, leasesCollPath+"?fieldSelector=metadata.name%3D"+static, nil)
	var list struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if err != nil || code != http.StatusOK || json.Unmarshal(body, &list) != nil {
		t.Fatalf("LIST leases %s: %d %v %.200s", static, code, err, body)
	}
	for _, w := range []struct{ what, rv string }{{"the GET's (the object's)", obj.Metadata.ResourceVersion}, {"the list's", list.Metadata.ResourceVersion}} {
		code, body, err := c.Do(ctx, cluster.AdminToken, http.MethodGet,
			leasesCollPath+"?watch=true&timeoutSeconds=1&fieldSelector=metadata.name%3D"+static+"&resourceVersion="+w.rv, nil)
		t.Logf("after the restart, a watch from %s resourceVersion %s: %d %v %.300s", w.what, w.rv, code, err, bytes.TrimSpace(body))
	}
}

// shorten keeps the first and last 8 of many records, so a busy loop does
// not flood the log.
func shorten(recs []reqRecord) []reqRecord {
	if len(recs) <= 20 {
		return recs
	}
	out := append([]reqRecord{}, recs[:8]...)
	out = append(out, reqRecord{at: recs[8].at, kind: fmt.Sprintf("... %d more", len(recs)-16), done: true, err: errors.New("elided")})
	return append(out, recs[len(recs)-8:]...)
}
