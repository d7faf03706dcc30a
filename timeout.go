package lease

import (
	"context"
	"fmt"
	"time"

	"k8s.io/utils/clock"
)

// withTimeout returns a context that is cancelled after d on clk (so a fake
// clock drives it), with a cause wrapping context.DeadlineExceeded.
func withTimeout(parent context.Context, clk clock.Clock, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(context.WithValue(parent, deadlineKey{}, clk.Now().Add(d)))
	if d <= 0 {
		cancel(errTimeout)
		return ctx, func() {}
	}
	t := clk.NewTimer(d)
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-t.C():
			cancel(errTimeout)
		case <-ctx.Done():
			t.Stop()
		}
	}()
	return ctx, func() {
		cancel(context.Canceled)
		<-done
	}
}

// deadlineKey is the context key under which withTimeout records when, on
// the injected clock, the context will time out (for tests that drive a
// fake clock and need to know which timers are due).
type deadlineKey struct{}

// errTimeout is the cause of a request or operation that ran out of time.
var errTimeout = fmt.Errorf("lease: timed out: %w", context.DeadlineExceeded)

// sleepCtx waits d on clk; it reports false when ctx ends first.
func sleepCtx(ctx context.Context, clk clock.Clock, d time.Duration) bool {
	t := clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}
