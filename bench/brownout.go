package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/e2e/cluster"
	"github.com/kubelease/lease/e2e/faultproxy"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// The outage kinds of the brownout campaign.
const (
	// BrownoutLatency: the server answers every request L after it
	// arrived (a ModeHTTP Latency fault on both candidates' proxies), for
	// BrownoutParams.LatencyFor; the trial's X is L.
	BrownoutLatency = "latency"
	// BrownoutBlackhole: the holder's proxy accepts and reads but passes
	// nothing for D; connections open meanwhile stay dead afterwards (a
	// partition of the holder, or a middlebox that lost its state).
	BrownoutBlackhole = "blackhole"
	// BrownoutBlackholeDeliver: the same, but the held bytes are delivered
	// when it ends (packets lost for D, then retransmitted).
	BrownoutBlackholeDeliver = "blackhole-deliver"
	// BrownoutReset: the holder's connections are reset and new ones
	// refused for D.
	BrownoutReset = "reset"
	// Brownout429: both candidates' proxies answer every request 429 with
	// Retry-After: 1 for D (a 429 storm).
	Brownout429 = "429"
	// BrownoutAPF: the server itself sheds: a load generator fills the
	// one-seat APF priority level the candidates' user is in (see
	// cluster.Shedding) for D. Every lane at once.
	BrownoutAPF = "apf"
)

// BrownoutKinds are all kinds, in report order.
var BrownoutKinds = []string{BrownoutLatency, BrownoutBlackhole, BrownoutBlackholeDeliver, BrownoutReset, Brownout429, BrownoutAPF}

// The documented goal: kubelease keeps its lease through any outage (but
// latency) that ends at least goalMargin before its deadline; through
// latency brownouts where the server answers within goalLatency.
const (
	goalMargin  = 1500 * time.Millisecond
	goalLatency = 4 * time.Second
)

// BrownoutParams size the campaign.
type BrownoutParams struct {
	// Lanes is the number of Leases per library run at once, each with a
	// holder and a standby behind their own proxies.
	Lanes int
	// Rounds: each lane runs every cell Rounds times, so a cell has
	// Lanes×Rounds trials per library.
	Rounds int
	// Grid are the outage lengths D.
	Grid []time.Duration
	// Latencies are the L of latency brownouts, each lasting LatencyFor.
	Latencies  []time.Duration
	LatencyFor time.Duration
	// Kinds to run (nil: all).
	Kinds []string
	// Seed seeds the schedule.
	Seed uint64
}

// BrownoutTrial is one outage for one library.
type BrownoutTrial struct {
	Lib  Lib    `json:"lib"`
	Lane int    `json:"lane"`
	Kind string `json:"kind"`
	// X is D, or L for latency.
	X time.Duration `json:"x"`
	// Outage is how long the fault lasted.
	Outage time.Duration `json:"outage"`
	// Phase is the seeded fraction of the renewal cycle (kubelease:
	// RenewalInterval 5 s, client-go: RetryPeriod 2 s) after a renewal at
	// which the outage started (APF: not controlled, -1).
	Phase float64 `json:"phase"`
	// SinceRenewal is from the holder's last successful renewal to the
	// outage's start.
	SinceRenewal time.Duration `json:"sinceRenewal"`
	// Left is from the outage's end to the holder's deadline then
	// (kubelease: its own, from Observer.Renewed; client-go: the last
	// renewal + LeaseDuration).
	Left time.Duration `json:"left"`
	// Kept: the holder renewed after the outage and was still leading
	// quietAfter (11 s) after it.
	Kept bool `json:"kept"`
	// LostLate: it renewed after the outage but lost its lease within
	// quietAfter all the same.
	LostLate bool `json:"lostLate,omitempty"`
	// Overlap: another tenure of the Lease began while the holder still
	// led (its work still ran).
	Overlap bool `json:"overlap,omitempty"`
	// ShouldKeep: kubelease's documented goal says it keeps this one.
	ShouldKeep bool `json:"shouldKeep"`
	// Leaderless is how long the lane had no leader after a loss.
	Leaderless time.Duration `json:"leaderless"`
	// Trace is the holder's renewal events around the outage, for losses
	// kubelease should not have had (times from the outage's start).
	Trace []string `json:"trace,omitempty"`
	Err   string   `json:"err,omitempty"`
}

