package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// ContentionTrial is one start of N contenders on one absent Lease.
type ContentionTrial struct {
	// FirstHolder is from the start to the first holder's work starting.
	FirstHolder time.Duration `json:"firstHolder"`
	// Settled is from the start until every other contender has seen the
	// holder (kubelease: OnNewHolder; client-go: OnNewLeader).
	Settled time.Duration `json:"settled"`
	// Requests are all requests of all contenders until Settled.
	Requests Counts `json:"requests"`
	// Holders counts contenders whose work started (must be 1).
	Holders int `json:"holders"`
	// TimedOut is set when the contenders had not settled after a minute.
	TimedOut bool `json:"timedOut,omitempty"`
}

// ContentionResult is RunContention's outcome for one library and N.
type ContentionResult struct {
	Backend string            `json:"backend"`
	Lib     Lib               `json:"lib"`
	N       int               `json:"n"`
	Trials  []ContentionTrial `json:"trials"`
}

// RunContention starts n contenders together on one absent Lease, `trials`
// times (one after the other, each on a new Lease), and records the time
// to the first holder, the time until all know the holder, and the
// requests (and 409s among their answers) made until then.
func RunContention(ctx context.Context, be Backend, lib Lib, n, trials int) (ContentionResult, error) {
	res := ContentionResult{Backend: be.Name(), Lib: lib, N: n}
	for range trials {
		t, err := contentionTrial(ctx, be, lib, n, fmt.Sprintf("contend-%s", runID()))
		if err != nil {
			return res, err
		}
		res.Trials = append(res.Trials, t)
	}
	return res, nil
}

type contentionEvent struct {
	id      string
	started bool   // work started
	holder  string // else: saw this holder
	at      time.Time
}

func contentionTrial(ctx context.Context, be Backend, lib Lib, n int, name string) (ContentionTrial, error) {
	var tr ContentionTrial
	ctr := NewCounter()
	events := make(chan contentionEvent, 16*n)
	cands := make([]*Candidate, n)
	for i := range n {
		id := fmt.Sprintf("%s-%d", name, i)
		c, err := NewCandidate(be, lib, name, id, CandOpts{
			Counter:     ctr,
			OnStarted:   func(at time.Time) { events <- contentionEvent{id: id, started: true, at: at} },
			OnNewHolder: func(h string) { trySend(events, contentionEvent{id: id, holder: h, at: time.Now()}) },
		})
		if err != nil {
			return tr, err
		}
		cands[i] = c
	}
	var stopOnce sync.Once
	stopAll := func() {
		stopOnce.Do(func() {
			var wg sync.WaitGroup
			for _, c := range cands {
				wg.Add(1)
				go func() { defer wg.Done(); c.Stop() }()
			}
			wg.Wait()
		})
	}
	defer stopAll()

	start := time.Now()
	for _, c := range cands {
		c.Start()
	}
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	winner := ""
	seen := map[string]string{}
	for {
		select {
		case ev := <-events:
			if ev.started {
				tr.Holders++
				if winner == "" {
					winner = ev.id
					tr.FirstHolder = ev.at.Sub(start)
				}
			} else {
				seen[ev.id] = ev.holder
			}
		case <-timeout.C:
			tr.TimedOut = true
			tr.Requests = ctr.Snapshot()
			return tr, nil
		case <-ctx.Done():
			return tr, ctx.Err()
		}
		if winner != "" && settled(seen, winner, n) {
			tr.Settled = time.Since(start)
			tr.Requests = ctr.Snapshot()
			return tr, nil
		}
	}
}

// settled reports whether all n-1 losers have seen winner.
func settled(seen map[string]string, winner string, n int) bool {
	k := 0
	for id, h := range seen {
		if id != winner && h == winner {
			k++
		}
	}
	return k >= n-1
}
