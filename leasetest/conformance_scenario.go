package leasetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kubelease/lease"
	clocktesting "k8s.io/utils/clock/testing"
)

// scenario is the state of one running scenario.
type scenario struct {
	t    *testing.T
	b    ConformanceBackend
	cfg  *lease.Config
	ns   string
	name string // the scenario's lease name
	rest *confREST
}

// newScenario prepares scenario slug: a Config from the backend, a unique
// lease name, and a cleanup that deletes every object the scenario made.
func newScenario(t *testing.T, b ConformanceBackend, slug string) *scenario {
	t.Helper()
	cfg := b.Config(t)
	if cfg == nil {
		t.Fatal("ConformanceBackend.Config returned nil")
	}
	ns := b.Namespace
	if ns == "" {
		ns = "default"
	}
	sc := &scenario{t: t, b: b, cfg: cfg, ns: ns, name: uniqueName(slug)}
	sc.rest = newConfREST(t, cfg, ns)
	t.Cleanup(func() { sc.rest.remove(sc.name) })
	return sc
}

// uniqueName returns "conf-<slug>-<random>", lower-cased: a DNS-1123
// subdomain.
func uniqueName(slug string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "conf-" + strings.ToLower(slug) + "-" + hex.EncodeToString(b[:])
}

// ctx returns a context bounded by realWait, cancelled at the end of the
// scenario.
func (sc *scenario) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), realWait)
	sc.t.Cleanup(cancel)
	return ctx
}

// contender is a KubernetesLease of a scenario with its fake clock (nil
// for a real clock) and the reasons its OnLost handler got.
type contender struct {
	*lease.KubernetesLease
	owner string
	clk   *clocktesting.FakeClock
	lost  chan error
}

// newLease makes a lease on the scenario's lease name for owner, on a fake
// clock at confEpoch, with TTL confTTL and RenewalInterval confInterval;
// mods may change the Settings. It is released when the scenario ends.
func (sc *scenario) newLease(owner string, mods ...func(*lease.Settings)) *contender {
	sc.t.Helper()
	clk := clocktesting.NewFakeClock(confEpoch)
	s := lease.Settings{
		Name: sc.name, Namespace: sc.ns, Owner: owner, Config: sc.cfg, Clock: clk,
		TTL: confTTL, RenewalInterval: confInterval,
	}
	for _, m := range mods {
		m(&s)
	}
	l, err := lease.NewKubernetesLease(s)
	if err != nil {
		sc.t.Fatalf("NewKubernetesLease(%s): %v", owner, err)
	}
	c := &contender{KubernetesLease: l, owner: owner, lost: make(chan error, 16)}
	if s.Clock == clk {
		c.clk = clk
	}
	l.OnLost(func(err error) {
		select {
		case c.lost <- err:
		default:
		}
	})
	sc.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), realWait)
		defer cancel()
		if err := l.Release(ctx); err != nil {
			sc.t.Errorf("cleanup: Release of %s: %v", owner, err)
		}
	})
	return c
}

// acquire acquires c and requires true with no error. It returns the token.
func (sc *scenario) acquire(c *contender) lease.Token {
	sc.t.Helper()
	tok, ok, err := c.AcquireWithToken(sc.ctx())
	if err != nil || !ok {
		sc.t.Fatalf("%s: AcquireWithToken: got (%v, %v), want (true, nil)", c.owner, ok, err)
	}
	return tok
}

// acquireFalse requires that c's Acquire returns false with no error.
func (sc *scenario) acquireFalse(c *contender, why string) {
	sc.t.Helper()
	tok, ok, err := c.AcquireWithToken(sc.ctx())
	if err != nil || ok {
		sc.t.Fatalf("%s: AcquireWithToken (%s): got (%v, %v), want (false, nil)", c.owner, why, ok, err)
	}
	if !tok.IsZero() {
		sc.t.Errorf("%s: token of a failed acquire: got %v, want the zero Token", c.owner, tok)
	}
	if c.CheckAlive() {
		sc.t.Errorf("%s: CheckAlive after a failed acquire: got true, want false", c.owner)
	}
}