// BrownoutFence is what the fenced stores of one library saw.
type BrownoutFence struct {
	Lib      Lib `json:"lib"`
	Tenures  int `json:"tenures"`
	Writes   int `json:"writes"`
	Stale    int `json:"stale"`
	Overlaps int `json:"overlaps"`
	// OverlapTime is the total time two tenures of one lane overlapped.
	OverlapTime time.Duration `json:"overlapTime"`
	// Notes describe each overlap.
	Notes []string `json:"notes,omitempty"`
}

// BrownoutResult is the brownout campaign.
type BrownoutResult struct {
	Started    time.Time       `json:"started"`
	Took       time.Duration   `json:"took"`
	Quick      bool            `json:"quick"`
	Seed       uint64          `json:"seed"`
	Lanes      int             `json:"lanes"`
	Rounds     int             `json:"rounds"`
	Grid       []time.Duration `json:"grid"`
	Latencies  []time.Duration `json:"latencies"`
	LatencyFor time.Duration   `json:"latencyFor"`
	Trials     []BrownoutTrial `json:"trials"`
	Fences     []BrownoutFence `json:"fences"`
	// ShedLoad is what the APF load generator sent and how much of it the
	// server shed; ShedHolder counts the candidates' requests the server
	// answered 429.
	ShedLoad   cluster.LoadStats `json:"shedLoad"`
	ShedHolder int64             `json:"shedHolder"`
}

