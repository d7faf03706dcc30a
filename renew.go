package lease

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// The renewal schedule. Times are on the lease's clock; R is the time left
// before the deadline of the last successful write (stamp + TTL − margin,
// by the smaller of what the monotonic and the wall clock say).
//
//   - Between renewals the holder waits RenewalInterval ± renewJitter
//     (uniform, so the mean is RenewalInterval: 12 PUTs a minute at TTL
//     15 s), cut so that a full attempt, attemptTimeout = min(10 s,
//     RenewalInterval), fits before the deadline.
//   - Each attempt's timeout is min(attemptTimeout, max(R/2,
//     minAttemptTimeout), R): long while there is time (a renewal on time,
//     R ≈ 9.7 s at TTL 15 s, waits up to 4.85 s for a slow server's
//     answer), shorter as the deadline nears so that an attempt lost in a
//     blackhole leaves room for the next one, and never past the deadline.
//   - After a failed attempt (number n, from 0) the holder waits a draw
//     from [d/2, d], d = min(retryInitial·2ⁿ, retryMaxWait,
//     RenewalInterval): 100–200 ms, then up to 400 ms, 800 ms, 1 s, 1 s...
//     A longer Retry-After is honoured. Whichever it is, a wait is cut to
//     end lastAttempt before the deadline, so that one last attempt still
//     fits; a wait that starts within lastAttempt of the deadline is not
//     cut, and sleep ends it at the deadline.
//   - An attempt that timed out on the library's own transport closes the
//     connection it went out on, so the retry dials afresh rather than
//     queueing behind a dead HTTP/2 connection (see request).
//
// Hence the lease is kept through any outage that ends 1.5 s or more before
// the deadline — connections refused or reset, error answers, a blackhole
// that delivers the held bytes when it ends (the attempt in flight is
// answered then) or one that drops them (the attempt in flight, started
// with R ≥ 1.5 s, times out with R ≥ 0.5 s) — provided that, once
// reachable, the server answers a renewal within lastAttempt (250 ms) on a
// fresh connection, sends no Retry-After longer than retryMaxWait, and the
// transport is the library's own (with Config.HTTPClient, dropping the
// connection is up to the caller's transport). After a refusal, a reset or
// an error answer, an attempt starts within retryMaxWait of the server
// answering again: for an outage that ends 1.5 s before the deadline, with
// 500 ms or more left. TestRenewalRidesOutOutages shows it at every phase
// of the renewal cycle.
//
// None of this stretches a deadline: each attempt takes a stamp of its own
// when its body is built, and only its own success moves the deadline, to
// that stamp + TTL − margin.
const (
	renewJitter       = 0.1                    // ± fraction of RenewalInterval
	retryInitial      = 200 * time.Millisecond // d of the first retry wait
	retryMaxWait      = time.Second            // cap on d once failures start
	minAttemptTimeout = time.Second            // floor of R/2 for an attempt's timeout
	lastAttempt       = 250 * time.Millisecond // left for the last attempt
)

// jitterSeam, when set (tests only), replaces math/rand/v2 as the source of
// the schedule's randomness, so that a test can seed it.
var jitterSeam struct {
	sync.Mutex                // guards f
	f          func() float64 // nil: rand.Float64
}

// randFloat returns a pseudo-random number in [0, 1) for the schedule's
// jitter.
func randFloat() float64 {
	jitterSeam.Lock()
	defer jitterSeam.Unlock()
	if jitterSeam.f != nil {
		return jitterSeam.f()
	}
	return rand.Float64()
}

// renewLoop renews tenure t every RenewalInterval ± 10 % until the tenure
// ends or ctx is cancelled by Release.
func (l *KubernetesLease) renewLoop(ctx context.Context, t *tenure) {
	defer close(t.done)
	defer l.arm(time.Time{})
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
		wait := renewWait(l.s.RenewalInterval, randFloat())
		// Leave room for one full attempt before the deadline, however
		// close RenewalInterval is to TTL.
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

// renewWait is the wait between renewals for jitter u in [0, 1): uniform
// in interval ± renewJitter, so its mean is interval.
func renewWait(interval time.Duration, u float64) time.Duration {
	return interval + time.Duration((2*u-1)*renewJitter*float64(interval))
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
	l.arm(l.clock.Now().Add(d))
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
	failures, rereads := 0, 0
	for {
		st := l.now()
		l.mu.Lock()
		if !l.aliveLocked() {
			l.mu.Unlock()
			return false
		}
		body := t.obj.DeepCopy()
		l.stampRenew(body, st)
		body.Annotations[TokenAnnotation] = t.token.String()
		if body.Annotations[PreferredHolderAnnotation] == l.s.Owner {
			delete(body.Annotations, PreferredHolderAnnotation) // a handoff to us: done
		}
		timeout := l.attemptTimeoutAt(l.remaining(t.start))
		l.mu.Unlock()

		l.emit("renew-attempt " + timeout.String())
		res, err := l.request(ctx, http.MethodPut, body, timeout)
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
			l.noteHandoffLocked(t, res.obj)
			l.s.Observer.Renewed(l.now().mono.Sub(st.mono), l.remaining(st))
			l.emit("renewed")
			return true
		}
		if apierrors.IsConflict(err) || isLeaseNotFound(err) {
			switch outcome, gerr := l.reread(ctx, t); outcome {
			case rereadEnded:
				return false
			case rereadStillOurs:
				rereads++
				if rereads == 1 {
					continue // the fresh copy is ours: PUT again at once
				}
			default:
				err = gerr
			}
		}
		if !l.pauseAfterFailure(ctx, t, failures, err) {
			return false
		}
		failures++
	}
}

