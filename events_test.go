package lease_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withEvents turns events on, reported as "my-operator".
func withEvents(s *lease.Settings) { s.EventSource = "my-operator" }

// eventLines is what tests compare of the Events a lease posted.
func eventLines(evs []leasetest.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Type+" "+ev.Reason+": "+ev.Message)
	}
	return out
}

// awaitEvents waits for n Events on e's server and returns them.
func (e *env) awaitEvents(n int) []leasetest.Event {
	e.t.Helper()
	evs, err := e.srv.AwaitEvents(e.ctx(), n)
	require.NoError(e.t, err, "events so far: %q; requests %+v", eventLines(evs), e.srv.Requests())
	return evs
}

// logRecords keeps the level and message of every log record.
type logRecords struct {
	mu   sync.Mutex // guards recs and ch
	recs []string
	ch   chan string
}

// wait returns once a record whose message contains sub is logged (one
// not waited for yet).
func (lr *logRecords) wait(t *testing.T, sub string) {
	t.Helper()
	lr.mu.Lock()
	if lr.ch == nil {
		lr.ch = make(chan string, 1024)
	}
	ch := lr.ch
	lr.mu.Unlock()
	deadline := time.After(waitFor)
	for {
		select {
		case r := <-ch:
			if strings.Contains(r, sub) {
				return
			}
		case <-deadline:
			t.Fatalf("no log record containing %q within %v", sub, waitFor)
		}
	}
}

func (lr *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (lr *logRecords) Handle(_ context.Context, r slog.Record) error {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	lr.recs = append(lr.recs, r.Level.String()+" "+r.Message)
	if lr.ch == nil {
		lr.ch = make(chan string, 1024)
	}
	lr.ch <- r.Message
	return nil
}
func (lr *logRecords) WithAttrs([]slog.Attr) slog.Handler { return lr }
func (lr *logRecords) WithGroup(string) slog.Handler      { return lr }

// count is the number of records at level whose message contains sub.
func (lr *logRecords) count(level slog.Level, sub string) int {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	n := 0
	for _, r := range lr.recs {
		if strings.HasPrefix(r, level.String()+" ") && strings.Contains(r, sub) {
			n++
		}
	}
	return n
}

func TestEventsAcquireRelease(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a", withEvents)
	a.acquire(t)
	uid := e.record().UID
	e.awaitEvents(1)
	require.NoError(t, a.Release(e.ctx()))
	evs := e.awaitEvents(2)
	assert.Equal(t, []string{
		"Normal LeaderElection: pod-a became leader",
		"Normal LeaderElection: pod-a stopped leading",
	}, eventLines(evs))
	for _, ev := range evs {
		assert.Equal(t, leasetest.EventObject{
			APIVersion: "coordination.k8s.io/v1", Kind: "Lease", Namespace: "default", Name: "job",
			UID: uid, ResourceVersion: ev.InvolvedObject.ResourceVersion,
		}, ev.InvolvedObject)
		assert.NotEmpty(t, ev.InvolvedObject.ResourceVersion)
		assert.Equal(t, "default", ev.Namespace)
		assert.True(t, strings.HasPrefix(ev.Name, "job."), "name %q", ev.Name)
		assert.Equal(t, "my-operator", ev.Source.Component)
		assert.Equal(t, "my-operator", ev.ReportingComponent)
		assert.Equal(t, "pod-a", ev.ReportingInstance)
		assert.Equal(t, int32(1), ev.Count)
		assert.True(t, ev.FirstTimestamp.Equal(&ev.LastTimestamp))
		assert.Equal(t, epoch, ev.FirstTimestamp.UTC(), "stamped on the lease's clock")
	}
	assert.NotEqual(t, evs[0].Name, evs[1].Name)
}

func TestEventsOffByDefault(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	require.NoError(t, a.Release(e.ctx()))
	for _, r := range e.srv.Requests() {
		assert.NotEqual(t, "events", r.Resource, "request %+v", r)
	}
	assert.Empty(t, e.srv.Events())
}

func TestEventsLost(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a", withEvents)
	a.acquire(t)
	e.awaitEvents(1)
	require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) { l.Spec.HolderIdentity = ptr("pod-c") }))
	a.clk.Step(a.events.waitArmed(t))
	a.lost.wait(t)
	evs := e.awaitEvents(2)
	assert.Equal(t, "Warning LeaseLost: pod-a lost the lease (conflict, now held by pod-c)", eventLines(evs)[1])
	require.NoError(t, a.Release(e.ctx()))
	assert.Len(t, e.srv.Events(), 2, "a Release after a loss posts nothing")
}