// RunBrownout runs the campaign on a kube-apiserver of its own (with
// cluster.Shedding), both libraries side by side.
func RunBrownout(ctx context.Context, p BrownoutParams, quick bool, logf func(string, ...any)) (*BrownoutResult, error) {
	res := &BrownoutResult{Started: time.Now(), Quick: quick, Seed: p.Seed, Lanes: p.Lanes, Rounds: p.Rounds, Grid: p.Grid, Latencies: p.Latencies, LatencyFor: p.LatencyFor}
	if p.Kinds == nil {
		p.Kinds = BrownoutKinds
	}
	bctx, cancel := context.WithTimeout(ctx, 45*time.Minute)
	bin, err := cluster.Binary(bctx)
	cancel()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kubelease-brownout-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	cl, err := cluster.NewWithOptions(cctx, bin, dir, cluster.Options{Shedding: &cluster.Shedding{QueueLength: 8}})
	cancel()
	if err != nil {
		return nil, err
	}
	defer cl.Stop()
	upstream, err := faultproxy.UpstreamAddr(cl.URL)
	if err != nil {
		return nil, err
	}

	var lanes []*bLane
	defer func() {
		for _, l := range lanes {
			l.stop()
		}
	}()
	for i := range p.Lanes {
		for _, lib := range Libs {
			l, err := newLane(cl, upstream, lib, i)
			if err != nil {
				return nil, err
			}
			lanes = append(lanes, l)
		}
	}
	for _, l := range lanes {
		l.start()
	}
	logf("brownout: %d lanes per library on %s; waiting for leaders", p.Lanes, cl.URL)

	// The schedule: every (kind, x) cell Rounds times per lane, shuffled
	// with the seed; the same list for both libraries' lanes i.
	type spec struct {
		kind  string
		x     time.Duration
		phase float64
	}
	rng := rand.New(rand.NewPCG(p.Seed, 0x6b75626c65617365))
	var proxyKinds []string
	for _, k := range p.Kinds {
		if k != BrownoutAPF {
			proxyKinds = append(proxyKinds, k)
		}
	}
	schedules := make([][]spec, p.Lanes)
	for i := range p.Lanes {
		var s []spec
		for range p.Rounds {
			for _, k := range proxyKinds {
				xs := p.Grid
				if k == BrownoutLatency {
					xs = p.Latencies
				}
				for _, x := range xs {
					s = append(s, spec{kind: k, x: x, phase: rng.Float64()})
				}
			}
		}
		rng.Shuffle(len(s), func(a, b int) { s[a], s[b] = s[b], s[a] })
		schedules[i] = s
	}
	var mu sync.Mutex
	add := func(t BrownoutTrial) {
		mu.Lock()
		res.Trials = append(res.Trials, t)
		mu.Unlock()
		verdict := "kept"
		if t.LostLate {
			verdict = "renewed after the outage, then "
		}
		if !t.Kept {
			verdict = strings.TrimSuffix(verdict, "kept") + fmt.Sprintf("LOST (leaderless %v)", t.Leaderless.Round(10*time.Millisecond))
			if t.ShouldKeep && t.Lib == Kubelease {
				verdict += " — GOAL MISSED"
			}
		}
		if t.Overlap {
			verdict += " — OVERLAP: a new leader began while it still led"
		}
		if t.Err != "" {
			verdict = "error: " + t.Err
		}
		logf("  %s lane %d %s %v: since renewal %v, left %v: %s", t.Lib, t.Lane, t.Kind, t.X, t.SinceRenewal.Round(10*time.Millisecond), t.Left.Round(10*time.Millisecond), verdict)
	}
	var wg sync.WaitGroup
	for _, l := range lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var pend pending
			for _, s := range schedules[l.idx] {
				if ctx.Err() != nil {
					break
				}
				d := s.x
				if s.kind == BrownoutLatency {
					d = p.LatencyFor
				}
				l.confirm(ctx, &pend, add)
				tr, t, start, end := l.proxyTrial(ctx, s.kind, s.x, d, s.phase)
				pend = pending{&tr, t, start, end}
			}
			l.confirm(ctx, &pend, add)
		}()
	}
	wg.Wait()

	if slices.Contains(p.Kinds, BrownoutAPF) {
		var xs []time.Duration
		for range p.Rounds {
			xs = append(xs, p.Grid...)
		}
		rng.Shuffle(len(xs), func(a, b int) { xs[a], xs[b] = xs[b], xs[a] })
		pends := make([]pending, len(lanes))
		confirmAll := func() {
			var wg sync.WaitGroup
			for i, l := range lanes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					l.confirm(ctx, &pends[i], add)
				}()
			}
			wg.Wait()
		}
		for _, d := range xs {
			if ctx.Err() != nil {
				break
			}
			confirmAll()
			ls := apfTrial(ctx, cl, lanes, d, rng.Float64(), pends)
			res.ShedLoad.Requests += ls.Requests
			res.ShedLoad.Rejected += ls.Rejected
		}
		confirmAll()
	}
	for _, lib := range Libs {
		f := BrownoutFence{Lib: lib}
		for _, l := range lanes {
			if l.lib == lib {
				l.mu.Lock()
				f.Tenures += len(l.tenures)
				f.Writes += l.writes
				f.Stale += l.stale
				f.Overlaps += l.overlaps
				f.OverlapTime += l.overlapTime
				f.Notes = append(f.Notes, l.notes...)
				l.mu.Unlock()
			}
		}
		res.Fences = append(res.Fences, f)
	}
	for _, l := range lanes {
		for _, c := range l.cands {
			res.ShedHolder += c.shed()
		}
	}
	res.Took = time.Since(res.Started)
	return res, ctx.Err()
}

