package leasetest_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
)

const leaseName = "job"

// memoryBackend gives every subtest an Arbiter of its own.
func memoryBackend() leasetest.LeaseBackend {
	var mu sync.Mutex
	arbiters := map[*testing.T]*leasetest.Arbiter{}
	arbiter := func(t *testing.T) *leasetest.Arbiter {
		mu.Lock()
		defer mu.Unlock()
		a := arbiters[t]
		if a == nil {
			a = leasetest.NewArbiter()
			arbiters[t] = a
			t.Cleanup(a.Wait)
		}
		return a
	}
	return leasetest.LeaseBackend{
		New: func(t *testing.T, owner string) lease.Lease {
			m, err := arbiter(t).NewLease(leaseName, owner)
			require.NoError(t, err, "NewLease")
			return m
		},
		Revoke: func(t *testing.T, holder lease.Lease) {
			require.True(t, holder.CheckAlive(), "Revoke: holder's CheckAlive: got false, want true")
			require.True(t, arbiter(t).Revoke(leaseName), "Arbiter.Revoke: got false, want true")
		},
		Settle: func(t *testing.T) { arbiter(t).Wait() },
	}
}

func TestMemoryLeaseBehaviour(t *testing.T) {
	leasetest.TestLease(t, memoryBackend())
}

// TestMemoryLeaseBehaviourNoSettle runs the table the way a backend without
// Settle does.
func TestMemoryLeaseBehaviourNoSettle(t *testing.T) {
	b := memoryBackend()
	b.Settle = nil
	leasetest.TestLease(t, b)
}

func newMemory(t *testing.T, a *leasetest.Arbiter, owner string) *leasetest.MemoryLease {
	t.Helper()
	m, err := a.NewLease(leaseName, owner)
	require.NoError(t, err, "NewLease(%q, %q)", leaseName, owner)
	return m
}

func acquire(t *testing.T, m *leasetest.MemoryLease) lease.Token {
	t.Helper()
	tok, ok, err := m.AcquireWithToken(context.Background())
	require.NoError(t, err, "AcquireWithToken")
	require.True(t, ok, "AcquireWithToken: got false, want true")
	return tok
}

// lostOnce registers a handler on m and returns a function that waits for
// its first call.
func lostOnce(t *testing.T, m *leasetest.MemoryLease) func() *lease.LostError {
	t.Helper()
	ch := make(chan error, 4)
	unregister := m.OnLost(func(err error) { ch <- err })
	t.Cleanup(unregister)
	return func() *lease.LostError {
		t.Helper()
		select {
		case err := <-ch:
			var le *lease.LostError
			require.True(t, errors.As(err, &le), "OnLost reason %T: got not a *LostError, want one", err)
			assert.True(t, errors.Is(err, lease.ErrLost), "errors.Is(%v, ErrLost): got false, want true", err)
			return le
		case <-time.After(10 * time.Second):
			require.FailNow(t, "OnLost handler not called within 10s")
			return nil
		}
	}
}

