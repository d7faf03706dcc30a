package lease

import (
	"context"
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