// apfTrial fills the shed priority level for d, starting u×5 s after
// every lane has a settled leader, and returns each lane's outcome.
func apfTrial(ctx context.Context, cl *cluster.Cluster, lanes []*bLane, d time.Duration, u float64, pends []pending) cluster.LoadStats {
	for _, l := range lanes {
		l.settled(ctx)
	}
	if !sleepCtx(ctx, time.Duration(u*float64(5*time.Second))) {
		return cluster.LoadStats{}
	}
	type before struct {
		t          *bTenure
		last, dead time.Time
	}
	bs := make([]before, len(lanes))
	for i, l := range lanes {
		t := l.current()
		bs[i].t = t
		if t != nil {
			bs[i].last, bs[i].dead = t.cand.renewal()
		}
	}
	start := time.Now()
	stop := cl.Overload(8+1+4, time.Second)
	sleepCtx(ctx, d)
	ls := stop()
	end := time.Now()
	var wg sync.WaitGroup
	for i, l := range lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &BrownoutTrial{Lib: l.lib, Lane: l.idx, Kind: BrownoutAPF, X: d, Outage: end.Sub(start), Phase: -1}
			b := bs[i]
			pends[i] = pending{tr, b.t, start, end}
			if b.t == nil {
				tr.Err = "no leader at the outage's start"
				return
			}
			tr.SinceRenewal, tr.Left = start.Sub(b.last), b.dead.Sub(end)
			tr.ShouldKeep = tr.Left >= goalMargin
			l.outcome(ctx, b.t, start, end, b.last, tr)
		}()
	}
	wg.Wait()
	return ls
}

// pending is a trial whose outcome is confirmed before the lane's next
// outage: a holder that renewed after an outage may still lose its lease
// a little later (client-go on a connection that the outage left dead).
type pending struct {
	tr         *BrownoutTrial
	t          *bTenure
	start, end time.Time
}

// quietAfter is how long after an outage its kept verdict is confirmed,
// and the lane's next outage may start: client-go's RenewDeadline (and
// more than kubelease's longest attempt, 10 s).
const quietAfter = RenewDeadline + time.Second

// confirm waits until quietAfter after p's outage, then marks a kept
// trial lost if its tenure ended meanwhile, and hands p's trial to add.
func (l *bLane) confirm(ctx context.Context, p *pending, add func(BrownoutTrial)) {
	if p.tr == nil {
		return
	}
	defer func() { *p = pending{} }()
	tr := p.tr
	if p.t != nil {
		defer p.t.cand.trace(false)
	}
	if tr.Kept && tr.Err == "" {
		sleepCtx(ctx, time.Until(p.end.Add(quietAfter)))
		if l.current() != p.t {
			tr.Kept, tr.LostLate = false, true
			if tr.ShouldKeep && l.lib == Kubelease {
				tr.Trace = p.t.cand.traceSince(p.start)
			}
			l.mu.Lock()
			lostAt := p.t.end
			l.mu.Unlock()
			if lostAt.IsZero() {
				tr.Overlap = true
			} else if next := l.settledAfter(ctx, lostAt, 60*time.Second); !next.IsZero() {
				tr.Leaderless = next.Sub(lostAt)
			} else {
				tr.Err = "no leader within 60 s of the loss"
			}
		}
	} else {
		sleepCtx(ctx, time.Until(p.end.Add(quietAfter)))
	}
	add(*tr)
}

// bLane is one Lease of one library: two candidates, each behind its own
// fault proxy, and the fenced store their work writes to.
type bLane struct {
	lib   Lib
	idx   int
	name  string
	cands [2]*bCand

	mu          sync.Mutex
	tenures     []*bTenure
	active      *bTenure
	changed     chan struct{} // closed and replaced when a tenure starts or ends
	seq         int64         // client-go's fencing sequence
	maxKL       lease.Token   // the fence: highest kubelease token written
	maxSeq      int64         // the fence: highest client-go sequence written
	writes      int
	stale       int
	overlaps    int
	overlapTime time.Duration
	notes       []string
	lastOutage  string // the last outage started, for notes
}

// bTenure is one tenure: work running on a candidate.
type bTenure struct {
	cand       *bCand
	start, end time.Time // end zero while it runs
	kl         lease.Token
	seq        int64
}

