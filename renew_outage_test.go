package lease_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// outageKind is how the API server becomes unreachable during an outage.
type outageKind int

const (
	// outageHold is a blackhole that holds the bytes and delivers them when
	// it ends: requests hang (leasetest Hang) and those whose client still
	// waits are answered when it ends (Unhang).
	outageHold outageKind = iota
	// outageDrop is a blackhole that drops the bytes: requests sent during
	// it are never answered; only requests sent after it get through.
	outageDrop
	// outageReset resets the connection of every request (leasetest Reset).
	outageReset
	// outageRefuse resets every open connection and refuses new ones
	// (netFront).
	outageRefuse
)

func (k outageKind) String() string {
	return [...]string{"blackhole-hold", "blackhole-drop", "reset", "refuse"}[k]
}

// outageTTL and outageDeadline are the lease duration of the outage table
// and the deadline it gives: stamp + TTL − margin.
const (
	outageTTL      = 15 * time.Second
	outageDeadline = outageTTL - outageTTL/50
	// keepBefore is the promise: an outage that ends this long before the
	// deadline or earlier is ridden out.
	keepBefore = 1500 * time.Millisecond
	// boundary is the outage length that makes an outage end exactly
	// keepBefore before the deadline.
	boundary time.Duration = -1
)

// outageResult is what one row found.
type outageResult struct {
	phase    time.Duration // outage start after the last successful write
	length   time.Duration
	before   time.Duration // how long before the deadline it ended (negative: after)
	kept     bool
	mustKeep bool
	mustLose bool
}

// run acquires, starts the outage at start (after the acquire), keeps it
// for length (boundary: until keepBefore before the deadline) and plays on
// until two renewal intervals after it ended, or the loss.
func (r *outageRig) run(start, length time.Duration) outageResult {
	t := r.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if ok, err := r.l.Acquire(ctx); err != nil || !ok {
		t.Fatalf("acquire: got %v, %v, want true, nil", ok, err)
	}
	var res outageResult
	t0 := epoch.Add(start)
	var t1, deadline0 time.Time
	started, ended := false, false
	for {
		r.waitIdle()
		r.check()
		r.mu.Lock()
		failures := r.failures
		r.mu.Unlock()
		if len(failures) > 0 {
			t.Fatal(strings.Join(failures, "; "))
		}
		now := r.clk.Now()
		next, ok := r.next()
		if ended && (!ok || !now.Before(t1.Add(2*outageTTL/3*11/10))) {
			break
		}
		if !ok {
			next = now.Add(time.Hour)
		}
		switch {
		case !started && !t0.After(next):
			// Nothing happens before t0: the outage is on from t0 on,
			// whatever fires at t0.
			r.mu.Lock()
			deadline0 = r.lastStamp.Add(outageDeadline)
			res.phase = t0.Sub(r.lastStamp)
			r.mu.Unlock()
			res.length = length
			if length == boundary {
				res.length = deadline0.Add(-keepBefore).Sub(t0)
			}
			t1 = t0.Add(res.length)
			r.setOutage(true)
			started = true
			r.stepTo(t0)
		case started && !ended && !t1.After(next):
			// Whatever fires at t1 still sees the outage.
			r.stepTo(t1)
			r.waitIdle()
			r.setOutage(false)
			ended = true
		default:
			r.stepTo(next)
		}
	}
	res.before = deadline0.Sub(t1)
	res.mustKeep = res.before >= keepBefore
	res.mustLose = res.before < 0
	r.mu.Lock()
	res.kept = r.lostAt.IsZero()
	r.mu.Unlock()
	res.kept = res.kept && r.l.CheckAlive()
	return res
}

// TestRenewalRidesOutOutages cuts the API server off at every phase of the
// renewal cycle, for several lengths and four kinds of outage. The lease
// must be kept through every outage that ends keepBefore (1.5 s) or more
// before the deadline, and be lost exactly at the deadline through every
// outage that ends after it.
func TestRenewalRidesOutOutages(t *testing.T) {
	lengths := []time.Duration{2 * time.Second, 8 * time.Second, 10 * time.Second, 11 * time.Second,
		12 * time.Second, 13 * time.Second, boundary, 16 * time.Second}
	var phases []time.Duration
	for p := time.Duration(0); p <= outageTTL/3; p += 500 * time.Millisecond {
		phases = append(phases, p)
	}
	type key struct {
		kind   outageKind
		length string
	}
	type tally struct{ kept, mustKeep, keptOfMust, mustLose, lostOfMust int }
	summary := map[key]*tally{}
	var order []key
	var seed uint64
	for _, kind := range []outageKind{outageHold, outageDrop, outageReset, outageRefuse} {
		for _, length := range lengths {
			name := length.String()
			if length == boundary {
				name = "until-1.5s-before-deadline"
			}
			k := key{kind, name}
			summary[k] = &tally{}
			order = append(order, k)
			for _, start := range phases {
				seed++
				t.Run(fmt.Sprintf("%v/%s/from-%v", kind, name, start), func(t *testing.T) {
					res := newOutageRig(t, kind, seed).run(start, length)
					s := summary[k]
					if res.kept {
						s.kept++
					}
					if res.mustKeep {
						s.mustKeep++
						if res.kept {
							s.keptOfMust++
						}
					}
					if res.mustLose {
						s.mustLose++
						if !res.kept {
							s.lostOfMust++
						}
					}
					switch {
					case res.mustKeep && !res.kept:
						t.Errorf("outage %v at phase %v ended %v before the deadline: got lost, want kept", res.length, res.phase, res.before)
					case res.mustLose && res.kept:
						t.Errorf("outage %v at phase %v ended %v after the deadline: got kept, want lost", res.length, res.phase, -res.before)
					}
				})
			}
		}
	}
	var lines []string
	for _, k := range order {
		s := summary[k]
		lines = append(lines, fmt.Sprintf("%-15v %-27s kept %2d/%2d; must keep %2d, kept %2d; must lose %2d, lost %2d",
			k.kind, k.length, s.kept, len(phases), s.mustKeep, s.keptOfMust, s.mustLose, s.lostOfMust))
	}
	t.Logf("outage table (TTL %v, deadline %v):\n%s", outageTTL, outageDeadline, strings.Join(lines, "\n"))
}