func TestEventsDeadlineLost(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a", withEvents)
	a.acquire(t)
	e.awaitEvents(1)
	a.clk.Step(15 * time.Second)
	assert.False(t, a.CheckAlive())
	evs := e.awaitEvents(2)
	assert.Equal(t, "Warning LeaseLost: pod-a lost the lease (deadline)", eventLines(evs)[1])
}

func TestEventsHandoff(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a", withEvents)
	a.acquire(t)
	require.NoError(t, lease.RequestHandoff(e.ctx(), e.srv.Config(), "", "job", "pod-b"))
	a.clk.Step(a.events.waitArmed(t))
	a.lost.wait(t)
	evs := e.awaitEvents(2)
	assert.Equal(t, []string{
		"Normal LeaderElection: pod-a became leader",
		"Normal LeaderElection: pod-a handed the lease to pod-b",
	}, eventLines(evs))
	require.NoError(t, a.Release(e.ctx()))
	assert.Len(t, e.srv.Events(), 2)
}

// TestEventsForbidden: without RBAC for events, the lease works as
// without events, and the refusal is logged once at Warn.
func TestEventsForbidden(t *testing.T) {
	e := newEnv(t)
	e.srv.AddUser("lease-only", "*")
	logs := &logRecords{}
	cfg := e.srv.Config()
	cfg.BearerToken = "lease-only"
	a := e.newLease("pod-a", withEvents, func(s *lease.Settings) { s.Config, s.Logger = cfg, slog.New(logs) })
	a.acquire(t)
	logs.wait(t, "posting an event failed")
	a.renewOnce(t)
	assert.True(t, a.CheckAlive())
	require.NoError(t, a.Release(e.ctx()))
	logs.wait(t, "posting an event failed")
	assert.Empty(t, e.srv.Events())
	assert.Equal(t, 1, logs.count(slog.LevelWarn, `grant "create" on "events"`), "logged once: %q", logs.recs)
	assert.Equal(t, 1, logs.count(slog.LevelDebug, "posting an event failed"))
	forbidden := 0
	for _, r := range e.srv.Requests() {
		if r.Resource == "events" {
			assert.Equal(t, http.StatusForbidden, r.Code)
			forbidden++
		}
	}
	assert.Equal(t, 2, forbidden, "a refusal is not retried")

	// Granted, the same user's events are accepted.
	require.NoError(t, e.srv.GrantEvents("lease-only", "create"))
	a.acquire(t)
	assert.Equal(t, []string{"Normal LeaderElection: pod-a became leader"}, eventLines(e.awaitEvents(1)))
}

// TestEventsRetry: a 500 is retried (after 250 ms, then 500 ms, real
// time: the lease's fake clock is never stepped).
func TestEventsRetry(t *testing.T) {
	e := newEnv(t)
	e.srv.InjectFault(leasetest.Fault{Resource: "events", Status: http.StatusInternalServerError, Times: 2})
	a := e.newLease("pod-a", withEvents)
	a.acquire(t)
	evs := e.awaitEvents(1)
	assert.Equal(t, "pod-a became leader", evs[0].Message)
	assert.Equal(t, epoch, evs[0].FirstTimestamp.UTC(), "stamped when it happened, not when sent")
	assert.True(t, a.CheckAlive())
}