func newLane(cl *cluster.Cluster, upstream string, lib Lib, idx int) (*bLane, error) {
	l := &bLane{lib: lib, idx: idx, name: fmt.Sprintf("brownout-%s-%d", lib, idx), changed: make(chan struct{})}
	for i := range l.cands {
		px, err := faultproxy.New(upstream, faultproxy.Options{Mode: faultproxy.ModeHTTP, UpstreamCA: cl.CAData()})
		if err != nil {
			return nil, err
		}
		c := &bCand{lane: l, id: fmt.Sprintf("%s-%c", l.name, 'a'+i), proxy: px, renewed: make(chan struct{})}
		if err := c.build(cl); err != nil {
			px.Close()
			return nil, err
		}
		l.cands[i] = c
	}
	return l, nil
}

func (l *bLane) start() {
	for _, c := range l.cands {
		c.start()
	}
}

func (l *bLane) stop() {
	for _, c := range l.cands {
		if c != nil {
			c.stop()
		}
	}
}

// begin records a tenure of c starting (work writes its token first) and
// counts an overlap if another is running.
func (l *bLane) begin(c *bCand, kl lease.Token) *bTenure {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := &bTenure{cand: c, start: time.Now(), kl: kl}
	if l.lib == ClientGo {
		l.seq++
		t.seq = l.seq
	}
	if a := l.active; a != nil && a.end.IsZero() {
		l.overlaps++ // its time is counted when the older one ends
	}
	l.tenures = append(l.tenures, t)
	l.active = t
	l.writeLocked(t)
	l.notifyLocked()
	return t
}

func (l *bLane) finish(t *bTenure) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t.end = time.Now()
	for _, o := range l.tenures {
		if o != t && o.start.After(t.start) && o.start.Before(t.end) {
			l.overlapTime += t.end.Sub(o.start)
			l.notes = append(l.notes, fmt.Sprintf("%s: %s's tenure (since %s) ran until %s, %v after %s's began (last outage: %s)",
				l.name, t.cand.id, t.start.Format("15:04:05.000"), t.end.Format("15:04:05.000"), t.end.Sub(o.start).Round(time.Millisecond), o.cand.id, l.lastOutage))
		}
	}
	l.notifyLocked()
}

func (l *bLane) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// write is one fenced write by tenure t: refused (stale) if a later
// tenure has written already.
func (l *bLane) write(t *bTenure) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writeLocked(t)
}

func (l *bLane) writeLocked(t *bTenure) {
	l.writes++
	if l.lib == ClientGo {
		if t.seq < l.maxSeq {
			l.stale++
			return
		}
		l.maxSeq = t.seq
		return
	}
	if !l.maxKL.IsZero() {
		c, err := t.kl.Compare(l.maxKL)
		if err != nil || c < 0 {
			l.stale++
			return
		}
	}
	l.maxKL = t.kl
}

// current returns the running tenure, nil if none.
func (l *bLane) current() *bTenure {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active != nil && l.active.end.IsZero() {
		return l.active
	}
	return nil
}

func (l *bLane) watch() (*bTenure, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active != nil && l.active.end.IsZero() {
		return l.active, l.changed
	}
	return nil, l.changed
}

