package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReviewHandoff_SteppedDownRunnerDefersWithoutSpinning (regression):
// a RunSingleton holder that stepped down for an absent target gets
// OnStopped(LostHandoff) once, contends again, defers for HandoffWait on
// its own clock (not retaking before the target could), waits in Wait
// rather than polling, and retakes once HandoffWait has passed.
func TestReviewHandoff_SteppedDownRunnerDefersWithoutSpinning(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	started := make(chan lease.Token, 4)
	stopped := make(chan error, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- lease.RunSingleton(ctx, a, func(ctx context.Context) error {
			<-ctx.Done()
			return nil
		}, lease.SingletonOptions{
			Clock:     a.clk,
			OnStarted: func(tok lease.Token) { started <- tok },
			OnStopped: func(_ lease.Token, reason error) { stopped <- reason },
		})
	}()
	defer func() {
		cancel()
		recv(t, done, "RunSingleton returns")
	}()
	recv(t, started, "a starts")
	require.NoError(t, lease.RequestHandoff(e.ctx(), e.srv.Config(), "", "job", "pod-b"))
	a.clk.Step(a.events.waitArmed(t))
	a.events.wait(t, "handed-off")
	handedAt := a.clk.Now()
	reason := recv(t, stopped, "OnStopped")
	var le *lease.LostError
	require.ErrorAs(t, reason, &le)
	assert.Equal(t, lease.LostHandoff, le.Reason)
	assert.Equal(t, "pod-b", le.Holder)

	// The runner backs off (≤ 750 ms), reads, defers and waits in Wait.
	gets := e.srv.Count("get")
	stepUntilTrue(t, a.clk, 100*time.Millisecond, "a waits on its standby watch", func() bool { return e.srv.Watchers() >= 1 })
	took := make(chan struct{})
	go func() {
		<-started
		close(took)
	}()
	stepUntil(t, a.clk, 100*time.Millisecond, (<-chan struct{})(took))
	assert.GreaterOrEqual(t, a.clk.Since(handedAt), 15*time.Second, "a retook before HandoffWait (TTL) had passed")
	assert.Equal(t, "pod-a", e.record().Spec.Holder())
	assert.LessOrEqual(t, e.srv.Count("get")-gets, 4, "reads while deferring: RunSingleton must not poll")
	select {
	case r := <-stopped:
		t.Fatalf("a second OnStopped (%v)", r)
	default:
	}
}

// TestReviewHandoff_TokenAnnotationNewTenure (regression): after a step-down
// and a retake by the same instance, kubelease.io/token shows only the new
// tenure's token, once published.
func TestReviewHandoff_TokenAnnotationNewTenure(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a", func(s *lease.Settings) { s.HandoffWait = time.Second })
	tok1 := a.acquire(t)
	a.renewOnce(t)
	require.Equal(t, tok1.String(), e.record().Annotations[lease.TokenAnnotation])
	require.NoError(t, lease.RequestHandoff(e.ctx(), e.srv.Config(), "", "job", "pod-b"))
	a.clk.Step(a.events.waitArmed(t))
	a.events.wait(t, "handed-off")
	ok, err := a.Acquire(e.ctx())
	require.NoError(t, err)
	require.False(t, ok, "defers to pod-b")
	a.clk.Step(time.Second)
	tok2 := a.acquire(t)
	rec := e.record()
	assert.NotContains(t, rec.Annotations, lease.TokenAnnotation, "no token of tenure %v for tenure %v", tok1, tok2)
	info, err := lease.ReadLease(e.ctx(), e.srv.Config(), "", "job")
	require.NoError(t, err)
	assert.Equal(t, lease.Token{}, info.HolderToken)
	a.renewOnce(t)
	assert.Equal(t, tok2.String(), e.record().Annotations[lease.TokenAnnotation])
	assert.Equal(t, int32(1), tok2.Transitions, "a new holder after a vacated record")
}
