package lease

import (
	"context"
	"errors"
	"fmt"
)

// Lease is a lease on a named resource: while Acquire has returned true and
// CheckAlive still returns true, the caller is the only holder.
//
// Implementations are safe for concurrent use. KubernetesLease implements it
// against a coordination.k8s.io/v1 Lease; leasetest.MemoryLease implements it
// in memory for users' unit tests.
type Lease interface {
	// Acquire tries to take the lease. It returns true when the caller holds
	// it (including when it already did), false when another live holder has
	// it, and an error when the answer could not be decided (network,
	// authorization, a missing namespace, ...). An error never means "held".
	Acquire(ctx context.Context) (bool, error)

	// AcquireWithToken is Acquire that also returns the fencing token of the
	// tenure it holds. The token is the zero Token unless ok is true.
	AcquireWithToken(ctx context.Context) (token Token, ok bool, err error)

	// CheckAlive reports whether the caller holds the lease right now. It does
	// no I/O. Once it returns false for a tenure, that tenure is over for good.
	CheckAlive() bool

	// OnLost registers handler to be called, on a goroutine of its own, once
	// for every tenure that ends without a voluntary Release. The reason is a
	// *LostError. The returned function unregisters the handler; calling it
	// more than once is harmless.
	OnLost(handler func(reason error)) (unregister func())

	// Release gives the lease up. It returns nil when the lease is not held.
	// It never removes a lease that another holder has taken.
	Release(ctx context.Context) error
}

var (
	_ Lease         = (*KubernetesLease)(nil)
	_ ReleaseHooker = (*KubernetesLease)(nil)
)

// Errors returned by this package. Check them with errors.Is.
var (
	// ErrNotHeld is matched by the cause of RunSingleton's work context, and
	// by the error RunSingleton returns, when the tenure the work ran under
	// was ended by a call to Release that RunSingleton did not make (a
	// shutdown hook, say): the work needs the lease held and it no longer is.
	ErrNotHeld = errors.New("lease: not held")

	// ErrLost is matched by every *LostError: the lease was held and is no
	// longer, without a voluntary Release.
	ErrLost = errors.New("lease: lost")

	// ErrInvalidSettings is matched by the error NewKubernetesLease returns
	// for Settings that fail validation.
	ErrInvalidSettings = errors.New("lease: invalid settings")

	// ErrInvalidToken is matched by errors from ParseToken and Token.Compare
	// for tokens that are not of the form "<resourceVersion>/<transitions>"
	// with a canonical integer resourceVersion.
	ErrInvalidToken = errors.New("lease: invalid token")

	// ErrBadResponse is matched by errors for answers the library could not
	// understand: garbage or truncated bodies, oversized bodies, or an object
	// that is not the Lease that was asked for.
	ErrBadResponse = errors.New("lease: bad response from API server")
)

// LostReason says why a tenure ended.
type LostReason string

// The reasons a tenure can end without a voluntary Release.
const (
	// LostConflict: the Lease names another holder, or none, or another
	// instance with the same Owner (a different nonce).
	LostConflict LostReason = "conflict"
	// LostDeleted: the Lease was deleted (404) or re-created (its uid changed).
	LostDeleted LostReason = "deleted"
	// LostDeadline: no renewal succeeded before the deadline, because the API
	// server was unreachable, too slow, or gave answers that were not a
	// decision. CheckAlive turned false on time.
	LostDeadline LostReason = "deadline"
)

// LostError is the reason passed to OnLost handlers. It says which tenure
// ended (Token), why (Reason), who holds the lease now if known (Holder),
// and the last error seen, if any (Err). errors.Is(err, ErrLost) is true.
type LostError struct {
	Reason LostReason
	Holder string
	Token  Token
	Err    error
}

// Error implements error.
func (e *LostError) Error() string {
	msg := fmt.Sprintf("lease: lost tenure %s: %s", e.Token, e.Reason)
	if e.Holder != "" {
		msg += fmt.Sprintf(" (holder now %q)", e.Holder)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying error, if any.
func (e *LostError) Unwrap() error { return e.Err }

// Is reports whether target is ErrLost.
func (e *LostError) Is(target error) bool { return target == ErrLost }
