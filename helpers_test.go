package lease_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// epoch is where every fake clock starts.
var epoch = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// waitFor bounds every wait on a channel in these tests; reaching it is a
// failure, not a timing assumption.
const waitFor = 10 * time.Second

// env is one fake API server and helpers to make leases against it.
type env struct {
	t   *testing.T
	srv *leasetest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := leasetest.NewServer()
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv}
}

// contender is a KubernetesLease with its own fake clock and an event log.
type contender struct {
	*lease.KubernetesLease
	clk    *clocktesting.FakeClock
	events *events
	lost   *lostLog
}

// newLease makes a lease named "job" for owner, with its own fake clock.
func (e *env) newLease(owner string, mods ...func(*lease.Settings)) *contender {
	e.t.Helper()
	clk := clocktesting.NewFakeClock(epoch)
	s := lease.Settings{Name: "job", Owner: owner, Config: e.srv.Config(), Clock: clk, TTL: 15 * time.Second}
	for _, m := range mods {
		m(&s)
	}
	l, err := lease.NewKubernetesLease(s)
	require.NoError(e.t, err)
	ev := &events{ch: make(chan string, 4096)}
	lease.SetEventHook(l, ev.add)
	c := &contender{KubernetesLease: l, clk: clk, events: ev, lost: &lostLog{}}
	l.OnLost(c.lost.add)
	e.t.Cleanup(func() {
		// Stop the renewal goroutine whatever the test left behind.
		_ = l.Release(context.Background())
	})
	return c
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	e.t.Cleanup(cancel)
	return ctx
}

// events records lifecycle steps reported by the lease.
type events struct{ ch chan string }

func (ev *events) add(name string) {
	select {
	case ev.ch <- name:
	default:
		panic("event log full")
	}
}

// wait returns the next event whose name starts with prefix, skipping others.
func (ev *events) wait(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case name := <-ev.ch:
			if strings.HasPrefix(name, prefix) {
				return name
			}
		case <-deadline:
			t.Fatalf("no %q event within %v", prefix, waitFor)
		}
	}
}

// lostLog records OnLost calls.
type lostLog struct {
	mu   sync.Mutex // guards errs
	errs []error
	ch   chan error
	once sync.Once
}

func (ll *lostLog) init() { ll.once.Do(func() { ll.ch = make(chan error, 64) }) }

func (ll *lostLog) add(err error) {
	ll.init()
	ll.mu.Lock()
	ll.errs = append(ll.errs, err)
	ll.mu.Unlock()
	ll.ch <- err
}

// wait returns the next OnLost reason as a *LostError.
func (ll *lostLog) wait(t *testing.T) *lease.LostError {
	t.Helper()
	ll.init()
	select {
	case err := <-ll.ch:
		var le *lease.LostError
		require.ErrorAs(t, err, &le)
		require.ErrorIs(t, err, lease.ErrLost)
		return le
	case <-time.After(waitFor):
		t.Fatalf("OnLost not called within %v", waitFor)
		return nil
	}
}

func (ll *lostLog) count() int {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	return len(ll.errs)
}

// acquire acquires and requires success.
func (c *contender) acquire(t *testing.T) lease.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	tok, ok, err := c.AcquireWithToken(ctx)
	require.NoError(t, err)
	require.True(t, ok, "acquire: got false, want true")
	return tok
}

// renewOnce steps c's clock to its next renewal and waits for it to succeed.
func (c *contender) renewOnce(t *testing.T) {
	t.Helper()
	c.clk.Step(c.events.waitArmed(t))
	c.events.wait(t, "renewed")
}

// waitArmed drains the events seen so far and returns once the renewal
// timer of the latest tenure is set, with the wait it was set for: stepping
// the clock by that much, from the instant it was set, renews. (The wait is
// RenewalInterval ± 10 %, never exactly RenewalInterval.)
func (ev *events) waitArmed(t *testing.T) time.Duration {
	t.Helper()
	var wait time.Duration // of the latest renewal timer; 0: none set
	see := func(name string) {
		switch {
		case name == "acquired":
			wait = 0
		case strings.HasPrefix(name, "renew-wait "):
			d, err := time.ParseDuration(strings.TrimPrefix(name, "renew-wait "))
			require.NoError(t, err, "event %q", name)
			wait = d
		}
	}
	deadline := time.After(waitFor)
	for {
		select {
		case name := <-ev.ch:
			see(name)
			continue
		default:
		}
		if wait > 0 {
			return wait
		}
		select {
		case name := <-ev.ch:
			see(name)
		case <-deadline:
			t.Fatalf("renewal timer not set within %v", waitFor)
		}
	}
}

// holdRenewal makes the server hold c's renewal PUTs with f (a Hang or a
// Gate fault on "update"), steps c's clock to its next renewal and returns
// once that PUT has arrived, with the wait it stepped.
func (e *env) holdRenewal(c *contender, f leasetest.Fault) time.Duration {
	e.t.Helper()
	e.srv.InjectFault(f)
	wait := c.events.waitArmed(e.t)
	arrived := e.srv.Received()
	c.clk.Step(wait)
	require.NoError(e.t, e.srv.AwaitReceived(e.ctx(), arrived+1))
	return wait
}

// acquireAsync calls l.Acquire on a goroutine of its own and returns the
// channel its error is sent on.
func acquireAsync(l lease.Lease) <-chan error {
	errc := make(chan error, 1)
	go func() {
		_, err := l.Acquire(context.Background())
		errc <- err
	}()
	return errc
}

// ptr returns a pointer to a copy of v.
func ptr[T any](v T) *T { return &v }

// putRecord stores a Lease "job" in "default" as a third party would.
func (e *env) putRecord(holder string, renew time.Time, dur, transitions int32) *wire.Lease {
	e.t.Helper()
	obj := &wire.Lease{}
	obj.Name, obj.Namespace = "job", "default"
	if holder != "" {
		obj.Spec.HolderIdentity = ptr(holder)
	}
	if dur != 0 {
		obj.Spec.LeaseDurationSeconds = ptr(dur)
	}
	if !renew.IsZero() {
		obj.Spec.RenewTime = &metav1.MicroTime{Time: renew}
		obj.Spec.AcquireTime = &metav1.MicroTime{Time: renew}
	}
	obj.Spec.LeaseTransitions = ptr(transitions)
	require.NoError(e.t, e.srv.Put(obj))
	got, ok := e.srv.Get("default", "job")
	require.True(e.t, ok)
	return got
}

// record returns the Lease "job" as the server stores it.
func (e *env) record() *wire.Lease {
	e.t.Helper()
	got, ok := e.srv.Get("default", "job")
	require.True(e.t, ok, "lease job is absent")
	return got
}

// nonZero is m without its zero counts.
func nonZero(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// realLease is a KubernetesLease on the real clock, for watch tests whose
// waits are bounded by channels.
func (e *env) realLease(owner string, mods ...func(*lease.Settings)) *lease.KubernetesLease {
	e.t.Helper()
	s := lease.Settings{Name: "job", Owner: owner, Config: e.srv.Config(), TTL: 15 * time.Second}
	for _, m := range mods {
		m(&s)
	}
	l, err := lease.NewKubernetesLease(s)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = l.Release(context.Background()) })
	return l
}
