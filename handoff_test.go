package lease_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHandoffRunSingleton: a planned handoff stops the holder's work, and
// only then leaves the Lease to the named contender, which a third
// contender does not beat to it; the old holder stays a contender.
func TestHandoffRunSingleton(t *testing.T) {
	e := newEnv(t)
	watch := func(s *lease.Settings) { s.WatchWhileHolding = true }
	a, b, c := e.realLease("pod-a", watch), e.realLease("pod-b", watch), e.realLease("pod-c", watch)
	type event struct {
		who, what string
		cause     error
	}
	events := make(chan event, 16)
	work := func(name string) func(context.Context) error {
		return func(ctx context.Context) error {
			events <- event{who: name, what: "start"}
			<-ctx.Done()
			events <- event{who: name, what: "stop", cause: context.Cause(ctx)}
			return nil
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 3)
	run := func(l *lease.KubernetesLease, name string) {
		go func() {
			done <- lease.RunSingleton(ctx, l, work(name), lease.SingletonOptions{RetryInterval: time.Hour})
		}()
	}
	run(a, "a")
	assert.Equal(t, event{who: "a", what: "start"}, recv(t, events, "a starts"))
	run(b, "b")
	run(c, "c")
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 3), "a's holder watch and two standbys")

	require.NoError(t, lease.RequestHandoff(e.ctx(), e.srv.Config(), "default", "job", "pod-b"))

	stop := recv(t, events, "a's work is stopped first")
	assert.Equal(t, "a", stop.who)
	assert.Equal(t, "stop", stop.what)
	var le *lease.LostError
	require.ErrorAs(t, stop.cause, &le, "work's cause says why")
	assert.Equal(t, lease.LostHandoff, le.Reason)
	assert.Equal(t, "pod-b", le.Holder)
	assert.Equal(t, event{who: "b", what: "start"}, recv(t, events, "then b starts"))

	rec := e.record()
	assert.Equal(t, "pod-b", rec.Spec.Holder())
	assert.NotContains(t, rec.Annotations, lease.PreferredHolderAnnotation, "the acquiring write answers the request")
	assert.Equal(t, int32(1), rec.Spec.Transitions())
	assert.False(t, a.CheckAlive())
	select {
	case err := <-done:
		t.Fatalf("a RunSingleton returned (%v): after a handoff it contends again", err)
	case ev := <-events:
		t.Fatalf("unexpected %+v", ev)
	default:
	}
	cancel()
	for range 3 {
		recv(t, done, "runners stop")
	}
	assert.Equal(t, "b", recv(t, events, "b stops").who)
}

// TestHandoffAtRenewal: without a holder watch, the holder sees the
// request at its next renewal (a 409, a re-read), steps down, and reports
// LostHandoff to OnLost once the record is vacated.
func TestHandoffAtRenewal(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	tok := a.acquire(t)
	require.NoError(t, lease.RequestHandoff(e.ctx(), e.srv.Config(), "", "job", "pod-b"))
	assert.True(t, a.CheckAlive(), "nothing happens before the holder looks")
	a.clk.Step(a.events.waitArmed(t))
	a.events.wait(t, "handed-off")
	le := a.lost.wait(t)
	assert.Equal(t, lease.LostHandoff, le.Reason)
	assert.Equal(t, "pod-b", le.Holder)
	assert.Equal(t, tok, le.Token)
	assert.NoError(t, le.Err)
	assert.False(t, a.CheckAlive())

	rec := e.record()
	assert.Empty(t, rec.Spec.Holder(), "vacated, not deleted")
	assert.Equal(t, "pod-b", rec.Annotations[lease.PreferredHolderAnnotation])
	assert.NotContains(t, rec.Annotations, lease.NonceAnnotation)
	assert.NotContains(t, rec.Annotations, lease.TokenAnnotation)
	require.NoError(t, a.Release(e.ctx()), "a later Release is a no-op")
	assert.Equal(t, "", e.record().Spec.Holder())
}

