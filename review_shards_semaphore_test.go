package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"
)

// Review: Semaphore.Wait must return once any slot is released, even while
// the other slots stay held by live holders. With Slots=2 (a holds one slot,
// b the other, both alive on a clock that does not move) c's Wait should
// wake when a releases.
func TestReviewShardsSemaphoreWaitWakesWhenOneSlotFrees(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx()
	a, b, c := e.newSemaphore("a", 2), e.newSemaphore("b", 2), e.newSemaphore("c", 2)
	for _, s := range []*lease.Semaphore{a, b} {
		ok, err := s.Acquire(ctx)
		require.NoError(t, err)
		require.True(t, ok)
	}
	ok, err := c.Acquire(ctx)
	require.NoError(t, err)
	require.False(t, ok)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	woke := make(chan error, 1)
	go func() { woke <- c.Wait(wctx) }()
	// c's standbys listen to the semaphore's NamespaceWatch: await its stream.
	require.NoError(t, e.srv.AwaitWatchers(ctx, 1))
	require.NoError(t, a.Release(ctx))
	select {
	case err := <-woke:
		require.NoError(t, err)
	case <-time.After(3 * time.Second):
		cancel()
		<-woke
		t.Fatal("Semaphore.Wait did not return after a slot was released: " +
			"one slot's Wait returned, but the deferred wg.Wait runs before the deferred cancel, " +
			"so Wait blocks on the standbys of the slots still held")
	}
}

// Review: the same flaw seen through RunSingleton, the Semaphore's headline
// use ("N RunSingletons on N processes run at once, the N+1st waits for a
// slot"): when one of two holders stops, the third does not start until
// ResyncInterval (1 min at the default) has passed on its clock, instead of
// within a round trip. Here no clock moves, so it never starts.
func TestReviewShardsSemaphoreRunSingletonThirdStartsAfterRelease(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx()
	type runner struct {
		cancel  context.CancelFunc
		started chan struct{}
		done    chan error
	}
	run := func(sem *lease.Semaphore) *runner {
		rctx, cancel := context.WithCancel(ctx)
		r := &runner{cancel: cancel, started: make(chan struct{}), done: make(chan error, 1)}
		go func() {
			r.done <- lease.RunSingleton(rctx, sem, func(wctx context.Context) error {
				close(r.started)
				<-wctx.Done()
				return nil
			}, lease.SingletonOptions{})
		}()
		t.Cleanup(func() {
			cancel()
			select {
			case <-r.done:
			case <-time.After(waitFor):
				t.Error("RunSingleton did not return")
			}
		})
		return r
	}
	await := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(3 * time.Second):
			t.Fatal(what)
		}
	}
	a, b := run(e.newSemaphore("a", 2)), run(e.newSemaphore("b", 2))
	await(a.started, "a did not start")
	await(b.started, "b did not start")
	c := run(e.newSemaphore("c", 2))
	require.NoError(t, e.srv.AwaitWatchers(ctx, 1)) // c stands by on its semaphore's watch
	a.cancel()
	select {
	case err := <-a.done:
		a.done <- err
	case <-time.After(waitFor):
		t.Fatal("a did not stop")
	}
	await(c.started, "c did not start after a released its slot (Semaphore.Wait hangs: semaphore.go:390-402)")
}

// Review: Semaphore.Acquire starts with a list of the slots
// (othersHold → NamespaceWatch.fetch), whose timeout is listTimeout (1 min),
// not the lease's request timeout (TTL − margin, acquire.go:112; DESIGN §4:
// "Each request's timeout is ≤ TTL − margin"). A list that hangs holds
// Acquire, and RunSingleton's contention, for a minute at TTL 15 s.
func TestReviewShardsSemaphoreAcquireListBoundedByTTL(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx()
	clk := clocktesting.NewFakeClock(epoch)
	sem, err := lease.NewSemaphore(lease.SemaphoreSettings{
		Name: "build", Slots: 2,
		Lease: lease.Settings{Owner: "c", Config: e.srv.Config(), Clock: clk, TTL: 15 * time.Second},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = sem.Release(context.Background())
		sem.Close()
	})
	e.srv.InjectFault(leasetest.Fault{Verb: "list", Hang: true})
	done := make(chan error, 1)
	go func() {
		_, err := sem.Acquire(ctx)
		done <- err
	}()
	require.NoError(t, e.srv.AwaitReceived(ctx, 1)) // the list hangs
	clk.Step(15 * time.Second)                      // past TTL − margin
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(3 * time.Second):
		clk.Step(time.Minute)
		<-done
		t.Fatal("Semaphore.Acquire still waits on its list one TTL after sending it: the list's timeout is listTimeout (1 min, sharedwatch_run.go:19, used by fetch at sharedwatch_list.go:27), not TTL − margin")
	}
}
