package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
)

// The tenure's deadline on both clocks (tenure.go): a tenure ends at its
// deadline whatever the renewal goroutine is doing, and stays ended.

func TestRenewalDeadlineWhileRequestHangs(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	wait := e.holdRenewal(a, leasetest.Fault{Verb: "update", Hang: true, Times: -1}) // the renewal PUT hangs
	// The wall clock reaches the deadline while the PUT still hangs (its
	// attempt timeout runs on the monotonic clock, which has not moved).
	deadline := 15*time.Second - lease.Margin(15*time.Second)
	lease.StepWall(a.KubernetesLease, deadline-wait-time.Millisecond)
	assert.True(t, a.CheckAlive(), "1ms before the deadline")
	lease.StepWall(a.KubernetesLease, time.Millisecond)
	assert.False(t, a.CheckAlive(), "at the deadline, with the request still hanging")
	le := a.lost.wait(t)
	assert.Equal(t, lease.LostDeadline, le.Reason)
	assert.ErrorIs(t, le, context.DeadlineExceeded)
	e.srv.Unhang()
}

func TestLateRenewalAnswerDoesNotRevive(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	gate := make(chan struct{})
	wait := e.holdRenewal(a, leasetest.Fault{Verb: "update", Gate: gate})
	// A suspend: only the wall clock moves, past the deadline. Nobody calls
	// CheckAlive; the held renewal then succeeds on the server, too late.
	lease.StepWall(a.KubernetesLease, time.Minute)
	close(gate)
	a.events.wait(t, "lost")
	le := a.lost.wait(t)
	assert.Equal(t, lease.LostDeadline, le.Reason)
	assert.Equal(t, epoch.Add(wait).Truncate(time.Microsecond), e.record().Spec.RenewTime.UTC(), "the late renewal was applied")
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
