package lease_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stepDownGate registers a BeforeRelease hook on c that, for a step-down
// only (HandoffTo), reports the hook's context on entered and then holds
// the step-down until proceed is closed. Other Releases pass through.
type stepDownGate struct {
	entered chan context.Context
	proceed chan struct{}
}

func holdStepDown(t *testing.T, c *contender) *stepDownGate {
	t.Helper()
	g := &stepDownGate{entered: make(chan context.Context, 4), proceed: make(chan struct{})}
	unhook := c.BeforeRelease(func(ctx context.Context) error {
		if _, ok := lease.HandoffTo(ctx); !ok {
			return nil
		}
		g.entered <- ctx
		<-g.proceed
		return nil
	})
	t.Cleanup(func() {
		select {
		case <-g.proceed:
		default:
			close(g.proceed)
		}
		unhook()
	})
	return g
}

func (g *stepDownGate) open() { close(g.proceed) }

// startStepDown acquires for a, asks for a handoff to "to" and renews once
// (the renewal's 409 and re-read show the request), and returns once a's
// step-down is held in its BeforeRelease hook, with that hook's context.
func startStepDown(t *testing.T, e *env, a *contender, g *stepDownGate, to string) (lease.Token, context.Context) {
	t.Helper()
	tok := a.acquire(t)
	require.NoError(t, lease.RequestHandoff(e.ctx(), e.srv.Config(), "", "job", to))
	a.clk.Step(a.events.waitArmed(t))
	ctx := recv(t, g.entered, "the step-down runs the BeforeRelease hooks")
	return tok, ctx
}

// TestReviewHandoff_DeadlineLossDuringStepDownOnLostOnce: a step-down
// waits for the BeforeRelease hooks (RunSingleton's work stopping) while
// renewals go on; if the tenure is lost by deadline meanwhile, OnLost gets
// LostDeadline — and then the step-down goes on to handedOff, which calls
// every OnLost handler a second time for the same tenure, with LostHandoff
// (release.go: a LostDeadline does not stop it; handedOff overwrites
// t.lost and calls the handlers again). DESIGN §4: "each lost tenure calls
// each of them once".
func TestReviewHandoff_DeadlineLossDuringStepDownOnLostOnce(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	g := holdStepDown(t, a)
	tok, _ := startStepDown(t, e, a, g, "pod-b")

	// The API goes away while work is stopping: the tenure runs out.
	e.srv.InjectFault(leasetest.Fault{Verb: "update", Status: http.StatusServiceUnavailable, Times: -1})
	a.lost.init()
	first := stepUntil(t, a.clk, time.Second, (<-chan error)(a.lost.ch))
	var le *lease.LostError
	require.ErrorAs(t, first, &le)
	assert.Equal(t, lease.LostDeadline, le.Reason)
	assert.Equal(t, tok, le.Token)
	assert.False(t, a.CheckAlive())

	// The API comes back; the hooks return; the step-down finishes.
	e.srv.ClearFaults()
	g.open()
	a.events.wait(t, "handed-off")
	select {
	case second := <-a.lost.ch:
		t.Fatalf("OnLost called a second time for tenure %v (already lost by deadline): %v", tok, second)
	case <-time.After(time.Second): // bound on a call that must never come
	}
	assert.Equal(t, 1, a.lost.count(), "OnLost calls for one tenure")
}

// TestReviewHandoff_LaterRequestMidStepDownIsKept: a second RequestHandoff
// made while the holder is stepping down (its work still stopping) returns
// nil, having written the new target; but the vacating write re-reads on
// its 409 and overwrites kubelease.io/preferred-holder with the first
// target (t.handoff): the new target is made to defer for HandoffWait,
// and the operator's latest request is silently undone.
func TestReviewHandoff_LaterRequestMidStepDownIsKept(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	g := holdStepDown(t, a)
	startStepDown(t, e, a, g, "pod-b")

	// The operator changes their mind: pod-c, not pod-b.
	require.NoError(t, lease.RequestHandoff(e.ctx(), e.srv.Config(), "", "job", "pod-c"))
	require.Equal(t, "pod-c", e.record().Annotations[lease.PreferredHolderAnnotation])

	g.open()
	a.events.wait(t, "handed-off")
	rec := e.record()
	assert.Empty(t, rec.Spec.Holder())
	assert.Equal(t, "pod-c", rec.Annotations[lease.PreferredHolderAnnotation],
		"the vacated record must name the target the record asked for last, not the one the step-down started for")

	// Consequence: pod-c, the one the operator asked for last, may not take it.
	c := e.newLease("pod-c")
	ok, err := c.Acquire(e.ctx())
	require.NoError(t, err)
	assert.True(t, ok, "pod-c, the latest requested target, defers to pod-b instead")
}

