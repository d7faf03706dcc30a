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
	benchtime          string // -test.benchtime of the per-renewal benchmarks
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
		benchtime: "3s",
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
		benchtime: "1s",
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
		phases     = flag.String("phases", "steady,handoff,failover,contention,renewal,scale", "phases to run")
		command    = flag.String("command", "", "the command to cite in the report (default: this one)")
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
	if slices.Contains(be, "real") {
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
	if slices.Contains(be, "real") {
		logf("waiting for kube-apiserver (the first run on a machine builds it: ~10 min)")
		rs := <-realCh
		if h.check("kube-apiserver: start", rs.err) {
			res.RealVersion = rs.r.Version()
			h.runBackend(ctx, bench.RealSource(rs.r))
			if h.on("renewal") {
				h.renewal(rs.r)
			}
			rs.r.Stop()
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
	if err := writeOutputs(res, *out, *chart, *jsonPath); err != nil {
		fatal(err)
	}
	logf("done in %v: %s, %s", res.Took.Round(time.Second), *out, *chart)
	if len(res.Errors) > 0 {
		logf("%d phase(s) failed: %s", len(res.Errors), strings.Join(res.Errors, "; "))
		os.Exit(1)
	}
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

// runBackend runs the request-rate, handoff, failover and contention
// phases on src.
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
