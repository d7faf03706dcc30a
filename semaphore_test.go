package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"
)

// newSemaphore makes a Semaphore "build" with slots slots for owner, on a
// fake clock of its own, released and closed on cleanup.
func (e *env) newSemaphore(owner string, slots int) *lease.Semaphore {
	e.t.Helper()
	sem, err := lease.NewSemaphore(lease.SemaphoreSettings{
		Name: "build", Slots: slots,
		Lease: lease.Settings{Owner: owner, Config: e.srv.Config(), Clock: clocktesting.NewFakeClock(epoch), TTL: 15 * time.Second},
	})
	require.NoError(e.t, err)
	e.t.Cleanup(func() {
		_ = sem.Release(context.Background())
		sem.Close()
	})
	return sem
}

func TestSemaphoreAtMostNHolders(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx()
	a, b, c := e.newSemaphore("a", 2), e.newSemaphore("b", 2), e.newSemaphore("c", 2)
	for _, s := range []*lease.Semaphore{a, b} {
		ok, err := s.Acquire(ctx)
		require.NoError(t, err)
		require.True(t, ok)
	}
	sa, _ := a.Slot()
	sb, _ := b.Slot()
	require.NotEqual(t, sa, sb, "two holders share a slot")
	ok, err := c.Acquire(ctx)
	require.NoError(t, err)
	require.False(t, ok, "a third holder of a 2-slot semaphore")

	require.NoError(t, a.Release(ctx))
	require.False(t, a.CheckAlive())
	ok, err = c.Acquire(ctx)
	require.NoError(t, err)
	require.True(t, ok, "the slot a released is not free at once")
	sc, _ := c.Slot()
	require.Equal(t, sa, sc)
}