// TestReviewHandoff_CancelMidStepDownByNamingHolder: RequestHandoff naming
// the current holder is how a pending handoff is cancelled (it writes the
// holder's own name; the holder ignores it and its renewal clears it).
// Made while the holder is already stepping down, the cancel returns nil
// but is overwritten by the vacating write: the holder leaves and then
// defers to the target it was told not to hand to.
func TestReviewHandoff_CancelMidStepDownByNamingHolder(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	g := holdStepDown(t, a)
	startStepDown(t, e, a, g, "pod-b")

	require.NoError(t, lease.RequestHandoff(e.ctx(), e.srv.Config(), "", "job", "pod-a"))
	require.Equal(t, "pod-a", e.record().Annotations[lease.PreferredHolderAnnotation], "the cancel was written")

	g.open()
	a.events.wait(t, "handed-off")
	assert.NotEqual(t, "pod-b", e.record().Annotations[lease.PreferredHolderAnnotation],
		"a cancelled handoff must not be re-instated by the vacating write")
}

// TestReviewHandoff_StepDownHookContextCanEnd: a Release passes its
// caller's ctx to the BeforeRelease hooks, so a hook that drains "until
// ctx ends" (http.Server.Shutdown(ctx), ...) is bounded by the caller. A
// step-down passes context.WithValue(context.Background(), ...): a context
// that can never end. Such a hook then holds the step-down (and its
// goroutine) forever while the tenure keeps renewing: the handoff never
// happens, and nothing reports it.
func TestReviewHandoff_StepDownHookContextCanEnd(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	g := holdStepDown(t, a)
	_, ctx := startStepDown(t, e, a, g, "pod-b")
	g.open()
	a.events.wait(t, "handed-off")
	assert.NotNil(t, ctx.Done(), "the step-down's hook context can never be cancelled (Done() == nil)")
}

// The step-down's hook context ends after DefaultGracePeriod (the TTL is
// shorter) on the lease's clock.
func TestReviewHandoff_StepDownHookContextEnds(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a", func(s *lease.Settings) { s.TTL = 5 * time.Second })
	g := holdStepDown(t, a)
	_, ctx := startStepDown(t, e, a, g, "pod-b")
	ended := make(chan struct{})
	go func() { <-ctx.Done(); close(ended) }()
	a.clk.Step(lease.DefaultGracePeriod - time.Millisecond)
	select {
	case <-ended:
		t.Fatal("the hook's context ended before DefaultGracePeriod")
	default:
	}
	stepUntil(t, a.clk, time.Millisecond, (<-chan struct{})(ended))
	g.open()
}

// TestReviewHandoff_ShutdownReleaseMidStepDownNoOnLost: a Release from a
// shutdown hook, made while a step-down is waiting for work to stop, is a
// voluntary Release: DESIGN §4 "OnLost ... Never for a voluntary Release".
// Since t.handoff is set, that Release goes to handedOff and calls the
// OnLost handlers (LostHandoff) from the caller's Release.
func TestReviewHandoff_ShutdownReleaseMidStepDownNoOnLost(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	g := holdStepDown(t, a)
	startStepDown(t, e, a, g, "pod-b")

	// Shutdown: the process releases (the hook lets non-handoff Releases pass).
	require.NoError(t, a.Release(e.ctx()))
	assert.False(t, a.CheckAlive())
	g.open()
	a.lost.init()
	select {
	case err := <-a.lost.ch:
		t.Fatalf("OnLost called for a voluntary Release: %v", err)
	case <-time.After(time.Second): // bound on a call that must never come
	}
}