// release releases c and requires no error.
func (sc *scenario) release(c *contender) {
	sc.t.Helper()
	if err := c.Release(sc.ctx()); err != nil {
		sc.t.Fatalf("%s: Release: %v", c.owner, err)
	}
	if c.CheckAlive() {
		sc.t.Errorf("%s: CheckAlive after Release: got true, want false", c.owner)
	}
}

// noLoss requires that c's OnLost handler has not been called.
func (sc *scenario) noLoss(c *contender) {
	sc.t.Helper()
	select {
	case err := <-c.lost:
		sc.t.Fatalf("%s: OnLost called: %v", c.owner, err)
	default:
	}
}

// advance steps c's fake clock until done reports true: first by jump
// (the time the awaited timer needs if it is already set), then by
// fakeStep every stepEvery of real time, polling done every yield. It fails
// the test after maxFakeWait of fake time or realWait of real time. done
// runs on the test goroutine.
//
// Small steps come slowly so that a request in flight gets about
// stepEvery*confInterval/fakeStep of real time before stepping the clock
// times it out (the library's request timeouts run on its clock).
func (sc *scenario) advance(c *contender, jump time.Duration, what string, done func() bool) {
	sc.t.Helper()
	start := time.Now()
	var stepped time.Duration
	var last time.Time // of the last step; zero before the jump
	for {
		if done() {
			return
		}
		if stepped >= maxFakeWait || time.Since(start) > realWait {
			sc.t.Fatalf("%s: %s: not seen after stepping its clock %v (real time bound %v)", c.owner, what, stepped, realWait)
		}
		<-time.After(yield) // let the lease's goroutines run
		if done() {
			return
		}
		switch {
		case last.IsZero():
			c.clk.Step(jump)
			stepped += jump
		case time.Since(last) >= stepEvery:
			c.clk.Step(fakeStep)
			stepped += fakeStep
		default:
			continue
		}
		last = time.Now()
	}
}

// awaitRenewal steps c's clock until the stored renewTime is after prev,
// and returns the stored Lease. An OnLost call meanwhile fails the test.
func (sc *scenario) awaitRenewal(c *contender, prev time.Time) *Lease {
	sc.t.Helper()
	var got *Lease
	sc.advance(c, confInterval, "renewal", func() bool {
		sc.noLoss(c)
		got = sc.rest.get(sc.name)
		return got != nil && got.Spec.RenewTime != nil && got.Spec.RenewTime.After(prev)
	})
	return got
}

// awaitLoss steps c's clock until its OnLost handler is called, and
// returns the reason, which must be a *lease.LostError matching
// lease.ErrLost.
func (sc *scenario) awaitLoss(c *contender) *lease.LostError {
	sc.t.Helper()
	var got error
	sc.advance(c, confInterval, "OnLost", func() bool {
		select {
		case got = <-c.lost:
			return true
		default:
			return false
		}
	})
	return sc.lostError(c, got)
}

// lostError requires that err, an OnLost reason of c, is a
// *lease.LostError matching lease.ErrLost, and returns it.
func (sc *scenario) lostError(c *contender, err error) *lease.LostError {
	sc.t.Helper()
	var le *lease.LostError
	if !errors.As(err, &le) || !errors.Is(err, lease.ErrLost) {
		sc.t.Fatalf("%s: OnLost reason %v (%T): want a *lease.LostError matching lease.ErrLost", c.owner, err, err)
	}
	if c.CheckAlive() {
		sc.t.Errorf("%s: CheckAlive after OnLost: got true, want false", c.owner)
	}
	if _, ok := c.Token(); ok {
		sc.t.Errorf("%s: Token after OnLost: got ok, want !ok", c.owner)
	}
	return le
}
