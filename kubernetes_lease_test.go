package lease_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The lifecycle of one KubernetesLease instance (kubernetes_lease.go):
// tenures that start, renew and end, one after another, on the same
// instance, and the instance used from many goroutines at once. The steps
// themselves are tested next to their code: acquire_test.go, renew_test.go,
// release_test.go, tenure_test.go.

// One instance, two tenures: renewals keep a tenure's token, a Release
// ends the tenure, and the next Acquire starts a new one with a larger
// token that renews in turn.
func TestKubernetesLeaseLifecycle(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")

	first := a.acquire(t)
	for range 2 {
		a.renewOnce(t)
		got, held := a.Token()
		require.True(t, held, "Token after a renewal: got not held, want held")
		assert.Equal(t, first, got, "token after a renewal: got %v, want the tenure's %v", got, first)
	}
	require.NoError(t, a.Release(e.ctx()))
	assert.False(t, a.CheckAlive(), "CheckAlive after Release: got true, want false")
	_, held := a.Token()
	assert.False(t, held, "Token after Release: got held, want not held")

	second := a.acquire(t)
	cmp, err := second.Compare(first)
	require.NoError(t, err)
	assert.Equal(t, 1, cmp, "second tenure's token: got %v after %v, want larger", second, first)
	a.renewOnce(t)
	got, held := a.Token()
	require.True(t, held)
	assert.Equal(t, second, got, "token after the second tenure's renewal: got %v, want %v", got, second)
	rec := e.record()
	assert.Equal(t, "pod-a", rec.Spec.Holder())
	assert.Equal(t, second.Transitions, rec.Spec.Transitions(), "transitions: got %d, want the second tenure's %d", rec.Spec.Transitions(), second.Transitions)
	assert.Equal(t, 0, a.lost.count(), "OnLost calls: got %d, want 0 (no tenure was lost)", a.lost.count())
}

// After a loss, of any kind, the same instance acquires again: a new
// tenure with a larger token, which renews; OnLost was called once, for
// the tenure that was lost.
func TestKubernetesLeaseReacquireAfterLoss(t *testing.T) {
	tests := []struct {
		name string
		lose func(t *testing.T, e *env, a *contender) // ends a's tenure
		want lease.LostReason
	}{
		{"freed by a third party", func(t *testing.T, e *env, a *contender) {
			wait := a.events.waitArmed(t)
			require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) { l.Spec.HolderIdentity = nil }))
			a.clk.Step(wait)
		}, lease.LostConflict},
		{"deleted by a third party", func(t *testing.T, e *env, a *contender) {
			wait := a.events.waitArmed(t)
			require.NoError(t, e.srv.Delete("default", "job"))
			a.clk.Step(wait)
		}, lease.LostDeleted},
		{"deadline passed in a suspend", func(t *testing.T, e *env, a *contender) {
			lease.StepWall(a.KubernetesLease, time.Minute)
			require.False(t, a.CheckAlive())
		}, lease.LostDeadline},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.newLease("pod-a")
			first := a.acquire(t)
			tc.lose(t, e, a)
			le := a.lost.wait(t)
			require.Equal(t, tc.want, le.Reason, "loss reason: got %s, want %s", le.Reason, tc.want)
			assert.Equal(t, first, le.Token, "lost tenure's token: got %v, want %v", le.Token, first)
			assert.False(t, a.CheckAlive(), "CheckAlive after the loss: got true, want false")

			second := a.acquire(t)
			cmp, err := second.Compare(first)
			require.NoError(t, err)
			assert.Equal(t, 1, cmp, "token after the loss: got %v after %v, want larger", second, first)
			a.renewOnce(t)
			assert.True(t, a.CheckAlive(), "CheckAlive after renewing the new tenure: got false, want true")
			assert.Equal(t, "pod-a", e.record().Spec.Holder())
			assert.Equal(t, 1, a.lost.count(), "OnLost calls: got %d, want 1", a.lost.count())
		})
	}
}

