package lease_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func ptr[T any](v T) *T { return &v }

// putRecord stores a Lease "job" in "default" as a third party would.
func (e *env) putRecord(holder string, renew time.Time, dur, transitions int32) *wire.Lease {
	e.t.Helper()
	obj := &wire.Lease{}
	obj.Name, obj.Namespace = "job", "default"
	if holder != "" {
		obj.Spec.HolderIdentity = ptr(holder)
	}
	if dur != 0 {
		obj.Spec.LeaseDurationSeconds = ptr(dur)
	}
	if !renew.IsZero() {
		obj.Spec.RenewTime = &metav1.MicroTime{Time: renew}
		obj.Spec.AcquireTime = &metav1.MicroTime{Time: renew}
	}
	obj.Spec.LeaseTransitions = ptr(transitions)
	require.NoError(e.t, e.srv.Put(obj))
	got, ok := e.srv.Get("default", "job")
	require.True(e.t, ok)
	return got
}

func (e *env) record() *wire.Lease {
	e.t.Helper()
	got, ok := e.srv.Get("default", "job")
	require.True(e.t, ok, "lease job is absent")
	return got
}

func TestAcquireCreates(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	tok := a.acquire(t)
	rec := e.record()

	assert.Equal(t, rec.ResourceVersion, tok.ResourceVersion, "token resourceVersion")
	assert.Equal(t, int32(0), tok.Transitions)
	assert.Equal(t, "pod-a", rec.Spec.Holder())
	assert.Equal(t, int32(15), *rec.Spec.LeaseDurationSeconds)
	assert.Equal(t, int32(0), rec.Spec.Transitions())
	assert.True(t, rec.Spec.RenewTime.Equal(&metav1.MicroTime{Time: epoch}), "renewTime: got %v, want %v", rec.Spec.RenewTime, epoch)
	assert.True(t, rec.Spec.AcquireTime.Equal(rec.Spec.RenewTime), "acquireTime equals renewTime")
	assert.Equal(t, lease.NonceOf(a.KubernetesLease), rec.Annotations[lease.NonceAnnotation])
	assert.True(t, a.CheckAlive())
	got, ok := a.Token()
	assert.True(t, ok)
	assert.Equal(t, tok, got)
	assert.Equal(t, map[string]int{"get": 1, "create": 1}, nonZero(e.srv.Counts()))

	// Acquire while held: no I/O, same token.
	again := a.acquire(t)
	assert.Equal(t, tok, again)
	assert.Equal(t, map[string]int{"get": 1, "create": 1}, nonZero(e.srv.Counts()))
}

func nonZero(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

func TestAcquireLiveConflict(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	b := e.newLease("pod-b")
	a.acquire(t)
	e.srv.ResetCounts()

	tok, ok, err := b.AcquireWithToken(e.ctx())
	require.NoError(t, err)
	assert.False(t, ok)
	assert.True(t, tok.IsZero(), "token of a failed acquire: got %v, want zero", tok)
	assert.False(t, b.CheckAlive())
	assert.Equal(t, map[string]int{"get": 1}, nonZero(e.srv.Counts()), "a live conflict costs one GET")
}

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

func TestAcquireMetadataEditDoesNotResetExpiry(t *testing.T) {
	e := newEnv(t)
	e.putRecord("pod-a", epoch, 15, 0)
	b := e.newLease("pod-b", func(s *lease.Settings) { s.MaxClockSkew = -1 })
	ok, err := b.Acquire(e.ctx())
	require.NoError(t, err)
	require.False(t, ok)
	b.clk.Step(10 * time.Second)
	require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) { l.Labels = map[string]string{"team": "x"} }))
	ok, err = b.Acquire(e.ctx())
	require.NoError(t, err)
	require.False(t, ok, "10s of 15s")
	b.clk.Step(5 * time.Second)
	ok, err = b.Acquire(e.ctx())
	require.NoError(t, err)
	assert.True(t, ok, "a label edit must not reset the expiry timer")
}

