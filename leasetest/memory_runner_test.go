package leasetest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
)

// standby is a lease.RunSingleton over a MemoryLease on a fake clock that
// no test steps: whatever it does, it does without polling.
type standby struct {
	started chan lease.Token
	holders *holderLog
	done    chan struct{} // closed when RunSingleton has returned err
	err     error
}

// runStandby starts RunSingleton on m with work that runs until its
// context ends, and stops it when the test ends.
func runStandby(t *testing.T, m *leasetest.MemoryLease, work func(context.Context) error) *standby {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	s := &standby{started: make(chan lease.Token, 1), holders: newHolderLog(), done: make(chan struct{})}
	if work == nil {
		work = func(ctx context.Context) error { <-ctx.Done(); return nil }
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(s.done)
		s.err = lease.RunSingleton(ctx, m, work, lease.SingletonOptions{
			Clock:       clk,
			OnStarted:   func(tok lease.Token) { s.started <- tok },
			OnNewHolder: s.holders.add,
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

// RunSingleton over a MemoryLease takes over as soon as the holder lets
// go, with no clock stepped (before, it polled every RetryInterval), and
// OnNewHolder reports each holder in order.
func TestRunSingletonMemoryTakesOverAtOnce(t *testing.T) {
	tests := []struct {
		name    string
		end     func(a *leasetest.Arbiter, x *leasetest.MemoryLease) bool
		holders []string // reported by the standby's OnNewHolder
	}{
		{"Release", func(_ *leasetest.Arbiter, x *leasetest.MemoryLease) bool {
			return x.Release(context.Background()) == nil
		}, []string{"x", "", "y"}},
		{"Revoke", func(a *leasetest.Arbiter, _ *leasetest.MemoryLease) bool { return a.Revoke(leaseName) }, []string{"x", "", "y"}},
		{"Delete", func(a *leasetest.Arbiter, _ *leasetest.MemoryLease) bool { return a.Delete(leaseName) }, []string{"x", "", "y"}},
		{"Expire", func(a *leasetest.Arbiter, _ *leasetest.MemoryLease) bool { return a.Expire(leaseName) }, []string{"x", "y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := leasetest.NewArbiter()
			t.Cleanup(a.Wait)
			x, y := newMemory(t, a, "x"), newMemory(t, a, "y")
			tokX := acquire(t, x)
			s := runStandby(t, y, nil)
			assert.Equal(t, "x", receive(t, s.holders.news, "the holder, seen by the standby"))
			select {
			case tok := <-s.started:
				require.FailNow(t, "the standby started while x held the lease", "token %v", tok)
			default:
			}
			require.True(t, tt.end(a, x), "%s: got false, want true", tt.name)
			tokY := receive(t, s.started, "the standby's work start after "+tt.name)
			c, err := tokY.Compare(tokX)
			require.NoError(t, err)
			assert.Equal(t, 1, c, "%v.Compare(%v)", tokY, tokX)
			for range tt.holders[1:] {
				receive(t, s.holders.news, "OnNewHolder")
			}
			assert.Equal(t, tt.holders, s.holders.all(), "OnNewHolder: holders in order")
		})
	}
}

// Two RunSingletons over MemoryLeases: when the holder's work returns, its
// RunSingleton releases and the other's work starts, with no clock
// stepped.
func TestRunSingletonMemoryHandoff(t *testing.T) {
	a := leasetest.NewArbiter()
	t.Cleanup(a.Wait)
	x, y := newMemory(t, a, "x"), newMemory(t, a, "y")
	stepDown := make(chan struct{})
	sx := runStandby(t, x, func(context.Context) error { <-stepDown; return nil })
	tokX := receive(t, sx.started, "x's work start")
	sy := runStandby(t, y, nil)
	assert.Equal(t, "x", receive(t, sy.holders.news, "the holder, seen by y"))

	assert.Equal(t, "", receive(t, sx.holders.news, "x's first look"), "x saw a free record")
	assert.Equal(t, "x", receive(t, sx.holders.news, "x itself"))
	close(stepDown)
	receive(t, sx.done, "x's RunSingleton, once its work returned")
	assert.NoError(t, sx.err, "x's RunSingleton")
	tokY := receive(t, sy.started, "y's work start")
	c, err := tokY.Compare(tokX)
	require.NoError(t, err)
	assert.Equal(t, 1, c, "%v.Compare(%v)", tokY, tokX)
	receive(t, sy.holders.news, "the release, seen by y")
	receive(t, sy.holders.news, "y itself")
	assert.Equal(t, []string{"x", "", "y"}, sy.holders.all(), "y's OnNewHolder: holders in order")
}
