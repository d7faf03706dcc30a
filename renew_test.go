package lease_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRenewalIsOnePut(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	tok := a.acquire(t)
	e.srv.ResetCounts()
	const renewals = 6
	for range renewals {
		before := e.record().Spec.RenewTime.Time
		a.renewOnce(t)
		after := e.record().Spec.RenewTime.Time
		assert.True(t, after.After(before), "renewTime moved: %v -> %v", before, after)
	}
	assert.Equal(t, map[string]int{"update": renewals}, nonZero(e.srv.Counts()), "steady state: one PUT per renewal, no GET")
	// 6 renewals took 30s of fake time, twice the TTL: still held.
	assert.True(t, a.CheckAlive())
	got, ok := a.Token()
	assert.True(t, ok)
	assert.Equal(t, tok, got, "renewals keep the tenure's token")
	assert.Equal(t, 0, a.lost.count())
}

func TestRenewalIntervalHasJitter(t *testing.T) {
	t.Cleanup(lease.SeedJitter(3))
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	seen := map[time.Duration]bool{}
	above := 0
	for range 16 {
		name := a.events.wait(t, "renew-wait")
		wait, err := time.ParseDuration(strings.TrimPrefix(name, "renew-wait "))
		require.NoError(t, err, name)
		assert.GreaterOrEqual(t, wait, 4500*time.Millisecond, "wait: got %v, want at most 10 %% early", wait)
		assert.LessOrEqual(t, wait, 5500*time.Millisecond, "wait: got %v, want at most 10 %% late", wait)
		if wait > 5*time.Second {
			above++
		}
		seen[wait] = true
		a.clk.Step(wait)
		a.events.wait(t, "renewed")
	}
	assert.Greater(t, len(seen), 1, "the waits vary")
	assert.Positive(t, above, "waits above RenewalInterval: got none, want some (jitter around it)")
}

func TestRenewalIntervalNearTTLStillRenews(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a", func(s *lease.Settings) { s.RenewalInterval = s.TTL - time.Millisecond })
	a.acquire(t)
	for range 3 {
		name := a.events.wait(t, "renew-wait")
		wait, err := time.ParseDuration(strings.TrimPrefix(name, "renew-wait "))
		require.NoError(t, err, name)
		// Room for one attempt (min(10s, interval)) is left before the deadline.
		assert.LessOrEqual(t, wait, 15*time.Second-lease.Margin(15*time.Second)-10*time.Second)
		a.clk.Step(wait)
		a.events.wait(t, "renewed")
	}
	assert.True(t, a.CheckAlive())
	assert.Equal(t, 0, a.lost.count())
}

func TestRenewalKeepsOthersFields(t *testing.T) {
	e := newEnv(t)
	rec := &wire.Lease{}
	rec.Name, rec.Namespace = "job", "default"
	rec.Labels = map[string]string{"app": "x"}
	rec.Annotations = map[string]string{"note": "keep me"}
	rec.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: "u-1"}}
	rec.Spec.Unknown = map[string]json.RawMessage{
		"strategy":        json.RawMessage(`"OldestEmulationVersion"`),
		"preferredHolder": json.RawMessage(`"pod-z"`),
	}
	e.srv.EnableCoordinatedLeaderElection() // or the server drops strategy and preferredHolder
	require.NoError(t, e.srv.Put(rec))
	a := e.newLease("pod-a")
	a.acquire(t)
	a.renewOnce(t)
	// Someone edits a label between renewals: the renewal's 409 is not a loss.
	require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) { l.Labels["edited"] = "yes" }))
	a.renewOnce(t)
	a.renewOnce(t)

	got := e.record()
	assert.Equal(t, map[string]string{"app": "x", "edited": "yes"}, got.Labels)
	assert.Equal(t, "keep me", got.Annotations["note"])
	assert.Equal(t, rec.OwnerReferences, got.OwnerReferences)
	assert.JSONEq(t, `"OldestEmulationVersion"`, string(got.Spec.Unknown["strategy"]))
	assert.JSONEq(t, `"pod-z"`, string(got.Spec.Unknown["preferredHolder"]))
	assert.True(t, a.CheckAlive())
	assert.Equal(t, 0, a.lost.count())
	assert.Equal(t, 2, e.srv.Count("get"), "acquire's read and one re-read after the label edit's 409")
}