// TestHandoffContendersDefer: a vacated record naming pod-b is pod-b's at
// once; others wait HandoffWait (on their own clock, from when they first
// see it so), then take it as usual.
func TestHandoffContendersDefer(t *testing.T) {
	e := newEnv(t)
	e.putRecord("", time.Time{}, 15, 4)
	require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) {
		l.Annotations = map[string]string{lease.PreferredHolderAnnotation: "pod-b"}
	}))
	c := e.newLease("pod-c", func(s *lease.Settings) { s.HandoffWait = 5 * time.Second })
	ok, err := c.Acquire(e.ctx())
	require.NoError(t, err)
	assert.False(t, ok, "pod-c defers to pod-b")
	c.clk.Step(4 * time.Second)
	ok, err = c.Acquire(e.ctx())
	require.NoError(t, err)
	assert.False(t, ok, "still within HandoffWait")

	// Wait wakes when the deferral ends, not before.
	woke := make(chan error, 1)
	go func() { woke <- c.Wait(e.ctx()) }()
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))
	select {
	case err := <-woke:
		t.Fatalf("Wait returned %v before HandoffWait passed", err)
	default:
	}
	require.NoError(t, stepUntil(t, c.clk, time.Second, (<-chan error)(woke)))
	c.acquire(t)
	got := e.record()
	assert.Equal(t, "pod-c", got.Spec.Holder())
	assert.NotContains(t, got.Annotations, lease.PreferredHolderAnnotation, "a takeover after HandoffWait ends the request")
	assert.Equal(t, int32(5), got.Spec.Transitions())
}

func TestHandoffTargetTakesAtOnce(t *testing.T) {
	e := newEnv(t)
	e.putRecord("", time.Time{}, 15, 0)
	require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) {
		l.Annotations = map[string]string{lease.PreferredHolderAnnotation: "pod-b"}
	}))
	b := e.newLease("pod-b")
	b.acquire(t)
	assert.NotContains(t, e.record().Annotations, lease.PreferredHolderAnnotation)
}

// TestHandoffDisabled: DisableHandoff keeps a holder holding and a
// contender from deferring.
func TestHandoffDisabled(t *testing.T) {
	e := newEnv(t)
	off := func(s *lease.Settings) { s.DisableHandoff = true; s.WatchWhileHolding = true }
	a := e.newLease("pod-a", off)
	a.acquire(t)
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))
	require.NoError(t, lease.RequestHandoff(e.ctx(), e.srv.Config(), "", "job", "pod-b"))
	a.renewOnce(t)
	a.renewOnce(t)
	assert.True(t, a.CheckAlive())
	assert.Equal(t, "pod-b", e.record().Annotations[lease.PreferredHolderAnnotation], "kept, as every annotation")
	assert.Equal(t, 0, a.lost.count())
	require.NoError(t, a.Release(e.ctx()))

	e.putRecord("", time.Time{}, 15, 0)
	require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) {
		l.Annotations = map[string]string{lease.PreferredHolderAnnotation: "pod-b"}
	}))
	c := e.newLease("pod-c", off)
	c.acquire(t)
}

// TestHandoffSpecPreferredHolder: where the server keeps
// spec.preferredHolder, a change of it during a tenure asks for a handoff;
// a value that was there when the tenure began does not.
func TestHandoffSpecPreferredHolder(t *testing.T) {
	e := newEnv(t)
	e.srv.EnableCoordinatedLeaderElection()
	rec := &wire.Lease{}
	rec.Name, rec.Namespace = "job", "default"
	rec.Spec.Unknown = map[string]json.RawMessage{
		"strategy":        json.RawMessage(`"OldestEmulationVersion"`),
		"preferredHolder": json.RawMessage(`"pod-z"`),
	}
	require.NoError(t, e.srv.Put(rec))
	a := e.newLease("pod-a")
	a.acquire(t)
	a.renewOnce(t)
	assert.True(t, a.CheckAlive(), "a preferredHolder from before the tenure is not a request")
	require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) {
		l.Spec.Unknown["preferredHolder"] = json.RawMessage(`"pod-b"`)
	}))
	a.clk.Step(a.events.waitArmed(t))
	le := a.lost.wait(t)
	assert.Equal(t, lease.LostHandoff, le.Reason)
	assert.Equal(t, "pod-b", le.Holder)
	got := e.record()
	assert.Equal(t, "pod-b", got.Annotations[lease.PreferredHolderAnnotation], "the vacated record names the target for every contender")
	assert.JSONEq(t, `"pod-b"`, string(got.Spec.Unknown["preferredHolder"]))
}