func TestAcquireSpecChangeResetsExpiry(t *testing.T) {
	e := newEnv(t)
	e.putRecord("pod-a", epoch, 15, 0)
	b := e.newLease("pod-b", func(s *lease.Settings) { s.MaxClockSkew = -1 })
	ok, _ := b.Acquire(e.ctx())
	require.False(t, ok)
	b.clk.Step(10 * time.Second)
	require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) {
		l.Spec.RenewTime = &metav1.MicroTime{Time: epoch.Add(10 * time.Second)}
	}))
	ok, _ = b.Acquire(e.ctx())
	require.False(t, ok)
	b.clk.Step(5 * time.Second)
	ok, _ = b.Acquire(e.ctx())
	assert.False(t, ok, "the holder renewed 5s ago")
	b.clk.Step(10 * time.Second)
	ok, _ = b.Acquire(e.ctx())
	assert.True(t, ok, "15s after the renewal was first seen")
}

func TestAcquireTransitionsSaturate(t *testing.T) {
	e := newEnv(t)
	e.putRecord("", epoch, 15, math.MaxInt32)
	b := e.newLease("pod-b")
	tok := b.acquire(t)
	assert.Equal(t, int32(math.MaxInt32), tok.Transitions)
	assert.Equal(t, int32(math.MaxInt32), e.record().Spec.Transitions())
}

func TestAcquireRetriesOnConflict(t *testing.T) {
	tests := []struct {
		name      string
		retries   int
		conflicts int
		wantOK    bool
		wantPuts  int
	}{
		{"default retries absorb three conflicts", 0, 3, true, 4},
		{"default retries used up", 0, 4, false, 4},
		{"one retry", 1, 1, true, 2},
		{"one retry used up", 1, 5, false, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.putRecord("", epoch, 15, 0)
			e.srv.InjectFault(leasetest.Fault{Verb: "update", Status: http.StatusConflict, Times: tc.conflicts})
			b := e.newLease("pod-b", func(s *lease.Settings) { s.AcquireRetries = tc.retries })
			ok, err := b.Acquire(e.ctx())
			require.NoError(t, err)
			assert.Equal(t, tc.wantOK, ok)
			assert.Equal(t, tc.wantPuts, e.srv.Count("update"))
			assert.Equal(t, tc.wantPuts, e.srv.Count("get"), "one re-read per attempt")
		})
	}
}

func TestAcquireCreateRace(t *testing.T) {
	e := newEnv(t)
	// The first POST loses a create race: the lease appears, held by pod-a.
	e.srv.InjectFault(leasetest.Fault{Verb: "create", Status: http.StatusConflict})
	b := e.newLease("pod-b")
	ok, err := b.Acquire(e.ctx())
	require.NoError(t, err)
	assert.True(t, ok, "retried after AlreadyExists")
	assert.Equal(t, 2, e.srv.Count("create"))
}

