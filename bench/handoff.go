package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// LatencyResult is a sample of latencies of one library in one scenario.
type LatencyResult struct {
	Backend  string          `json:"backend"`
	Lib      Lib             `json:"lib"`
	Scenario string          `json:"scenario"`
	Samples  []time.Duration `json:"samples"`
	// FromStart, for a peer started after the crash, is from its start.
	FromStart []time.Duration `json:"fromStart,omitempty"`
	// Failures counts trials where the peer did not take over in time.
	Failures int `json:"failures"`
	// Parallel is how many Leases the trials ran on at once.
	Parallel int `json:"parallel"`
}

// Scenario names.
const (
	ScenarioHandoff     = "graceful handoff"
	ScenarioFailover    = "crash failover, peer running"
	ScenarioLate        = "crash failover, peer started 5 s after the crash"
	ScenarioLateNoFast  = "crash failover, peer started 5 s after the crash, fast path off"
	lateStart           = 5 * time.Second
	takeoverTimeout     = time.Minute
	handoffSettleMin    = 300 * time.Millisecond
	handoffSettleJitter = 2 * time.Second
)

// RunHandoff measures graceful handoffs on `pairs` Leases at once, `each`
// handoffs per Lease: two candidates per Lease; the holder steps down
// (Candidate.Stop: its context is cancelled, it releases) and the time
// until the peer's work starts is recorded; the one that stepped down then
// starts again as the new standby, and once it has seen the new holder and
// a random 0.3–2.3 s has passed (so that client-go's polling phase is
// random), the next handoff starts.
func RunHandoff(ctx context.Context, be Backend, lib Lib, pairs, each int) LatencyResult {
	res := LatencyResult{Backend: be.Name(), Lib: lib, Scenario: ScenarioHandoff, Parallel: pairs}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat, fails := handoffPair(ctx, be, lib, fmt.Sprintf("handoff-%s-%d", runID(), p), each)
			mu.Lock()
			res.Samples = append(res.Samples, lat...)
			res.Failures += fails
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res
}

// member is a candidate with channels for its events.
type member struct {
	c       *Candidate
	id      string
	started chan time.Time
	seen    chan string
}

func startMember(be Backend, lib Lib, name, id string, o CandOpts) (*member, error) {
	m := &member{id: id, started: make(chan time.Time, 4), seen: make(chan string, 16)}
	o.OnStarted = func(at time.Time) { trySend(m.started, at) }
	o.OnNewHolder = func(h string) { trySend(m.seen, h) }
	c, err := StartCandidate(be, lib, name, id, o)
	if err != nil {
		return nil, err
	}
	m.c = c
	return m, nil
}

// awaitSeen waits until m has seen holder.
func (m *member) awaitSeen(ctx context.Context, holder string, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case h := <-m.seen:
			if h == holder {
				return true
			}
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// awaitStarted waits for m's work to start and returns when it did.
func (m *member) awaitStarted(ctx context.Context, timeout time.Duration) (time.Time, bool) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case at := <-m.started:
		return at, true
	case <-t.C:
	case <-ctx.Done():
	}
	return time.Time{}, false
}

func handoffPair(ctx context.Context, be Backend, lib Lib, name string, each int) (lat []time.Duration, fails int) {
	ids := [2]string{name + "-a", name + "-b"}
	holder, err := startMember(be, lib, name, ids[0], CandOpts{})
	if err != nil {
		return nil, each
	}
	if _, ok := holder.awaitStarted(ctx, takeoverTimeout); !ok {
		holder.c.Stop()
		return nil, each
	}
	standby, err := startMember(be, lib, name, ids[1], CandOpts{})
	if err != nil {
		holder.c.Stop()
		return nil, each
	}
	defer func() {
		standby.c.Stop()
		holder.c.Stop()
	}()
	if !standby.awaitSeen(ctx, holder.id, takeoverTimeout) {
		return nil, each
	}
	for range each {
		if sleep(ctx, handoffSettleMin+rand.N(handoffSettleJitter)) != nil {
			return lat, fails
		}
		t0 := time.Now()
		stopped := make(chan struct{})
		go func() { holder.c.Stop(); close(stopped) }()
		at, ok := standby.awaitStarted(ctx, takeoverTimeout)
		<-stopped
		if !ok {
			fails++
			return lat, fails
		}
		lat = append(lat, at.Sub(t0))
		// The one that stepped down comes back as the standby.
		next, err := startMember(be, lib, name, holder.id, CandOpts{})
		if err != nil {
			return lat, fails + 1
		}
		holder, standby = standby, next
		if !standby.awaitSeen(ctx, holder.id, takeoverTimeout) {
			return lat, fails + 1
		}
	}
	return lat, fails
}
