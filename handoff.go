package lease

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/kubelease/lease/internal/wire"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// PreferredHolderAnnotation names the contender the holder of a Lease is
// asked to hand it to (a planned handoff; see RequestHandoff). The holder
// steps down as on a Release, leaving the Lease without a holder and with
// this annotation; other contenders then defer to the named one for
// Settings.HandoffWait. The next acquiring write removes it.
const PreferredHolderAnnotation = "kubelease.io/preferred-holder"

// TokenAnnotation is where a holder publishes the fencing token of its
// tenure ("<resourceVersion>/<transitions>", see Token) at its first
// renewal, so that others (kubelease status) can show it: the token is the
// resourceVersion of the acquiring write, which the record itself no longer
// shows once renewed. An acquiring write removes it.
const TokenAnnotation = "kubelease.io/token"

// specPreferredHolder is spec.preferredHolder of coordination.k8s.io/v1,
// which a kube-apiserver keeps only with the CoordinatedLeaderElection
// feature gate on (off by default in 1.37): the annotation is what carries
// a handoff everywhere.
const specPreferredHolder = "preferredHolder"

// maxHolderLength bounds the names RequestHandoff accepts: a
// holderIdentity is a free string, but not an unbounded one.
const maxHolderLength = 1024

// preferredOf is the holder obj asks for, "" when none: the annotation, else
// spec.preferredHolder.
func preferredOf(obj *wire.Lease) string {
	if p := obj.Annotations[PreferredHolderAnnotation]; p != "" {
		return p
	}
	return specPreferredOf(obj)
}

// specPreferredOf is obj's spec.preferredHolder, "" when none.
func specPreferredOf(obj *wire.Lease) string {
	var p string
	if raw, ok := obj.Spec.Unknown[specPreferredHolder]; ok && json.Unmarshal(raw, &p) == nil {
		return p
	}
	return ""
}

// handoffAsked is the preferred holder a record of ours asks tenure t to
// step down for, "" when none: the annotation, else a spec.preferredHolder
// other than the one the record had when t acquired it (a value set before
// is someone else's business, and a renewal keeps it unchanged).
func handoffAsked(t *tenure, obj *wire.Lease) string {
	if p := obj.Annotations[PreferredHolderAnnotation]; p != "" {
		return p
	}
	if p := specPreferredOf(obj); p != t.specPreferred {
		return p
	}
	return ""
}

// handoffKey marks the context a step-down passes to the BeforeRelease
// hooks with the *LostError that will end the tenure.
type handoffKey struct{}

// HandoffTo reports whether ctx is that of a Release made because the
// holder steps down for a planned handoff (see RequestHandoff), and to
// whom. BeforeRelease hooks can use it to tell a handoff from a shutdown.
func HandoffTo(ctx context.Context) (to string, ok bool) {
	if le := handoffCause(ctx); le != nil {
		return le.Holder, true
	}
	return "", false
}

// handoffCause is the *LostError a step-down carries in ctx, nil when ctx
// is not a step-down's.
func handoffCause(ctx context.Context) *LostError {
	le, _ := ctx.Value(handoffKey{}).(*LostError)
	return le
}

// noteHandoffLocked starts a step-down of tenure t when obj, a record of
// ours, names another preferred holder. Called with l.mu held, from the
// holder's watch and from renewals.
func (l *KubernetesLease) noteHandoffLocked(t *tenure, obj *wire.Lease) {
	if l.s.DisableHandoff || t.ended || t.handoff != "" {
		return
	}
	to := handoffAsked(t, obj)
	if to == "" || to == l.s.Owner {
		return
	}
	t.handoff = to
	go l.stepDown(t, to)
}

