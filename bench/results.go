package bench

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Results are everything one run of the harness measured.
type Results struct {
	Started time.Time     `json:"started"`
	Took    time.Duration `json:"took"`
	Command string        `json:"command"`
	Machine Machine       `json:"machine"`
	// Quick runs use fewer trials and shorter windows (not for publishing).
	Quick bool `json:"quick"`
	// RealVersion is the kube-apiserver version of the real backend.
	RealVersion string `json:"realVersion"`

	Steady     []SteadyResult     `json:"steady"`
	Latency    []LatencyResult    `json:"latency"`
	Renewal    []RenewalResult    `json:"renewal"`
	Scale      []ScaleResult      `json:"scale"`
	Contention []ContentionResult `json:"contention"`
	Shards     []ShardResult      `json:"shards,omitempty"`
	// Rollout are the rolling updates of examples/controller-runtime, one
	// per variant (kube-apiserver only).
	Rollout []RolloutResult `json:"rollout,omitempty"`
	// Brownout is the brownout campaign (on a kube-apiserver of its own).
	Brownout *BrownoutResult `json:"brownout,omitempty"`
	// SleepCPU is the CPU time this process spends per 10 ms time.Sleep
	// when otherwise idle: what waking up costs on this machine, part of
	// every real-clock renewal.
	SleepCPU time.Duration `json:"sleepCPU"`
	// Updates are later runs (-update) that re-measured some phases and
	// replaced their results; Started, Took and Command stay the first
	// run's.
	Updates []Update `json:"updates,omitempty"`
	// Errors are phases that failed, with why.
	Errors []string `json:"errors,omitempty"`
}

// RenewalResult is one per-renewal benchmark.
type RenewalResult struct {
	Backend     string  `json:"backend"`
	Lib         Lib     `json:"lib"`
	Name        string  `json:"name"`
	What        string  `json:"what"`
	N           int     `json:"n"`
	NsPerOp     float64 `json:"nsPerOp"`
	CPUNsPerOp  float64 `json:"cpuNsPerOp"`
	BytesPerOp  int64   `json:"bytesPerOp"`
	AllocsPerOp int64   `json:"allocsPerOp"`
}

// RenewalBench is a per-renewal benchmark for the harness.
type RenewalBench struct {
	Lib  Lib
	Name string
	What string
	Fn   func(b *testing.B, be Backend)
}

// RenewalBenches are the per-renewal benchmarks, in report order.
var RenewalBenches = []RenewalBench{
	{Kubelease, "BenchmarkRenewKubelease", "fake clock stepped by RenewalInterval + 10 % (its largest jitter); one op = one renewal (PUT)", BenchRenewKubelease},
	{ClientGo, "BenchmarkRenewClientGoLeaseLock", "LeaseLock.Update in a loop (the leader's optimistic renewal, no elector loop)", BenchRenewClientGoLock},
	{Kubelease, "BenchmarkRenewKubeleaseRealClock", "real clock, RenewalInterval 10 ms", BenchRenewKubeleaseRealClock},
	{ClientGo, "BenchmarkRenewClientGoElector", "LeaderElector, RetryPeriod 10 ms", BenchRenewClientGoElector},
}

// RunRenewal runs rb on be with testing.Benchmark.
func RunRenewal(be Backend, rb RenewalBench) RenewalResult {
	r := testing.Benchmark(func(b *testing.B) { rb.Fn(b, be) })
	out := RenewalResult{Backend: be.Name(), Lib: rb.Lib, Name: rb.Name, What: rb.What, N: r.N}
	if r.N > 0 {
		out.NsPerOp = float64(r.T.Nanoseconds()) / float64(r.N)
		out.CPUNsPerOp = r.Extra["cpu-ns/op"]
		out.BytesPerOp = r.AllocedBytesPerOp()
		out.AllocsPerOp = r.AllocsPerOp()
	}
	return out
}

// Machine describes where the run happened.
type Machine struct {
	Cores    int    `json:"cores"`
	CPUModel string `json:"cpuModel"`
	MemTotal string `json:"memTotal"`
	Go       string `json:"go"`
	OS       string `json:"os"`
}

// ThisMachine describes this machine.
func ThisMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				m.MemTotal = fmt.Sprintf("%.0f GiB", kb/(1<<20))
			}
		}
	}
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		m.OS += ", " + strings.TrimSpace(string(out))
	}
	return m
}

// MeasureSleepCPU returns the CPU time per 10 ms sleep of an otherwise
// idle goroutine (the Go runtime's and the kernel's cost of parking and
// waking), over n sleeps.
func MeasureSleepCPU(n int) time.Duration {
	c0 := cpuTime()
	for range n {
		time.Sleep(10 * time.Millisecond)
	}
	return (cpuTime() - c0) / time.Duration(n)
}

// Update is a later run that replaced the results of some phases.
type Update struct {
	Command string        `json:"command"`
	Started time.Time     `json:"started"`
	Took    time.Duration `json:"took"`
	Phases  []string      `json:"phases"`
}