// rereadOutcome is what a re-read after a 409 or 404 on renewal decided.
type rereadOutcome int

const (
	// rereadFailed: the read failed (its error says why); nothing decided.
	rereadFailed rereadOutcome = iota
	// rereadStillOurs: the record still names this instance; the cached
	// object was refreshed from it, so a PUT may be sent again at once.
	rereadStillOurs
	// rereadEnded: the tenure is over (lost, released or past its deadline).
	rereadEnded
)

// reread handles a 409 or 404 on renewal by reading the Lease: a record
// that is gone or re-created ends the tenure with LostDeleted (which wins
// over a holder change), one that names another holder or instance with
// LostConflict, and one that is still ours refreshes the cached object.
func (l *KubernetesLease) reread(ctx context.Context, t *tenure) (rereadOutcome, error) {
	l.mu.Lock()
	timeout := l.attemptTimeoutAt(l.remaining(t.start))
	uid := t.obj.UID
	l.mu.Unlock()
	cur, err := l.read(ctx, timeout)
	if ctx.Err() != nil {
		return rereadEnded, nil
	}
	if err != nil {
		return rereadFailed, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.aliveLocked() {
		return rereadEnded, nil
	}
	switch {
	case cur == nil:
		l.endLocked(t, LostDeleted, "", nil)
		return rereadEnded, nil
	case cur.UID != uid:
		l.endLocked(t, LostDeleted, cur.Spec.Holder(), nil)
		return rereadEnded, nil
	case !l.isOurs(cur):
		l.endLocked(t, LostConflict, cur.Spec.Holder(), nil)
		return rereadEnded, nil
	}
	t.obj = cur
	l.noteHandoffLocked(t, cur)
	return rereadStillOurs, nil
}

// pauseAfterFailure records err, the error of failed attempt number
// failures+1, and waits before the next attempt: see the schedule above. At the deadline
// the tenure is lost, wrapping err. It reports whether the tenure is still
// alive.
func (l *KubernetesLease) pauseAfterFailure(ctx context.Context, t *tenure, failures int, err error) bool {
	var retryAfter time.Duration
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		retryAfter = apiErr.RetryAfter
	}
	l.mu.Lock()
	t.lastErr = err
	left := l.remaining(t.start)
	l.mu.Unlock()
	wait := retryWait(failures, l.s.RenewalInterval, retryAfter, left, randFloat())
	l.s.Observer.RenewFailed(err)
	l.log.Debug("kubelease: renewal attempt failed", "err", err, "retryIn", wait)
	return l.sleep(ctx, t, wait, "renew-retry-wait "+wait.String())
}

// retryWait is the wait after failed attempt number failures+1, for the
// renewal interval, the server's Retry-After (0: none), the time left
// before the deadline and jitter u in [0, 1): drawn from [d/2, d] with
// d = min(retryInitial·2^failures, retryMaxWait, interval), or retryAfter
// when longer, then cut to end lastAttempt before the deadline when more
// than that is left. sleep cuts any wait at the deadline.
func retryWait(failures int, interval, retryAfter, left time.Duration, u float64) time.Duration {
	d := min(retryInitial<<min(failures, 16), retryMaxWait, interval)
	wait := max(d/2+time.Duration(u*float64(d/2)), retryAfter)
	if left > lastAttempt {
		wait = min(wait, left-lastAttempt)
	}
	return wait
}

// attemptTimeout caps one renewal request: min(10 s, RenewalInterval).
func (l *KubernetesLease) attemptTimeout() time.Duration {
	return min(MaxRenewAttemptTimeout, l.s.RenewalInterval)
}

// attemptTimeoutAt is the timeout of an attempt made with left before the
// deadline: half of it, but at least minAttemptTimeout, capped by
// attemptTimeout and by the deadline. An attempt started with 1.5 s or more
// left therefore times out with 0.5 s or more left, room for the last one.
func (l *KubernetesLease) attemptTimeoutAt(left time.Duration) time.Duration {
	return min(l.attemptTimeout(), max(left/2, minAttemptTimeout), left)
}

// passiveClock adapts the lease's clock to backoff.Clock.
type passiveClock struct{ l *KubernetesLease }

func (c passiveClock) Now() time.Time { return c.l.clock.Now() }
