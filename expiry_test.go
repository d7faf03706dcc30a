package lease_test

import (
	"math"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The expiry rules of expiry.go, as Acquire applies them to a record it
// reads: when a contender may take a Lease over.

func TestAcquireTakeover(t *testing.T) {
	tests := []struct {
		name      string
		holder    string
		renew     time.Time
		dur       int32
		skew      time.Duration // contender's MaxClockSkew (negative: fast path off)
		wallStep  time.Duration // contender's wall clock moved ahead of its monotonic clock
		observe   []time.Duration
		wantOK    bool
		wantTrans int32
	}{
		{name: "free: empty holder", holder: "", renew: epoch, dur: 15, wantOK: true, wantTrans: 8},
		{name: "own owner: restarted process", holder: "pod-b", renew: epoch, dur: 15, wantOK: true, wantTrans: 7},
		{name: "live other holder", holder: "pod-a", renew: epoch, dur: 15, wantOK: false},
		{name: "fast path: expired by wall clock", holder: "pod-a", renew: epoch.Add(-16*time.Second - time.Microsecond), dur: 15, wantOK: true, wantTrans: 8},
		{name: "fast path uses the record's duration, not our TTL", holder: "pod-a", renew: epoch.Add(-20 * time.Second), dur: 60, wantOK: false},
		{name: "fast path: record's duration passed", holder: "pod-a", renew: epoch.Add(-61*time.Second - time.Microsecond), dur: 60, wantOK: true, wantTrans: 8},
		{name: "fast path: skew not yet passed", holder: "pod-a", renew: epoch.Add(-16 * time.Second), dur: 15, wantOK: false},
		{name: "fast path off: old renewTime is not enough", holder: "pod-a", renew: epoch.Add(-time.Hour), dur: 15, skew: -1, wantOK: false},
		{name: "fast path off: observed unchanged for duration", holder: "pod-a", renew: epoch.Add(-time.Hour), dur: 15, skew: -1,
			observe: []time.Duration{15 * time.Second}, wantOK: true, wantTrans: 8},
		{name: "observed unchanged just short of duration", holder: "pod-a", renew: epoch, dur: 15, skew: -1,
			observe: []time.Duration{15*time.Second - time.Millisecond}, wantOK: false},
		{name: "record's own duration, not our TTL", holder: "pod-a", renew: epoch, dur: 60, skew: -1,
			observe: []time.Duration{30 * time.Second}, wantOK: false},
		{name: "record's own duration elapsed", holder: "pod-a", renew: epoch, dur: 60, skew: -1,
			observe: []time.Duration{60 * time.Second}, wantOK: true, wantTrans: 8},
		{name: "absurd duration capped at MaxLeaseDuration", holder: "pod-a", renew: epoch, dur: math.MaxInt32, skew: -1,
			observe: []time.Duration{lease.MaxLeaseDuration}, wantOK: true, wantTrans: 8},
		{name: "absurd duration not yet capped out", holder: "pod-a", renew: epoch, dur: math.MaxInt32, skew: -1,
			observe: []time.Duration{lease.MaxLeaseDuration - time.Second}, wantOK: false},
		{name: "fast path with years of duration uses the cap", holder: "pod-a", renew: epoch.Add(-lease.MaxLeaseDuration - 2*time.Second), dur: math.MaxInt32,
			wantOK: true, wantTrans: 8},
		{name: "missing duration counts as our TTL", holder: "pod-a", renew: epoch, dur: 0, skew: -1,
			observe: []time.Duration{15 * time.Second}, wantOK: true, wantTrans: 8},
		{name: "suspended contender: wall clock far ahead", holder: "pod-a", renew: epoch, dur: 15, wallStep: time.Hour,
			wantOK: true, wantTrans: 8},
		{name: "suspended contender with fast path off must observe", holder: "pod-a", renew: epoch, dur: 15, skew: -1, wallStep: time.Hour,
			wantOK: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			before := e.putRecord(tc.holder, tc.renew, tc.dur, 7)
			b := e.newLease("pod-b", func(s *lease.Settings) {
				if tc.skew != 0 {
					s.MaxClockSkew = tc.skew
				}
			})
			lease.StepWall(b.KubernetesLease, tc.wallStep)
			for _, d := range tc.observe {
				ok, err := b.Acquire(e.ctx())
				require.NoError(t, err)
				require.False(t, ok, "first look at a live record")
				b.clk.Step(d)
			}
			tok, ok, err := b.AcquireWithToken(e.ctx())
			require.NoError(t, err)
			require.Equal(t, tc.wantOK, ok)
			rec := e.record()
			if !tc.wantOK {
				assert.Equal(t, before.ResourceVersion, rec.ResourceVersion, "record untouched")
				return
			}
			assert.Equal(t, "pod-b", rec.Spec.Holder())
			assert.Equal(t, tc.wantTrans, rec.Spec.Transitions())
			assert.Equal(t, lease.Token{ResourceVersion: rec.ResourceVersion, Transitions: tc.wantTrans}, tok)
			assert.Equal(t, before.UID, rec.UID, "taken over, not re-created")
			c, err := tok.Compare(lease.Token{ResourceVersion: before.ResourceVersion})
			require.NoError(t, err)
			assert.Equal(t, 1, c, "new token is larger")
		})
	}
}

// Expiry rule (a) times how long the record's spec has been seen
// unchanged: an edit of its metadata does not restart the count, a change
// of its spec (the holder renewing) does.
func TestAcquireEditsAndExpiry(t *testing.T) {
	type look struct {
		after time.Duration // stepped before this Acquire
		want  bool
		why   string
	}
	tests := []struct {
		name  string
		edit  func(l *wire.Lease) // 10s after the first look
		looks []look              // after the edit
	}{
		{"metadata edit does not reset expiry", func(l *wire.Lease) { l.Labels = map[string]string{"team": "x"} }, []look{
			{0, false, "10s of 15s"},
			{5 * time.Second, true, "a label edit must not reset the expiry timer"},
		}},
		{"spec change resets expiry", func(l *wire.Lease) { l.Spec.RenewTime = &metav1.MicroTime{Time: epoch.Add(10 * time.Second)} }, []look{
			{0, false, "the holder renewed just now"},
			{5 * time.Second, false, "the holder renewed 5s ago"},
			{10 * time.Second, true, "15s after the renewal was first seen"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.putRecord("pod-a", epoch, 15, 0)
			b := e.newLease("pod-b", func(s *lease.Settings) { s.MaxClockSkew = -1 })
			ok, err := b.Acquire(e.ctx())
			require.NoError(t, err)
			require.False(t, ok, "first look at a live record")
			b.clk.Step(10 * time.Second)
			require.NoError(t, e.srv.Edit("default", "job", tc.edit))
			for _, lk := range tc.looks {
				b.clk.Step(lk.after)
				ok, err := b.Acquire(e.ctx())
				require.NoError(t, err)
				require.Equal(t, lk.want, ok, lk.why)
			}
		})
	}
}
