package lease_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A lease that may renew less than a second after its previous renewal
// warns, once, when it contends for a Lease that a foreign writer
// (client-go's LeaderElector) wrote: client-go would not see its renewals.
// It contends as usual all the same. With renewals a second or more apart,
// and for records kubelease wrote, it does not warn.
func TestMixedFleetWarning(t *testing.T) {
	held := func(e *env) { e.putRecord("cg-1", epoch, 4, 2) } // client-go's: no nonce
	released := func(e *env) { e.putRecord("", epoch, 1, 2) } // client-go's ReleaseOnCancel
	staleToken := func(e *env) {                              // client-go took over from kubelease
		e.putRecord("cg-1", epoch, 4, 4)
		require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) {
			l.Annotations = map[string]string{lease.NonceAnnotation: "n0nce", lease.TokenAnnotation: "17/3"}
		}))
	}
	kubeleaseHeld := func(e *env) { // another kubelease holder, token of its own tenure
		e.putRecord("kl-other", epoch, 2, 3)
		require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) {
			l.Annotations = map[string]string{lease.NonceAnnotation: "n0nce", lease.TokenAnnotation: "17/3"}
		}))
	}
	handedOff := func(e *env) { // kubelease's vacating write of a planned handoff
		e.putRecord("", epoch, 1, 3)
		require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) {
			l.Annotations = map[string]string{lease.PreferredHolderAnnotation: "kl-target"}
		}))
	}
	fast := func(s *lease.Settings) { s.TTL = 2 * time.Second }                                             // RenewalInterval 667 ms
	cut := func(s *lease.Settings) { s.TTL = 2 * time.Second; s.RenewalInterval = 1200 * time.Millisecond } // waits cut to 0.76 s
	slow := func(s *lease.Settings) { s.TTL = 4 * time.Second }                                             // 1.2 s apart at least
	edge := func(s *lease.Settings) {
		s.TTL = 15 * time.Second
		s.RenewalInterval = lease.MinMixedFleetRenewalInterval
	}

	for _, tc := range []struct {
		name     string
		record   func(*env)
		settings func(*lease.Settings)
		warned   bool
		acquired bool
	}{
		{"client-go holder, TTL 2s", held, fast, true, false},
		{"client-go holder, RenewalInterval cut below 1s", held, cut, true, false},
		{"client-go release, TTL 2s", released, fast, true, true},
		{"client-go over a kubelease token, TTL 2s", staleToken, fast, true, false},
		{"client-go holder, TTL 4s", held, slow, false, false},
		{"client-go holder, MinMixedFleetRenewalInterval", held, edge, false, false},
		{"client-go release, TTL 4s", released, slow, false, true},
		{"kubelease holder, TTL 2s", kubeleaseHeld, fast, false, false},
		{"kubelease handoff to another, TTL 2s", handedOff, fast, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.record(e)
			var logs syncBuffer
			c := e.newLease("kl-1", tc.settings, func(s *lease.Settings) {
				s.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			})
			ok, err := c.Acquire(e.ctx())
			_, _ = c.Acquire(e.ctx()) // a second look warns no more
			warnings := strings.Count(logs.String(), "not kubelease (client-go?)")
			if tc.warned {
				assert.Equal(t, 1, warnings, "warned once: %s", logs.String())
				assert.Contains(t, logs.String(), "default/job")
				assert.Contains(t, logs.String(), "RenewalInterval to at least 1.112s and TTL to at least 2.2s")
			} else {
				assert.Zero(t, warnings, logs.String())
			}
			require.NoError(t, err)
			assert.Equal(t, tc.acquired, ok)
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the lease's goroutines to log to.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