// settled waits (up to 90 s) until a tenure runs whose holder has renewed
// since it started, and returns it.
func (l *bLane) settled(ctx context.Context) *bTenure {
	deadline := time.After(90 * time.Second)
	for {
		t, changed := l.watch()
		var renewed <-chan struct{}
		if t != nil {
			var last time.Time
			last, _, renewed = t.cand.renewalCh()
			if last.After(t.start) {
				return t
			}
		}
		select {
		case <-changed:
		case <-renewed:
		case <-deadline:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// proxyTrial runs one outage of kind on this lane's proxies.
func (l *bLane) proxyTrial(ctx context.Context, kind string, x, d time.Duration, phase float64) (_ BrownoutTrial, _ *bTenure, start, end time.Time) {
	tr := BrownoutTrial{Lib: l.lib, Lane: l.idx, Kind: kind, X: x, Phase: phase}
	t := l.settled(ctx)
	if t == nil {
		tr.Err = "no settled leader within 90 s"
		return tr, nil, time.Now(), time.Now()
	}
	// Wait for the holder's next renewal, then phase × its cycle.
	_, _, renewed := t.cand.renewalCh()
	select {
	case <-renewed:
	case <-time.After(15 * time.Second):
	case <-ctx.Done():
		return tr, t, time.Now(), time.Now()
	}
	cycle := 5 * time.Second // kubelease: RenewalInterval = TTL/3
	if l.lib == ClientGo {
		cycle = RetryPeriod
	}
	if !sleepCtx(ctx, time.Duration(phase*float64(cycle))) {
		return tr, t, time.Now(), time.Now()
	}
	if l.current() != t {
		tr.Err = "the tenure changed before the outage"
		return tr, t, time.Now(), time.Now()
	}
	f := faultproxy.Fault{Duration: d}
	targets := []*bCand{t.cand}
	switch kind {
	case BrownoutLatency:
		f.Kind, f.Latency, targets = faultproxy.Latency, x, l.cands[:]
	case BrownoutBlackhole:
		f.Kind = faultproxy.Blackhole
	case BrownoutBlackholeDeliver:
		f.Kind, f.Deliver = faultproxy.Blackhole, true
	case BrownoutReset:
		f.Kind = faultproxy.Reset
	case Brownout429:
		f.Kind, f.Status, f.RetryAfter, targets = faultproxy.Status, http.StatusTooManyRequests, time.Second, l.cands[:]
	default:
		tr.Err = "unknown kind " + kind
		return tr, t, time.Now(), time.Now()
	}
	last, dead := t.cand.renewal()
	t.cand.trace(true)
	start = time.Now()
	l.mu.Lock()
	l.lastOutage = fmt.Sprintf("%s %v on %s at %s", kind, x, t.cand.id, start.Format("15:04:05.000"))
	l.mu.Unlock()
	var ends []<-chan struct{}
	for _, c := range targets {
		ends = append(ends, c.proxy.Set(f))
	}
	for _, e := range ends {
		<-e
	}
	end = time.Now()
	tr.Outage = end.Sub(start)
	tr.SinceRenewal, tr.Left = start.Sub(last), dead.Sub(end)
	if kind == BrownoutLatency {
		tr.ShouldKeep = x <= goalLatency
	} else {
		tr.ShouldKeep = tr.Left >= goalMargin
	}
	l.outcome(ctx, t, start, end, last, &tr)
	return tr, t, start, end
}

// outcome decides whether tenure t survived an outage [start, end]: kept
// once its holder renews after end (or, failing a renewal, still leading
// at max(end + 3 s, last + LeaseDuration + 2 s)); lost when it ends. After
// a loss it waits (up to 60 s) for the lane's next leader.
func (l *bLane) outcome(ctx context.Context, t *bTenure, start, end, last time.Time, tr *BrownoutTrial) {
	bound := time.After(time.Until(later(end.Add(3*time.Second), last.Add(LeaseDuration+2*time.Second))))
	for {
		cur, changed := l.watch()
		if cur != t {
			break // lost
		}
		_, _, renewed := t.cand.renewalCh()
		if t.cand.answered().After(end) {
			tr.Kept = true
			return
		}
		select {
		case <-changed:
		case <-renewed:
		case <-bound:
			tr.Kept = l.current() == t
			if tr.Kept {
				return
			}
		case <-ctx.Done():
			tr.Err = "interrupted"
			return
		}
	}
	l.mu.Lock()
	lostAt := t.end
	l.mu.Unlock()
	if tr.ShouldKeep && l.lib == Kubelease {
		tr.Trace = t.cand.traceSince(start)
	}
	if lostAt.IsZero() {
		// Another tenure began while t still runs: an overlap (counted
		// by the lane), no time without a leader.
		tr.Overlap = true
		return
	}
	next := l.settledAfter(ctx, lostAt, 60*time.Second)
	if next.IsZero() {
		tr.Leaderless = -1
		tr.Err = "no leader within 60 s of the loss"
		return
	}
	tr.Leaderless = next.Sub(lostAt)
}

// settledAfter waits up to max for a tenure that started after at, and
// returns its start (zero if none came).
func (l *bLane) settledAfter(ctx context.Context, at time.Time, max time.Duration) time.Time {
	deadline := time.After(max)
	for {
		cur, changed := l.watch()
		if cur != nil {
			// The next leader (it may have begun before the loss: an
			// overlap, counted by the lane).
			return later(cur.start, at)
		}
		select {
		case <-changed:
		case <-deadline:
			return time.Time{}
		case <-ctx.Done():
			return time.Time{}
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// bCand is one candidate: kubelease's RunSingleton or client-go's
// LeaderElector (re-run after each loss), its requests through its proxy
// as the user "shed".
type bCand struct {
	lane  *bLane
	id    string
	proxy *faultproxy.Proxy
	run   func(ctx context.Context)

	mu        sync.Mutex
	lastOK    time.Time // last successful renewal (kubelease: its stamp; client-go: the PUT's start)
	lastDone  time.Time // when it was answered
	deadline  time.Time
	renewed   chan struct{}
	tracing   bool
	events    []traceEvent
	shedCount int64

	cancel context.CancelFunc
	done   chan struct{}
}

type traceEvent struct {
	at   time.Time
	what string
}

func (c *bCand) build(cl *cluster.Cluster) error {
	l := c.lane
	switch l.lib {
	case Kubelease:
		kl, err := lease.NewKubernetesLease(lease.Settings{
			Name: l.name, Owner: c.id, TTL: LeaseDuration,
			Config:   c.proxy.Config(cl.Config(cluster.ShedToken)),
			Observer: klObserver{c},
		})
		if err != nil {
			return err
		}
		var tok lease.Token
		opts := lease.SingletonOptions{OnStarted: func(t lease.Token) { tok = t }}
		c.run = func(ctx context.Context) {
			_ = lease.RunSingleton(ctx, kl, func(wctx context.Context) error {
				c.work(wctx, tok)
				return nil
			}, opts)
		}
	case ClientGo:
		rc := &rest.Config{
			Host:            c.proxy.URL(),
			BearerToken:     cluster.ShedToken,
			TLSClientConfig: rest.TLSClientConfig{CAData: c.proxy.CAData()},
			WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
				return cgTap{c: c, inner: rt}
			},
		}
		cs, err := coordinationv1client.NewForConfig(rc)
		if err != nil {
			return err
		}
		c.run = func(ctx context.Context) {
			for ctx.Err() == nil {
				le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
					Lock: &resourcelock.LeaseLock{
						LeaseMeta:  metav1.ObjectMeta{Name: l.name, Namespace: cluster.Namespace},
						Client:     cs,
						LockConfig: resourcelock.ResourceLockConfig{Identity: c.id},
					},
					LeaseDuration:   LeaseDuration,
					RenewDeadline:   RenewDeadline,
					RetryPeriod:     RetryPeriod,
					ReleaseOnCancel: true,
					Name:            l.name,
					Callbacks: leaderelection.LeaderCallbacks{
						OnStartedLeading: func(wctx context.Context) { c.work(wctx, lease.Token{}) },
						OnStoppedLeading: func() {},
					},
				})
				if err != nil {
					return
				}
				le.Run(ctx)
			}
		}
	}
	return nil
}

// work runs while c leads: it writes its token to the lane's fenced store
// first, then every 100 ms until ctx ends.
func (c *bCand) work(ctx context.Context, tok lease.Token) {
	t := c.lane.begin(c, tok)
	defer c.lane.finish(t)
	c.noteEvent("work started")
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			c.noteEvent("work stopped")
			return
		case <-tick.C:
			c.lane.write(t)
		}
	}
}

func (c *bCand) start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	go func() {
		defer close(c.done)
		c.run(ctx)
	}()
}

