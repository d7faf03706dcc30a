package lease_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recObserver records Observer calls.
type recObserver struct {
	mu     sync.Mutex // guards events and lefts
	events []string
	lefts  []time.Duration
}

func (o *recObserver) add(e string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, e)
}
func (o *recObserver) Acquired(lease.Token) { o.add("acquired") }
func (o *recObserver) Renewed(latency, left time.Duration) {
	o.mu.Lock()
	o.lefts = append(o.lefts, left)
	o.mu.Unlock()
	o.add("renewed")
}
func (o *recObserver) RenewFailed(error)       { o.add("renew-failed") }
func (o *recObserver) Lost(r lease.LostReason) { o.add("lost:" + string(r)) }
func (o *recObserver) Released()               { o.add("released") }
func (o *recObserver) snapshot() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.events...)
}

func TestObserverEvents(t *testing.T) {
	e := newEnv(t)
	obs := &recObserver{}
	a := e.newLease("pod-a", func(s *lease.Settings) { s.Observer = obs })
	a.acquire(t)
	a.renewOnce(t)
	e.srv.InjectFault(leasetest.Fault{Verb: "update", Status: http.StatusServiceUnavailable})
	a.clk.Step(a.events.waitArmed(t))
	a.events.wait(t, "renew-retry-wait")
	a.clk.Step(time.Second)
	a.events.wait(t, "renewed")
	require.NoError(t, a.Release(e.ctx()))
	a.acquire(t)
	require.NoError(t, e.srv.Delete("default", "job"))
	a.clk.Step(a.events.waitArmed(t))
	a.lost.wait(t)
	assert.Equal(t, []string{"acquired", "renewed", "renew-failed", "renewed", "released", "acquired", "lost:deleted"}, obs.snapshot())
	obs.mu.Lock()
	defer obs.mu.Unlock()
	assert.Equal(t, 15*time.Second-lease.Margin(15*time.Second), obs.lefts[0], "time left after a renewal, on the fake clock")
}

func TestHealthCheck(t *testing.T) {
	e := newEnv(t)
	// A user-supplied HTTP client that ignores cancellation can leave the
	// renewal goroutine stuck: then nothing checks the deadline.
	stuck := make(chan struct{})
	entered := make(chan struct{}, 1)
	var once sync.Once
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodPut {
			entered <- struct{}{}
			<-stuck
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	a := e.newLease("pod-a", func(s *lease.Settings) {
		s.Config = &lease.Config{Host: e.srv.URL, HTTPClient: &http.Client{Transport: rt}}
	})
	defer once.Do(func() { close(stuck) })
	a.acquire(t)
	require.NoError(t, a.HealthCheck(5*time.Second))
	wait := a.events.waitArmed(t)
	a.clk.Step(wait) // the renewal PUT is stuck in the client
	recv(t, entered, "stuck PUT")
	a.clk.Step(20*time.Second - wait) // 20 s after the acquire
	err := a.HealthCheck(5 * time.Second)
	require.NoError(t, err, "within lease duration + tolerance")
	a.clk.Step(time.Second)
	err = a.HealthCheck(5 * time.Second)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "believed held but last renewed 21s ago")

	rec := httptest.NewRecorder()
	lease.HealthHandler(func() error { return a.HealthCheck(5 * time.Second) }).ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.False(t, a.CheckAlive())
	rec = httptest.NewRecorder()
	lease.HealthHandler(func() error { return a.HealthCheck(5 * time.Second) }).ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	assert.Equal(t, http.StatusOK, rec.Code, "once the deadline is checked the lease is not held: healthy")
	once.Do(func() { close(stuck) })
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
