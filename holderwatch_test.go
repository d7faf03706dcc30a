package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHolderWatchEndsTenureAtOnce(t *testing.T) {
	tests := []struct {
		name   string
		change func(e *env)
		want   lease.LostReason
	}{
		{"third-party delete", func(e *env) { require.NoError(t, e.srv.Delete("default", "job")) }, lease.LostDeleted},
		{"foreign holder", func(e *env) {
			require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) { l.Spec.HolderIdentity = ptr("pod-c") }))
		}, lease.LostConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.newLease("pod-a", func(s *lease.Settings) { s.WatchWhileHolding = true })
			a.acquire(t)
			require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))
			// A label edit is not a loss.
			require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) { l.Labels = map[string]string{"x": "y"} }))
			tc.change(e)
			le := a.lost.wait(t) // no clock step: the watch saw it
			assert.Equal(t, tc.want, le.Reason)
			assert.False(t, a.CheckAlive())
			assert.Equal(t, 1, a.lost.count())
		})
	}
}

func TestSingletonHandoffByWatch(t *testing.T) {
	e := newEnv(t)
	a, b := e.realLease("pod-a"), e.realLease("pod-b")
	started := make(chan string, 2)
	work := func(name string) func(context.Context) error {
		return func(ctx context.Context) error {
			started <- name
			<-ctx.Done()
			return nil
		}
	}
	actx, acancel := context.WithCancel(context.Background())
	adone := make(chan error, 1)
	go func() { adone <- lease.RunSingleton(actx, a, work("a"), lease.SingletonOptions{}) }()
	assert.Equal(t, "a", recv(t, started, "a starts"))
	bctx, bcancel := context.WithCancel(context.Background())
	defer bcancel()
	bdone := make(chan error, 1)
	// An hour between polls: only the watch can wake b in time.
	go func() {
		bdone <- lease.RunSingleton(bctx, b, work("b"), lease.SingletonOptions{RetryInterval: time.Hour})
	}()
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))
	acancel()
	recv(t, adone, "a stops")
	assert.Equal(t, "b", recv(t, started, "b starts after a's release"))
	bcancel()
	recv(t, bdone, "b stops")
}
