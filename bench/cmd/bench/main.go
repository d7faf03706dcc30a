// Command bench runs kubelease and client-go's leader election side by
// side against the leasetest fake and a real kube-apiserver, and writes
// BENCHMARKS.md, the latency chart and the raw results.
//
// Usage (from the bench module; `make bench` runs bench/run.sh):
//
//	go build -o /tmp/kubelease-bench ./cmd/bench
//	/tmp/kubelease-bench -out ../BENCHMARKS.md -chart ../docs/latency.png -json results.json
//
// -quick runs a small version of everything (about 5 minutes) to check the
// harness; -report-only rewrites the report and chart from -json.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubelease/lease/bench"
)

// params size a run.
type params struct {
	steadyLeases       int           // Leases per library in the steady state
	steadyWarm, window time.Duration // its warm-up and counting window
	handoffPairs, each int           // Leases at once, handoffs on each
	failoverTrials     int           // crash trials per variant, all at once
	contenders         []int         // contention sizes
	contentionTrials   int           // trials per size and library
	scale              []bench.ScaleParams
	shards             []bench.ShardParams // shard sets on every backend
	shardsFake         []bench.ShardParams // and on the fake only
	benchtime          string              // -test.benchtime of the per-renewal benchmarks
	rollout            bench.RolloutParams // rolling updates per variant (kube-apiserver)
	brownout           bench.BrownoutParams
}

// sec is n seconds.
func sec(n ...float64) []time.Duration {
	out := make([]time.Duration, len(n))
	for i, v := range n {
		out[i] = time.Duration(v * float64(time.Second))
	}
	return out
}

func fullParams() params {
	return params{
		steadyLeases: 20, steadyWarm: 8 * time.Second, window: 60 * time.Second,
		handoffPairs: 20, each: 6,
		failoverTrials:   20,
		contenders:       []int{10, 50},
		contentionTrials: 3,
		scale: []bench.ScaleParams{
			{Lib: bench.Kubelease, N: 1000, Hold: 2 * time.Minute, Ramp: 5 * time.Second},
			{Lib: bench.ClientGo, N: 1000, Hold: 2 * time.Minute, Ramp: 5 * time.Second},
			{Lib: bench.Kubelease, N: 10000, Hold: 2 * time.Minute, Ramp: 5 * time.Second},
			// The standby window is one ResyncInterval (1 min), so that
			// each standby's safety-net re-read falls in it once.
			{Lib: bench.Kubelease, Role: bench.ScaleStandby, N: 1000, Hold: time.Minute, Ramp: 5 * time.Second},
			{Lib: bench.Kubelease, Role: bench.ScaleStandby, Shared: true, N: 10000, Hold: time.Minute, Ramp: 5 * time.Second},
		},
		shards:     []bench.ShardParams{{Shards: 100, Members: 5, Warm: 5 * time.Second, Window: time.Minute, Changes: true, Cycles: 3}},
		shardsFake: []bench.ShardParams{{Shards: 1000, Members: 10, Warm: 10 * time.Second, Window: time.Minute}},
		benchtime:  "3s",
		rollout:    bench.RolloutParams{Replicas: 3, Rollouts: 5, StartDelay: 3 * time.Second, ReadyDelay: 3 * time.Second},
		brownout: bench.BrownoutParams{
			Lanes: 3, Rounds: 1,
			Grid:      sec(4, 8, 10, 11, 12, 13, 14),
			Latencies: sec(2, 4, 6), LatencyFor: 12 * time.Second,
		},
	}
}