func TestRenewalLoss(t *testing.T) {
	tests := []struct {
		name       string
		change     func(e *env)
		wantReason lease.LostReason
		wantHolder string
	}{
		{"competitor takes over", func(e *env) {
			require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) { l.Spec.HolderIdentity = ptr("pod-c") }))
		}, lease.LostConflict, "pod-c"},
		{"holder cleared", func(e *env) {
			require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) { l.Spec.HolderIdentity = nil }))
		}, lease.LostConflict, ""},
		{"same owner, another instance's nonce", func(e *env) {
			require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) { l.Annotations[lease.NonceAnnotation] = "other" }))
		}, lease.LostConflict, "pod-a"},
		{"deleted", func(e *env) { require.NoError(t, e.srv.Delete("default", "job")) }, lease.LostDeleted, ""},
		{"re-created by someone else: deleted wins over holder change", func(e *env) {
			require.NoError(t, e.srv.Delete("default", "job"))
			e.putRecord("pod-c", epoch, 15, 0)
		}, lease.LostDeleted, "pod-c"},
		{"re-created naming us: uid changed", func(e *env) {
			old := e.record()
			require.NoError(t, e.srv.Delete("default", "job"))
			old.UID, old.ResourceVersion = "", ""
			require.NoError(t, e.srv.Put(old))
		}, lease.LostDeleted, "pod-a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.newLease("pod-a")
			tok := a.acquire(t)
			a.events.waitArmed(t)
			tc.change(e)
			a.clk.Step(5 * time.Second)
			le := a.lost.wait(t)
			assert.Equal(t, tc.wantReason, le.Reason)
			assert.Equal(t, tc.wantHolder, le.Holder)
			assert.Equal(t, tok, le.Token)
			assert.False(t, a.CheckAlive(), "CheckAlive after loss")
			_, ok := a.Token()
			assert.False(t, ok)
			assert.Equal(t, 1, a.lost.count(), "OnLost once")
		})
	}
}

func TestRenewalDeadlineWhileRequestHangs(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	e.srv.InjectFault(leasetest.Fault{Verb: "update", Hang: true, Times: -1})
	a.events.waitArmed(t)
	arrived := e.srv.Received()
	a.clk.Step(5 * time.Second) // t=5s: the renewal PUT hangs
	require.NoError(t, e.srv.AwaitReceived(e.ctx(), arrived+1))
	// The wall clock reaches the deadline while the PUT still hangs (its
	// attempt timeout runs on the monotonic clock, which has not moved).
	deadline := 15*time.Second - lease.Margin(15*time.Second)
	lease.StepWall(a.KubernetesLease, deadline-5*time.Second-time.Millisecond)
	assert.True(t, a.CheckAlive(), "1ms before the deadline")
	lease.StepWall(a.KubernetesLease, time.Millisecond)
	assert.False(t, a.CheckAlive(), "at the deadline, with the request still hanging")
	le := a.lost.wait(t)
	assert.Equal(t, lease.LostDeadline, le.Reason)
	assert.ErrorIs(t, le, context.DeadlineExceeded)
	e.srv.Unhang()
}

func TestRenewalAttemptTimeout(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	e.srv.InjectFault(leasetest.Fault{Verb: "update", Hang: true})
	a.events.waitArmed(t)
	arrived := e.srv.Received()
	a.clk.Step(5 * time.Second)
	require.NoError(t, e.srv.AwaitReceived(e.ctx(), arrived+1))
	// With 9.7s left, the attempt's timeout is a third of it (below the cap
	// of min(10s, RenewalInterval) = 5s): then a retry.
	want := (15*time.Second - lease.Margin(15*time.Second) - 5*time.Second) / 3
	got := a.events.wait(t, "renew-attempt ")
	assert.Equal(t, "renew-attempt "+want.String(), got)
	a.clk.Step(want)
	a.events.wait(t, "renew-retry-wait")
	a.clk.Step(time.Second)
	a.events.wait(t, "renewed")
	assert.True(t, a.CheckAlive())
	assert.Equal(t, 2, e.srv.Count("update"))
}

func TestRenewalDeadlineWrapsLastError(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	e.srv.InjectFault(leasetest.Fault{Verb: "update", Status: http.StatusServiceUnavailable, Times: -1})
	a.events.waitArmed(t)
	a.clk.Step(5 * time.Second)
	// Drive the retries on the fake clock until the deadline, without
	// calling CheckAlive: the renewal goroutine ends the tenure itself.
	for {
		name := a.events.wait(t, "")
		if name == "lost" {
			break
		}
		if strings.HasPrefix(name, "renew-retry-wait") {
			a.clk.Step(lease.DefaultTTL / 3) // the backoff cap
		}
	}
	le := a.lost.wait(t)
	assert.Equal(t, lease.LostDeadline, le.Reason)
	var apiErr *lease.APIError
	require.True(t, errors.As(le, &apiErr), "got %v, want the last APIError wrapped", le)
	assert.Equal(t, http.StatusServiceUnavailable, apiErr.StatusCode)
	assert.False(t, a.CheckAlive())
}

func TestRenewalRecoversWithinDeadline(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	e.srv.InjectFault(leasetest.Fault{Verb: "update", Status: http.StatusInternalServerError, Times: 2})
	a.events.waitArmed(t)
	a.clk.Step(5 * time.Second)
	for range 2 {
		a.events.wait(t, "renew-retry-wait")
		a.clk.Step(time.Second)
	}
	a.events.wait(t, "renewed")
	assert.True(t, a.CheckAlive())
	assert.Equal(t, 0, a.lost.count())
}