func (c *bCand) stop() {
	c.proxy.Clear()
	if c.cancel != nil {
		c.cancel()
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
		}
	}
	c.proxy.Close()
}

// noteRenew records a successful renewal stamped at (the lease's deadline
// then dead).
func (c *bCand) noteRenew(at, dead time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at.After(c.lastOK) {
		c.lastOK, c.deadline = at, dead
	}
	c.lastDone = time.Now()
	close(c.renewed)
	c.renewed = make(chan struct{})
	c.noteEventLocked("renewed, deadline in " + time.Until(dead).Round(time.Millisecond).String())
}

func (c *bCand) renewal() (last, dead time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastOK, c.deadline
}

func (c *bCand) renewalCh() (last, dead time.Time, renewed <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastOK, c.deadline, c.renewed
}

// answered is when the last successful renewal was answered.
func (c *bCand) answered() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastDone
}

func (c *bCand) noteEvent(what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.noteEventLocked(what)
}

func (c *bCand) noteEventLocked(what string) {
	if c.tracing {
		c.events = append(c.events, traceEvent{time.Now(), what})
	}
}

// trace turns the event trace on (clearing it) or off.
func (c *bCand) trace(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tracing = on
	if on {
		c.events = c.events[:0]
	}
}

func (c *bCand) traceSince(t0 time.Time) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.events))
	for _, e := range c.events {
		out = append(out, fmt.Sprintf("%+.3fs %s", e.at.Sub(t0).Seconds(), e.what))
	}
	return out
}

