package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
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

// ErrWorkDidNotStop is returned by RunSingleton (and by a Release that had
// to stop RunSingleton's work first) when work did not return within the
// grace period after its context was cancelled.
//
// When the tenure is still held (ctx ended, or a Release asked work to
// stop), it is NOT released while work may still run: a peer would start
// beside it. It is kept and renewed, and released as soon as work returns;
// until then the instance is busy (ErrBusy) and Release returns this error
// again. When the tenure was lost instead, a peer may already run: nothing
// this process does can stop that, and only fencing writes with the token
// (see Token) protects what work still writes. In both cases the usual
// answer is to exit the process.
var ErrWorkDidNotStop = errors.New("lease: work did not return within the grace period")

// ErrBusy is returned by RunSingleton, at once and without I/O, when a work
// started by another RunSingleton call on the same lease instance is still
// running (also one abandoned after ErrWorkDidNotStop): one instance never
// runs two works at a time. Give each RunSingleton its own instance, or wait
// for the first to return.
var ErrBusy = errors.New("lease: busy: another RunSingleton's work is running on this lease instance")

// errReleased is the cause of work's context, and what RunSingleton
// returns, when the tenure was ended by a Release that RunSingleton did not
// make (a shutdown hook, say).
var errReleased = fmt.Errorf("%w: the tenure was ended by a call to Release", ErrNotHeld)

// aliveCheckInterval is how often RunSingleton checks CheckAlive while work
// runs, on top of OnLost: it bounds how late work is cancelled after a
// suspend or a forward wall-clock step, which no monotonic timer sees.
const aliveCheckInterval = 250 * time.Millisecond

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

// busy is the set of lease instances on which a RunSingleton work may be
// running (ErrBusy), keyed by pointer. Leases that are not pointers are not
// tracked.
var busy = struct {
	mu sync.Mutex // guards m
	m  map[any]struct{}
}{m: map[any]struct{}{}}

func busyKey(l Lease) (any, bool) {
	v := reflect.ValueOf(l)
	if v.Kind() != reflect.Pointer {
		return nil, false
	}
	return v.Pointer(), true
}

// claim marks l busy; false when it already was.
func claim(l Lease) bool {
	k, ok := busyKey(l)
	if !ok {
		return true
	}
	busy.mu.Lock()
	defer busy.mu.Unlock()
	if _, taken := busy.m[k]; taken {
		return false
	}
	busy.m[k] = struct{}{}
	return true
}

