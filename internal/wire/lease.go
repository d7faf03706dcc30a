// Package wire holds the JSON shape of a coordination.k8s.io/v1 Lease as the
// API server sends and stores it. It exists so that kubelease does not need
// k8s.io/api; only k8s.io/apimachinery's metav1 types are used.
//
// The spec keeps every field it does not model (today "strategy" and
// "preferredHolder", tomorrow whatever the API adds) so that a client that
// reads, edits and writes back a Lease never drops what others wrote.
package wire

import (
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// APIVersion and Kind identify the Lease resource on the wire.
const (
	APIVersion = "coordination.k8s.io/v1"
	Kind       = "Lease"
)

// Lease is a coordination.k8s.io/v1 Lease.
type Lease struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              LeaseSpec `json:"spec"`
}

// LeaseSpec is the spec of a Lease. Fields the library does not model are
// kept verbatim in Unknown and written back unchanged.
type LeaseSpec struct {
	HolderIdentity       *string           `json:"holderIdentity,omitempty"`
	LeaseDurationSeconds *int32            `json:"leaseDurationSeconds,omitempty"`
	AcquireTime          *metav1.MicroTime `json:"acquireTime,omitempty"`
	RenewTime            *metav1.MicroTime `json:"renewTime,omitempty"`
	LeaseTransitions     *int32            `json:"leaseTransitions,omitempty"`
	// Unknown holds spec fields this package does not model, by JSON name.
	Unknown map[string]json.RawMessage `json:"-"`
}

// knownSpecFields are the JSON names LeaseSpec models itself.
var knownSpecFields = map[string]bool{
	"holderIdentity": true, "leaseDurationSeconds": true, "acquireTime": true,
	"renewTime": true, "leaseTransitions": true,
}

// specAlias has LeaseSpec's fields without its methods, to avoid recursion.
type specAlias struct {
	HolderIdentity       *string           `json:"holderIdentity,omitempty"`
	LeaseDurationSeconds *int32            `json:"leaseDurationSeconds,omitempty"`
	AcquireTime          *metav1.MicroTime `json:"acquireTime,omitempty"`
	RenewTime            *metav1.MicroTime `json:"renewTime,omitempty"`
	LeaseTransitions     *int32            `json:"leaseTransitions,omitempty"`
}

// UnmarshalJSON decodes the modelled fields and keeps the rest in Unknown.
func (s *LeaseSpec) UnmarshalJSON(b []byte) error {
	var a specAlias
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	*s = LeaseSpec{
		HolderIdentity:       a.HolderIdentity,
		LeaseDurationSeconds: a.LeaseDurationSeconds,
		AcquireTime:          a.AcquireTime,
		RenewTime:            a.RenewTime,
		LeaseTransitions:     a.LeaseTransitions,
	}
	for k, v := range all {
		if knownSpecFields[k] {
			continue
		}
		if s.Unknown == nil {
			s.Unknown = make(map[string]json.RawMessage)
		}
		s.Unknown[k] = v
	}
	return nil
}

// MarshalJSON encodes the modelled fields and every Unknown field.
func (s LeaseSpec) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(specAlias{
		HolderIdentity:       s.HolderIdentity,
		LeaseDurationSeconds: s.LeaseDurationSeconds,
		AcquireTime:          s.AcquireTime,
		RenewTime:            s.RenewTime,
		LeaseTransitions:     s.LeaseTransitions,
	})
	if err != nil || len(s.Unknown) == 0 {
		return b, err
	}
	all := make(map[string]json.RawMessage, len(s.Unknown)+5)
	for k, v := range s.Unknown {
		if knownSpecFields[k] {
			return nil, fmt.Errorf("wire: unknown spec field %q shadows a modelled field", k)
		}
		all[k] = v
	}
	var known map[string]json.RawMessage
	if err := json.Unmarshal(b, &known); err != nil {
		return nil, err
	}
	for k, v := range known {
		all[k] = v
	}
	return json.Marshal(all)
}

// DeepCopy returns a copy of l that shares nothing with it.
func (l *Lease) DeepCopy() *Lease {
	if l == nil {
		return nil
	}
	out := &Lease{TypeMeta: l.TypeMeta}
	l.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	s := l.Spec
	if s.HolderIdentity != nil {
		v := *s.HolderIdentity
		out.Spec.HolderIdentity = &v
	}
	if s.LeaseDurationSeconds != nil {
		v := *s.LeaseDurationSeconds
		out.Spec.LeaseDurationSeconds = &v
	}
	if s.AcquireTime != nil {
		v := *s.AcquireTime
		out.Spec.AcquireTime = &v
	}
	if s.RenewTime != nil {
		v := *s.RenewTime
		out.Spec.RenewTime = &v
	}
	if s.LeaseTransitions != nil {
		v := *s.LeaseTransitions
		out.Spec.LeaseTransitions = &v
	}
	if s.Unknown != nil {
		out.Spec.Unknown = make(map[string]json.RawMessage, len(s.Unknown))
		for k, v := range s.Unknown {
			out.Spec.Unknown[k] = append(json.RawMessage(nil), v...)
		}
	}
	return out
}

// Holder returns the holderIdentity, or "" when unset.
func (s *LeaseSpec) Holder() string {
	if s.HolderIdentity == nil {
		return ""
	}
	return *s.HolderIdentity
}

// Transitions returns leaseTransitions, or 0 when unset.
func (s *LeaseSpec) Transitions() int32 {
	if s.LeaseTransitions == nil {
		return 0
	}
	return *s.LeaseTransitions
}

// DeleteOptions is the body of a preconditioned DELETE.
type DeleteOptions struct {
	metav1.TypeMeta `json:",inline"`
	Preconditions   *metav1.Preconditions `json:"preconditions,omitempty"`
}

// Path returns the URL path of a Lease, or of the collection when name is "".
func Path(namespace, name string) string {
	p := "/apis/coordination.k8s.io/v1/namespaces/" + namespace + "/leases"
	if name != "" {
		p += "/" + name
	}
	return p
}