func (c *bCand) shed() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shedCount
}

func (c *bCand) noteShed() {
	c.mu.Lock()
	c.shedCount++
	c.mu.Unlock()
}

// klObserver feeds a kubelease candidate's renewals into bCand.
type klObserver struct{ c *bCand }

func (o klObserver) Acquired(lease.Token) {
	now := time.Now()
	o.c.noteRenew(now, now.Add(LeaseDuration-LeaseDuration/50))
}

func (o klObserver) Renewed(latency, left time.Duration) {
	now := time.Now()
	o.c.noteRenew(now.Add(-latency), now.Add(left))
}

func (o klObserver) RenewFailed(err error) {
	var apiErr *lease.APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusTooManyRequests {
		o.c.noteShed()
	}
	msg := err.Error()
	if len(msg) > 160 {
		msg = msg[:160]
	}
	o.c.noteEvent("renew attempt failed: " + msg)
}

func (o klObserver) Lost(r lease.LostReason) { o.c.noteEvent("lost: " + string(r)) }
func (o klObserver) Released()               {}

// cgTap sees client-go's answers: a 200 to a PUT (or 201 to a POST) of
// its Lease is a renewal (or an acquisition), stamped when it was sent.
type cgTap struct {
	c     *bCand
	inner http.RoundTripper
}

func (t cgTap) RoundTrip(req *http.Request) (*http.Response, error) {
	sent := time.Now()
	resp, err := t.inner.RoundTrip(req)
	if err != nil {
		t.c.noteEvent(req.Method + " failed: " + err.Error())
		return resp, err
	}
	if strings.Contains(req.URL.Path, "/leases") {
		switch {
		case (req.Method == http.MethodPut && resp.StatusCode == http.StatusOK) || (req.Method == http.MethodPost && resp.StatusCode == http.StatusCreated):
			t.c.noteRenew(sent, sent.Add(LeaseDuration))
		case resp.StatusCode == http.StatusTooManyRequests:
			t.c.noteShed()
			t.c.noteEvent(req.Method + " 429")
		default:
			if resp.StatusCode >= 300 && req.Method == http.MethodPut {
				t.c.noteEvent(fmt.Sprintf("%s %d", req.Method, resp.StatusCode))
			}
		}
	}
	return resp, err
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
