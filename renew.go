package lease

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/kubelease/lease/internal/wire"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Renewal retry backoff: jittered exponential from retryInitial, each wait
// capped at the renewal interval (and never past the deadline).
const (
	retryInitial = 200 * time.Millisecond
	retryJitter  = 0.5
)

// renewLoop renews tenure t every RenewalInterval (minus up to 10 %
// jitter) until the tenure ends or ctx is cancelled by Release.
func (l *KubernetesLease) renewLoop(ctx context.Context, t *tenure) {
	defer close(t.done)
	if l.armed != nil {
		defer l.armed(time.Time{})
	}
	if l.s.WatchWhileHolding {
		wctx, cancel := context.WithCancel(ctx)
		watching := make(chan struct{})
		go func() {
			defer close(watching)
			l.holderWatch(wctx, t)
		}()
		defer func() {
			cancel()
			<-watching
		}()
	}
	for {
		wait := l.s.RenewalInterval - time.Duration(rand.Int64N(int64(l.s.RenewalInterval)/10+1))
		// Leave room for one attempt before the deadline, however close
		// RenewalInterval is to TTL.
		l.mu.Lock()
		wait = min(wait, l.remaining(t.start)-l.attemptTimeout())
		l.mu.Unlock()
		if !l.sleep(ctx, t, wait, "renew-wait "+wait.String()) {
			return
		}
		if !l.renew(ctx, t) {
			return
		}
	}
}

// sleep waits d on the injected clock, cut short by the tenure's deadline.
// It reports whether the tenure is still alive afterwards. event names the
// wait for tests, once its timer is set.
func (l *KubernetesLease) sleep(ctx context.Context, t *tenure, d time.Duration, event string) bool {
	l.mu.Lock()
	left := l.remaining(t.start)
	l.mu.Unlock()
	d = min(d, left)
	if d <= 0 {
		// No timer: a fake clock would not fire one of 0 until its next step.
		l.mu.Lock()
		defer l.mu.Unlock()
		return ctx.Err() == nil && l.aliveLocked()
	}
	timer := l.clock.NewTimer(d)
	defer timer.Stop()
	if l.armed != nil {
		l.armed(l.clock.Now().Add(d))
	}
	l.emit(event)
	select {
	case <-ctx.Done():
		return false
	case <-timer.C():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.aliveLocked()
}

// renew makes one renewal: PUTs from the cached object until one succeeds,
// the tenure is found lost, or its deadline passes. It reports whether the
// tenure is still alive.
func (l *KubernetesLease) renew(ctx context.Context, t *tenure) bool {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(retryInitial),
		backoff.WithRandomizationFactor(retryJitter),
		backoff.WithMaxInterval(l.s.RenewalInterval),
		backoff.WithMaxElapsedTime(0),
		backoff.WithClockProvider(passiveClock{l}),
	)
	rereads := 0
	for {
		st := l.now()
		l.mu.Lock()
		if !l.aliveLocked() {
			l.mu.Unlock()
			return false
		}
		body := t.obj.DeepCopy()
		l.stampRenew(body, st)
		timeout := min(l.attemptTimeout(), l.remaining(t.start))
		l.mu.Unlock()

		rctx, cancel := withTimeout(ctx, l.clock, timeout)
		res, err := l.rest.do(rctx, http.MethodPut, l.path, body)
		cancel()
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			err = l.checkObject(res.obj)
		}
		if err == nil && res.obj.ResourceVersion == body.ResourceVersion {
			err = fmt.Errorf("%w: PUT %s: answer kept resourceVersion %s: the renewal was not applied", ErrBadResponse, l.path, body.ResourceVersion)
		}
		if err == nil {
			l.mu.Lock()
			defer l.mu.Unlock()
			if !l.aliveLocked() {
				return false
			}
			t.start, t.obj, t.lastErr = st, res.obj, nil
			l.s.Observer.Renewed(l.now().mono.Sub(st.mono), l.remaining(st))
			l.emit("renewed")
			return true
		}
		if apierrors.IsConflict(err) || isLeaseNotFound(err) {
			done, alive, gerr := l.reread(ctx, t)
			if done {
				return alive
			}
			if gerr == nil {
				rereads++
				if rereads == 1 {
					continue // the fresh copy is ours: PUT again at once
				}
			} else {
				err = gerr
			}
		}
		if !l.backoff(ctx, t, b, err) {
			return false
		}
	}
}

// reread handles a 409 or 404 on renewal by reading the Lease. done is true
// when it decided the tenure's fate (alive tells which); otherwise, with a
// nil error, the cached object was refreshed from a copy that is still ours.
func (l *KubernetesLease) reread(ctx context.Context, t *tenure) (done, alive bool, err error) {
	l.mu.Lock()
	timeout := min(l.attemptTimeout(), l.remaining(t.start))
	uid := t.obj.UID
	l.mu.Unlock()
	rctx, cancel := withTimeout(ctx, l.clock, timeout)
	defer cancel()
	res, err := l.rest.do(rctx, http.MethodGet, l.path, nil)
	if ctx.Err() != nil {
		return true, false, nil
	}
	var cur *wire.Lease
	switch {
	case isLeaseNotFound(err):
	case err != nil:
		return false, false, err
	default:
		if err := l.checkObject(res.obj); err != nil {
			return false, false, err
		}
		cur = res.obj
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.aliveLocked() {
		return true, false, nil
	}
	switch {
	case cur == nil:
		l.endLocked(t, LostDeleted, "", nil)
		return true, false, nil
	case cur.UID != uid:
		l.endLocked(t, LostDeleted, cur.Spec.Holder(), nil)
		return true, false, nil
	case !l.isOurs(cur):
		l.endLocked(t, LostConflict, cur.Spec.Holder(), nil)
		return true, false, nil
	}
	t.obj = cur
	return false, true, nil
}

// backoff records err and waits before the next renewal attempt: the next
// jittered backoff, or longer when the server asked for it with
// Retry-After, but never past the deadline. At the deadline the tenure is
// lost, wrapping err. It reports whether the tenure is still alive.
func (l *KubernetesLease) backoff(ctx context.Context, t *tenure, b backoff.BackOff, err error) bool {
	wait := b.NextBackOff()
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.RetryAfter > wait {
		wait = apiErr.RetryAfter
	}
	l.mu.Lock()
	t.lastErr = err
	l.mu.Unlock()
	l.s.Observer.RenewFailed(err)
	l.log.Debug("kubelease: renewal attempt failed", "err", err, "retryIn", wait)
	return l.sleep(ctx, t, wait, "renew-retry-wait "+wait.String())
}

// attemptTimeout bounds one renewal request: min(10 s, RenewalInterval).
func (l *KubernetesLease) attemptTimeout() time.Duration {
	return min(MaxRenewAttemptTimeout, l.s.RenewalInterval)
}

// passiveClock adapts the lease's clock to backoff.Clock.
type passiveClock struct{ l *KubernetesLease }

func (c passiveClock) Now() time.Time { return c.l.clock.Now() }