func TestRenewalHonoursRetryAfter(t *testing.T) {
	tests := []struct {
		name string
		f    leasetest.Fault
		want string
	}{
		{"429 plain text with Retry-After", leasetest.Fault{Verb: "update", Status: 429, PlainText: true, RetryAfter: "3"}, "renew-retry-wait 3s"},
		{"503 with Retry-After", leasetest.Fault{Verb: "update", Status: 503, RetryAfter: "2"}, "renew-retry-wait 2s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.newLease("pod-a")
			a.acquire(t)
			e.srv.InjectFault(tc.f)
			a.events.waitArmed(t)
			a.clk.Step(5 * time.Second)
			assert.Equal(t, tc.want, a.events.wait(t, "renew-retry-wait"))
		})
	}
}

func TestRenewalNoOpAnswerDoesNotExtend(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	rec := e.record()
	raw, err := json.Marshal(rec)
	require.NoError(t, err)
	// A broken server answers every PUT with the object as it was.
	e.srv.InjectFault(leasetest.Fault{Verb: "update", Status: 200, Body: raw, Times: -1})
	a.events.waitArmed(t)
	a.clk.Step(5 * time.Second)
	a.events.wait(t, "renew-retry-wait")
	deadline := 15*time.Second - lease.Margin(15*time.Second)
	a.clk.Step(deadline - 5*time.Second)
	assert.False(t, a.CheckAlive(), "a no-op answer must not extend the deadline")
	le := a.lost.wait(t)
	assert.Equal(t, lease.LostDeadline, le.Reason)
	assert.ErrorIs(t, le, lease.ErrBadResponse)
}

func TestLateRenewalAnswerDoesNotRevive(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	gate := make(chan struct{})
	e.srv.InjectFault(leasetest.Fault{Verb: "update", Gate: gate})
	a.events.waitArmed(t)
	arrived := e.srv.Received()
	a.clk.Step(5 * time.Second)
	require.NoError(t, e.srv.AwaitReceived(e.ctx(), arrived+1))
	// A suspend: only the wall clock moves, past the deadline. Nobody calls
	// CheckAlive; the held renewal then succeeds on the server, too late.
	lease.StepWall(a.KubernetesLease, time.Minute)
	close(gate)
	a.events.wait(t, "lost")
	le := a.lost.wait(t)
	assert.Equal(t, lease.LostDeadline, le.Reason)
	assert.Equal(t, epoch.Add(5*time.Second), e.record().Spec.RenewTime.UTC(), "the late renewal was applied")
	lease.StepWall(a.KubernetesLease, -time.Minute) // and the wall clock steps back
	assert.False(t, a.CheckAlive(), "a tenure that ended stays ended")
}

func TestSuspendedProcessWakesUpNotHolding(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	lease.StepWall(a.KubernetesLease, 20*time.Second)
	assert.False(t, a.CheckAlive(), "wall clock jumped past the deadline; monotonic did not")
	le := a.lost.wait(t)
	assert.Equal(t, lease.LostDeadline, le.Reason)
}

func TestWallClockStepBackIsHarmless(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	lease.StepWall(a.KubernetesLease, -time.Hour)
	assert.True(t, a.CheckAlive(), "a backward wall step does not end the tenure")
	e.srv.InjectFault(leasetest.Fault{Verb: "update", Hang: true, Times: -1})
	a.events.waitArmed(t)
	a.clk.Step(15 * time.Second) // no renewal can succeed
	assert.False(t, a.CheckAlive(), "the monotonic deadline still holds")
}

func TestTwoInstancesOneOwnerEndWithOneHolder(t *testing.T) {
	e := newEnv(t)
	a1 := e.newLease("pod-a")
	a2 := e.newLease("pod-a")
	a1.acquire(t)
	a2.acquire(t) // "holder is Owner": takes over
	assert.True(t, a1.CheckAlive() && a2.CheckAlive(), "both believe until a1's next renewal: why Owners must be unique")
	a1.events.waitArmed(t)
	a1.clk.Step(5 * time.Second)
	le := a1.lost.wait(t)
	assert.Equal(t, lease.LostConflict, le.Reason)
	a2.renewOnce(t)
	assert.False(t, a1.CheckAlive())
	assert.True(t, a2.CheckAlive())
	assert.Equal(t, lease.NonceOf(a2.KubernetesLease), e.record().Annotations[lease.NonceAnnotation])
}

func TestRenewalMicrosecondBump(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	// The stored renewTime is ahead of our clock (a wall step back): the
	// renewal must still change it, by 1µs, or it would be a no-op.
	lease.StepWall(a.KubernetesLease, -10*time.Second)
	before := e.record()
	a.renewOnce(t)
	after := e.record()
	assert.Equal(t, before.Spec.RenewTime.Add(time.Microsecond), after.Spec.RenewTime.Time)
	assert.NotEqual(t, before.ResourceVersion, after.ResourceVersion)
}
