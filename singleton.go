package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"
	"k8s.io/utils/clock"
)

// Defaults of SingletonOptions.
const (
	// DefaultRetryInterval is how long RunSingleton waits between Acquire
	// attempts while another process holds the lease, unless the lease can
	// tell it sooner that the holder changed (see Waker).
	DefaultRetryInterval = time.Second
	// DefaultGracePeriod bounds how long RunSingleton waits for work to
	// return after cancelling its context.
	DefaultGracePeriod = 10 * time.Second
	// DefaultMaxBackoff caps the backoff between attempts after errors and
	// losses.
	DefaultMaxBackoff = 30 * time.Second
)

// ErrWorkDidNotStop is returned by RunSingleton when work did not return
// within the grace period after its context was cancelled. The lease is
// then NOT released (a peer would start while this work still runs); it is
// left to the caller, who usually exits the process and lets it expire.
var ErrWorkDidNotStop = errors.New("lease: work did not return within the grace period")

// Waker is implemented by leases that can wake a waiting contender as soon
// as the lease may be free (a release, a deletion, an expiry they computed),
// so that RunSingleton need not poll. Wait returns when the caller should try
// to Acquire again, or when ctx ends; it may return early.
type Waker interface {
	Wait(ctx context.Context) error
}

// HolderReporter is implemented by leases that can say who held the lease
// when they last looked.
type HolderReporter interface {
	// LastSeenHolder returns the holderIdentity of the last record seen,
	// "" when none.
	LastSeenHolder() string
}

// SingletonOptions configure RunSingleton. The zero value uses the defaults.
type SingletonOptions struct {
	// RetryInterval is the wait between attempts while another process holds
	// the lease (0: DefaultRetryInterval). A Waker lease may wake earlier.
	RetryInterval time.Duration
	// GracePeriod bounds the wait for work to return once its context is
	// cancelled (0: DefaultGracePeriod).
	GracePeriod time.Duration
	// MaxBackoff caps the jittered exponential backoff after Acquire errors
	// and after losses (0: DefaultMaxBackoff).
	MaxBackoff time.Duration

	// OnStarted is called, on RunSingleton's goroutine, just before work
	// starts, with the tenure's token.
	OnStarted func(token Token)
	// OnStopped is called after work has returned and before the lease is
	// released, with why work was stopped: nil when work returned by itself,
	// the *LostError when the lease was lost, ctx's cause when ctx ended.
	OnStopped func(token Token, reason error)
	// OnAttempt is called after each Acquire attempt that did not succeed,
	// with its error (nil: another process holds the lease).
	OnAttempt func(err error)
	// OnNewHolder is called when a failed attempt finds another holder
	// than the one seen before ("" when none was seen), for leases that
	// report it (HolderReporter; KubernetesLease does).
	OnNewHolder func(holder string)

	// Clock drives the waits (nil: the real clock).
	Clock clock.WithTicker
	// Logger receives events (nil: discard).
	Logger *slog.Logger
}

// RunSingleton runs work while, and only while, l is held.
//
// It contends until Acquire succeeds (waiting RetryInterval between
// attempts while another process holds the lease, or less when l is a Waker,
// and backing off after errors), then runs work with a context that is
// cancelled the moment the lease is lost, with the *LostError as its cause
// (context.Cause). Then:
//
//   - work returns by itself: RunSingleton releases the lease, so a peer
//     takes over at once, and returns work's error;
//   - the lease is lost: RunSingleton waits for work to return, then
//     contends again after a backoff;
//   - ctx ends: RunSingleton cancels work, waits for it to return, releases
//     the lease and returns ctx's error.
//
// Work's context is cancelled before the lease is released, and the lease is
// released only after work has returned: if work does not return within
// GracePeriod, RunSingleton returns ErrWorkDidNotStop and does not release.
// work must be written to stop promptly when its context is cancelled, and
// to fence its side effects with the token (see Token) where a late write
// would hurt.
func RunSingleton(ctx context.Context, l Lease, work func(ctx context.Context) error, opts SingletonOptions) error {
	r := newRunner(l, work, opts)
	return r.run(ctx)
}

// runner is one RunSingleton call.
type runner struct {
	l     Lease
	work  func(context.Context) error
	o     SingletonOptions
	clock clock.WithTicker
	log   *slog.Logger
	b     *backoff.ExponentialBackOff
}

