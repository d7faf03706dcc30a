package lease_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"
)

// MaxClockSkew = math.MaxInt64, a natural way to write "never use the fast
// path", must never let a contender take a live lease: the settings are
// refused, naming the value (issue 10, item 5).
func TestEdgesHugeMaxClockSkewNeverTwoHolders(t *testing.T) {
	tests := []struct {
		name string
		skew time.Duration
	}{
		{"max int64", math.MaxInt64},
		{"max int64 minus the lease duration", math.MaxInt64 - 15*time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.newLease("pod-a")
			a.acquire(t)

			s := lease.Settings{Name: "job", Owner: "pod-b", Config: e.srv.Config(),
				Clock: clocktesting.NewFakeClock(epoch), TTL: 15 * time.Second, MaxClockSkew: tc.skew}
			b, err := lease.NewKubernetesLease(s)
			if err != nil {
				assert.ErrorIs(t, err, lease.ErrInvalidSettings)
				assert.Contains(t, err.Error(), "MaxClockSkew "+tc.skew.String()+" is above MaxLeaseDuration 1h0m0s")
				return
			}
			t.Cleanup(func() { _ = b.Release(context.Background()) })
			ok, err := b.Acquire(e.ctx())
			require.NoError(t, err)
			assert.False(t, ok, "pod-b Acquire while pod-a holds: got true, want false (two holders)")
			assert.True(t, a.CheckAlive(), "pod-a CheckAlive: got false, want true")
		})
	}
}