func TestArbiterEndsTenure(t *testing.T) {
	tests := []struct {
		name   string
		end    func(a *leasetest.Arbiter, name string) bool
		reason lease.LostReason
		// wantTransitions is the Transitions of the next acquire by the
		// same owner, after the first tenure had 0.
		wantTransitions int32
	}{
		{"Revoke", (*leasetest.Arbiter).Revoke, lease.LostConflict, 1},
		{"Delete", (*leasetest.Arbiter).Delete, lease.LostDeleted, 0},
		{"Expire", (*leasetest.Arbiter).Expire, lease.LostDeadline, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := leasetest.NewArbiter()
			t.Cleanup(a.Wait)
			m := newMemory(t, a, "a")
			wait := lostOnce(t, m)

			assert.False(t, tt.end(a, leaseName), "%s before any acquire: got true, want false", tt.name)
			tok := acquire(t, m)
			assert.Equal(t, int32(0), tok.Transitions, "first tenure's Transitions: got %d, want 0", tok.Transitions)
			holder, ok := a.Holder(leaseName)
			assert.True(t, ok && holder == "a", "Holder: got %q, %v, want \"a\", true", holder, ok)

			require.True(t, tt.end(a, leaseName), "%s while held: got false, want true", tt.name)
			le := wait()
			assert.Equal(t, tt.reason, le.Reason, "LostError.Reason: got %q, want %q", le.Reason, tt.reason)
			assert.Equal(t, tok, le.Token, "LostError.Token: got %v, want %v", le.Token, tok)
			assert.Empty(t, le.Holder, "LostError.Holder: got %q, want empty", le.Holder)
			assert.NoError(t, le.Err, "LostError.Err")
			assert.False(t, m.CheckAlive(), "CheckAlive after %s: got true, want false", tt.name)
			_, ok = m.Token()
			assert.False(t, ok, "Token ok after %s: got true, want false", tt.name)
			holder, ok = a.Holder(leaseName)
			assert.False(t, ok, "Holder after %s: got %q, true, want not held", tt.name, holder)
			assert.False(t, tt.end(a, leaseName), "second %s: got true, want false", tt.name)

			tok2 := acquire(t, m)
			assert.Equal(t, tt.wantTransitions, tok2.Transitions, "Transitions after re-acquire: got %d, want %d", tok2.Transitions, tt.wantTransitions)
			c, err := tok2.Compare(tok)
			require.NoError(t, err, "Compare")
			assert.Equal(t, 1, c, "%v.Compare(%v): got %d, want 1", tok2, tok, c)
		})
	}
}

func TestMemoryLeaseTransitions(t *testing.T) {
	a := leasetest.NewArbiter()
	t.Cleanup(a.Wait)
	x, y := newMemory(t, a, "x"), newMemory(t, a, "y")
	want := []struct {
		m    *leasetest.MemoryLease
		end  func(string) bool
		want int32
	}{
		{x, a.Expire, 0}, // a new record
		{y, a.Expire, 1}, // the holder changes from x to y
		{y, a.Revoke, 1}, // y again: no change
		{y, a.Expire, 2}, // from none to y
		{x, a.Revoke, 3},
	}
	for i, w := range want {
		tok := acquire(t, w.m)
		assert.Equal(t, w.want, tok.Transitions, "step %d: Transitions: got %d, want %d", i, tok.Transitions, w.want)
		require.True(t, w.end(leaseName), "step %d: ending the tenure: got false, want true", i)
	}
}

func TestMemoryLeaseSameOwnerTakeover(t *testing.T) {
	a := leasetest.NewArbiter()
	t.Cleanup(a.Wait)
	first, second := newMemory(t, a, "x"), newMemory(t, a, "x")
	wait := lostOnce(t, first)
	tok1 := acquire(t, first)

	tok2 := acquire(t, second)
	le := wait()
	assert.Equal(t, lease.LostConflict, le.Reason, "LostError.Reason: got %q, want %q", le.Reason, lease.LostConflict)
	assert.Equal(t, "x", le.Holder, "LostError.Holder: got %q, want \"x\"", le.Holder)
	assert.Equal(t, tok1, le.Token, "LostError.Token: got %v, want %v", le.Token, tok1)
	assert.False(t, first.CheckAlive(), "first: CheckAlive: got true, want false")
	assert.True(t, second.CheckAlive(), "second: CheckAlive: got false, want true")
	c, err := tok2.Compare(tok1)
	require.NoError(t, err, "Compare")
	assert.Equal(t, 1, c, "%v.Compare(%v): got %d, want 1", tok2, tok1, c)
	assert.Equal(t, tok1.Transitions, tok2.Transitions, "Transitions: got %d, want %d (same holder identity)", tok2.Transitions, tok1.Transitions)

	// The first instance's Release leaves the second's tenure alone.
	require.NoError(t, first.Release(context.Background()), "first: Release")
	assert.True(t, second.CheckAlive(), "second: CheckAlive after first's Release: got false, want true")
	holder, ok := a.Holder(leaseName)
	assert.True(t, ok && holder == "x", "Holder: got %q, %v, want \"x\", true", holder, ok)

	// The first can take it back the same way.
	wait2 := lostOnce(t, second)
	acquire(t, first)
	assert.Equal(t, "x", wait2().Holder, "second's LostError.Holder")
}

