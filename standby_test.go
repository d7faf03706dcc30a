package lease_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A standby under RunSingleton keeps one watch open while the holder renews
// many times, and makes no other request: no polling at the defaults.
func TestStandbyCostsOneWatch(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	b := e.newLease("pod-b")
	started := make(chan lease.Token, 1)
	holders := make(chan string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- lease.RunSingleton(ctx, b, func(ctx context.Context) error { <-ctx.Done(); return nil },
			lease.SingletonOptions{Clock: b.clk, OnStarted: func(tok lease.Token) { started <- tok },
				OnNewHolder: func(h string) { holders <- h }})
	}()
	assert.Equal(t, "pod-a", recv(t, holders, "first holder seen"))
	require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))
	before := e.srv.Counts()
	for range 12 { // a minute of renewals by the holder
		a.renewOnce(t)
	}
	after := e.srv.Counts()
	assert.Equal(t, before["get"], after["get"], "standby GETs during a minute of renewals")
	assert.Equal(t, before["watch"], after["watch"], "standby watch requests during a minute of renewals")
	assert.Equal(t, before["update"]+12, after["update"], "the holder's renewals")

	// A release wakes the standby through its open watch.
	require.NoError(t, a.Release(e.ctx()))
	recv(t, started, "standby takes over after the release")
	assert.Equal(t, "", recv(t, holders, "the release is seen"), "no holder after the release")
	assert.Equal(t, "pod-b", recv(t, holders, "ourselves"), "OnNewHolder reports the standby itself once it holds")
	cancel()
	assert.ErrorIs(t, recv(t, done, "RunSingleton"), context.Canceled)
}

// Without watch permission a standby polls every RenewalInterval (one GET
// each), logged once, never a busy loop.
func TestStandbyPollsWhenWatchRefused(t *testing.T) {
	e := newEnv(t)
	e.srv.AddUser("no-watch", "get", "create", "update", "delete")
	a := e.newLease("pod-a")
	a.acquire(t)
	logs := &logCounter{}
	b := e.newLease("pod-b", func(s *lease.Settings) {
		cfg := *s.Config
		cfg.BearerToken = "no-watch"
		s.Config = &cfg
		s.Logger = logs.logger()
	})
	ok, err := b.Acquire(e.ctx())
	require.NoError(t, err)
	require.False(t, ok)
	gets := e.srv.Count("get")
	done := make(chan error, 1)
	go func() { done <- b.Wait(context.Background()) }()
	// The refused watch makes Wait return after RenewalInterval: poll.
	assert.NoError(t, stepUntil(t, b.clk, time.Second, done))
	assert.Equal(t, gets, e.srv.Count("get"), "Wait itself reads nothing")
	for range 1 { // a second poll; more would outlive a's record, on b's clock
		ok, err := b.Acquire(e.ctx())
		require.NoError(t, err)
		require.False(t, ok)
		go func() { done <- b.Wait(context.Background()) }()
		assert.NoError(t, stepUntil(t, b.clk, time.Second, done))
	}
	assert.Equal(t, 1, logs.count("refused to watch"), "the refusal is logged once")
}

// Holder reports who holds the Lease without writing it: from one GET
// when no watch is open, and this instance's token while it holds.
func TestHolderView(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	b := e.newLease("pod-b")
	h, err := b.Holder(e.ctx())
	require.NoError(t, err)
	assert.Equal(t, lease.HolderInfo{}, h, "no Lease yet")
	assert.Equal(t, 0, e.srv.Count("create")+e.srv.Count("update"), "Holder never writes")

	tok := a.acquire(t)
	h, err = b.Holder(e.ctx())
	require.NoError(t, err)
	assert.True(t, h.Exists)
	assert.Equal(t, "pod-a", h.Holder)
	assert.Equal(t, 15*time.Second, h.Duration)
	assert.Equal(t, epoch, h.RenewTime)
	assert.False(t, h.Ours)
	// Rule (a): seen unchanged for its 15 s, from b's read (the fast path
	// would say 16 s: renewTime + 15 s + 1 s skew).
	assert.Equal(t, 15*time.Second, h.ExpiresIn)

	mine, err := a.Holder(e.ctx())
	require.NoError(t, err)
	assert.True(t, mine.Ours)
	assert.Equal(t, tok, mine.Token)
	assert.Equal(t, time.Duration(0), mine.ExpiresIn, "ours: may be taken now by us")
	assert.Equal(t, 1, e.srv.Count("create"), "only a's acquire wrote")
}

// logCounter counts log records by message substring.
type logCounter struct {
	mu   sync.Mutex // guards msgs
	msgs []string
}

func (c *logCounter) logger() *slog.Logger {
	return slog.New(logCounterHandler{c})
}

func (c *logCounter) count(sub string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.msgs {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

type logCounterHandler struct{ c *logCounter }

func (h logCounterHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h logCounterHandler) Handle(_ context.Context, r slog.Record) error {
	h.c.mu.Lock()
	h.c.msgs = append(h.c.msgs, r.Message)
	h.c.mu.Unlock()
	return nil
}
func (h logCounterHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h logCounterHandler) WithGroup(string) slog.Handler      { return h }
