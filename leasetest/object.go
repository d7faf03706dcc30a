package leasetest

import "github.com/kubelease/lease/internal/wire"

// Lease is a coordination.k8s.io/v1 Lease object: what Server.Get returns,
// what Server.Put stores and what an Edit function changes. It is the type
// package lease itself sends and reads on the wire, named here so that tests
// outside this module can use it.
//
// Its fields are the embedded metav1.TypeMeta and metav1.ObjectMeta (from
// k8s.io/apimachinery/pkg/apis/meta/v1) and Spec, a LeaseSpec. DeepCopy
// returns a copy that shares nothing with the original. It marshals to and
// from JSON as the API server does.
type Lease = wire.Lease

// LeaseSpec is the spec of a Lease. Its fields HolderIdentity (*string),
// LeaseDurationSeconds and LeaseTransitions (*int32), AcquireTime and
// RenewTime (*metav1.MicroTime) are nil when unset; Holder and Transitions
// read the first and the last with "" and 0 for nil. Unknown holds, by JSON
// name and verbatim, the spec fields the type does not model (such as
// strategy and preferredHolder), so that a read-modify-write keeps them.
type LeaseSpec = wire.LeaseSpec