func quickParams() params {
	return params{
		steadyLeases: 3, steadyWarm: 3 * time.Second, window: 15 * time.Second,
		handoffPairs: 3, each: 3,
		failoverTrials:   2,
		contenders:       []int{10, 50},
		contentionTrials: 1,
		scale: []bench.ScaleParams{
			{Lib: bench.Kubelease, N: 300, Hold: 20 * time.Second, Ramp: 2 * time.Second},
			{Lib: bench.ClientGo, N: 300, Hold: 20 * time.Second, Ramp: 2 * time.Second},
			{Lib: bench.Kubelease, Role: bench.ScaleStandby, N: 300, Hold: 20 * time.Second, Ramp: 2 * time.Second},
			{Lib: bench.Kubelease, Role: bench.ScaleStandby, Shared: true, N: 300, Hold: 20 * time.Second, Ramp: 2 * time.Second},
		},
		shards:     []bench.ShardParams{{Shards: 100, Members: 5, Warm: 3 * time.Second, Window: 15 * time.Second, Changes: true, Cycles: 2}},
		shardsFake: []bench.ShardParams{{Shards: 1000, Members: 10, Warm: 3 * time.Second, Window: 15 * time.Second}},
		benchtime:  "1s",
		rollout:    bench.RolloutParams{Replicas: 3, Rollouts: 1, StartDelay: 2 * time.Second, ReadyDelay: 2 * time.Second},
		brownout: bench.BrownoutParams{
			Lanes: 1, Rounds: 1,
			Grid:      sec(4, 12),
			Latencies: sec(2, 6), LatencyFor: 10 * time.Second,
		},
	}
}