func TestMemoryLeaseReleaseAfterExpire(t *testing.T) {
	a := leasetest.NewArbiter()
	t.Cleanup(a.Wait)
	x, y := newMemory(t, a, "x"), newMemory(t, a, "y")

	// Nobody took over: x's Release removes the expired record, so the
	// next tenure starts a new record.
	acquire(t, x)
	require.True(t, a.Expire(leaseName), "Expire")
	require.NoError(t, x.Release(context.Background()), "x: Release")
	assert.Equal(t, int32(0), acquire(t, y).Transitions, "y's Transitions after x's Release: got other, want 0 (new record)")

	// Someone took over: x's Release must not touch it.
	require.True(t, a.Expire(leaseName), "Expire")
	acquire(t, x)
	require.True(t, a.Expire(leaseName), "Expire")
	acquire(t, y)
	require.NoError(t, x.Release(context.Background()), "x: Release")
	holder, ok := a.Holder(leaseName)
	assert.True(t, ok && holder == "y", "Holder after x's Release: got %q, %v, want \"y\", true", holder, ok)
	assert.True(t, y.CheckAlive(), "y: CheckAlive: got false, want true")
}

func TestMemoryLeaseContext(t *testing.T) {
	a := leasetest.NewArbiter()
	m := newMemory(t, a, "x")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	ok, err := m.Acquire(ctx)
	assert.ErrorIs(t, err, context.Canceled, "Acquire with a cancelled context")
	assert.False(t, ok, "Acquire with a cancelled context: got true, want false")
	_, held := a.Holder(leaseName)
	assert.False(t, held, "Holder after a cancelled Acquire: got held, want not")

	tok := acquire(t, m)
	got, ok, err := m.AcquireWithToken(ctx)
	require.NoError(t, err, "AcquireWithToken while held, cancelled context")
	assert.True(t, ok, "AcquireWithToken while held, cancelled context: got false, want true")
	assert.Equal(t, tok, got, "token: got %v, want %v", got, tok)
	assert.NoError(t, m.Release(ctx), "Release with a cancelled context")
	assert.False(t, m.CheckAlive(), "CheckAlive after Release: got true, want false")
}

func TestNewLeaseErrors(t *testing.T) {
	a := leasetest.NewArbiter()
	for _, tt := range []struct{ name, owner, field string }{
		{"", "x", "name"},
		{"job", "", "owner"},
	} {
		m, err := a.NewLease(tt.name, tt.owner)
		assert.Nil(t, m, "NewLease(%q, %q): got a lease, want nil", tt.name, tt.owner)
		if assert.Error(t, err, "NewLease(%q, %q)", tt.name, tt.owner) {
			assert.Regexp(t, "^leasetest: .*"+tt.field, err.Error(), "NewLease(%q, %q): error should name %s", tt.name, tt.owner, tt.field)
		}
	}
}

func TestMemoryLeaseOnLostNil(t *testing.T) {
	a := leasetest.NewArbiter()
	m := newMemory(t, a, "x")
	unregister := m.OnLost(nil)
	acquire(t, m)
	require.True(t, a.Revoke(leaseName), "Revoke")
	a.Wait()
	unregister()
	unregister()
}

func TestArbiterWait(t *testing.T) {
	a := leasetest.NewArbiter()
	m := newMemory(t, a, "x")
	started, unblock := make(chan struct{}), make(chan struct{})
	m.OnLost(func(error) {
		close(started)
		<-unblock
	})
	acquire(t, m)
	require.True(t, a.Revoke(leaseName), "Revoke")
	<-started

	waited := make(chan struct{})
	go func() {
		a.Wait()
		close(waited)
	}()
	select {
	case <-waited:
		t.Fatal("Wait returned while a handler was running")
	default:
	}
	close(unblock)
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return within 10s of the handler's return")
	}
}
