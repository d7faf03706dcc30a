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

// within bounds, in real time, every wait of these tests for something
// that must happen.
const within = 10 * time.Second

// receive returns the next value from ch, failing the test after within.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(within):
		require.FailNow(t, what+": nothing within "+within.String())
		var zero T
		return zero
	}
}

// holderLog records what an OnHolderChange handler is called with.
type holderLog struct {
	mu   sync.Mutex // guards got
	got  []string
	news chan string // every call, for tests that await one
}

func newHolderLog() *holderLog { return &holderLog{news: make(chan string, 64)} }

func (h *holderLog) add(holder string) {
	h.mu.Lock()
	h.got = append(h.got, holder)
	h.mu.Unlock()
	h.news <- holder
}

func (h *holderLog) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string{}, h.got...)
}

// waitBlocked starts m.Wait(ctx) on a goroutine and returns once it is
// waiting, with the channel that gets its result. m must not have looked at
// the record yet and the record must name another live holder: Wait's first
// look reports that holder, and Wait then waits for the next change.
func waitBlocked(t *testing.T, m *leasetest.MemoryLease, ctx context.Context, holder string) <-chan error {
	t.Helper()
	log := newHolderLog()
	t.Cleanup(m.OnHolderChange(log.add))
	done := make(chan error, 1)
	go func() { done <- m.Wait(ctx) }()
	assert.Equal(t, holder, receive(t, log.news, "Wait's first look"), "holder seen by Wait")
	select {
	case err := <-done:
		require.FailNow(t, "Wait returned while another held the lease", "got %v", err)
	default:
	}
	return done
}

func TestMemoryLeaseWaitWakes(t *testing.T) {
	tests := []struct {
		name string
		free func(a *leasetest.Arbiter, x *leasetest.MemoryLease) bool
	}{
		{"Release", func(_ *leasetest.Arbiter, x *leasetest.MemoryLease) bool {
			return x.Release(context.Background()) == nil
		}},
		{"Revoke", func(a *leasetest.Arbiter, _ *leasetest.MemoryLease) bool { return a.Revoke(leaseName) }},
		{"Delete", func(a *leasetest.Arbiter, _ *leasetest.MemoryLease) bool { return a.Delete(leaseName) }},
		{"Expire", func(a *leasetest.Arbiter, _ *leasetest.MemoryLease) bool { return a.Expire(leaseName) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := leasetest.NewArbiter()
			t.Cleanup(a.Wait)
			x, y := newMemory(t, a, "x"), newMemory(t, a, "y")
			acquire(t, x)
			done := waitBlocked(t, y, context.Background(), "x")
			require.True(t, tt.free(a, x), "%s: got false, want true", tt.name)
			assert.NoError(t, receive(t, done, "Wait after "+tt.name), "Wait after %s", tt.name)
			acquire(t, y)
		})
	}
}

func TestMemoryLeaseWaitAtOnce(t *testing.T) {
	tests := []struct {
		name  string
		held  bool                                  // x acquires first
		end   func(*leasetest.Arbiter, string) bool // then this ends x's tenure, if set
		owner string                                // of the waiter: "x" is x itself, "x2" another instance of x
	}{
		{"no record", false, nil, "y"},
		{"ours", true, nil, "x"},
		{"our owner's, another instance", true, nil, "x2"},
		{"expired", true, (*leasetest.Arbiter).Expire, "y"},
		{"revoked", true, (*leasetest.Arbiter).Revoke, "y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := leasetest.NewArbiter()
			t.Cleanup(a.Wait)
			x := newMemory(t, a, "x")
			if tt.held {
				acquire(t, x)
			}
			if tt.end != nil {
				require.True(t, tt.end(a, leaseName), "ending x's tenure")
			}
			w := x
			switch tt.owner {
			case "x2":
				w = newMemory(t, a, "x")
			case "y":
				w = newMemory(t, a, "y")
			}
			// A context that is never done: Wait must not block.
			assert.NoError(t, w.Wait(context.Background()), "Wait")
			ok, err := w.Acquire(context.Background())
			assert.True(t, ok && err == nil, "Acquire after Wait: got (%v, %v), want (true, nil)", ok, err)
		})
	}
}

// A Wait ends with ctx's cause, and a change of another lease's record
// does not end it.
func TestMemoryLeaseWaitContext(t *testing.T) {
	a := leasetest.NewArbiter()
	t.Cleanup(a.Wait)
	x, y := newMemory(t, a, "x"), newMemory(t, a, "y")
	other, err := a.NewLease("other", "z")
	require.NoError(t, err)
	acquire(t, x)
	stop := errors.New("shutting down")

	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(stop)
	assert.ErrorIs(t, y.Wait(ctx), stop, "Wait with a done context")

	ctx, cancel = context.WithCancelCause(context.Background())
	defer cancel(nil)
	done := waitBlocked(t, y, ctx, "x")
	acquire(t, other) // another lease's record: Wait looks again, keeps waiting
	require.NoError(t, other.Release(context.Background()))
	cancel(stop)
	assert.ErrorIs(t, receive(t, done, "Wait after cancel"), stop, "Wait: got another result than ctx's cause")
}

