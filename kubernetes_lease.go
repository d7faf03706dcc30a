package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubelease/lease/internal/wire"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
)

// NonceAnnotation is the annotation in which each KubernetesLease instance
// writes a random value of its own, so that two live processes that were
// (wrongly) given the same Owner are still told apart.
const NonceAnnotation = "kubelease.io/nonce"

// KubernetesLease is a Lease backed by a coordination.k8s.io/v1 Lease
// object, spoken to over the Kubernetes REST API. See the package
// documentation for its guarantees and their limits.
//
// A KubernetesLease is safe for concurrent use. Acquire and Release are
// serialized: one waits for the other to finish. After a Release or a loss
// the same instance may Acquire again, starting a new tenure with a new token.
type KubernetesLease struct {
	s     resolved
	rest  *restClient
	clock clock.WithTicker
	log   *slog.Logger
	nonce string
	path  string

	// wallOffset is added to every wall-clock reading. It is a test seam
	// that moves this process's wall clock apart from its monotonic clock
	// (a step, a suspend); it is always 0 outside tests.
	wallOffset atomic.Int64
	// event, when set (tests only, before first use), is told of steps of
	// the lifecycle so tests can wait for them instead of sleeping.
	event func(name string)
	// armed, when set (tests only, before first use), is told when the
	// renewal goroutine sets its timer (wake: when it fires, on l.clock) and
	// when it exits (wake: zero), so a simulation knows when it is idle.
	armed func(wake time.Time)
	// flaws deliberately break the rules, so that tests can show the
	// fault-schedule checker finds the violations that follow. Always zero
	// outside those tests.
	flaws flaws

	// op is a one-slot lock that serializes Acquire and Release, so that
	// tenures start and end one at a time. Unlike a mutex, waiting for it
	// gives up when the caller's context ends.
	op chan struct{}

	mu       sync.Mutex // guards the fields below and every *tenure's fields
	handlers map[uint64]func(error)
	hooks    map[uint64]func(ctx context.Context) error // BeforeRelease hooks
	nextID   uint64
	ten      *tenure      // the current or the last tenure; nil before the first
	seen     *observation // the last record seen, for expiry rule (a)
	seenObj  *wire.Lease  // that record
	// cancelAcquire cancels the Acquire in flight, if any, so that Release
	// does not wait behind it.
	cancelAcquire context.CancelFunc
	// unsure is set when an acquiring write may have been applied without
	// starting a tenure (its answer was lost or came too late): the record
	// may name us, and Release then deletes it if it does.
	unsure bool
}

// tenure is one period of holding the lease, from the write that acquired
// it to its loss or Release.
type tenure struct {
	token Token
	start stamp       // stamp of the last successful write: the deadline runs from it
	obj   *wire.Lease // the object as last written (the server's answer)

	ended    bool       // CheckAlive is false for good
	lost     *LostError // why it ended; nil for a voluntary Release
	released bool       // Release has run for this tenure
	lastErr  error      // the last renewal error, wrapped by a deadline loss

	cancel context.CancelFunc // stops the renewal goroutine and its request
	done   chan struct{}      // closed when the renewal goroutine has returned
}

// flaws are deliberate bugs for checker tests.
type flaws struct {
	noDeadline     bool // CheckAlive ignores the deadline
	originalExpiry bool // expiry is renewTime + our TTL < our wall clock only
}

// stamp is one instant read from the clock: mono keeps the monotonic
// reading (when the clock has one), wall does not.
type stamp struct {
	mono time.Time
	wall time.Time
}

