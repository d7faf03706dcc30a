package lease

import (
	"context"
	"reflect"
)

// OnLost registers handler. Handlers stay registered across tenures; for
// each tenure that ends without a voluntary Release, each handler is
// called once, on a goroutine of its own, with a *LostError, after
// CheckAlive has turned false. A slow handler delays nothing. The returned
// function unregisters the handler and may be called any number of times.
// A nil handler is ignored.
func (l *KubernetesLease) OnLost(handler func(reason error)) (unregister func()) {
	return register(l, l.handlers, handler)
}

// BeforeRelease registers hook to be called, with Release's ctx, by every
// later Release, on the caller's goroutine and while the tenure is still
// held, before Release does anything else; if it returns an error,
// Release returns that error and does not release. RunSingleton uses it to
// stop its work before a Release made elsewhere ends the tenure. The
// returned function unregisters hook and may be called any number of
// times. A nil hook is ignored. BeforeRelease implements ReleaseHooker.
func (l *KubernetesLease) BeforeRelease(hook func(ctx context.Context) error) (unregister func()) {
	return register(l, l.hooks, hook)
}

// register adds f (unless nil) to m, a callback set of l guarded by l.mu,
// and returns the function that removes it, which may be called any number
// of times.
func register[F any](l *KubernetesLease, m map[uint64]F, f F) (unregister func()) {
	if any(f) == nil || reflect.ValueOf(f).IsNil() {
		return func() {}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	id := l.nextID
	l.nextID++
	m[id] = f
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(m, id)
	}
}

// callbacksLocked returns the callbacks of m, to be called once l.mu is
// released.
func callbacksLocked[F any](m map[uint64]F) []F {
	fs := make([]F, 0, len(m))
	for _, f := range m {
		fs = append(fs, f)
	}
	return fs
}

// runHooks calls the BeforeRelease hooks, outside l.mu, and returns the
// first error.
func (l *KubernetesLease) runHooks(ctx context.Context) error {
	l.mu.Lock()
	hooks := callbacksLocked(l.hooks)
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
