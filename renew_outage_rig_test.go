package lease_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	clocktesting "k8s.io/utils/clock/testing"
)

// outageRig drives one lease through one outage on its fake clock. It steps
// the clock only when the renewal goroutine is idle: asleep on a timer, or
// waiting on a request that the outage holds.
type outageRig struct {
	t     *testing.T
	kind  outageKind
	srv   *leasetest.Server
	front *netFront
	l     *lease.KubernetesLease
	clk   *clocktesting.FakeClock
	lost  *lostLog
	// changed is poked (never blocking) by the lease's hooks.
	changed chan struct{}

	mu          sync.Mutex // guards the fields below
	outage      bool
	exited      bool      // the renewal goroutine has returned
	wake        time.Time // its timer, when asleep
	attempting  bool      // an attempt is under way (until the next timer or renewal)
	attemptAt   time.Time // the attempt's stamp
	attemptDue  time.Time // when it times out
	attemptHeld bool      // sent into a blackhole: it waits for its timeout or the end
	received    int       // server arrivals to wait for before a held attempt is idle
	lastStamp   time.Time // stamp of the last successful write
	lostAt      time.Time // when the tenure was lost
	renewals    int
	failures    []string
}

func newOutageRig(t *testing.T, kind outageKind, seed uint64) *outageRig {
	r := &outageRig{t: t, kind: kind, changed: make(chan struct{}, 1), lost: &lostLog{}}
	r.srv = leasetest.NewServer()
	t.Cleanup(r.srv.Close)
	cfg := r.srv.Config()
	if kind == outageRefuse {
		r.front = newNetFront(t, strings.TrimPrefix(r.srv.URL, "http://"))
		cfg.Host = "http://" + r.front.Addr()
	}
	r.clk = clocktesting.NewFakeClock(epoch)
	l, err := lease.NewKubernetesLease(lease.Settings{Name: "job", Owner: "pod-a", Config: cfg, Clock: r.clk, TTL: outageTTL})
	if err != nil {
		t.Fatal(err)
	}
	r.l = l
	lease.SetArmHook(l, r.armed)
	lease.SetEventHook(l, r.event)
	l.OnLost(r.lost.add)
	t.Cleanup(lease.SeedJitter(seed))
	t.Cleanup(func() { _ = l.Release(context.Background()) })
	t.Cleanup(func() { // first: Release must not hang in a row that failed mid-outage
		if r.outageOn() {
			r.setOutage(false)
		}
	})
	return r
}

func (r *outageRig) poke() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// armed is the lease's arm hook.
func (r *outageRig) armed(wake time.Time) {
	r.mu.Lock()
	if wake.IsZero() {
		r.exited = true
	} else {
		r.wake, r.attempting = wake, false
	}
	r.mu.Unlock()
	r.poke()
}

// event is the lease's event hook. It runs under the lease's lock.
func (r *outageRig) event(name string) {
	now := r.clk.Now()
	r.mu.Lock()
	switch {
	case name == "acquired":
		r.lastStamp = now
	case strings.HasPrefix(name, "renew-attempt "):
		timeout, err := time.ParseDuration(strings.TrimPrefix(name, "renew-attempt "))
		if err != nil {
			r.failures = append(r.failures, fmt.Sprintf("event %q: %v", name, err))
		}
		r.attempting, r.attemptAt, r.attemptDue = true, now, now.Add(timeout)
		r.attemptHeld = r.outage && (r.kind == outageHold || r.kind == outageDrop)
		if r.attemptHeld {
			r.received = r.srv.Received() + 1
		}
	case name == "renewed":
		r.lastStamp, r.attempting = r.attemptAt, false
		r.renewals++
	case name == "lost":
		r.lostAt = now
	}
	r.mu.Unlock()
	r.poke()
}

// idle reports whether nothing happens until the clock moves or the
// outage changes.
func (r *outageRig) idle() bool {
	now := r.clk.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.exited:
		return true
	case r.attempting:
		if !r.attemptHeld || !now.Before(r.attemptDue) || (r.kind == outageHold && !r.outage) {
			return false
		}
		return r.srv.Received() >= r.received
	default:
		return !r.wake.IsZero() && r.wake.After(now)
	}
}

// waitIdle waits until idle, or fails the test.
func (r *outageRig) waitIdle() {
	r.t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for !r.idle() {
		ctx, cancel := context.WithCancel(context.Background())
		r.mu.Lock()
		n := r.received
		r.mu.Unlock()
		done := make(chan struct{})
		go func() {
			defer close(done)
			if r.srv.AwaitReceived(ctx, n) == nil {
				r.poke()
			}
		}()
		select {
		case <-r.changed:
		case <-deadline.C:
			cancel()
			<-done
			r.mu.Lock()
			defer r.mu.Unlock()
			r.t.Fatalf("renewal goroutine not idle within %v at %v: attempting=%v held=%v due=%v wake=%v",
				waitFor, r.since(r.clk.Now()), r.attempting, r.attemptHeld, r.since(r.attemptDue), r.since(r.wake))
		}
		cancel()
		<-done
	}
}

func (r *outageRig) since(t time.Time) time.Duration { return t.Sub(epoch) }

// next is when the renewal goroutine's next timer fires.
func (r *outageRig) next() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.exited:
		return time.Time{}, false
	case r.attempting:
		return r.attemptDue, true
	default:
		return r.wake, true
	}
}

func (r *outageRig) outageOn() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.outage
}

func (r *outageRig) stepTo(t time.Time) {
	if d := t.Sub(r.clk.Now()); d > 0 {
		r.clk.Step(d)
	}
}

func (r *outageRig) setOutage(on bool) {
	r.mu.Lock()
	r.outage = on
	r.mu.Unlock()
	switch r.kind {
	case outageHold, outageDrop:
		if on {
			r.srv.InjectFault(leasetest.Fault{Hang: true, Times: -1})
			return
		}
		r.srv.ClearFaults()
		if r.kind == outageHold {
			r.srv.Unhang()
		}
	case outageReset:
		if on {
			r.srv.InjectFault(leasetest.Fault{Reset: true, Times: -1})
			return
		}
		r.srv.ClearFaults()
	case outageRefuse:
		if on {
			r.front.Refuse()
			return
		}
		r.front.Accept()
	}
}

// check verifies, at an idle instant, that the tenure is alive exactly
// while the clock is before the deadline of the last successful write.
func (r *outageRig) check() {
	r.t.Helper()
	now := r.clk.Now()
	r.mu.Lock()
	deadline, lostAt := r.lastStamp.Add(outageDeadline), r.lostAt
	r.mu.Unlock()
	switch {
	case lostAt.IsZero() && !now.Before(deadline):
		r.t.Fatalf("at %v: got no loss, want the renewal goroutine to end the tenure at its deadline %v", r.since(now), r.since(deadline))
	case !lostAt.IsZero() && !lostAt.Equal(deadline):
		r.t.Fatalf("lost at %v: got loss %v from the deadline, want at the deadline %v", r.since(lostAt), lostAt.Sub(deadline), r.since(deadline))
	case lostAt.IsZero() && !r.l.CheckAlive():
		r.t.Fatalf("at %v: got CheckAlive false before the deadline %v", r.since(now), r.since(deadline))
	case !lostAt.IsZero() && r.l.CheckAlive():
		r.t.Fatalf("at %v: got CheckAlive true after the loss", r.since(now))
	}
}