// NewKubernetesLease validates s and returns a lease for it. No request is
// made until Acquire. The error matches ErrInvalidSettings and names every
// invalid field and its value, on one line.
func NewKubernetesLease(s Settings) (*KubernetesLease, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	r := s.withDefaults()
	if s.Namespace == "" && s.Config.Namespace != "" {
		if err := (Settings{Name: "x", Owner: "x", Config: s.Config, Namespace: s.Config.Namespace}).Validate(); err != nil {
			return nil, fmt.Errorf("%w: Config.Namespace %q is not a DNS-1123 label", ErrInvalidSettings, s.Config.Namespace)
		}
	}
	rest, err := newRESTClient(s.Config, r)
	if err != nil {
		return nil, invalidSettings(err)
	}
	var nb [12]byte
	_, _ = rand.Read(nb[:])
	l := &KubernetesLease{
		s:        r,
		rest:     rest,
		clock:    r.Clock,
		nonce:    hex.EncodeToString(nb[:]),
		path:     wire.Path(r.namespace, r.Name),
		handlers: map[uint64]func(error){},
		hooks:    map[uint64]func(ctx context.Context) error{},
		op:       make(chan struct{}, 1),
	}
	l.log = r.Logger.With("lease", r.namespace+"/"+r.Name, "owner", r.Owner)
	return l, nil
}

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
// is held by someone else, or when AcquireRetries re-reads after 409
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
		tok, ok, err := l.tryAcquire(ctx)
		if err == nil {
			return tok, ok, nil
		}
		if !isRace(err) {
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

// isRace reports an answer that means "someone wrote in between": a 409,
// or a 404 Status about the Lease on a PUT (deleted between our read and
// our write).
func isRace(err error) bool {
	var e *APIError
	if errors.As(err, &e) && e.Method == http.MethodPut && isLeaseNotFound(err) {
		return true
	}
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)
}

// isLeaseNotFound is a 404 Status about the Lease itself: not about its
// namespace, and not a 404 from something that is not a Kubernetes API
// server (a wrong Host or path prefix), which must stay an error.
func isLeaseNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.StatusCode == http.StatusNotFound && e.Kind == "leases"
}

// tryAcquire is one read-decide-write round of Acquire.
func (l *KubernetesLease) tryAcquire(ctx context.Context) (Token, bool, error) {
	cur, err := l.get(ctx)
	if err != nil {
		return Token{}, false, err
	}
	var body *wire.Lease
	if cur == nil {
		body = &wire.Lease{}
		body.APIVersion, body.Kind = wire.APIVersion, wire.Kind
		body.Name, body.Namespace = l.s.Name, l.s.namespace
	} else {
		if !l.free(cur) {
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
		method, path = http.MethodPost, wire.Path(l.s.namespace, "")
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
	rctx, cancel := withTimeout(ctx, l.clock, l.s.TTL-margin(l.s.TTL))
	defer cancel()
	res, err := l.rest.do(rctx, http.MethodGet, l.path, nil)
	if isLeaseNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := l.checkObject(res.obj); err != nil {
		return nil, err
	}
	l.observe(res.obj, l.now())
	return res.obj, nil
}

// checkObject rejects an answer that is not our Lease.
func (l *KubernetesLease) checkObject(obj *wire.Lease) error {
	if obj.Name != l.s.Name || (obj.Namespace != "" && obj.Namespace != l.s.namespace) {
		return fmt.Errorf("%w: asked for Lease %s/%s, got %s/%s", ErrBadResponse, l.s.namespace, l.s.Name, obj.Namespace, obj.Name)
	}
	return nil
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
		done:   make(chan struct{}),
	}
	l.ten = t
	l.unsure = false
	// What we wrote is the last record seen: LastSeenHolder reports
	// ourselves while we hold.
	l.seen, l.seenObj = &observation{key: keyOf(obj), since: st.mono}, obj
	l.s.Observer.Acquired(t.token)
	go l.renewLoop(ctx, t)
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

// CheckAlive reports whether this instance holds the lease now. It does no
// I/O: it checks that both the monotonic and the wall-clock time elapsed
// since the stamp of the last successful write are below TTL minus the
// deadline margin. The first failed check ends the tenure for good (OnLost
// handlers then run with LostDeadline), even if a renewal answer arrives
// later or a clock steps back.
func (l *KubernetesLease) CheckAlive() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.aliveLocked()
}

// Token returns the fencing token of the current tenure. ok is true exactly
// when CheckAlive would return true.
func (l *KubernetesLease) Token() (Token, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.aliveLocked() {
		return Token{}, false
	}
	return l.ten.token, true
}

func (l *KubernetesLease) aliveLocked() bool {
	t := l.ten
	if t == nil || t.ended {
		return false
	}
	if !l.within(t.start) {
		l.endLocked(t, LostDeadline, "", t.lastErr)
		return false
	}
	return true
}

// within reports whether now is before the deadline of a write stamped st,
// on both the monotonic and the wall clock.
func (l *KubernetesLease) within(st stamp) bool {
	if l.flaws.noDeadline {
		return true
	}
	n := l.now()
	limit := l.s.TTL - margin(l.s.TTL)
	return n.mono.Sub(st.mono) < limit && n.wall.Sub(st.wall) < limit
}

// remaining is the time left before the deadline of st: the smaller of
// what the monotonic and the wall clock say.
func (l *KubernetesLease) remaining(st stamp) time.Duration {
	if l.flaws.noDeadline {
		return l.s.TTL
	}
	n := l.now()
	return l.s.TTL - margin(l.s.TTL) - max(n.mono.Sub(st.mono), n.wall.Sub(st.wall))
}

// endLocked ends tenure t because it was lost, and runs the OnLost
// handlers, each on its own goroutine, after CheckAlive has turned false.
func (l *KubernetesLease) endLocked(t *tenure, reason LostReason, holder string, err error) {
	if t.ended {
		return
	}
	if reason == LostDeadline && err == nil {
		err = errTimeout
	}
	t.ended = true
	lost := &LostError{Reason: reason, Holder: holder, Token: t.token, Err: err}
	t.lost = lost
	t.cancel()
	l.s.Observer.Lost(reason)
	go l.log.Warn("kubelease: lost", "reason", string(reason), "holder", holder, "err", err) // never log under l.mu
	for _, h := range l.handlers {
		go h(lost)
	}
	l.emit("lost")
}

// OnLost registers handler. Handlers stay registered across tenures; for
// each tenure that ends without a voluntary Release, each handler is
// called once, on a goroutine of its own, with a *LostError, after
// CheckAlive has turned false. A slow handler delays nothing. The returned
// function unregisters the handler and may be called any number of times.
// A nil handler is ignored.
func (l *KubernetesLease) OnLost(handler func(reason error)) (unregister func()) {
	if handler == nil {
		return func() {}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	id := l.nextID
	l.nextID++
	l.handlers[id] = handler
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.handlers, id)
	}
}