func TestAcquireErrors(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(e *env, s *lease.Settings)
		wantCode int
		wantText string
		wantIs   error
	}{
		{"missing namespace is an error, not false", func(e *env, s *lease.Settings) { s.Namespace = "nope" }, 404, "namespaces", nil},
		{"unauthorized", func(e *env, s *lease.Settings) {
			e.srv.RequireToken("secret")
			s.Config = &lease.Config{Host: e.srv.URL, BearerToken: "wrong"}
		}, 401, "Unauthorized", nil},
		{"forbidden", func(e *env, s *lease.Settings) {
			e.srv.InjectFault(leasetest.Fault{Verb: "get", Status: http.StatusForbidden})
		}, 403, "Forbidden", nil},
		{"server error on write", func(e *env, s *lease.Settings) {
			e.srv.InjectFault(leasetest.Fault{Verb: "create", Status: http.StatusInternalServerError})
		}, 500, "InternalError", nil},
		{"plain-text 429", func(e *env, s *lease.Settings) {
			e.srv.InjectFault(leasetest.Fault{Verb: "get", Status: http.StatusTooManyRequests, PlainText: true, RetryAfter: "1"})
		}, 429, "Too many requests", nil},
		{"garbage body", func(e *env, s *lease.Settings) {
			e.srv.InjectFault(leasetest.Fault{Verb: "get", Status: 200, Body: []byte("<html>hello")})
		}, 0, "not a Lease", lease.ErrBadResponse},
		{"truncated body", func(e *env, s *lease.Settings) {
			e.srv.InjectFault(leasetest.Fault{Verb: "get", Status: 200, Body: []byte(`{"kind":"Lease","metadata":{"name":"job"`)})
		}, 0, "not a Lease", lease.ErrBadResponse},
		{"huge body", func(e *env, s *lease.Settings) {
			e.srv.InjectFault(leasetest.Fault{Verb: "get", Status: 200, Body: make([]byte, 2<<20)})
		}, 0, "larger than", lease.ErrBadResponse},
		{"someone else's object", func(e *env, s *lease.Settings) {
			e.srv.InjectFault(leasetest.Fault{Verb: "get", Status: 200,
				Body: []byte(`{"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"other","namespace":"default","uid":"u","resourceVersion":"5"},"spec":{}}`)})
		}, 0, `got default/other`, lease.ErrBadResponse},
		{"connection reset", func(e *env, s *lease.Settings) {
			e.srv.InjectFault(leasetest.Fault{Verb: "get", Reset: true})
		}, 0, "GET", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			s := lease.Settings{}
			tc.setup(e, &s)
			b := e.newLease("pod-b", func(ss *lease.Settings) {
				ss.Namespace = s.Namespace
				if s.Config != nil {
					ss.Config = s.Config
				}
			})
			ok, err := b.Acquire(e.ctx())
			require.Error(t, err)
			assert.False(t, ok)
			assert.False(t, b.CheckAlive())
			assert.Contains(t, err.Error(), tc.wantText)
			assert.Regexp(t, "^lease: ", err.Error())
			if tc.wantIs != nil {
				assert.ErrorIs(t, err, tc.wantIs)
			}
			if tc.wantCode != 0 {
				var apiErr *lease.APIError
				require.ErrorAs(t, err, &apiErr)
				assert.Equal(t, tc.wantCode, apiErr.StatusCode)
			}
		})
	}
}

func TestAcquireHungRequestTimesOut(t *testing.T) {
	e := newEnv(t)
	e.srv.InjectFault(leasetest.Fault{Verb: "create", Hang: true})
	b := e.newLease("pod-b")
	errc := make(chan error, 1)
	go func() {
		_, err := b.Acquire(context.Background())
		errc <- err
	}()
	require.NoError(t, e.srv.AwaitReceived(e.ctx(), 2)) // the GET, then the hung POST
	b.clk.Step(15*time.Second - lease.Margin(15*time.Second))
	select {
	case err := <-errc:
		require.Error(t, err)
		assert.True(t, errors.Is(err, context.DeadlineExceeded), "got %v, want DeadlineExceeded", err)
	case <-time.After(waitFor):
		t.Fatal("Acquire did not time out on the injected clock")
	}
	assert.False(t, b.CheckAlive())
}

func TestAcquireLostAnswerRecovers(t *testing.T) {
	e := newEnv(t)
	e.srv.InjectFault(leasetest.Fault{Verb: "create", DropAnswer: true})
	b := e.newLease("pod-b")
	_, err := b.Acquire(e.ctx())
	require.Error(t, err, "the answer was lost")
	assert.False(t, b.CheckAlive())
	assert.Equal(t, "pod-b", e.record().Spec.Holder(), "the write was applied")
	tok := b.acquire(t)
	assert.Equal(t, int32(0), tok.Transitions, "own record taken over without a transition")
}