func main() {
	bench.ChildMain()
	var (
		out        = flag.String("out", "BENCHMARKS.md", "report to write")
		chart      = flag.String("chart", "latency.png", "latency chart (PNG) to write")
		jsonPath   = flag.String("json", "results.json", "raw results to write (or read, with -report-only)")
		quick      = flag.Bool("quick", false, "a small run to check the harness (not for publishing)")
		reportOnly = flag.Bool("report-only", false, "rewrite the report and chart from -json, measuring nothing")
		backends   = flag.String("backends", "fake,real", "backends to run: fake, real")
		phases     = flag.String("phases", strings.Join(allPhases, ","), "phases to run")
		update     = flag.Bool("update", false, "keep the results of the phases not run from -json, replacing only those of the phases run")
		command    = flag.String("command", "", "the command to cite in the report (default: this one)")
		seed       = flag.Uint64("seed", 1, "seed of the brownout campaign's schedule")
		kinds      = flag.String("brownout-kinds", "", "brownout outage kinds to run (default all): "+strings.Join(bench.BrownoutKinds, ","))
		scale      = flag.String("scale", "", "override the scale runs: comma-separated lib:N:hold[:standby|:shared], e.g. kubelease:10000:2m,kubelease:1000:1m:standby,kubelease:10000:1m:shared")
	)
	testing.Init()
	flag.Parse()
	if *reportOnly {
		var res bench.Results
		data, err := os.ReadFile(*jsonPath)
		if err == nil {
			err = json.Unmarshal(data, &res)
		}
		if err == nil {
			err = writeOutputs(&res, *out, *chart, "")
		}
		if err != nil {
			fatal(err)
		}
		return
	}
	cmd := *command
	if cmd == "" {
		cmd = strings.Join(os.Args, " ")
	}
	p := fullParams()
	if *quick {
		p = quickParams()
	}
	if *scale != "" {
		sp, err := parseScale(*scale)
		if err != nil {
			fatal(err)
		}
		p.scale = sp
	}
	p.brownout.Seed = *seed
	if *kinds != "" {
		p.brownout.Kinds = strings.Split(*kinds, ",")
	}
	if err := flag.Set("test.benchtime", p.benchtime); err != nil {
		fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	res := &bench.Results{Started: time.Now(), Command: cmd, Machine: bench.ThisMachine(), Quick: *quick}
	h := &harness{res: res, p: p, phases: strings.Split(*phases, ",")}
	be := strings.Split(*backends, ",")

	// The real server starts (or is built, the first time) while the fake
	// runs.
	type realStart struct {
		r   *bench.Real
		err error
	}
	realCh := make(chan realStart, 1)
	needReal := slices.ContainsFunc(h.phases, func(ph string) bool { return ph != "brownout" && ph != "scale" })
	if slices.Contains(be, "real") && needReal {
		go func() {
			r, err := bench.StartReal(ctx)
			realCh <- realStart{r, err}
		}()
	}
	if slices.Contains(be, "fake") {
		h.runBackend(ctx, bench.FakeSource())
		if h.on("renewal") {
			res.SleepCPU = bench.MeasureSleepCPU(200)
			logf("idle wake-up cost: %v CPU per 10 ms sleep", res.SleepCPU)
			f, err := bench.StartFake()
			if h.check("fake: start", err) {
				h.renewal(f)
				f.Close()
			}
		}
	}
	if slices.Contains(be, "real") && needReal {
		logf("waiting for kube-apiserver (the first run on a machine builds it: ~10 min)")
		rs := <-realCh
		if h.check("kube-apiserver: start", rs.err) {
			res.RealVersion = rs.r.Version()
			h.runBackend(ctx, bench.RealSource(rs.r))
			if h.on("renewal") {
				h.renewal(rs.r)
			}
			if h.on("rollout") {
				h.rollout(ctx, rs.r)
			}
			rs.r.Stop()
		}
	}
	if h.on("brownout") && slices.Contains(be, "real") && ctx.Err() == nil {
		bp := p.brownout
		logf("brownout: kube-apiserver of its own with APF shedding; %d lanes per library, %d round(s), D %v, latency L %v for %v, seed %d", bp.Lanes, bp.Rounds, bp.Grid, bp.Latencies, bp.LatencyFor, bp.Seed)
		r, err := bench.RunBrownout(ctx, bp, *quick, logf)
		if h.check("brownout", err) || r != nil {
			res.Brownout = r
		}
		if r != nil {
			for _, f := range r.Fences {
				logf("  %s: %d tenures, %d fenced writes, %d stale, %d overlaps (%v)", f.Lib, f.Tenures, f.Writes, f.Stale, f.Overlaps, f.OverlapTime)
			}
		}
	}
	if h.on("scale") && ctx.Err() == nil {
		for _, sp := range p.scale {
			if sp.Role == bench.ScaleStandby {
				how := "per-lease watches"
				if sp.Shared {
					how = "one shared NamespaceWatch"
				}
				logf("scale: %d %s standby leases in one process (%s), %v", sp.N, sp.Lib, how, sp.Hold)
			} else {
				logf("scale: %d %s leases in one process, held %v", sp.N, sp.Lib, sp.Hold)
			}
			r, err := bench.RunScale(sp)
			what := fmt.Sprintf("scale %s %d", sp.Lib, sp.N)
			if sp.Role == bench.ScaleStandby {
				what += " standby"
				if sp.Shared {
					what += " shared"
				}
			}
			if h.check(what, err) {
				res.Scale = append(res.Scale, r)
				if sp.Role == bench.ScaleStandby {
					req := 0.0
					if r.Client != nil {
						req = float64(r.Client.Total()) / float64(r.N) / r.Hold.Minutes()
					}
					logf("  %d/%d saw their holder, spurious %d, %d watches open, %.2f req/standby/min, heap %.1f KiB/standby, %.2f goroutines/standby", r.Held, r.N, r.Spurious, r.Watches, req, r.HeapPerLease/1024, r.GoroutinesPerLease)
				} else {
					logf("  held %d/%d, losses %d, heap %.1f KiB/lease, %.2f goroutines/lease", r.Held, r.N, r.Losses, r.HeapPerLease/1024, r.GoroutinesPerLease)
				}
			}
		}
	}
	res.Took = time.Since(res.Started)
	took := res.Took
	if *update {
		merged, err := mergeInto(*jsonPath, res, h.phases)
		if err != nil {
			fatal(err)
		}
		res = merged
	}
	if err := writeOutputs(res, *out, *chart, *jsonPath); err != nil {
		fatal(err)
	}
	logf("done in %v: %s, %s", took.Round(time.Second), *out, *chart)
	if len(res.Errors) > 0 {
		logf("%d phase(s) failed: %s", len(res.Errors), strings.Join(res.Errors, "; "))
		os.Exit(1)
	}
}

// allPhases are the phases, in the order they run on each backend (scale
// runs last, on the fake only).
var allPhases = []string{"steady", "handoff", "failover", "contention", "shards", "renewal", "rollout", "brownout", "scale"}

// mergeInto reads the results at path and replaces the phases of res's
// run in them, keeping the others and the first run's header; the run is
// recorded in Updates.
func mergeInto(path string, res *bench.Results, phases []string) (*bench.Results, error) {
	var old bench.Results
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-update: %w", err)
	}
	if err := json.Unmarshal(data, &old); err != nil {
		return nil, fmt.Errorf("-update: %s: %w", path, err)
	}
	on := func(p string) bool { return slices.Contains(phases, p) }
	if on("steady") {
		old.Steady = res.Steady
	}
	phaseOf := func(sc string) string {
		if sc == bench.ScenarioHandoff {
			return "handoff"
		}
		return "failover"
	}
	latency := slices.DeleteFunc(old.Latency, func(r bench.LatencyResult) bool { return on(phaseOf(r.Scenario)) })
	old.Latency = append(latency, res.Latency...)
	if on("contention") {
		old.Contention = res.Contention
	}
	if on("shards") {
		old.Shards = res.Shards
	}
	if on("renewal") {
		old.Renewal, old.SleepCPU = res.Renewal, res.SleepCPU
	}
	if on("scale") {
		old.Scale = res.Scale
	}
	if on("rollout") {
		old.Rollout = res.Rollout
	}
	if on("brownout") {
		old.Brownout = res.Brownout
	}
	if res.RealVersion != "" {
		old.RealVersion = res.RealVersion
	}
	old.Errors = append(old.Errors, res.Errors...)
	old.Updates = append(old.Updates, bench.Update{Command: res.Command, Started: res.Started, Took: res.Took, Phases: phases})
	return &old, nil
}