// BeforeRelease registers hook to be called, with Release's ctx, by every
// later Release, on the caller's goroutine and while the tenure is still
// held, before Release does anything else; if it returns an error, Release returns that error
// and does not release. RunSingleton uses it to stop its work before a
// Release made elsewhere ends the tenure. The returned function
// unregisters hook and may be called any number of times. A nil hook is
// ignored. BeforeRelease implements ReleaseHooker.
func (l *KubernetesLease) BeforeRelease(hook func(ctx context.Context) error) (unregister func()) {
	if hook == nil {
		return func() {}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	id := l.nextID
	l.nextID++
	l.hooks[id] = hook
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.hooks, id)
	}
}

// runHooks calls the BeforeRelease hooks, outside l.mu, and returns the
// first error.
func (l *KubernetesLease) runHooks(ctx context.Context) error {
	l.mu.Lock()
	hooks := make([]func(ctx context.Context) error, 0, len(l.hooks))
	for _, h := range l.hooks {
		hooks = append(hooks, h)
	}
	l.mu.Unlock()
	for _, h := range hooks {
		if err := h(ctx); err != nil {
			return err
		}
	}
	return nil
}

// lostError returns why tenure tok ended, if it was lost.
func (l *KubernetesLease) lostError(tok Token) *LostError {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.ten; t != nil && t.token == tok {
		return t.lost
	}
	return nil
}

// now reads the clock once: the monotonic reading (when the clock has one)
// and the wall reading of the same instant.
func (l *KubernetesLease) now() stamp {
	t := l.clock.Now()
	return stamp{mono: t, wall: t.Round(0).Add(time.Duration(l.wallOffset.Load()))}
}

func (l *KubernetesLease) emit(name string) {
	if l.event != nil {
		l.event(name)
	}
}
