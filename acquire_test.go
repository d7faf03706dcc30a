package lease_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestAcquireCreates(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	tok := a.acquire(t)
	rec := e.record()

	assert.Equal(t, rec.ResourceVersion, tok.ResourceVersion, "token resourceVersion")
	assert.Equal(t, int32(0), tok.Transitions)
	assert.Equal(t, "pod-a", rec.Spec.Holder())
	assert.Equal(t, int32(15), *rec.Spec.LeaseDurationSeconds)
	assert.Equal(t, int32(0), rec.Spec.Transitions())
	assert.True(t, rec.Spec.RenewTime.Equal(&metav1.MicroTime{Time: epoch}), "renewTime: got %v, want %v", rec.Spec.RenewTime, epoch)
	assert.True(t, rec.Spec.AcquireTime.Equal(rec.Spec.RenewTime), "acquireTime equals renewTime")
	assert.Equal(t, lease.NonceOf(a.KubernetesLease), rec.Annotations[lease.NonceAnnotation])
	assert.True(t, a.CheckAlive())
	got, ok := a.Token()
	assert.True(t, ok)
	assert.Equal(t, tok, got)
	assert.Equal(t, map[string]int{"get": 1, "create": 1}, nonZero(e.srv.Counts()))

	// Acquire while held: no I/O, same token.
	again := a.acquire(t)
	assert.Equal(t, tok, again)
	assert.Equal(t, map[string]int{"get": 1, "create": 1}, nonZero(e.srv.Counts()))
}

func TestAcquireLiveConflict(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	b := e.newLease("pod-b")
	a.acquire(t)
	e.srv.ResetCounts()

	tok, ok, err := b.AcquireWithToken(e.ctx())
	require.NoError(t, err)
	assert.False(t, ok)
	assert.True(t, tok.IsZero(), "token of a failed acquire: got %v, want zero", tok)
	assert.False(t, b.CheckAlive())
	assert.Equal(t, map[string]int{"get": 1}, nonZero(e.srv.Counts()), "a live conflict costs one GET")
}

func TestAcquireTransitionsSaturate(t *testing.T) {
	e := newEnv(t)
	e.putRecord("", epoch, 15, math.MaxInt32)
	b := e.newLease("pod-b")
	tok := b.acquire(t)
	assert.Equal(t, int32(math.MaxInt32), tok.Transitions)
	assert.Equal(t, int32(math.MaxInt32), e.record().Spec.Transitions())
}

func TestAcquireRetriesOnConflict(t *testing.T) {
	tests := []struct {
		name      string
		retries   int
		conflicts int
		wantOK    bool
		wantPuts  int
	}{
		{"default retries absorb three conflicts", 0, 3, true, 4},
		{"default retries used up", 0, 4, false, 4},
		{"one retry", 1, 1, true, 2},
		{"one retry used up", 1, 5, false, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.putRecord("", epoch, 15, 0)
			e.srv.InjectFault(leasetest.Fault{Verb: "update", Status: http.StatusConflict, Times: tc.conflicts})
			b := e.newLease("pod-b", func(s *lease.Settings) { s.AcquireRetries = tc.retries })
			ok, err := b.Acquire(e.ctx())
			require.NoError(t, err)
			assert.Equal(t, tc.wantOK, ok)
			assert.Equal(t, tc.wantPuts, e.srv.Count("update"))
			assert.Equal(t, tc.wantPuts, e.srv.Count("get"), "one re-read per attempt")
		})
	}
}

func TestAcquireCreateRace(t *testing.T) {
	e := newEnv(t)
	// The first POST loses a create race: the lease appears, held by pod-a.
	e.srv.InjectFault(leasetest.Fault{Verb: "create", Status: http.StatusConflict})
	b := e.newLease("pod-b")
	ok, err := b.Acquire(e.ctx())
	require.NoError(t, err)
	assert.True(t, ok, "retried after AlreadyExists")
	assert.Equal(t, 2, e.srv.Count("create"))
}

func TestAcquireHungRequestTimesOut(t *testing.T) {
	e := newEnv(t)
	e.srv.InjectFault(leasetest.Fault{Verb: "create", Hang: true})
	b := e.newLease("pod-b")
	errc := acquireAsync(b)
	require.NoError(t, e.srv.AwaitReceived(e.ctx(), 2)) // the GET, then the hung POST
	b.clk.Step(15*time.Second - lease.Margin(15*time.Second))
	select {
	case err := <-errc:
		require.Error(t, err)
		assert.True(t, errors.Is(err, context.DeadlineExceeded), "got %v, want DeadlineExceeded", err)
	case <-time.After(waitFor):
		t.Fatal("Acquire did not time out on the injected clock")
	}
	assert.False(t, b.CheckAlive())
}

func TestAcquireLostAnswerRecovers(t *testing.T) {
	e := newEnv(t)
	e.srv.InjectFault(leasetest.Fault{Verb: "create", DropAnswer: true})
	b := e.newLease("pod-b")
	_, err := b.Acquire(e.ctx())
	require.Error(t, err, "the answer was lost")
	assert.False(t, b.CheckAlive())
	assert.Equal(t, "pod-b", e.record().Spec.Holder(), "the write was applied")
	tok := b.acquire(t)
	assert.Equal(t, int32(0), tok.Transitions, "own record taken over without a transition")
}

func TestAcquireContextCancelled(t *testing.T) {
	e := newEnv(t)
	b := e.newLease("pod-b")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ok, err := b.Acquire(ctx)
	assert.False(t, ok)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestAcquireLateAnswerStartsNoTenure(t *testing.T) {
	e := newEnv(t)
	gate := make(chan struct{})
	e.srv.InjectFault(leasetest.Fault{Verb: "create", Gate: gate})
	b := e.newLease("pod-b")
	errc := acquireAsync(b)
	require.NoError(t, e.srv.AwaitReceived(e.ctx(), 2))
	// A suspend while the POST is held: the answer comes after the deadline
	// the write would start (the attempt timeout, on the monotonic clock,
	// has not fired).
	lease.StepWall(b.KubernetesLease, time.Minute)
	close(gate)
	err := <-errc
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.False(t, b.CheckAlive())
	_, held := b.Token()
	assert.False(t, held)
	assert.Equal(t, "pod-b", e.record().Spec.Holder(), "the write was applied")
	// Release cleans up the record naming us, so peers need not wait.
	require.NoError(t, b.Release(e.ctx()))
	_, ok := e.srv.Get("default", "job")
	assert.False(t, ok, "the orphaned record is deleted")
	assert.Equal(t, 0, b.lost.count(), "no tenure, no OnLost")
}
