package lease

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/kubelease/lease/internal/wire"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Acquire tries to take the lease; see Lease.Acquire and the package
// documentation for the rules.
func (l *KubernetesLease) Acquire(ctx context.Context) (bool, error) {
	_, ok, err := l.AcquireWithToken(ctx)
	return ok, err
}

// AcquireWithToken tries to take the lease and returns the fencing token
// of the tenure. When the lease is already held it returns at once, without
// I/O, with the current token.
//
// It reads the Lease; creates it when absent; takes it over when it names
// no holder, names our Owner, or has expired; and returns false, nil when it
// is held by someone else, when a planned handoff to another contender is
// pending (for HandoffWait; see RequestHandoff), or when AcquireRetries re-reads after 409
// conflicts are used up. Every request is bounded by TTL minus the
// deadline margin, and an acquiring write whose answer arrives after the
// deadline it would start does not start a tenure: the error then wraps
// context.DeadlineExceeded. A Release called meanwhile cancels it.
func (l *KubernetesLease) AcquireWithToken(ctx context.Context) (Token, bool, error) {
	if tok, ok := l.Token(); ok {
		return tok, true, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := l.lock(ctx); err != nil {
		return Token{}, false, err
	}
	defer l.unlock()
	l.mu.Lock()
	if l.aliveLocked() { // acquired by a concurrent call
		tok := l.ten.token
		l.mu.Unlock()
		return tok, true, nil
	}
	l.cancelAcquire = cancel
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.cancelAcquire = nil
		l.mu.Unlock()
	}()
	l.waitPrevious()
	for attempt := 0; ; attempt++ {
		tok, ok, err := l.tryAcquire(ctx, attempt == 0 && l.seenAbsent())
		if err == nil {
			return tok, ok, nil
		}
		if !isWriteConflict(err) {
			return Token{}, false, err
		}
		if attempt >= l.s.AcquireRetries {
			l.log.Debug("kubelease: acquire retries used up", "retries", attempt, "err", err)
			return Token{}, false, nil
		}
	}
}

// lock takes the operation lock, or gives up when ctx ends.
func (l *KubernetesLease) lock(ctx context.Context) error {
	select {
	case l.op <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("lease: waiting for another Acquire or Release on %s: %w", l.path, context.Cause(ctx))
	}
}

func (l *KubernetesLease) unlock() { <-l.op }

// isWriteConflict reports a lost compare-and-swap, an answer that means
// "someone wrote in between": a 409, or a 404 Status about the Lease on a
// PUT (deleted between our read and our write).
func isWriteConflict(err error) bool {
	var e *APIError
	if errors.As(err, &e) && e.Method == http.MethodPut && isLeaseNotFound(err) {
		return true
	}
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
}

// seenAbsent reports whether Acquire may create the Lease without reading
// it first: only for a lease made with createFirst (a ShardSet's shard),
// whose live standby last saw the Lease deleted. A create that finds it
// after all fails with a 409, and the next attempt reads.
func (l *KubernetesLease) seenAbsent() bool {
	if !l.createFirst {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sb != nil && l.sb.live && l.seenObj == nil && !l.seenAt.IsZero()
}

// tryAcquire is one read-decide-write round of Acquire; absent skips the
// read and creates the Lease.
func (l *KubernetesLease) tryAcquire(ctx context.Context, absent bool) (Token, bool, error) {
	var cur *wire.Lease
	if !absent {
		var err error
		if cur, err = l.get(ctx); err != nil {
			return Token{}, false, err
		}
	}
	var body *wire.Lease
	if cur == nil {
		body = &wire.Lease{}
		body.APIVersion, body.Kind = wire.APIVersion, wire.Kind
		body.Name, body.Namespace = l.s.Name, l.s.Namespace
	} else {
		l.warnMixedFleet(cur)
		if !l.mayAcquire(cur) {
			return Token{}, false, nil
		}
		body = cur.DeepCopy()
	}
	st := l.now()
	l.stampAcquire(body, st)
	rctx, cancel := withTimeout(ctx, l.clock, l.s.TTL-margin(l.s.TTL))
	defer cancel()
	method, path := http.MethodPut, l.path
	if cur == nil {
		method, path = http.MethodPost, wire.Path(l.s.Namespace, "")
	}
	res, err := l.rest.do(rctx, method, path, body)
	if err != nil {
		if mayBeApplied(err) {
			l.setUnsure()
		}
		return Token{}, false, err
	}
	if err := l.checkObject(res.obj); err != nil {
		l.setUnsure()
		return Token{}, false, err
	}
	if res.obj.ResourceVersion == body.ResourceVersion {
		return Token{}, false, fmt.Errorf("%w: PUT %s: answer kept resourceVersion %s: the write was not applied", ErrBadResponse, l.path, body.ResourceVersion)
	}
	l.mu.Lock()
	if !l.within(st) {
		l.unsure = true
		l.mu.Unlock()
		return Token{}, false, fmt.Errorf("lease: acquiring %s: the answer arrived after the deadline it would start: %w", l.path, errTimeout)
	}
	tok := l.startLocked(st, res.obj)
	l.mu.Unlock()
	l.log.Info("kubelease: acquired", "transitions", tok.Transitions, "resourceVersion", tok.ResourceVersion)
	return tok, true, nil
}

// mayBeApplied reports whether a write that failed with err may still have
// been applied by the server: anything but a definite refusal.
func mayBeApplied(err error) bool {
	var e *APIError
	if !errors.As(err, &e) {
		return true // no answer: a lost answer, a timeout, a reset
	}
	return e.StatusCode >= 500 // 500 and 504 may come after the write
}

func (l *KubernetesLease) setUnsure() {
	l.mu.Lock()
	l.unsure = true
	l.mu.Unlock()
}

// get reads the Lease fresh. It returns nil, nil when there is none, and
// records what it saw for expiry rule (a).
func (l *KubernetesLease) get(ctx context.Context) (*wire.Lease, error) {
	obj, err := l.read(ctx, l.s.TTL-margin(l.s.TTL))
	if obj != nil {
		l.observe(obj, l.now())
	}
	return obj, err
}

// startLocked begins a tenure from a successful acquiring write and returns
// its token.
func (l *KubernetesLease) startLocked(st stamp, obj *wire.Lease) Token {
	ctx, cancel := context.WithCancel(context.Background())
	t := &tenure{
		token:  Token{ResourceVersion: obj.ResourceVersion, Transitions: obj.Spec.Transitions()},
		start:  st,
		obj:    obj,
		cancel: cancel,

		specPreferred: specPreferredOf(obj),
		done:          make(chan struct{}),
	}
	l.ten = t
	l.unsure = false
	// What we wrote is the last record seen: LastSeenHolder reports
	// ourselves while we hold. A contender's standby watch is not needed
	// any more.
	l.observeLocked(obj, st)
	l.detachStandbyLocked()
	l.s.Observer.Acquired(t.token)
	go l.renewLoop(ctx, t)
	l.postEventLocked(obj, eventNormal, EventReasonLeaderElection, becameLeader(l.s.Owner))
	l.emit("acquired")
	return t.token
}

// waitPrevious waits for the renewal goroutine of an ended tenure to return.
func (l *KubernetesLease) waitPrevious() {
	l.mu.Lock()
	t := l.ten
	l.mu.Unlock()
	if t != nil {
		t.cancel()
		<-t.done
	}
}