// unclaim undoes claim.
func unclaim(l Lease) {
	if k, ok := busyKey(l); ok {
		busy.mu.Lock()
		delete(busy.m, k)
		busy.mu.Unlock()
	}
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

// holdOutcome is how a tenure's work ended for run: done says RunSingleton
// returns err; abandoned says work did not stop within the grace period
// and still runs; neither means the tenure was lost and run contends again.
type holdOutcome struct {
	done, abandoned bool
	err             error
}

// workKey marks work's context with its *workRun, so that a Release that
// work makes itself (with its context) is not made to wait for work.
type workKey struct{}

// workRun is one run of work; done is closed when it has returned, and err
// is then its result.
type workRun struct {
	done chan struct{}
	err  error
	self atomic.Bool // work called Release itself, with its context
}

// hold runs work for the tenure tok.
func (r *runner) hold(ctx context.Context, tok Token) holdOutcome {
	wctx, cancel := context.WithCancelCause(ctx)
	unregister := r.l.OnLost(func(reason error) {
		var le *LostError
		if errors.As(reason, &le) && le.Token != tok {
			return // a late call for an earlier tenure
		}
		cancel(reason)
	})
	w := &workRun{done: make(chan struct{})}
	unhook := func() {}
	if h, ok := r.l.(ReleaseHooker); ok {
		// A Release made elsewhere stops work before it ends the tenure.
		unhook = h.BeforeRelease(func(rctx context.Context) error {
			if rctx.Value(workKey{}) == w {
				// Work releases itself: it cannot wait for itself, and
				// it ends as if it had returned by itself.
				w.self.Store(true)
				cancel(errReleased)
				return nil
			}
			cancel(errReleased)
			return r.awaitWork(w)
		})
	}
	if !r.l.CheckAlive() {
		// Ended between Acquire and registering (a loss the handler may
		// not have seen, or a Release made elsewhere): do not start work
		// for a tenure that is over; contend again.
		unhook()
		unregister()
		cancel(nil)
		_ = r.l.Release(context.WithoutCancel(ctx))
		return holdOutcome{}
	}

	if r.o.OnStarted != nil {
		r.o.OnStarted(tok)
	}
	r.log.Info("kubelease: work started", "token", tok.String())
	go func() {
		defer close(w.done)
		w.err = r.work(context.WithValue(wctx, workKey{}, w))
	}()

	returned := r.watchTenure(wctx, cancel, tok, w)
	reason := context.Cause(wctx)
	if returned {
		reason = nil
	}
	cancel(nil)
	if !returned {
		if err := r.awaitWork(w); err != nil {
			r.log.Error("kubelease: work did not stop within the grace period; not releasing until it does", "grace", r.o.GracePeriod)
			go r.afterAbandoned(ctx, w, unhook, unregister)
			return holdOutcome{abandoned: true, err: err}
		}
		if w.self.Load() {
			returned, reason = true, nil
		}
	}
	unhook()
	unregister()
	if r.o.OnStopped != nil {
		r.o.OnStopped(tok, reason)
	}
	r.log.Info("kubelease: work stopped", "token", tok.String(), "reason", reason)
	// Release also after a loss: a no-op, but for a deadline loss it
	// deletes our record so that peers need not wait for it to expire.
	relErr := r.l.Release(context.WithoutCancel(ctx))
	var lost *LostError
	switch {
	case errors.As(reason, &lost):
		return holdOutcome{}
	case returned:
		return holdOutcome{done: true, err: joinErrs(w.err, relErr)}
	case errors.Is(reason, errReleased):
		return holdOutcome{done: true, err: joinErrs(reason, relErr)}
	}
	return holdOutcome{done: true, err: joinErrs(context.Cause(ctx), relErr)}
}

// watchTenure waits until work returns (true) or its context is cancelled
// (false), checking CheckAlive every aliveCheckInterval meanwhile: after a
// suspend or a forward wall-clock step the tenure is over although no
// monotonic timer has fired.
func (r *runner) watchTenure(wctx context.Context, cancel context.CancelCauseFunc, tok Token, w *workRun) bool {
	tick := r.clock.NewTicker(aliveCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-w.done:
			return true
		case <-wctx.Done():
			return false
		case <-tick.C():
			if !r.l.CheckAlive() {
				cancel(r.lostCause(tok))
			}
		}
	}
}

// lostCause is why tenure tok ended when CheckAlive says it has: the
// lease's own *LostError when it can tell, else a deadline loss.
func (r *runner) lostCause(tok Token) error {
	if lr, ok := r.l.(interface{ lostError(Token) *LostError }); ok {
		if le := lr.lostError(tok); le != nil {
			return le
		}
	}
	return &LostError{Reason: LostDeadline, Token: tok, Err: errors.New("lease: CheckAlive turned false")}
}

// awaitWork waits up to the grace period for w to return.
func (r *runner) awaitWork(w *workRun) error {
	select {
	case <-w.done:
		return nil
	default:
	}
	t := r.clock.NewTimer(r.o.GracePeriod)
	defer t.Stop()
	select {
	case <-w.done:
		return nil
	case <-t.C():
		return fmt.Errorf("%w (%v)", ErrWorkDidNotStop, r.o.GracePeriod)
	}
}

// afterAbandoned waits for a work that outlived its grace period, then
// releases the lease and frees the instance for another RunSingleton.
// Until then the release hook stays registered, so a Release elsewhere
// still refuses to end the tenure under the running work.
func (r *runner) afterAbandoned(ctx context.Context, w *workRun, unhook, unregister func()) {
	<-w.done
	unhook()
	unregister()
	if err := r.l.Release(context.WithoutCancel(ctx)); err != nil {
		r.log.Warn("kubelease: releasing after an abandoned work returned", "err", err)
	}
	r.log.Info("kubelease: abandoned work returned; lease released")
	unclaim(r.l)
}

// joinErrs joins the non-nil errors on one line ("a; b"), keeping them
// for errors.Is and errors.As.
func joinErrs(errs ...error) error {
	var nn []error
	for _, e := range errs {
		if e != nil {
			nn = append(nn, e)
		}
	}
	switch len(nn) {
	case 0:
		return nil
	case 1:
		return nn[0]
	}
	return lineErrors(nn)
}

// lineErrors is several errors printed on one line.
type lineErrors []error

func (e lineErrors) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (e lineErrors) Unwrap() []error { return e }

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
