package lease

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// aliveCheckInterval is how often RunSingleton checks CheckAlive while work
// runs, on top of OnLost: it bounds how late work is cancelled after a
// suspend or a forward wall-clock step, which no monotonic timer sees.
const aliveCheckInterval = 250 * time.Millisecond

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
			cause := errReleased
			if le := handoffCause(rctx); le != nil {
				if le.Token != tok {
					return nil // a step-down of another tenure
				}
				// A planned handoff: stop work, then the tenure ends
				// as on a loss, and RunSingleton contends again.
				cause = le
			}
			if rctx.Value(workKey{}) == w {
				// Work releases itself: it cannot wait for itself, and
				// it ends as if it had returned by itself.
				w.self.Store(true)
				cancel(errReleased)
				return nil
			}
			cancel(cause)
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
	if returned && wctx.Err() != nil {
		// Work returned, but its tenure had ended (or ctx) by then too:
		// it returned because it was cancelled, not by itself.
		returned = false
	}
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