// OnHolderChange reports every change of holder, in order, from the first
// look on; LastSeenHolder follows it.
func TestMemoryLeaseOnHolderChange(t *testing.T) {
	a := leasetest.NewArbiter()
	t.Cleanup(a.Wait)
	x, x2, y, z := newMemory(t, a, "x"), newMemory(t, a, "x"), newMemory(t, a, "y"), newMemory(t, a, "z")
	log := newHolderLog()
	unregister := y.OnHolderChange(log.add)
	assert.Equal(t, "", y.LastSeenHolder(), "LastSeenHolder before looking")
	acquire(t, x) // y has not looked: nothing to report yet

	steps := []struct {
		name string
		do   func()
		last string // y.LastSeenHolder() after it
	}{
		{"y's failed Acquire looks", func() {
			ok, err := y.Acquire(context.Background())
			require.False(t, ok || err != nil, "y's Acquire: got (%v, %v), want (false, nil)", ok, err)
		}, "x"},
		{"x releases", func() { require.NoError(t, x.Release(context.Background())) }, ""},
		{"z acquires", func() { acquire(t, z) }, "z"},
		{"Expire keeps the holder", func() { require.True(t, a.Expire(leaseName)) }, "z"},
		{"z acquires again", func() { acquire(t, z) }, "z"},
		{"Revoke", func() { require.True(t, a.Revoke(leaseName)) }, ""},
		{"y acquires", func() { acquire(t, y) }, "y"},
		{"Delete", func() { require.True(t, a.Delete(leaseName)) }, ""},
		{"x acquires", func() { acquire(t, x) }, "x"},
		{"x2, same owner, takes over", func() { acquire(t, x2) }, "x"},
	}
	for _, s := range steps {
		s.do()
		assert.Equal(t, s.last, y.LastSeenHolder(), "LastSeenHolder after %s", s.name)
	}
	a.Wait() // every change delivered
	assert.Equal(t, []string{"x", "", "z", "", "y", "", "x"}, log.all(), "holders reported, in order")

	unregister()
	unregister()
	require.NoError(t, x2.Release(context.Background()))
	a.Wait()
	assert.Len(t, log.all(), 7, "calls after unregister")
	assert.Equal(t, "", y.LastSeenHolder(), "LastSeenHolder after the last release")
	y.OnHolderChange(nil)()
}

// The holder itself reports the free record it saw, then itself.
func TestMemoryLeaseOnHolderChangeSelf(t *testing.T) {
	a := leasetest.NewArbiter()
	t.Cleanup(a.Wait)
	x := newMemory(t, a, "x")
	log := newHolderLog()
	defer x.OnHolderChange(log.add)()
	acquire(t, x)
	require.NoError(t, x.Release(context.Background()))
	a.Wait()
	assert.Equal(t, []string{"", "x", ""}, log.all())
}

func TestMemoryLeaseHolder(t *testing.T) {
	a := leasetest.NewArbiter()
	t.Cleanup(a.Wait)
	x, y := newMemory(t, a, "x"), newMemory(t, a, "y")
	ctx := context.Background()
	view := func(m *leasetest.MemoryLease) lease.HolderInfo {
		t.Helper()
		h, err := m.Holder(ctx)
		require.NoError(t, err, "Holder")
		return h
	}
	assert.Equal(t, lease.HolderInfo{}, view(y), "no record")

	tok := acquire(t, x)
	rec := lease.HolderInfo{Exists: true, Holder: "x", ResourceVersion: tok.ResourceVersion}
	assert.Equal(t, rec, view(y), "another's view")
	mine := rec
	mine.Ours, mine.Token = true, tok
	assert.Equal(t, mine, view(x), "the holder's view")

	require.True(t, a.Expire(leaseName))
	assert.Equal(t, rec, view(x), "expired: the record still names x, no longer ours")

	tok = acquire(t, x)
	require.True(t, a.Revoke(leaseName))
	h := view(y)
	assert.True(t, h.Exists && h.Holder == "" && h.Transitions == 0, "revoked: got %+v, want a record with no holder", h)
	c, err := lease.Token{ResourceVersion: h.ResourceVersion}.Compare(tok)
	require.NoError(t, err)
	assert.Equal(t, 1, c, "Revoke writes: a newer resourceVersion")

	acquire(t, y)
	assert.Equal(t, int32(1), view(y).Transitions, "transitions after y took over")
	require.True(t, a.Delete(leaseName))
	assert.Equal(t, lease.HolderInfo{}, view(x), "deleted")

	done, cancel := context.WithCancel(ctx)
	cancel()
	_, err = x.Holder(done)
	assert.ErrorIs(t, err, context.Canceled, "Holder with a done context")
}
