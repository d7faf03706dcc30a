package lease_test

import (
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOnLostRegistration(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	calls := make(chan error, 8)
	unregister := a.OnLost(func(err error) { calls <- err })
	extra := a.OnLost(func(error) { t.Error("unregistered handler called") })
	extra()
	extra() // idempotent

	for range 2 { // handlers stay registered across tenures
		a.acquire(t)
		lease.StepWall(a.KubernetesLease, time.Minute)
		require.False(t, a.CheckAlive())
		select {
		case err := <-calls:
			assert.ErrorIs(t, err, lease.ErrLost)
		case <-time.After(waitFor):
			t.Fatal("handler not called")
		}
		a.lost.wait(t)
		require.NoError(t, a.Release(e.ctx()))
	}
	unregister()
	a.acquire(t)
	lease.StepWall(a.KubernetesLease, time.Minute)
	require.False(t, a.CheckAlive())
	a.lost.wait(t) // the test's own handler still runs
	assert.Len(t, calls, 0, "unregistered handler must not run")
}

func TestSlowOnLostHandlerDoesNotBlock(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	block := make(chan struct{})
	a.OnLost(func(error) { <-block })
	a.acquire(t)
	lease.StepWall(a.KubernetesLease, time.Minute)
	require.False(t, a.CheckAlive())
	a.lost.wait(t)
	require.NoError(t, a.Release(e.ctx()))
	lease.StepWall(a.KubernetesLease, -time.Minute)
	a.acquire(t) // not delayed by the blocked handler
	close(block)
}

// Item 6: a nil OnLost handler is ignored, as MemoryLease does.
func TestOnLostNilIgnored(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("a")
	unregister := a.OnLost(nil)
	require.NotNil(t, unregister)
	defer unregister()
	defer unregister() // idempotent
	a.acquire(t)
	wait := a.events.waitArmed(t)
	require.NoError(t, e.srv.Delete("default", "job"))
	a.clk.Step(wait)
	le := a.lost.wait(t) // the process is still alive to see it
	assert.Equal(t, lease.LostDeleted, le.Reason)
}