// stepDown ends tenure t as a Release would — the BeforeRelease hooks
// first (RunSingleton cancels work, with the handoff's *LostError as
// cause, and waits for it), then the tenure — but leaves the Lease without
// a holder and with the preferred holder named, instead of deleting it, so
// that other contenders defer to it.
func (l *KubernetesLease) stepDown(t *tenure, to string) {
	l.log.Info("kubelease: stepping down for a planned handoff", "to", to)
	l.emit("handoff " + to)
	cause := &LostError{Reason: LostHandoff, Holder: to, Token: t.token}
	// The hooks get a context that ends: a hook that drains "until ctx
	// ends" (an http.Server's Shutdown, say) must not hold the lease for
	// good. RunSingleton's own hook waits GracePeriod whatever ctx says.
	ctx, cancel := withTimeout(context.WithValue(context.Background(), handoffKey{}, cause), l.clock, stepDownTimeout(l.s.TTL))
	defer cancel()
	if l.vacatesBeforeHooks() { // a planted bug (testhooks.go), never in production
		l.mu.Lock()
		obj := t.obj
		l.mu.Unlock()
		vctx, vcancel := withTimeout(ctx, l.clock, min(l.s.TTL, MaxRenewAttemptTimeout))
		_, _ = l.vacateOurs(vctx, obj, to)
		vcancel()
	}
	if err := l.release(ctx, t); err != nil {
		l.log.Warn("kubelease: stepping down for a planned handoff; the lease stays held until it is released", "to", to, "err", err)
	}
}

// stepDownTimeout bounds the context a step-down gives the BeforeRelease
// hooks: DefaultGracePeriod, or the TTL when longer.
func stepDownTimeout(ttl time.Duration) time.Duration {
	return max(ttl, DefaultGracePeriod)
}

// vacate is the write that ends a tenure handed off: the record without a
// holder (so that its target may take it at once), without our nonce and
// token, and naming the target in PreferredHolderAnnotation, so that others
// defer to it. The target is the one obj names now — a request made, or
// changed, after the step-down began wins — else fallback (a request made
// by spec.preferredHolder alone). It returns the body and its target.
func vacate(obj *wire.Lease, fallback string) (*wire.Lease, string) {
	body := obj.DeepCopy()
	body.Spec.HolderIdentity = nil
	delete(body.Annotations, NonceAnnotation)
	delete(body.Annotations, TokenAnnotation)
	to := body.Annotations[PreferredHolderAnnotation]
	if to == "" {
		to = fallback
	}
	body.Annotations[PreferredHolderAnnotation] = to
	return body, to
}

// vacateOurs writes vacate(obj, fallback) if the record is still the one we
// wrote, or if a fresh read shows it still names us, and returns the
// target it named.
func (l *KubernetesLease) vacateOurs(ctx context.Context, obj *wire.Lease, fallback string) (string, error) {
	var err error
	for range 3 {
		body, to := vacate(obj, fallback)
		_, err = l.rest.do(ctx, http.MethodPut, l.path, body)
		if err == nil || isLeaseNotFound(err) {
			return to, nil
		}
		if !apierrors.IsConflict(err) {
			return fallback, err
		}
		cur, gerr := l.read(ctx, 0)
		switch {
		case gerr != nil:
			return fallback, gerr
		case cur == nil:
			return fallback, nil // gone
		case cur.UID != obj.UID || !l.isOurs(cur):
			return fallback, nil // someone else's now: leave it alone
		}
		obj = cur
	}
	return fallback, fmt.Errorf("lease: handing off %s: the record kept changing while still ours: %w", l.path, err)
}

// deferral is when this instance first saw a record it may take over but
// that names another preferred holder.
type deferral struct {
	key   specKey
	to    string
	since time.Time // monotonic
}

// deferLeft is how much longer this instance defers to the preferred
// holder obj names (PreferredHolderAnnotation) before taking it over: 0
// when obj names none, names our Owner, or HandoffWait has passed since it
// was first seen takeable in this state (on our monotonic clock). obj must
// be one mayTakeOver allows. spec.preferredHolder alone does not make a
// contender defer: it may be a value set long ago; a holder that steps
// down for it names its target in the annotation.
func (l *KubernetesLease) deferLeft(obj *wire.Lease) time.Duration {
	if l.s.DisableHandoff {
		return 0
	}
	to := obj.Annotations[PreferredHolderAnnotation]
	if to == "" || to == l.s.Owner {
		return 0
	}
	now := l.now().mono
	k := keyOf(obj)
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := l.deferred; d == nil || d.key != k || d.to != to {
		l.deferred = &deferral{key: k, to: to, since: now}
	}
	return max(l.s.HandoffWait-now.Sub(l.deferred.since), 0)
}

