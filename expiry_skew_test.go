package lease

import (
	"math"
	"testing"
	"time"

	"github.com/kubelease/lease/internal/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

// MaxClockSkew is bounded by MaxLeaseDuration; a negative value, however
// large, turns the fast path off and stays valid (issue 10, item 5).
func TestEdgesMaxClockSkewBound(t *testing.T) {
	tests := []struct {
		name string
		skew time.Duration
		want string // the error; "" means valid
	}{
		{"max int64", math.MaxInt64, "lease: invalid settings: MaxClockSkew 2562047h47m16.854775807s is above MaxLeaseDuration 1h0m0s; use a negative value to turn the fast path off"},
		{"just above the cap", MaxLeaseDuration + time.Nanosecond, "lease: invalid settings: MaxClockSkew 1h0m0.000000001s is above MaxLeaseDuration 1h0m0s; use a negative value to turn the fast path off"},
		{"the cap", MaxLeaseDuration, ""},
		{"default", 0, ""},
		{"min int64 turns the fast path off", math.MinInt64, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := validSettings()
			s.MaxClockSkew = tc.skew
			err := s.Validate()
			if tc.want == "" {
				assert.NoError(t, err, "got %v, want valid", err)
				return
			}
			require.Error(t, err, "got valid, want %q", tc.want)
			assert.Equal(t, tc.want, err.Error(), "got %q, want %q", err, tc.want)
			assert.ErrorIs(t, err, ErrInvalidSettings)
		})
	}
}

// Even with a MaxClockSkew that Validate no longer lets through, the sums
// on the expiry path saturate instead of wrapping around: a live record of
// another holder is not free, and Wait does not wake at once (item 5).
func TestEdgesExpirySumsSaturate(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	record := func(renew time.Time) *wire.Lease {
		holder, dur := "pod-b", int32(15)
		rt := metav1.NewMicroTime(renew)
		return &wire.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: "job", UID: "u", ResourceVersion: "1"},
			Spec:       wire.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &dur, RenewTime: &rt},
		}
	}
	tests := []struct {
		name      string
		skew      time.Duration
		renew     time.Time
		wantFree  bool
		wantUntil time.Duration // untilExpiry at least this
	}{
		{"live record, skew max int64", math.MaxInt64, clk.Now(), false, 15 * time.Second},
		{"live record, skew the cap", MaxLeaseDuration, clk.Now(), false, 15 * time.Second},
		{"renewTime far in the future", DefaultMaxClockSkew, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), false, 15 * time.Second},
		{"expired record, skew the cap", MaxLeaseDuration, clk.Now().Add(-2 * time.Hour), true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := validSettings()
			s.Owner, s.Clock = "pod-a", clk
			l, err := NewKubernetesLease(s)
			require.NoError(t, err)
			l.s.MaxClockSkew = tc.skew // bypass Validate: the sums must hold on their own
			obj := record(tc.renew)
			l.observe(obj, l.now())
			if got := l.mayTakeOver(obj); got != tc.wantFree {
				t.Errorf("free: got %v, want %v", got, tc.wantFree)
			}
			if got := l.untilExpiry(); got < tc.wantUntil {
				t.Errorf("untilExpiry: got %v, want at least %v", got, tc.wantUntil)
			}
		})
	}
}

// addSat saturates instead of wrapping around (item 5).
func TestEdgesSaturatingAdd(t *testing.T) {
	tests := []struct {
		a, b, want time.Duration
	}{
		{time.Second, time.Second, 2 * time.Second},
		{math.MaxInt64, time.Nanosecond, math.MaxInt64},
		{time.Hour, math.MaxInt64, math.MaxInt64},
		{math.MinInt64, -time.Nanosecond, math.MinInt64},
		{math.MinInt64, math.MaxInt64, -time.Nanosecond},
		{-time.Second, time.Second, 0},
	}
	for _, tc := range tests {
		if got := addSat(tc.a, tc.b); got != tc.want {
			t.Errorf("addSat(%d, %d): got %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
