package leasetest

import (
	"encoding/json"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubelease/lease/internal/wire"
)

// The store: every method named *Locked must be called with s.mu held.
// Stored objects are canonical (as read back from etcd: times at the
// precision of their JSON form) and carry no TypeMeta; they never leave the
// store: callers get deep copies.

// objKey identifies a stored Lease.
type objKey struct{ ns, name string }

// Event types of the change log, as a watch will send them.
const (
	eventAdded    = "ADDED"
	eventModified = "MODIFIED"
	eventDeleted  = "DELETED"
)

// maxChanges is how many changes the log keeps at least (it is trimmed
// back to this size once it doubles), like etcd compaction.
const maxChanges = 1000

// change is one entry of the change log: the object after a create or
// update, or the last state of a deleted object with the deletion's
// resourceVersion. It is what a watch replays (see pendingLocked).
type change struct {
	typ   string
	lease *Lease
	// rv is lease's resourceVersion as a number.
	rv uint64
	// prev is the object before a MODIFIED change (nil otherwise), so that
	// a watch with a label selector can tell an object entering or leaving
	// its selection. Stored objects are never mutated, so it is shared with
	// the store, not copied.
	prev *Lease
}

// nextRVLocked bumps and returns the global resourceVersion.
func (s *Server) nextRVLocked() string {
	s.rv++
	return strconv.FormatUint(s.rv, 10)
}

// recordLocked appends to the change log and wakes whoever waits on it.
// prev is the object that a MODIFIED change replaces.
func (s *Server) recordLocked(typ string, l, prev *Lease) {
	rv, err := strconv.ParseUint(l.ResourceVersion, 10, 64)
	if err != nil {
		rv = s.rv
	}
	s.changes = append(s.changes, change{typ: typ, lease: l.DeepCopy(), rv: rv, prev: prev})
	if n := len(s.changes); n >= 2*maxChanges {
		s.changes = append([]change(nil), s.changes[n-maxChanges:]...)
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// canonical returns l as etcd would give it back: a JSON round trip
// without TypeMeta.
func canonical(l *Lease) (*Lease, error) {
	b, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	out := &Lease{}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, err
	}
	out.TypeMeta = metav1.TypeMeta{}
	return out, nil
}

// withType returns a deep copy of l with apiVersion and kind set.
func withType(l *Lease) *Lease {
	out := l.DeepCopy()
	out.TypeMeta = metav1.TypeMeta{APIVersion: wire.APIVersion, Kind: wire.Kind}
	return out
}

// storeLocked stores l under a new resourceVersion and logs the change.
func (s *Server) storeLocked(typ string, l *Lease) (*Lease, *apierrors.StatusError) {
	l.ResourceVersion = s.nextRVLocked()
	c, err := canonical(l)
	if err != nil {
		return nil, internalf("leasetest: storing the lease: %v", err)
	}
	k := objKey{c.Namespace, c.Name}
	prev := s.leases[k]
	s.leases[k] = c
	s.recordLocked(typ, c, prev)
	return withType(c), nil
}