// mayAcquire reports whether an Acquire would try to take obj: it may be
// taken over (mayTakeOver) and no handoff to another contender is pending.
func (l *KubernetesLease) mayAcquire(obj *wire.Lease) bool {
	return l.mayTakeOver(obj) && l.deferLeft(obj) == 0
}

// RequestHandoff asks the holder of the Lease namespace/name to hand it to
// the contender whose Owner is to: a planned handoff, for draining a node or
// a rolling update without waiting for a lease to expire. It writes
// PreferredHolderAnnotation with a compare-and-swap on the resourceVersion,
// retrying on conflicts, and returns once that write is applied; it does
// not wait for the handoff. namespace "" means cfg.Namespace, else
// "default". It needs "get" and "update" on the Lease.
//
// The holder (a KubernetesLease with handoff enabled) steps down as on a
// Release: RunSingleton cancels its work, waits for it to return, and the
// Lease is left without a holder, naming to. It notices the request at
// once with Settings.WatchWhileHolding, else at its next renewal (within
// RenewalInterval). Contenders other than to defer for
// Settings.HandoffWait, then contend as usual; to takes the Lease within a
// round trip if it is contending. A Lease with no live holder gets the
// request too, so that others defer to to.
//
// The holder also honours spec.preferredHolder where the server keeps it
// (a kube-apiserver with the CoordinatedLeaderElection feature gate);
// RequestHandoff does not write that field, which such a server accepts only
// with spec.strategy.
//
// It returns nil at once, writing nothing, when to already holds the Lease
// and no other handoff is pending, or when to is already the one asked for; an error matching ErrNotHeld when there is no Lease; an
// *APIError for the server's refusals.
func RequestHandoff(ctx context.Context, cfg *Config, namespace, name, to string) error {
	switch {
	case to == "":
		return fmt.Errorf("%w: handoff target is empty: name the Owner of the contender that should take the lease", ErrInvalidSettings)
	case strings.TrimSpace(to) != to || strings.ContainsFunc(to, unicode.IsControl):
		return fmt.Errorf("%w: handoff target %q has surrounding spaces or control characters: name the Owner exactly", ErrInvalidSettings, to)
	case len(to) > maxHolderLength:
		return fmt.Errorf("%w: handoff target is %d bytes long, above %d", ErrInvalidSettings, len(to), maxHolderLength)
	}
	l, err := newAdminLease(cfg, namespace, name)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		cur, err := l.read(ctx, 0)
		switch {
		case err != nil:
			return err
		case cur == nil:
			return fmt.Errorf("%w: no Lease %s/%s to hand off: start %q and it takes the lease as usual", ErrNotHeld, l.s.Namespace, l.s.Name, to)
		case cur.Annotations[PreferredHolderAnnotation] == to,
			cur.Spec.Holder() == to && cur.Annotations[PreferredHolderAnnotation] == "":
			return nil
		}
		body := cur.DeepCopy()
		if body.Annotations == nil {
			body.Annotations = map[string]string{}
		}
		body.Annotations[PreferredHolderAnnotation] = to
		_, err = l.rest.do(ctx, http.MethodPut, l.path, body)
		if err == nil || !isWriteConflict(err) || attempt >= 4 {
			if err != nil {
				return fmt.Errorf("lease: requesting a handoff of %s/%s to %q: %w", l.s.Namespace, l.s.Name, to, err)
			}
			l.log.Info("kubelease: handoff requested", "to", to, "holder", cur.Spec.Holder())
			return nil
		}
	}
}
