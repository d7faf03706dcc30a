package lease

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"
	"k8s.io/utils/clock"
)

// Defaults of SingletonOptions.
const (
	// DefaultRetryInterval is how long RunSingleton waits between Acquire
	// attempts while another process holds the lease, for leases that are
	// not a Waker.
	DefaultRetryInterval = time.Second
	// DefaultResyncInterval is how long RunSingleton waits, at most, between
	// Acquire attempts while another process holds a Waker lease: a safety
	// net, since the Waker wakes it when the lease may be free.
	DefaultResyncInterval = time.Minute
	// DefaultGracePeriod bounds how long RunSingleton waits for work to
	// return after cancelling its context.
	DefaultGracePeriod = 10 * time.Second
	// DefaultMaxBackoff caps the backoff between attempts after errors and
	// losses.
	DefaultMaxBackoff = 30 * time.Second
)

// ReleaseHooker is implemented by leases whose Release first stops what
// runs under the tenure. RunSingleton registers a hook while its work runs,
// so that a Release made elsewhere (a shutdown hook, say) cancels work and
// waits for it to return before the tenure ends and the Lease is deleted.
// KubernetesLease and leasetest.MemoryLease implement it.
type ReleaseHooker interface {
	// BeforeRelease registers hook. Every later Release calls each
	// registered hook with its own ctx, one after the other on the caller's
	// goroutine, while the tenure is still held (renewals go on), before
	// anything else. If a hook returns an error, Release returns it and does
	// not release. The returned function unregisters hook and may be called
	// more than once.
	BeforeRelease(hook func(ctx context.Context) error) (unregister func())
}

// Waker is implemented by leases that can wake a waiting contender as soon
// as the lease may be free (a release, a deletion, an expiry they computed),
// so that RunSingleton need not poll. Wait returns when the caller should try
// to Acquire again, or when ctx ends; it may return early.
type Waker interface {
	Wait(ctx context.Context) error
}

// HolderWatcher is implemented by leases that report every change of holder
// they see (reads, watch events, their own writes), so that RunSingleton
// can call OnNewHolder at once, also on the holder itself.
// KubernetesLease and leasetest.MemoryLease implement it.
type HolderWatcher interface {
	// OnHolderChange registers fn, called in order with each new holder
	// ("" when none); the returned function unregisters it.
	OnHolderChange(fn func(holder string)) (unregister func())
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
	// the lease, for leases that are not a Waker (0: DefaultRetryInterval).
	RetryInterval time.Duration
	// ResyncInterval is the longest wait between attempts while another
	// process holds a Waker lease (0: DefaultResyncInterval). The lease
	// wakes RunSingleton when it may be free (KubernetesLease: a watch
	// shows it released or deleted, or its computed expiry passes), so
	// this is only a safety net: a standby makes no other request.
	ResyncInterval time.Duration
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
	// OnNewHolder is called with each new holder the lease sees ("" when
	// none), ourselves included, while RunSingleton runs: for a
	// HolderWatcher (KubernetesLease, MemoryLease) on the lease's own
	// goroutine, in order, as it sees the change; for other leases that
	// are a HolderReporter, on RunSingleton's goroutine after a failed
	// attempt finds another holder than before. It must not block.
	OnNewHolder func(holder string)

	// Clock drives the waits (nil: the real clock).
	Clock clock.WithTicker
	// Logger receives events (nil: discard).
	Logger *slog.Logger
}

