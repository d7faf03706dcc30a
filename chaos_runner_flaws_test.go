package lease_test

import (
	"context"
	"errors"
	"sync"

	"github.com/kubelease/lease"
)

// flaw is a bug planted, from outside the library, between a runner and its
// KubernetesLease, so that the runner campaign's checker can be shown to
// find each of the runner bugs of issue 10 once the runner itself no longer
// has them. Each RunSingleton call gets a fresh wrapper.
type flaw int

const (
	flawNone flaw = iota
	// flawHideAcquire: item 1, an Acquire that succeeds as ctx ends is
	// lost track of (hiddenAcquireLease).
	flawHideAcquire
	// flawOpaque: item 2, the runner cannot see which instance it runs on:
	// no release hook, no busy slot (opaqueLease).
	flawOpaque
	// flawBlindAlive: item 3, the runner learns of the end of a tenure only
	// from OnLost and Release, never from the clocks (blindLease).
	flawBlindAlive
)

var flawNames = map[flaw]string{
	flawNone: "none", flawHideAcquire: "hide-acquire", flawOpaque: "opaque", flawBlindAlive: "blind-alive",
}

func (f flaw) String() string { return flawNames[f] }

// wrap returns what a RunSingleton call is given for k, and a function to
// call once that call has returned.
func (f flaw) wrap(k *lease.KubernetesLease) (lease.Lease, func()) {
	switch f {
	case flawHideAcquire:
		return &hiddenAcquireLease{opaqueLease: opaqueLease{k: k}}, func() {}
	case flawOpaque:
		return &opaqueLease{k: k}, func() {}
	case flawBlindAlive:
		b := &blindLease{opaqueLease: opaqueLease{k: k}}
		b.unregister = k.OnLost(b.lost)
		return b, b.unregister
	}
	return k, func() {}
}

// opaqueLease forwards the Lease, Waker and HolderReporter methods of a
// KubernetesLease and nothing else, so contention is unchanged but a runner
// cannot tie the call to the instance: it finds no release hook and no busy
// slot there. An external Release, a second RunSingleton on the instance
// and a retry after ErrWorkDidNotStop then go unnoticed, as in today's
// runner (issue 10 item 2).
type opaqueLease struct{ k *lease.KubernetesLease }

func (o *opaqueLease) Acquire(ctx context.Context) (bool, error) { return o.k.Acquire(ctx) }

func (o *opaqueLease) AcquireWithToken(ctx context.Context) (lease.Token, bool, error) {
	return o.k.AcquireWithToken(ctx)
}

func (o *opaqueLease) CheckAlive() bool                   { return o.k.CheckAlive() }
func (o *opaqueLease) OnLost(h func(reason error)) func() { return o.k.OnLost(h) }
func (o *opaqueLease) Release(ctx context.Context) error  { return o.k.Release(ctx) }
func (o *opaqueLease) Wait(ctx context.Context) error     { return o.k.Wait(ctx) }
func (o *opaqueLease) LastSeenHolder() string             { return o.k.LastSeenHolder() }

// hiddenAcquireLease loses track of an Acquire that succeeds as ctx ends,
// as today's runner does from inside (issue 10 item 1): it acquires detached
// from ctx and, when ctx ended meanwhile, reports ctx's cause although the
// tenure started; CheckAlive and Release then act as if it had not, so the
// runner cannot release what it was not told of, however it checks.
type hiddenAcquireLease struct {
	opaqueLease
	mu     sync.Mutex // guards hidden
	hidden lease.Token
}

func (h *hiddenAcquireLease) Acquire(ctx context.Context) (bool, error) {
	_, ok, err := h.AcquireWithToken(ctx)
	return ok, err
}

func (h *hiddenAcquireLease) AcquireWithToken(ctx context.Context) (lease.Token, bool, error) {
	tok, ok, err := h.k.AcquireWithToken(context.WithoutCancel(ctx))
	if ok && ctx.Err() != nil {
		h.mu.Lock()
		h.hidden = tok
		h.mu.Unlock()
		return lease.Token{}, false, context.Cause(ctx)
	}
	return tok, ok, err
}

// isHidden reports whether the instance's current tenure is the hidden one.
func (h *hiddenAcquireLease) isHidden() (held, hidden bool) {
	tok, ok := h.k.Token()
	h.mu.Lock()
	defer h.mu.Unlock()
	return ok, ok && tok == h.hidden
}

func (h *hiddenAcquireLease) CheckAlive() bool {
	held, hidden := h.isHidden()
	return held && !hidden
}

func (h *hiddenAcquireLease) Release(ctx context.Context) error {
	if _, hidden := h.isHidden(); hidden {
		return nil
	}
	return h.k.Release(ctx)
}

// blindLease answers CheckAlive from what Acquire, OnLost and Release told
// it, never from the clocks, as a runner that learns of the end of a tenure
// only from OnLost (today's) does (issue 10 item 3): after a suspend or a
// forward wall-clock step it says "held" until the renewal goroutine's
// monotonic timer fires and the loss is reported.
type blindLease struct {
	opaqueLease
	unregister func()
	mu         sync.Mutex // guards held and tok
	held       bool
	tok        lease.Token
}

func (b *blindLease) Acquire(ctx context.Context) (bool, error) {
	_, ok, err := b.AcquireWithToken(ctx)
	return ok, err
}

func (b *blindLease) AcquireWithToken(ctx context.Context) (lease.Token, bool, error) {
	tok, ok, err := b.k.AcquireWithToken(ctx)
	if ok {
		b.mu.Lock()
		b.held, b.tok = true, tok
		b.mu.Unlock()
	}
	return tok, ok, err
}

func (b *blindLease) CheckAlive() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}

func (b *blindLease) Release(ctx context.Context) error {
	b.mu.Lock()
	b.held = false
	b.mu.Unlock()
	return b.k.Release(ctx)
}

func (b *blindLease) lost(reason error) {
	var le *lease.LostError
	if !errors.As(reason, &le) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if le.Token == b.tok {
		b.held = false
	}
}