type harness struct {
	res    *bench.Results
	p      params
	phases []string
}

func (h *harness) on(phase string) bool { return slices.Contains(h.phases, phase) }

// check records a failed phase; it reports whether err is nil.
func (h *harness) check(what string, err error) bool {
	if err == nil {
		return true
	}
	logf("FAILED %s: %v", what, err)
	h.res.Errors = append(h.res.Errors, fmt.Sprintf("%s: %v", what, err))
	return false
}

// runBackend runs the request-rate, handoff, failover, contention and
// shard-set phases on src.
func (h *harness) runBackend(ctx context.Context, src bench.Source) {
	p := h.p
	if h.on("steady") && ctx.Err() == nil {
		logf("%s: steady state: %d leases per library, %v warm-up, %v window", src.Name, p.steadyLeases, p.steadyWarm, p.window)
		r, err := bench.RunSteady(ctx, src, p.steadyLeases, p.steadyWarm, p.window)
		if h.check(src.Name+": steady", err) {
			h.res.Steady = append(h.res.Steady, r)
			for _, g := range r.Groups {
				logf("  %s (%s): holder %.1f req/min, standby %.2f req/min (%d per lease), %d holder changes", g.Lib, g.Variant, r.PerLeaseMinute(g.Holder.Total()), r.PerStandbyMinute(g.Standby.Total()), r.Standbys, g.Changes)
			}
		}
	}
	if h.on("handoff") {
		for _, lib := range bench.Libs {
			if ctx.Err() != nil {
				break
			}
			logf("%s: graceful handoff, %s: %d Leases × %d handoffs", src.Name, lib, p.handoffPairs, p.each)
			be, err := src.New()
			if !h.check(src.Name+": handoff", err) {
				continue
			}
			r := bench.RunHandoff(ctx, be, lib, p.handoffPairs, p.each)
			be.Close()
			h.res.Latency = append(h.res.Latency, r)
			d := bench.Summarise(r.Samples)
			logf("  n=%d p50 %v p99 %v (failures %d)", d.N, d.P50, d.P99, r.Failures)
		}
	}
	if h.on("failover") && ctx.Err() == nil {
		logf("%s: crash failover: %d trials per variant, all at once", src.Name, p.failoverTrials)
		be, err := src.New()
		if h.check(src.Name+": failover", err) {
			rs := bench.RunFailover(ctx, be, p.failoverTrials)
			be.Close()
			h.res.Latency = append(h.res.Latency, rs...)
			for _, r := range rs {
				d := bench.Summarise(r.Samples)
				logf("  %s, %s: n=%d p50 %v p99 %v max %v (failures %d)", r.Lib, r.Scenario, d.N, d.P50, d.P99, d.Max, r.Failures)
			}
		}
	}
	if h.on("contention") {
		for _, n := range p.contenders {
			for _, lib := range bench.Libs {
				if ctx.Err() != nil {
					return
				}
				logf("%s: contention: %d %s contenders × %d trials", src.Name, n, lib, p.contentionTrials)
				be, err := src.New()
				if !h.check(src.Name+": contention", err) {
					continue
				}
				r, err := bench.RunContention(ctx, be, lib, n, p.contentionTrials)
				be.Close()
				if h.check(fmt.Sprintf("%s: contention %s %d", src.Name, lib, n), err) {
					h.res.Contention = append(h.res.Contention, r)
					for _, t := range r.Trials {
						logf("  first holder %v, settled %v, %d requests, %d 409s, %d holders", t.FirstHolder, t.Settled, t.Requests.Total(), t.Requests.Codes[409], t.Holders)
					}
				}
			}
		}
	}
	if h.on("shards") {
		h.shards(ctx, src)
	}
}