func newRunner(l Lease, work func(context.Context) error, o SingletonOptions) *runner {
	if o.RetryInterval <= 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	if o.GracePeriod <= 0 {
		o.GracePeriod = DefaultGracePeriod
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	r := &runner{l: l, work: work, o: o, clock: o.Clock, log: o.Logger}
	if r.clock == nil {
		r.clock = clock.RealClock{}
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.b = backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(min(500*time.Millisecond, o.MaxBackoff)),
		backoff.WithMaxInterval(o.MaxBackoff),
		backoff.WithMaxElapsedTime(0),
		backoff.WithClockProvider(r.clock),
	)
	return r
}

func (r *runner) run(ctx context.Context) error {
	lastHolder := ""
	for {
		tok, ok, err := r.acquire(ctx)
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if err != nil || !ok {
			if r.o.OnAttempt != nil {
				r.o.OnAttempt(err)
			}
			if hr, isHR := r.l.(HolderReporter); isHR && err == nil {
				if h := hr.LastSeenHolder(); h != lastHolder {
					lastHolder = h
					r.log.Info("kubelease: new holder observed", "holder", h)
					if r.o.OnNewHolder != nil {
						r.o.OnNewHolder(h)
					}
				}
			}
			wait := r.o.RetryInterval
			if err != nil {
				wait = r.b.NextBackOff()
				r.log.Warn("kubelease: acquire failed", "err", err, "retryIn", wait)
			}
			if err := r.wait(ctx, wait, err == nil); err != nil {
				return err
			}
			continue
		}
		r.b.Reset()
		done, err := r.hold(ctx, tok)
		if done {
			return err
		}
		// Lost: contend again after a backoff.
		if err := r.wait(ctx, r.b.NextBackOff(), false); err != nil {
			return err
		}
	}
}

func (r *runner) acquire(ctx context.Context) (Token, bool, error) {
	return r.l.AcquireWithToken(ctx)
}

// hold runs work for the tenure tok. done is true when RunSingleton should
// return err; false after a loss.
func (r *runner) hold(ctx context.Context, tok Token) (done bool, err error) {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	unregister := r.l.OnLost(func(reason error) {
		var le *LostError
		if errors.As(reason, &le) && le.Token != tok {
			return // a late call for an earlier tenure
		}
		cancel(reason)
	})
	defer unregister()
	if !r.l.CheckAlive() {
		// Lost between Acquire and registering: the handler may not
		// have seen it.
		cancel(&LostError{Reason: LostDeadline, Token: tok})
	}

	if r.o.OnStarted != nil {
		r.o.OnStarted(tok)
	}
	r.log.Info("kubelease: work started", "token", tok.String())
	result := make(chan error, 1)
	go func() { result <- r.work(wctx) }()

	var workErr error
	returned := false
	select {
	case workErr = <-result:
		returned = true
	case <-wctx.Done():
	}
	reason := context.Cause(wctx)
	if returned {
		reason = nil
	}
	cancel(nil)
	if !returned {
		t := r.clock.NewTimer(r.o.GracePeriod)
		defer t.Stop()
		select {
		case workErr = <-result:
		case <-t.C():
			r.log.Error("kubelease: work did not stop within the grace period; not releasing", "grace", r.o.GracePeriod)
			return true, fmt.Errorf("%w (%v)", ErrWorkDidNotStop, r.o.GracePeriod)
		}
	}
	if r.o.OnStopped != nil {
		r.o.OnStopped(tok, reason)
	}
	r.log.Info("kubelease: work stopped", "token", tok.String(), "reason", reason)
	var lost *LostError
	if errors.As(reason, &lost) {
		_ = r.l.Release(context.WithoutCancel(ctx)) // no-op for a lost tenure but for a deadline loss: cleans up our record
		return false, nil
	}
	relErr := r.l.Release(context.WithoutCancel(ctx))
	if returned {
		return true, errors.Join(workErr, relErr)
	}
	return true, errors.Join(context.Cause(ctx), relErr)
}

// wait sleeps d on the clock, or less when the lease is a Waker and
// contended says the lease was held by another.
func (r *runner) wait(ctx context.Context, d time.Duration, contended bool) error {
	woke := make(chan struct{})
	if w, ok := r.l.(Waker); ok && contended {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if w.Wait(wctx) == nil {
				close(woke)
			}
		}()
		defer func() {
			cancel()
			<-done
		}()
	}
	t := r.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C():
	case <-woke:
	}
	return nil
}