func TestRequestHandoff(t *testing.T) {
	e := newEnv(t)
	cfg := e.srv.Config()
	err := lease.RequestHandoff(e.ctx(), cfg, "", "job", "")
	require.ErrorIs(t, err, lease.ErrInvalidSettings)
	assert.Contains(t, err.Error(), "handoff target is empty")

	err = lease.RequestHandoff(e.ctx(), cfg, "", "job", "pod-b")
	require.ErrorIs(t, err, lease.ErrNotHeld, "no Lease: nothing to hand off")
	assert.Contains(t, err.Error(), "no Lease default/job")

	err = lease.RequestHandoff(e.ctx(), cfg, "", "Not_A_Name", "pod-b")
	require.ErrorIs(t, err, lease.ErrInvalidSettings)

	a := e.newLease("pod-a")
	a.acquire(t)
	before := e.srv.Count("update")
	require.NoError(t, lease.RequestHandoff(e.ctx(), cfg, "", "job", "pod-a"))
	assert.Equal(t, before, e.srv.Count("update"), "to already holds it: nothing written")
	require.NoError(t, lease.RequestHandoff(e.ctx(), cfg, "", "job", "pod-b"))
	require.NoError(t, lease.RequestHandoff(e.ctx(), cfg, "", "job", "pod-b"))
	assert.Equal(t, before+1, e.srv.Count("update"), "asked once; asking again writes nothing")
	assert.Equal(t, "pod-b", e.record().Annotations[lease.PreferredHolderAnnotation])

	e.srv.InjectFault(leasetest.Fault{Verb: "update", Status: http.StatusForbidden})
	err = lease.RequestHandoff(e.ctx(), cfg, "", "job", "pod-c")
	var ae *lease.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, 403, ae.StatusCode)
}

// TestHandoffWorkDidNotStop: a work that outlives its grace period keeps
// the lease held (the step-down gives up); when it returns, RunSingleton's
// Release hands the lease off.
func TestHandoffWorkDidNotStop(t *testing.T) {
	e := newEnv(t)
	a := e.realLease("pod-a", func(s *lease.Settings) { s.WatchWhileHolding = true })
	lostc := make(chan error, 1)
	a.OnLost(func(err error) { lostc <- err })
	release := make(chan struct{})
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- lease.RunSingleton(ctx, a, func(context.Context) error {
			close(started)
			<-release // ignores its context
			return nil
		}, lease.SingletonOptions{GracePeriod: 50 * time.Millisecond})
	}()
	recv(t, started, "work starts")
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))
	require.NoError(t, lease.RequestHandoff(e.ctx(), e.srv.Config(), "", "job", "pod-b"))
	err := recv(t, done, "RunSingleton gives up on the work")
	require.ErrorIs(t, err, lease.ErrWorkDidNotStop)
	assert.True(t, a.CheckAlive(), "still held while the work runs")
	assert.Equal(t, "pod-a", e.record().Spec.Holder())
	b := e.realLease("pod-b")
	h, err := b.Holder(e.ctx())
	require.NoError(t, err)
	require.Equal(t, "pod-a", h.Holder)
	close(release)
	// The abandoned work's goroutine releases once work returned; for a
	// tenure stepping down, that Release hands off (as a Release: no OnLost).
	require.NoError(t, b.Wait(e.ctx()), "pod-b's Wait returns once the Lease is left to it")
	assert.False(t, a.CheckAlive())
	select {
	case err := <-lostc:
		t.Errorf("OnLost called for a Release: %v", err)
	default:
	}
	rec := e.record()
	assert.Empty(t, rec.Spec.Holder())
	assert.Equal(t, "pod-b", rec.Annotations[lease.PreferredHolderAnnotation])
}

// TestHandoffAfterDeadlineLossReportsOnce: a deadline passes while the
// step-down waits for a BeforeRelease hook: OnLost hears LostDeadline once,
// not a LostHandoff as well, and the record, still ours, is vacated for the
// target. (It heard both before handedOff checked for an earlier loss.)
func TestHandoffAfterDeadlineLossReportsOnce(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	inHook, leave := make(chan string, 1), make(chan struct{})
	defer a.BeforeRelease(func(ctx context.Context) error {
		if to, ok := lease.HandoffTo(ctx); ok {
			inHook <- to
			<-leave
		}
		return nil
	})()
	a.acquire(t)
	require.NoError(t, lease.RequestHandoff(e.ctx(), e.srv.Config(), "", "job", "pod-b"))
	a.clk.Step(a.events.waitArmed(t))
	assert.Equal(t, "pod-b", recv(t, inHook, "the step-down runs the hook"))

	e.srv.InjectFault(leasetest.Fault{Verb: "update", Status: http.StatusInternalServerError, Times: -1})
	a.lost.init()
	le := stepUntil(t, a.clk, time.Second, (<-chan error)(a.lost.ch))
	var lost *lease.LostError
	require.ErrorAs(t, le, &lost)
	assert.Equal(t, lease.LostDeadline, lost.Reason)
	e.srv.ClearFaults()
	close(leave)
	a.events.wait(t, "handed-off")
	select { // handlers run on goroutines of their own: give a second call time to show
	case err := <-a.lost.ch:
		t.Errorf("OnLost called again: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	assert.Equal(t, 1, a.lost.count(), "OnLost once")
	rec := e.record()
	assert.Empty(t, rec.Spec.Holder())
	assert.Equal(t, "pod-b", rec.Annotations[lease.PreferredHolderAnnotation])
}
