package lease_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReleaseLetsPeerAcquireAtOnce(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	b := e.newLease("pod-b")
	a.acquire(t)
	require.NoError(t, a.Release(e.ctx()))
	assert.False(t, a.CheckAlive())
	_, ok := e.srv.Get("default", "job")
	assert.False(t, ok, "released lease is deleted")
	b.acquire(t) // no waiting for expiry
	assert.Equal(t, 0, a.lost.count(), "no OnLost for a voluntary Release")
	// Release is idempotent and a no-op when not held.
	deletes := e.srv.Count("delete")
	require.NoError(t, a.Release(e.ctx()))
	assert.Equal(t, deletes, e.srv.Count("delete"))
	require.NoError(t, e.newLease("pod-c").Release(e.ctx()), "never acquired")
}

func TestReleaseSendsPreconditions(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	a.renewOnce(t)
	// A third party bumps the resourceVersion: the preconditioned DELETE
	// gets 409, the re-read shows the lease is still ours, the retry deletes.
	require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) { l.Labels = map[string]string{"x": "y"} }))
	e.srv.ResetCounts()
	require.NoError(t, a.Release(e.ctx()))
	_, ok := e.srv.Get("default", "job")
	assert.False(t, ok)
	assert.Equal(t, map[string]int{"delete": 2, "get": 1}, nonZero(e.srv.Counts()))
}

func TestReleaseNeverDeletesAnotherHoldersLease(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	a.events.waitArmed(t)
	// pod-c took the lease (say a's renewals were late); a has not noticed.
	require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) {
		l.Spec.HolderIdentity = ptr("pod-c")
		delete(l.Annotations, lease.NonceAnnotation)
	}))
	require.NoError(t, a.Release(e.ctx()))
	rec, ok := e.srv.Get("default", "job")
	require.True(t, ok, "pod-c's lease must survive a's Release")
	assert.Equal(t, "pod-c", rec.Spec.Holder())
	assert.Equal(t, 0, a.lost.count())
}

func TestReleaseAfterDeadlineLossDeletesOurRecord(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	lease.StepWall(a.KubernetesLease, time.Minute) // suspended
	require.False(t, a.CheckAlive())
	a.lost.wait(t)
	// The first Release reports the DELETE's failure; the record is kept.
	e.srv.InjectFault(leasetest.Fault{Verb: "delete", Status: http.StatusServiceUnavailable})
	err := a.Release(e.ctx())
	var apiErr *lease.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusServiceUnavailable, apiErr.StatusCode)
	// Later calls return nil.
	require.NoError(t, a.Release(e.ctx()))

	// Again, with a working server: the record naming us is deleted so
	// peers need not wait for it to expire.
	a.acquire(t)
	lease.StepWall(a.KubernetesLease, time.Minute)
	require.False(t, a.CheckAlive())
	a.lost.wait(t)
	require.NoError(t, a.Release(e.ctx()))
	_, ok := e.srv.Get("default", "job")
	assert.False(t, ok)
}

func TestReleaseAfterConflictLossDeletesNothing(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	wait := a.events.waitArmed(t)
	require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) { l.Spec.HolderIdentity = ptr("pod-c") }))
	a.clk.Step(wait)
	a.lost.wait(t)
	deletes := e.srv.Count("delete")
	require.NoError(t, a.Release(e.ctx()))
	assert.Equal(t, deletes, e.srv.Count("delete"))
}

func TestReleaseCancelsInFlightRenewal(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	e.holdRenewal(a, leasetest.Fault{Verb: "update", Hang: true})
	require.NoError(t, a.Release(e.ctx()), "Release does not wait for the hung renewal's timeout")
	assert.False(t, a.CheckAlive())
	assert.Equal(t, 0, a.lost.count())
}

func TestReleaseBoundedWhenContextCancelled(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, a.Release(ctx), "an already-cancelled ctx still releases")
	_, ok := e.srv.Get("default", "job")
	assert.False(t, ok)

	// A hung DELETE is bounded by Release's own timeout on the injected clock.
	a.acquire(t)
	e.srv.InjectFault(leasetest.Fault{Verb: "delete", Hang: true})
	errc := make(chan error, 1)
	arrived := e.srv.Received()
	go func() { errc <- a.Release(context.Background()) }()
	require.NoError(t, e.srv.AwaitReceived(e.ctx(), arrived+1))
	a.clk.Step(lease.MaxRenewAttemptTimeout)
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	case <-time.After(waitFor):
		t.Fatal("Release did not time out")
	}
}

func TestReleaseCancelsAcquireInFlight(t *testing.T) {
	e := newEnv(t)
	e.srv.InjectFault(leasetest.Fault{Verb: "get", Hang: true})
	b := e.newLease("pod-b")
	errc := acquireAsync(b)
	require.NoError(t, e.srv.AwaitReceived(e.ctx(), 1))
	require.NoError(t, b.Release(e.ctx()), "Release does not wait behind the hung Acquire")
	assert.ErrorIs(t, <-errc, context.Canceled)
	assert.False(t, b.CheckAlive())
}