// shards runs the shard-set benchmarks on src.
func (h *harness) shards(ctx context.Context, src bench.Source) {
	runs := h.p.shards
	if src.Name == "fake" {
		runs = append(slices.Clone(runs), h.p.shardsFake...)
	}
	for _, sp := range runs {
		if ctx.Err() != nil {
			return
		}
		logf("%s: shard set: %d shards over %d members, cold start, %v window%s", src.Name, sp.Shards, sp.Members, sp.Window, map[bool]string{true: ", then join, leave, crash"}[sp.Changes])
		r, err := bench.RunShards(ctx, src, sp)
		r.Command, r.Started = h.res.Command, h.res.Started
		h.res.Shards = append(h.res.Shards, r)
		if !h.check(fmt.Sprintf("%s: shards %d×%d", src.Name, sp.Shards, sp.Members), err) {
			continue
		}
		logf("  cold start settled in %v (%d tenures started for %d shards; first assignments %v; %d assignments computed); %.1f req/member/min, CPU %.1f %% of a core; %d started in the window, %d doubles",
			r.ColdSettled.Round(time.Millisecond), r.ColdStarts, r.Shards, r.ColdFirst, r.ColdViews, r.PerMemberMinute(), 100*r.CPU.Seconds()/r.Window.Seconds(), r.WindowStarts, r.Doubles)
		for _, mv := range r.Moves {
			d := bench.Summarise(mv.Unowned)
			logf("  %s (%d→%d members): settled %v, %d started (assignment moves %d, ideal %.1f), unowned per move p50 %v max %v total %v",
				mv.Kind, mv.Before, mv.After, mv.Settled.Round(time.Millisecond), mv.Starts, mv.AssignDiff, mv.Ideal, d.P50, d.Max, d.Mean*time.Duration(d.N))
			rd, zd := bench.Summarise(mv.Reowned), bench.Summarise(mv.ZombieStopped)
			logf("    timeline: members saw it %v; stops %v–%v; starts %v–%v", mv.Seen, mv.FirstStop, mv.LastStop, mv.FirstStart, mv.LastStart)
			if mv.Kind == bench.ShardCrash {
				logf("    %d orphans re-owned p50 %v max %v after the cut; the crashed member's works stopped p50 %v max %v; overlaps %d",
					mv.Orphans, rd.P50, rd.Max, zd.P50, zd.Max, mv.Overlaps)
			}
		}
	}
}