// RunSingleton runs work while, and only while, l is held.
//
// It contends until Acquire succeeds (while another process holds the
// lease: until a Waker lease says it may be free, or ResyncInterval at
// most; for other leases every RetryInterval; and backing off after
// errors), then runs work with a context that is
// cancelled when the tenure ends, with why as its cause (context.Cause): the
// *LostError on a loss, an error matching ErrNotHeld when a Release made
// elsewhere ended it, ctx's cause when ctx ended. Then:
//
//   - work returns by itself: RunSingleton releases the lease, so a peer
//     takes over at once, and returns work's error;
//   - the lease is lost: RunSingleton waits for work to return, then
//     contends again after a backoff;
//   - ctx ends: RunSingleton cancels work, waits for it to return, releases
//     the lease and returns ctx's cause — also when ctx ends while an
//     Acquire is succeeding: it never returns holding a tenure it started;
//   - Release is called on l from elsewhere while work runs (l must be a
//     ReleaseHooker, as KubernetesLease and MemoryLease are): that Release
//     first cancels work and waits for it (up to GracePeriod), then releases;
//     RunSingleton returns an error matching ErrNotHeld. (A Release while
//     RunSingleton is contending, with no work running, ends nothing:
//     cancel ctx to stop RunSingleton.)
//
// Exclusivity: for one lease instance at most one work runs at a time. A
// RunSingleton on an instance whose work from another call still runs
// returns ErrBusy at once. Work's context is never live once its tenure has
// ended: it is cancelled before a Release ends the tenure, when OnLost
// reports a loss, and, because no monotonic timer fires during a system
// suspend or sees a forward wall-clock step, also by a check of CheckAlive
// every 250 ms of the runner's clock, so work is cancelled at most 250 ms
// (of awake time) after CheckAlive turned false. A loss can still let a
// peer start while work winds down: fence side effects with the token.
//
// Work's context is cancelled before the lease is released, and the lease is
// released only after work has returned: if work does not return within
// GracePeriod, RunSingleton returns ErrWorkDidNotStop and does not release
// (see ErrWorkDidNotStop for what happens then). work must be written to
// stop promptly when its context is cancelled, and should fence its side
// effects with the token (see Token) where a late write would hurt. To give
// the lease up, work returns; if it calls l.Release itself, it must pass its
// own context (or one derived from it): that Release cancels work's context
// and releases, and RunSingleton returns work's result as if work had
// returned by itself. A Release with another context waits for work to
// return and fails with ErrWorkDidNotStop after GracePeriod.
//
// A nil l or work is an error, not a panic.
func RunSingleton(ctx context.Context, l Lease, work func(ctx context.Context) error, opts SingletonOptions) error {
	switch {
	case l == nil:
		return errors.New("lease: RunSingleton: the lease is nil; pass a *KubernetesLease from NewKubernetesLease")
	case work == nil:
		return errors.New("lease: RunSingleton: work is nil; pass the function to run while the lease is held")
	}
	r := newRunner(l, work, opts)
	if !claim(l) {
		return ErrBusy
	}
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
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = DefaultResyncInterval
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

// run contends and holds until RunSingleton should return. The claim on
// r.l is dropped when it returns, unless a work was abandoned (hold then
// drops it when that work returns).
func (r *runner) run(ctx context.Context) (err error) {
	abandoned := false
	defer func() {
		if !abandoned {
			unclaim(r.l)
		}
	}()
	lastHolder := ""
	hw, watchesHolder := r.l.(HolderWatcher)
	if watchesHolder {
		defer hw.OnHolderChange(func(h string) {
			r.log.Info("kubelease: new holder observed", "holder", h)
			if r.o.OnNewHolder != nil {
				r.o.OnNewHolder(h)
			}
		})()
	}
	_, isWaker := r.l.(Waker)
	for {
		tok, ok, err := r.l.AcquireWithToken(ctx)
		if ctx.Err() != nil {
			if ok || err != nil {
				// The attempt may have taken the lease (or left a record
				// naming us) as ctx ended: never return holding it.
				return joinErrs(context.Cause(ctx), r.l.Release(context.WithoutCancel(ctx)))
			}
			return context.Cause(ctx)
		}
		if err != nil || !ok {
			if r.o.OnAttempt != nil {
				r.o.OnAttempt(err)
			}
			if hr, isHR := r.l.(HolderReporter); isHR && !watchesHolder && err == nil {
				if h := hr.LastSeenHolder(); h != lastHolder {
					lastHolder = h
					r.log.Info("kubelease: new holder observed", "holder", h)
					if r.o.OnNewHolder != nil {
						r.o.OnNewHolder(h)
					}
				}
			}
			wait := r.o.RetryInterval
			if isWaker {
				wait = r.o.ResyncInterval
			}
			if err != nil {
				wait = r.b.NextBackOff()
				r.log.Warn("kubelease: acquire failed", "err", err, "retryIn", wait)
			}
			if err := r.wait(ctx, wait, err == nil); err != nil {
				// A failed attempt may have left a record naming us
				// (an answer lost): Release cleans it up.
				return joinErrs(err, r.l.Release(context.WithoutCancel(ctx)))
			}
			continue
		}
		r.b.Reset()
		o := r.hold(ctx, tok)
		switch {
		case o.abandoned:
			abandoned = true
			return o.err
		case o.done:
			return o.err
		}
		// Lost: contend again after a backoff.
		if err := r.wait(ctx, r.b.NextBackOff(), false); err != nil {
			return joinErrs(err, r.l.Release(context.WithoutCancel(ctx)))
		}
	}
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
