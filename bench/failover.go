package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// failoverVariant is one kind of crash trial.
type failoverVariant struct {
	lib      Lib
	scenario string
	late     bool
	peer     CandOpts
}

var failoverVariants = []failoverVariant{
	{Kubelease, ScenarioFailover, false, CandOpts{}},
	{ClientGo, ScenarioFailover, false, CandOpts{}},
	{Kubelease, ScenarioLate, true, CandOpts{}},
	{ClientGo, ScenarioLate, true, CandOpts{}},
	{Kubelease, ScenarioLateNoFast, true, CandOpts{MaxClockSkew: -1}},
}

// RunFailover runs `trials` crash trials of every variant, all at once on
// separate Leases. In each, a holder acquires, and at a random instant 6–11
// s later (a random point of either library's renewal cycle) its transport
// is cut: it can neither renew nor release. The latency is from the cut to
// the peer's work starting. The peer either runs from the start (and has
// seen the holder) or starts 5 s after the crash; for the latter the time
// from its start is recorded too. A kubelease peer started late takes over
// by the wall-clock fast path (renewTime + duration + MaxClockSkew); with
// the fast path off it must observe the record unchanged for a full lease
// duration, as a client-go peer always does.
func RunFailover(ctx context.Context, be Backend, trials int) []LatencyResult {
	out := make([]LatencyResult, len(failoverVariants))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for vi, v := range failoverVariants {
		out[vi] = LatencyResult{Backend: be.Name(), Lib: v.lib, Scenario: v.scenario, Parallel: trials * len(failoverVariants)}
		for t := range trials {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Spread the trials' starts over 2 s.
				if sleep(ctx, rand.N(2*time.Second)) != nil {
					return
				}
				name := fmt.Sprintf("crash-%s-%d-%d", runID(), vi, t)
				fromCrash, fromStart, ok := failoverTrial(ctx, be, v, name)
				mu.Lock()
				defer mu.Unlock()
				r := &out[vi]
				if !ok {
					r.Failures++
					return
				}
				r.Samples = append(r.Samples, fromCrash)
				if v.late {
					r.FromStart = append(r.FromStart, fromStart)
				}
			}()
		}
	}
	wg.Wait()
	return out
}

func failoverTrial(ctx context.Context, be Backend, v failoverVariant, name string) (fromCrash, fromStart time.Duration, ok bool) {
	holder, err := startMember(be, v.lib, name, name+"-h", CandOpts{})
	if err != nil {
		return 0, 0, false
	}
	defer holder.c.Stop()
	acquired, ok := holder.awaitStarted(ctx, takeoverTimeout)
	if !ok {
		return 0, 0, false
	}
	var peer *member
	if !v.late {
		if peer, err = startMember(be, v.lib, name, name+"-p", v.peer); err != nil {
			return 0, 0, false
		}
		defer peer.c.Stop()
		if !peer.awaitSeen(ctx, holder.id, takeoverTimeout) {
			return 0, 0, false
		}
	}
	crashAt := acquired.Add(6*time.Second + rand.N(5*time.Second))
	if sleep(ctx, time.Until(crashAt)) != nil {
		return 0, 0, false
	}
	crashed := time.Now()
	holder.c.Crash()
	peerStart := crashed
	if v.late {
		if sleep(ctx, lateStart) != nil {
			return 0, 0, false
		}
		peerStart = time.Now()
		if peer, err = startMember(be, v.lib, name, name+"-p", v.peer); err != nil {
			return 0, 0, false
		}
		defer peer.c.Stop()
	}
	at, ok := peer.awaitStarted(ctx, takeoverTimeout)
	if !ok {
		return 0, 0, false
	}
	return at.Sub(crashed), at.Sub(peerStart), true
}
