package lease_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"
)

// An HTTP/2 connection that goes dead under a renewal is not idle while the
// holder's watch shares it, so CloseIdleConnections leaves it in the pool.
// The retry after the timed-out attempt must still dial afresh, not queue
// behind the dead connection until the deadline.
func TestRenewalRetryAfterTimeoutDialsAfresh(t *testing.T) {
	srv := leasetest.NewUnstartedServer()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	front := newNetFront(t, strings.TrimPrefix(srv.URL, "https://"))
	cfg := srv.Config()
	cfg.Host = "https://" + front.Addr()
	clk := clocktesting.NewFakeClock(epoch)
	l, err := lease.NewKubernetesLease(lease.Settings{
		Name: "job", Owner: "pod-a", Config: cfg, Clock: clk, TTL: 15 * time.Second, WatchWhileHolding: true,
	})
	require.NoError(t, err)
	ev := &events{ch: make(chan string, 4096)}
	lease.SetEventHook(l, ev.add)
	wakes := make(chan time.Time, 64)
	lease.SetArmHook(l, func(wake time.Time) { wakes <- wake })
	lost := &lostLog{}
	l.OnLost(lost.add)
	t.Cleanup(func() { _ = l.Release(context.Background()) })
	c := &contender{KubernetesLease: l, clk: clk, events: ev, lost: lost}
	c.acquire(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, srv.AwaitWatchers(ctx, 1))
	require.Equal(t, 1, front.Dialed(), "connections before the fault: got %d, want 1 (HTTP/2 shares it)", front.Dialed())

	front.Kill()
	stepTo := func(wake time.Time) {
		if d := wake.Sub(clk.Now()); d > 0 {
			clk.Step(d)
		}
	}
	stepTo(awaitWake(t, wakes))
	timeout := attemptTimeout(t, ev)
	clk.Step(timeout) // the attempt times out on the dead connection
	stepTo(awaitWake(t, wakes))
	// The retry is answered at once on a fresh connection; on the dead one
	// it would hang, and no renewal would come.
	ev.wait(t, "renewed")
	assert.GreaterOrEqual(t, front.Dialed(), 2, "connections: got %d, want 2 or more (the retry dialled afresh)", front.Dialed())
	assert.True(t, l.CheckAlive(), "CheckAlive after the renewal: got false, want true")
	assert.Equal(t, 0, lost.count(), "OnLost calls: got %d, want 0", lost.count())
}

// awaitWake returns the next renewal timer that is set.
func awaitWake(t *testing.T, wakes <-chan time.Time) time.Time {
	t.Helper()
	for {
		select {
		case w := <-wakes:
			if !w.IsZero() {
				return w
			}
		case <-time.After(waitFor):
			t.Fatalf("no renewal timer set within %v", waitFor)
		}
	}
}

// attemptTimeout waits for the next renewal attempt and returns its
// timeout.
func attemptTimeout(t *testing.T, ev *events) time.Duration {
	t.Helper()
	name := ev.wait(t, "renew-attempt ")
	d, err := time.ParseDuration(strings.TrimPrefix(name, "renew-attempt "))
	require.NoError(t, err, name)
	return d
}
