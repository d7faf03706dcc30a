package lease_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRenewWait(t *testing.T) {
	const interval = 5 * time.Second
	tests := []struct {
		name string
		u    float64
		want time.Duration
	}{
		{"lowest draw: 10 % early", 0, 4500 * time.Millisecond},
		{"middle draw: on time", 0.5, interval},
		{"high draw: 10 % late, nearly", 0.999, 5499 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := lease.RenewWait(interval, tc.u); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	// Draws u and 1−u are equally likely and their waits average to the
	// interval: the mean wait is exactly RenewalInterval.
	for _, u := range []float64{0, 0.1, 0.25, 0.4, 0.5} {
		if got := lease.RenewWait(interval, u) + lease.RenewWait(interval, 1-u); got != 2*interval {
			t.Errorf("u=%v: got waits summing to %v, want %v", u, got, 2*interval)
		}
	}
}

func TestRetryWait(t *testing.T) {
	const interval = 5 * time.Second
	tests := []struct {
		name       string
		failures   int
		retryAfter time.Duration
		left       time.Duration
		u          float64
		want       time.Duration
	}{
		{"first retry, low draw", 0, 0, 10 * time.Second, 0, 100 * time.Millisecond},
		{"first retry, high draw", 0, 0, 10 * time.Second, 0.999, 199900 * time.Microsecond},
		{"third retry doubles twice", 2, 0, 10 * time.Second, 0.5, 600 * time.Millisecond},
		{"capped at 1 s", 3, 0, 10 * time.Second, 0.999, 999500 * time.Microsecond},
		{"capped at 1 s after many", 40, 0, 10 * time.Second, 0, 500 * time.Millisecond},
		{"Retry-After when longer", 0, 3 * time.Second, 10 * time.Second, 0.5, 3 * time.Second},
		{"Retry-After cut so a last attempt fits", 0, 30 * time.Second, 10 * time.Second, 0.5, 9750 * time.Millisecond},
		{"backoff cut so a last attempt fits", 3, 0, 600 * time.Millisecond, 0.999, 350 * time.Millisecond},
		{"no cut within the last 250 ms", 3, 0, 200 * time.Millisecond, 0, 500 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := lease.RetryWait(tc.failures, interval, tc.retryAfter, tc.left, tc.u); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("capped by a short RenewalInterval", func(t *testing.T) {
		if got, want := lease.RetryWait(10, 300*time.Millisecond, 0, 10*time.Second, 0.999), 299850*time.Microsecond; got != want {
			t.Errorf("got %v, want %v", got, want)
		}
	})
}

func TestAttemptTimeoutAt(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	long := e.newLease("pod-b", func(s *lease.Settings) { s.TTL = time.Minute })
	tests := []struct {
		name string
		l    *contender
		left time.Duration
		want time.Duration
	}{
		{"a renewal on time: half of what is left", a, 9700 * time.Millisecond, 9700 * time.Millisecond / 2},
		{"plenty left: capped at RenewalInterval", a, 14700 * time.Millisecond, 5 * time.Second},
		{"long TTL: capped at 10 s", long, 40 * time.Second, 10 * time.Second},
		{"near the deadline: at least 1 s", a, 2 * time.Second, time.Second},
		{"the last attempt: up to the deadline", a, 700 * time.Millisecond, 700 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := lease.AttemptTimeoutAt(tc.l.KubernetesLease, tc.left); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// A held lease at the default TTL costs one PUT per RenewalInterval on
// average: 12 a minute at TTL 15 s, with every wait within ±10 %.
func TestRenewalCadence(t *testing.T) {
	t.Cleanup(lease.SeedJitter(1))
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	const renewals = 600
	const interval = 5 * time.Second
	var total time.Duration
	above := 0
	for range renewals {
		name := a.events.wait(t, "renew-wait ")
		wait, err := time.ParseDuration(strings.TrimPrefix(name, "renew-wait "))
		require.NoError(t, err, name)
		if wait < 4500*time.Millisecond || wait > 5500*time.Millisecond {
			t.Fatalf("wait: got %v, want within 5s ± 10%%", wait)
		}
		if wait > interval {
			above++
		}
		total += wait
		a.clk.Step(wait)
		a.events.wait(t, "renewed")
	}
	mean := total / renewals
	perMinute := float64(e.srv.Count("update")) / (total.Minutes())
	t.Logf("%d renewals: mean wait %v, %.2f PUTs a minute, %d waits above RenewalInterval", renewals, mean, perMinute, above)
	assert.InDelta(t, interval.Seconds(), mean.Seconds(), 0.025, "mean wait: got %v, want 5s ± 25ms", mean)
	assert.InDelta(t, 12, perMinute, 0.06, "PUTs a minute: got %.2f, want 12 ± 0.5 %%", perMinute)
	assert.Greater(t, above, renewals/3, "waits above RenewalInterval: got %d of %d, want about half", above, renewals)
	assert.Equal(t, renewals, e.srv.Count("update"), "PUTs: got %d, want one per renewal", e.srv.Count("update"))
}

// Under a blackhole, attempts shrink as the deadline nears, retries follow
// within a second, the last attempt still fits, and the tenure ends
// exactly at the deadline.
func TestRenewalScheduleUnderHang(t *testing.T) {
	t.Cleanup(lease.SeedJitter(2))
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	base := e.srv.Received()
	e.srv.InjectFault(leasetest.Fault{Verb: "update", Hang: true, Times: -1})
	deadline := epoch.Add(15*time.Second - lease.Margin(15*time.Second))
	name := a.events.wait(t, "renew-wait ")
	wait, err := time.ParseDuration(strings.TrimPrefix(name, "renew-wait "))
	require.NoError(t, err, name)
	a.clk.Step(wait)
	var lastAttempt time.Duration // time left at the last attempt
	attempts := 0
	for {
		name := a.events.wait(t, "")
		switch {
		case name == "lost":
			assert.Equal(t, deadline, a.clk.Now(), "loss: got at %v, want at the deadline", a.clk.Now().Sub(epoch))
			assert.LessOrEqual(t, lastAttempt, 1500*time.Millisecond, "the last attempt: got %v before the deadline, want 1.5s or less", lastAttempt)
			assert.GreaterOrEqual(t, attempts, 4, "attempts: got %d, want 4 or more", attempts)
			le := a.lost.wait(t)
			assert.Equal(t, lease.LostDeadline, le.Reason)
			return
		case strings.HasPrefix(name, "renew-attempt "):
			attempts++
			timeout, err := time.ParseDuration(strings.TrimPrefix(name, "renew-attempt "))
			require.NoError(t, err, name)
			left := deadline.Sub(a.clk.Now())
			want := min(5*time.Second, max(left/2, time.Second), left)
			assert.Equal(t, want, timeout, "attempt %d with %v left: got timeout %v, want %v", attempts, left, timeout, want)
			lastAttempt = left
			require.NoError(t, e.srv.AwaitReceived(e.ctx(), base+attempts), "each attempt is a request of its own")
			a.clk.Step(timeout)
		case strings.HasPrefix(name, "renew-retry-wait "):
			wait, err := time.ParseDuration(strings.TrimPrefix(name, "renew-retry-wait "))
			require.NoError(t, err, name)
			assert.LessOrEqual(t, wait, time.Second, "retry wait: got %v, want 1s or less", wait)
			a.clk.Step(min(wait, deadline.Sub(a.clk.Now()))) // the wait ends at the deadline at the latest
		}
	}
}

func TestRenewalIntervalHasJitter(t *testing.T) {
	t.Cleanup(lease.SeedJitter(3))
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	seen := map[time.Duration]bool{}
	above := 0
	for range 16 {
		name := a.events.wait(t, "renew-wait")
		wait, err := time.ParseDuration(strings.TrimPrefix(name, "renew-wait "))
		require.NoError(t, err, name)
		assert.GreaterOrEqual(t, wait, 4500*time.Millisecond, "wait: got %v, want at most 10 %% early", wait)
		assert.LessOrEqual(t, wait, 5500*time.Millisecond, "wait: got %v, want at most 10 %% late", wait)
		if wait > 5*time.Second {
			above++
		}
		seen[wait] = true
		a.clk.Step(wait)
		a.events.wait(t, "renewed")
	}
	assert.Greater(t, len(seen), 1, "the waits vary")
	assert.Positive(t, above, "waits above RenewalInterval: got none, want some (jitter around it)")
}

func TestRenewalIntervalNearTTLStillRenews(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a", func(s *lease.Settings) { s.RenewalInterval = s.TTL - time.Millisecond })
	a.acquire(t)
	for range 3 {
		name := a.events.wait(t, "renew-wait")
		wait, err := time.ParseDuration(strings.TrimPrefix(name, "renew-wait "))
		require.NoError(t, err, name)
		// Room for one attempt (min(10s, interval)) is left before the deadline.
		assert.LessOrEqual(t, wait, 15*time.Second-lease.Margin(15*time.Second)-10*time.Second)
		a.clk.Step(wait)
		a.events.wait(t, "renewed")
	}
	assert.True(t, a.CheckAlive())
	assert.Equal(t, 0, a.lost.count())
}