// TestEventsRetriesBounded: an event that keeps failing is given up after
// three attempts.
func TestEventsRetriesBounded(t *testing.T) {
	e := newEnv(t)
	e.srv.InjectFault(leasetest.Fault{Resource: "events", Status: http.StatusServiceUnavailable, Times: -1})
	a := e.newLease("pod-a", withEvents)
	a.acquire(t)
	a.events.wait(t, "event failed")
	n := 0
	for _, r := range e.srv.Requests() {
		if r.Resource == "events" {
			n++
		}
	}
	assert.Equal(t, 3, n)
	assert.True(t, a.CheckAlive())
	require.NoError(t, a.Release(e.ctx()))
	a.events.wait(t, "event failed") // its event too, before the test ends
}

// TestEventsNeverBlock: while the event POSTs are held by the server,
// Acquire and Release go on; the queue keeps 32 events and drops (and
// logs) the rest.
func TestEventsNeverBlock(t *testing.T) {
	e := newEnv(t)
	gate := make(chan struct{})
	e.srv.InjectFault(leasetest.Fault{Resource: "events", Gate: gate})
	logs := &logRecords{}
	a := e.newLease("pod-a", withEvents, func(s *lease.Settings) { s.Logger = slog.New(logs) })
	a.acquire(t)
	require.NoError(t, e.srv.AwaitReceived(e.ctx(), 3), "get, create, and the first event held")
	const cycles = 20
	for range cycles {
		require.NoError(t, a.Release(e.ctx()))
		a.acquire(t)
	}
	require.NoError(t, a.Release(e.ctx()))
	close(gate)
	a.events.wait(t, "events idle")
	evs := e.srv.Events()
	require.Len(t, evs, 1+32, "the one held, and a full queue")
	assert.Equal(t, 1, logs.count(slog.LevelWarn, "events dropped"))
	assert.Equal(t, "pod-a became leader", evs[0].Message)
	assert.Equal(t, "pod-a stopped leading", evs[1].Message)
}

func TestEventSourceValidation(t *testing.T) {
	base := lease.Settings{Name: "job", Owner: "pod-a", Config: &lease.Config{Host: "http://127.0.0.1:1"}}
	for _, tc := range []struct {
		src, want string
	}{
		{"my operator", `EventSource "my operator" is not a qualified name`},
		{"-op", `EventSource "-op" is not a qualified name`},
		{strings.Repeat("a", 129), "EventSource is 129 bytes long, above 128"},
	} {
		s := base
		s.EventSource = tc.src
		err := s.Validate()
		require.ErrorIs(t, err, lease.ErrInvalidSettings)
		assert.Contains(t, err.Error(), tc.want)
		assert.NotContains(t, err.Error(), "\n")
	}
	for _, ok := range []string{"", "my-operator", "example.com/my-operator", "kube-controller-manager"} {
		s := base
		s.EventSource = ok
		assert.NoError(t, s.Validate(), ok)
	}
}

// Example_events turns on Kubernetes Events: the lease posts them about
// its Lease, as client-go's leader election does, for kubectl describe
// lease and kubectl get events to show.
func Example_events() {
	srv := leasetest.NewServer()
	defer srv.Close()
	l, err := lease.NewKubernetesLease(lease.Settings{
		Name: "job", Owner: "pod-a", Config: srv.Config(),
		EventSource: "my-operator", // off when empty
	})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ok, err := l.Acquire(ctx); !ok || err != nil {
		panic(fmt.Sprint(ok, err))
	}
	if err := l.Release(ctx); err != nil {
		panic(err)
	}
	events, err := srv.AwaitEvents(ctx, 2) // they are posted asynchronously
	if err != nil {
		panic(err)
	}
	for _, ev := range events {
		fmt.Println(ev.Type, ev.Reason, ev.InvolvedObject.Kind+"/"+ev.InvolvedObject.Name, ev.Message)
	}
	// Output:
	// Normal LeaderElection Lease/job pod-a became leader
	// Normal LeaderElection Lease/job pod-a stopped leading
}