// rollout runs the rolling updates of examples/controller-runtime (built
// here) on r, one variant after the other, each on its own Lease.
func (h *harness) rollout(ctx context.Context, r *bench.Real) {
	dir, err := os.MkdirTemp("", "kubelease-rollout-")
	if !h.check("rollout: temp dir", err) {
		return
	}
	defer os.RemoveAll(dir)
	logf("rollout: building examples/controller-runtime")
	bin, err := bench.BuildRolloutExample(ctx, dir)
	if !h.check("rollout: build", err) {
		return
	}
	p := h.p.rollout
	for i, v := range bench.RolloutVariants {
		if ctx.Err() != nil {
			return
		}
		logf("%s: rolling update, %s: %d replicas × %d rollouts", r.Name(), v.Name, p.Replicas, p.Rollouts)
		res := bench.RunRollout(ctx, r, bin, dir, v, p, fmt.Sprintf("rollout-%d", i))
		h.res.Rollout = append(h.res.Rollout, res)
		d := bench.Summarise(res.Gaps)
		logf("  %d steps (%d terminated the leader), %d handoffs: gap p50 %v max %v, leaderless %v in all; overlaps %d; took %v",
			res.Steps, res.LeaderSteps, d.N, d.P50, d.Max, res.Leaderless(), res.Overlaps, res.Took.Round(time.Second))
		for _, f := range res.Failures {
			h.check(fmt.Sprintf("rollout %s", v.Name), errors.New(f))
		}
	}
}

// renewal runs the per-renewal benchmarks on be.
func (h *harness) renewal(be bench.Backend) {
	for _, rb := range bench.RenewalBenches {
		logf("%s: %s", be.Name(), rb.Name)
		r := bench.RunRenewal(be, rb)
		if r.N == 0 {
			h.check(fmt.Sprintf("%s: %s", be.Name(), rb.Name), fmt.Errorf("the benchmark failed"))
			continue
		}
		h.res.Renewal = append(h.res.Renewal, r)
		logf("  %d ops, %.0f ns/op, %.0f cpu-ns/op, %d B/op, %d allocs/op", r.N, r.NsPerOp, r.CPUNsPerOp, r.BytesPerOp, r.AllocsPerOp)
	}
}

// writeOutputs writes the raw results (unless jsonPath is empty), the
// report and the chart.
func writeOutputs(res *bench.Results, out, chart, jsonPath string) error {
	if jsonPath != "" {
		data, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(jsonPath, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(chart), 0o755); err != nil {
		return err
	}
	f, err := os.Create(chart)
	if err != nil {
		return err
	}
	if err := bench.WriteLatencyChart(f, res); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(out), chart)
	if err != nil {
		rel = chart
	}
	return os.WriteFile(out, []byte(bench.Report(res, filepath.ToSlash(rel))), 0o644)
}

// parseScale parses the -scale flag.
func parseScale(s string) ([]bench.ScaleParams, error) {
	var out []bench.ScaleParams
	for _, item := range strings.Split(s, ",") {
		parts := strings.Split(item, ":")
		role, shared := "", false
		if len(parts) == 4 && (parts[3] == bench.ScaleStandby || parts[3] == "shared") {
			role, shared, parts = bench.ScaleStandby, parts[3] == "shared", parts[:3]
		}
		if len(parts) != 3 {
			return nil, fmt.Errorf("-scale %q: want lib:N:hold, lib:N:hold:standby or lib:N:hold:shared", item)
		}
		n, err := strconv.Atoi(parts[1])
		if err != nil {
			return nil, fmt.Errorf("-scale %q: %w", item, err)
		}
		hold, err := time.ParseDuration(parts[2])
		if err != nil {
			return nil, fmt.Errorf("-scale %q: %w", item, err)
		}
		out = append(out, bench.ScaleParams{Lib: bench.Lib(parts[0]), Role: role, Shared: shared, N: n, Hold: hold, Ramp: 5 * time.Second})
	}
	return out, nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