func TestAcquireContextCancelled(t *testing.T) {
	e := newEnv(t)
	b := e.newLease("pod-b")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ok, err := b.Acquire(ctx)
	assert.False(t, ok)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestAcquireNotAKubernetesServer(t *testing.T) {
	tests := []struct {
		name    string
		handler http.Handler
	}{
		{"plain-text 404 everywhere", http.NotFoundHandler()},
		{"404 Status without details", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`))
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			l, err := lease.NewKubernetesLease(lease.Settings{Name: "job", Owner: "a", Config: &lease.Config{Host: srv.URL}})
			require.NoError(t, err)
			ok, err := l.Acquire(context.Background())
			assert.False(t, ok)
			var apiErr *lease.APIError
			require.ErrorAs(t, err, &apiErr, "a wrong Host must be an error, not false")
			assert.Equal(t, 404, apiErr.StatusCode)
		})
	}
}

func TestAcquirePost404IsAnError(t *testing.T) {
	e := newEnv(t)
	e.srv.InjectFault(leasetest.Fault{Verb: "create", Status: http.StatusNotFound})
	b := e.newLease("pod-b")
	ok, err := b.Acquire(e.ctx())
	assert.False(t, ok)
	var apiErr *lease.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.MethodPost, apiErr.Method)
	assert.Equal(t, 1, e.srv.Count("create"), "not retried as a race")
}

func TestAcquireLateAnswerStartsNoTenure(t *testing.T) {
	e := newEnv(t)
	gate := make(chan struct{})
	e.srv.InjectFault(leasetest.Fault{Verb: "create", Gate: gate})
	b := e.newLease("pod-b")
	errc := make(chan error, 1)
	go func() {
		_, err := b.Acquire(context.Background())
		errc <- err
	}()
	require.NoError(t, e.srv.AwaitReceived(e.ctx(), 2))
	// A suspend while the POST is held: the answer comes after the deadline
	// the write would start (the attempt timeout, on the monotonic clock,
	// has not fired).
	lease.StepWall(b.KubernetesLease, time.Minute)
	close(gate)
	err := <-errc
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.False(t, b.CheckAlive())
	_, held := b.Token()
	assert.False(t, held)
	assert.Equal(t, "pod-b", e.record().Spec.Holder(), "the write was applied")
	// Release cleans up the record naming us, so peers need not wait.
	require.NoError(t, b.Release(e.ctx()))
	_, ok := e.srv.Get("default", "job")
	assert.False(t, ok, "the orphaned record is deleted")
	assert.Equal(t, 0, b.lost.count(), "no tenure, no OnLost")
}

func TestAcquireNoOpAnswerIsBad(t *testing.T) {
	e := newEnv(t)
	rec := e.putRecord("", epoch, 15, 0)
	raw, err := json.Marshal(rec)
	require.NoError(t, err)
	e.srv.InjectFault(leasetest.Fault{Verb: "update", Status: 200, Body: raw})
	b := e.newLease("pod-b")
	ok, err := b.Acquire(e.ctx())
	assert.False(t, ok)
	assert.ErrorIs(t, err, lease.ErrBadResponse)
	assert.False(t, b.CheckAlive())
}

func TestReleaseCancelsAcquireInFlight(t *testing.T) {
	e := newEnv(t)
	e.srv.InjectFault(leasetest.Fault{Verb: "get", Hang: true})
	b := e.newLease("pod-b")
	errc := make(chan error, 1)
	go func() {
		_, err := b.Acquire(context.Background())
		errc <- err
	}()
	require.NoError(t, e.srv.AwaitReceived(e.ctx(), 1))
	require.NoError(t, b.Release(e.ctx()), "Release does not wait behind the hung Acquire")
	assert.ErrorIs(t, <-errc, context.Canceled)
	assert.False(t, b.CheckAlive())
}
