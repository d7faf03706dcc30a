package leasetest

import (
	"errors"
	"fmt"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Direct access acts as a third party would, bypassing HTTP (so no request
// is counted and no fault applies) but following the server's rules: writes
// are validated, bump the global resourceVersion unless they change nothing,
// and fail with an error wrapping the *errors.StatusError the API would
// have answered (so apierrors.IsNotFound and the like work on it).

// Get returns a deep copy of the Lease ns/name, with apiVersion and kind
// set, and whether it exists.
func (s *Server) Get(ns, name string) (*Lease, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leases[objKey{ns, name}]
	if l == nil {
		return nil, false
	}
	return withType(l), true
}

// Put creates or replaces a Lease as an admin would with an unconditional
// write: on create the server sets uid, resourceVersion and
// creationTimestamp; on replace it keeps uid and creationTimestamp, and the
// write is a no-op if nothing changed. l's resourceVersion and uid are
// ignored, and an empty namespace means "default". The namespace must exist.
func (s *Server) Put(l *Lease) error {
	if l == nil {
		return errors.New("leasetest: put of a nil lease")
	}
	l = l.DeepCopy()
	if l.Namespace == "" {
		l.Namespace = metav1.NamespaceDefault
	}
	l.ResourceVersion = ""
	s.mu.Lock()
	defer s.mu.Unlock()
	var st *apierrors.StatusError
	if old := s.leases[objKey{l.Namespace, l.Name}]; old == nil || l.Name == "" {
		l.UID = ""
		_, st = s.createLocked(l, true)
	} else {
		l.UID = old.UID
		l.ResourceVersion = old.ResourceVersion
		_, st = s.applyUpdateLocked(old, l)
	}
	if st != nil {
		return fmt.Errorf("leasetest: put %s/%s: %w", l.Namespace, l.Name, st)
	}
	return nil
}

// Edit does a read-modify-write of the Lease ns/name: fn gets a deep copy
// to change (labels, annotations, spec, ...), and the result is written as
// an update would be: validated, and bumping the resourceVersion unless
// nothing changed. fn runs with the server's lock held, so it must not call
// the Server. Edit fails if the Lease does not exist or if fn changes its
// name, namespace, uid or resourceVersion.
func (s *Server) Edit(ns, name string, fn func(*Lease)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.leases[objKey{ns, name}]
	if old == nil {
		return fmt.Errorf("leasetest: edit %s/%s: %w", ns, name, apierrors.NewNotFound(leasesGR, name))
	}
	l := withType(old)
	fn(l)
	if l.Name != old.Name || l.Namespace != old.Namespace || l.UID != old.UID || l.ResourceVersion != old.ResourceVersion {
		return fmt.Errorf("leasetest: edit %s/%s: name, namespace, uid and resourceVersion may not change", ns, name)
	}
	if _, st := s.applyUpdateLocked(old, l); st != nil {
		return fmt.Errorf("leasetest: edit %s/%s: %w", ns, name, st)
	}
	return nil
}

// Delete deletes the Lease ns/name as a third party would, without
// preconditions. Like a DELETE it bumps the global resourceVersion; a Lease
// with finalizers only gets a deletionTimestamp.
func (s *Server) Delete(ns, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, _, st := s.deleteLocked(ns, name, nil); st != nil {
		return fmt.Errorf("leasetest: delete %s/%s: %w", ns, name, st)
	}
	return nil
}

// ResourceVersion returns the server's current global resourceVersion:
// that of its latest write.
func (s *Server) ResourceVersion() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strconv.FormatUint(s.rv, 10)
}
