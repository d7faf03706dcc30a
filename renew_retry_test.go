package lease_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Failed renewal attempts (renew.go): attempt timeouts, retries,
// Retry-After, and the deadline they run into.

func TestRenewalAttemptTimeout(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	wait := e.holdRenewal(a, leasetest.Fault{Verb: "update", Hang: true})
	// With about 9.7s left, the attempt's timeout is half of it (below
	// the cap of min(10s, RenewalInterval) = 5s): then a retry.
	want := (15*time.Second - lease.Margin(15*time.Second) - wait) / 2
	got := a.events.wait(t, "renew-attempt ")
	assert.Equal(t, "renew-attempt "+want.String(), got)
	a.clk.Step(want)
	a.events.wait(t, "renew-retry-wait")
	a.clk.Step(time.Second)
	a.events.wait(t, "renewed")
	assert.True(t, a.CheckAlive())
	assert.Equal(t, 2, e.srv.Count("update"))
}

func TestRenewalDeadlineWrapsLastError(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	e.srv.InjectFault(leasetest.Fault{Verb: "update", Status: http.StatusServiceUnavailable, Times: -1})
	a.clk.Step(a.events.waitArmed(t))
	// Drive the retries on the fake clock until the deadline, without
	// calling CheckAlive: the renewal goroutine ends the tenure itself.
	for {
		name := a.events.wait(t, "")
		if name == "lost" {
			break
		}
		if strings.HasPrefix(name, "renew-retry-wait") {
			a.clk.Step(lease.DefaultTTL / 3) // the backoff cap
		}
	}
	le := a.lost.wait(t)
	assert.Equal(t, lease.LostDeadline, le.Reason)
	var apiErr *lease.APIError
	require.True(t, errors.As(le, &apiErr), "got %v, want the last APIError wrapped", le)
	assert.Equal(t, http.StatusServiceUnavailable, apiErr.StatusCode)
	assert.False(t, a.CheckAlive())
}

func TestRenewalRecoversWithinDeadline(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	e.srv.InjectFault(leasetest.Fault{Verb: "update", Status: http.StatusInternalServerError, Times: 2})
	a.clk.Step(a.events.waitArmed(t))
	for range 2 {
		a.events.wait(t, "renew-retry-wait")
		a.clk.Step(time.Second)
	}
	a.events.wait(t, "renewed")
	assert.True(t, a.CheckAlive())
	assert.Equal(t, 0, a.lost.count())
}

func TestRenewalHonoursRetryAfter(t *testing.T) {
	tests := []struct {
		name string
		f    leasetest.Fault
		want string
	}{
		{"429 plain text with Retry-After", leasetest.Fault{Verb: "update", Status: 429, PlainText: true, RetryAfter: "3"}, "renew-retry-wait 3s"},
		{"503 with Retry-After", leasetest.Fault{Verb: "update", Status: 503, RetryAfter: "2"}, "renew-retry-wait 2s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.newLease("pod-a")
			a.acquire(t)
			e.srv.InjectFault(tc.f)
			a.clk.Step(a.events.waitArmed(t))
			assert.Equal(t, tc.want, a.events.wait(t, "renew-retry-wait"))
		})
	}
}

func TestRenewalNoOpAnswerDoesNotExtend(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	rec := e.record()
	raw, err := json.Marshal(rec)
	require.NoError(t, err)
	// A broken server answers every PUT with the object as it was.
	e.srv.InjectFault(leasetest.Fault{Verb: "update", Status: 200, Body: raw, Times: -1})
	wait := a.events.waitArmed(t)
	a.clk.Step(wait)
	a.events.wait(t, "renew-retry-wait")
	deadline := 15*time.Second - lease.Margin(15*time.Second)
	a.clk.Step(deadline - wait)
	assert.False(t, a.CheckAlive(), "a no-op answer must not extend the deadline")
	le := a.lost.wait(t)
	assert.Equal(t, lease.LostDeadline, le.Reason)
	assert.ErrorIs(t, le, lease.ErrBadResponse)
}