// One instance used from many goroutines at once (run with -race): Acquire
// calls made together start one tenure and return its token; Acquire and
// Release calls made together are serialized, a Release cancelling an
// Acquire in flight; and whatever order they ran in, the instance and the
// server agree afterwards.
func TestKubernetesLeaseConcurrentUse(t *testing.T) {
	const n = 8
	e := newEnv(t)
	a := e.newLease("pod-a")

	// Readers run throughout.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok, held := a.Token()
				if held && tok.IsZero() {
					t.Error("Token: got held with a zero token")
				}
				_ = a.CheckAlive()
				_ = a.LastSeenHolder()
				a.OnLost(func(error) {})()
			}
		})
	}
	defer func() {
		close(stop)
		readers.Wait()
	}()

	// Acquire together: one tenure.
	toks := make([]lease.Token, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tok, ok, err := a.AcquireWithToken(e.ctx())
			if err != nil || !ok {
				t.Errorf("AcquireWithToken %d: got (%v, %v), want (true, nil)", i, ok, err)
			}
			toks[i] = tok
		})
	}
	wg.Wait()
	for i, tok := range toks {
		assert.Equal(t, toks[0], tok, "token of call %d: got %v, want %v (one tenure)", i, tok, toks[0])
	}
	assert.Equal(t, 1, e.srv.Count("create"), "creates: got %d, want 1 (one tenure)", e.srv.Count("create"))

	// Acquire and Release together.
	var mu sync.Mutex // guards acquired
	var acquired []lease.Token
	for i := range n {
		wg.Go(func() {
			if i%2 == 0 {
				if err := a.Release(e.ctx()); err != nil {
					t.Errorf("Release %d: %v", i, err)
				}
				return
			}
			tok, ok, err := a.AcquireWithToken(e.ctx())
			switch {
			case err != nil:
				assert.ErrorIs(t, err, context.Canceled, "AcquireWithToken %d: got %v, want success or cancelled by a Release", i, err)
			case !ok:
				t.Errorf("AcquireWithToken %d: got false, want true or cancelled (nobody else contends)", i)
			default:
				mu.Lock()
				acquired = append(acquired, tok)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, tok := range acquired {
		cmp, err := tok.Compare(toks[0])
		require.NoError(t, err)
		assert.GreaterOrEqual(t, cmp, 0, "token %v: got below the first tenure's %v", tok, toks[0])
	}
	tok, held := a.Token()
	rec, stored := e.srv.Get("default", "job")
	if held {
		require.True(t, stored, "held, but the Lease is absent")
		assert.Equal(t, "pod-a", rec.Spec.Holder())
		assert.Equal(t, tok.ResourceVersion, rec.ResourceVersion, "held token: got %v, want the stored resourceVersion %s", tok, rec.ResourceVersion)
	} else {
		assert.False(t, stored, "released, but the Lease is still stored: %+v", rec)
	}
	assert.Equal(t, held, a.CheckAlive())
	assert.Equal(t, 0, a.lost.count(), "OnLost calls: got %d, want 0", a.lost.count())
}

// Tenures of two instances, taking turns, with third-party re-creations
// and frees in between: every token is larger than the one before.
func TestTokensIncreaseAcrossCycles(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	b := e.newLease("pod-b")
	var prev lease.Token
	for i := range 6 {
		c := a
		if i%2 == 1 {
			c = b
		}
		tok := c.acquire(t)
		if i > 0 {
			cmp, err := tok.Compare(prev)
			require.NoError(t, err)
			assert.Equal(t, 1, cmp, "cycle %d: got %v after %v, want larger", i, tok, prev)
		}
		prev = tok
		switch i % 3 {
		case 0:
			require.NoError(t, c.Release(e.ctx()))
		case 1: // re-created by a third party after a delete
			require.NoError(t, c.Release(e.ctx()))
			e.putRecord("", epoch, 15, 0)
		case 2: // freed by a third party
			require.NoError(t, c.Release(e.ctx()))
			e.putRecord("", epoch, 15, 3)
		}
	}
}

// Two instances wrongly given one Owner: each writes its own nonce
// (NonceAnnotation), so the first sees the second's takeover as a loss at
// its next renewal and they end with one holder.
func TestTwoInstancesOneOwnerEndWithOneHolder(t *testing.T) {
	e := newEnv(t)
	a1 := e.newLease("pod-a")
	a2 := e.newLease("pod-a")
	a1.acquire(t)
	a2.acquire(t) // "holder is Owner": takes over
	assert.True(t, a1.CheckAlive() && a2.CheckAlive(), "both believe until a1's next renewal: why Owners must be unique")
	a1.clk.Step(a1.events.waitArmed(t))
	le := a1.lost.wait(t)
	assert.Equal(t, lease.LostConflict, le.Reason)
	a2.renewOnce(t)
	assert.False(t, a1.CheckAlive())
	assert.True(t, a2.CheckAlive())
	assert.Equal(t, lease.NonceOf(a2.KubernetesLease), e.record().Annotations[lease.NonceAnnotation])
}
