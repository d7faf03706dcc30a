package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// SteadyGroup is one library in the steady-state run.
type SteadyGroup struct {
	Lib     Lib    `json:"lib"`
	Variant string `json:"variant"`
	// Cadence is the library's renewal cadence at its defaults;
	// StandbyCadence what a standby does at its defaults.
	Cadence        string `json:"cadence"`
	StandbyCadence string `json:"standbyCadence"`
	// Holder and Standby are the requests of all holders and of all
	// standbys during the window (counted by a Tap on each client).
	Holder  Counts `json:"holder"`
	Standby Counts `json:"standby"`
	// Server is the server's own count over the window (fake only).
	Server map[string]int `json:"server,omitempty"`
	// Changes counts holder changes during the window (should be 0): a
	// standby's work starting, or a standby told of another holder than its
	// lease's (OnNewHolder / OnNewLeader).
	Changes int `json:"changes"`
}

// SteadyResult is the outcome of RunSteady on one backend.
type SteadyResult struct {
	Backend string        `json:"backend"`
	Leases  int           `json:"leases"`
	Window  time.Duration `json:"window"`
	// Standbys is the number of standbys per lease.
	Standbys int           `json:"standbys"`
	Groups   []SteadyGroup `json:"groups"`
}

// PerLeaseMinute is n requests per lease per minute: per holder, as each
// lease has one.
func (r SteadyResult) PerLeaseMinute(n int) float64 {
	return float64(n) / float64(r.Leases) / r.Window.Minutes()
}

// PerStandbyMinute is n requests per standby per minute.
func (r SteadyResult) PerStandbyMinute(n int) float64 {
	return float64(n) / float64(r.Leases*max(r.Standbys, 1)) / r.Window.Minutes()
}

// SteadyStandbys is how many standbys each lease has in RunSteady.
const SteadyStandbys = 2

// steadyVariant is one group's setup. Both run at their defaults.
type steadyVariant struct {
	lib            Lib
	variant        string
	cadence        string
	standbyCadence string
}

var steadyVariants = []steadyVariant{
	{Kubelease, "defaults",
		"one PUT every RenewalInterval (TTL/3 = 5 s) ± 10 % jitter: mean 5 s",
		"`RunSingleton` with zero options: one watch kept open across waits; an Acquire (GET) every ResyncInterval (1 min) as a safety net"},
	{ClientGo, "defaults",
		"one PUT every RetryPeriod (2 s) after the previous renewal returned, no jitter",
		"a GET every RetryPeriod (2 s) plus 0–1.2 × RetryPeriod of jitter: every 2–4.4 s, mean 3.2 s"},
}

// RunSteady holds `leases` Leases per library, each with one holder and
// SteadyStandbys standbys, all at their defaults, waits `warm` for the
// cadence to settle, then counts every request for `window`. The groups
// run at the same time; on the fake each has its own server, so the
// server's counts are per group.
func RunSteady(ctx context.Context, src Source, leases int, warm, window time.Duration) (SteadyResult, error) {
	res := SteadyResult{Backend: src.Name, Leases: leases, Window: window, Standbys: SteadyStandbys, Groups: make([]SteadyGroup, len(steadyVariants))}
	var wg sync.WaitGroup
	errs := make([]error, len(steadyVariants))
	for gi, v := range steadyVariants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res.Groups[gi], errs[gi] = runSteadyGroup(ctx, src, v, fmt.Sprintf("steady-%d-%s", gi, runID()), leases, warm, window)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

func runSteadyGroup(ctx context.Context, src Source, v steadyVariant, prefix string, leases int, warm, window time.Duration) (SteadyGroup, error) {
	g := SteadyGroup{Lib: v.lib, Variant: v.variant, Cadence: v.cadence, StandbyCadence: v.standbyCadence}
	be, err := src.New()
	if err != nil {
		return g, err
	}
	defer be.Close()
	holderCtr, standbyCtr := NewCounter(), NewCounter()
	var measuring atomic.Bool
	var changes atomic.Int64
	var all []*Candidate
	defer func() {
		for i := len(all) - 1; i >= 0; i-- {
			all[i].Stop()
		}
	}()

	// Holders first, each on its own Lease, their starts spread over one
	// kubelease renewal interval (2.5 client-go ones): holders started
	// together renew in step, and the count in a window then comes out
	// all high or all low instead of at the mean.
	held := make(chan string, leases)
	for i := range leases {
		if i > 0 {
			if err := sleep(ctx, LeaseDuration/3/time.Duration(leases)); err != nil {
				return g, err
			}
		}
		name := fmt.Sprintf("%s-%d", prefix, i)
		c, err := StartCandidate(be, v.lib, name, "holder-"+name, CandOpts{
			Counter: holderCtr,
			OnStarted: func(time.Time) {
				if measuring.Load() {
					changes.Add(1)
				}
				trySend(held, name)
			},
		})
		if err != nil {
			return g, err
		}
		all = append(all, c)
	}
	if err := awaitN(ctx, held, leases, time.Minute, "holders to acquire"); err != nil {
		return g, err
	}
	// Then the standbys, SteadyStandbys per Lease, which must have seen
	// their holder; any other holder they are told of later is a change.
	seen := make(chan string, leases*SteadyStandbys)
	for s := range SteadyStandbys {
		for i := range leases {
			name := fmt.Sprintf("%s-%d", prefix, i)
			want := "holder-" + name
			var once sync.Once
			o := CandOpts{
				Counter: standbyCtr,
				OnNewHolder: func(h string) {
					if h == want {
						once.Do(func() { trySend(seen, name) })
					} else if measuring.Load() {
						changes.Add(1)
					}
				},
				OnStarted: func(time.Time) { changes.Add(1) },
			}
			c, err := StartCandidate(be, v.lib, name, fmt.Sprintf("standby%d-%s", s, name), o)
			if err != nil {
				return g, err
			}
			all = append(all, c)
		}
	}
	if err := awaitN(ctx, seen, leases*SteadyStandbys, time.Minute, "standbys to see their holder"); err != nil {
		return g, err
	}

	if err := sleep(ctx, warm); err != nil {
		return g, err
	}
	changes.Store(0)
	measuring.Store(true)
	holderCtr.Reset()
	standbyCtr.Reset()
	be.ResetServerCounts()
	if err := sleep(ctx, window); err != nil {
		return g, err
	}
	g.Holder, g.Standby = holderCtr.Snapshot(), standbyCtr.Snapshot()
	if m, ok := be.ServerCounts(); ok {
		g.Server = m
	}
	g.Changes = int(changes.Load())
	return g, nil
}

// awaitN receives n values from ch within timeout.
func awaitN[T any](ctx context.Context, ch <-chan T, n int, timeout time.Duration, what string) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for got := 0; got < n; got++ {
		select {
		case <-ch:
		case <-t.C:
			return fmt.Errorf("bench: timed out after %v waiting for %s (%d of %d)", timeout, what, got, n)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// trySend sends v on ch unless ch is full.
func trySend[T any](ch chan<- T, v T) {
	select {
	case ch <- v:
	default:
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var runSeq atomic.Int64

// runID is a short string unique within this process run, so Lease names
// never repeat on the shared real server.
func runID() string {
	return fmt.Sprintf("%x%d", time.Now().Unix()%0x10000, runSeq.Add(1))
}
