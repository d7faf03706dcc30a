package leasetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The write rules of create, update and delete, on the store
// (server_store.go); every method named *Locked must be called with s.mu
// held.

// errRVSetOnCreate is the 500 for a create that carries a resourceVersion.
// The storage layer returns a plain error, which the API server sends as a
// Status with no reason.
var errRVSetOnCreate = &apierrors.StatusError{ErrStatus: metav1.Status{
	Status:  metav1.StatusFailure,
	Code:    http.StatusInternalServerError,
	Message: "resourceVersion should not be set on objects to be created",
}}

// createLocked creates l (its namespace set) as a POST, or a PUT to an
// absent Lease, does. admin skips the resourceVersion check.
func (s *Server) createLocked(l *Lease, admin bool) (*Lease, *apierrors.StatusError) {
	if !s.namespaces[l.Namespace] {
		return nil, apierrors.NewNotFound(namespacesGR, l.Namespace)
	}
	s.dropDisabledFieldsLocked(l, nil)
	generated := false
	if l.Name == "" && l.GenerateName != "" {
		l.Name = generateName(l.GenerateName)
		generated = true
	}
	l.UID = types.UID(newUID())
	now := metav1.Now().Rfc3339Copy()
	l.CreationTimestamp = now
	l.DeletionTimestamp = nil
	l.DeletionGracePeriodSeconds = nil
	l.ManagedFields = nil
	if errs := validateCreate(l); len(errs) > 0 {
		return nil, invalid(l.Name, errs)
	}
	if !admin {
		if v, err := strconv.ParseUint(l.ResourceVersion, 10, 64); err == nil && v != 0 {
			return nil, errRVSetOnCreate
		}
	}
	if s.leases[objKey{l.Namespace, l.Name}] != nil {
		if generated {
			return nil, apierrors.NewGenerateNameConflict(leasesGR, l.Name, 1)
		}
		return nil, apierrors.NewAlreadyExists(leasesGR, l.Name)
	}
	return s.storeLocked(eventAdded, l)
}

// generateName appends five random characters to base, as the API server's
// name generator does.
func generateName(base string) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	if len(base) > 58 {
		base = base[:58]
	}
	b := []byte(base)
	for range 5 {
		b = append(b, alphabet[rand.IntN(len(alphabet))])
	}
	return string(b)
}

// updateLocked applies a PUT of l (its name and namespace those of the
// URL). It returns whether the PUT created the Lease.
func (s *Server) updateLocked(l *Lease) (*Lease, bool, *apierrors.StatusError) {
	old := s.leases[objKey{l.Namespace, l.Name}]
	if old == nil {
		if l.UID != "" {
			return nil, false, uidPreconditionConflict(l.Namespace, l.Name, string(l.UID), "")
		}
		if l.ResourceVersion != "" {
			return nil, false, apierrors.NewNotFound(leasesGR, l.Name)
		}
		out, st := s.createLocked(l, false)
		return out, st == nil, st
	}
	if l.UID != "" && l.UID != old.UID {
		return nil, false, uidPreconditionConflict(l.Namespace, l.Name, string(l.UID), string(old.UID))
	}
	var rv uint64
	if l.ResourceVersion != "" {
		v, err := strconv.ParseUint(l.ResourceVersion, 10, 64)
		if err != nil {
			return nil, false, &apierrors.StatusError{ErrStatus: metav1.Status{
				Status: metav1.StatusFailure, Code: http.StatusInternalServerError, Message: err.Error(),
			}}
		}
		rv = v
	}
	if rv == 0 {
		return nil, false, apierrors.NewInvalid(leasesAsKind, l.Name, field.ErrorList{
			field.Invalid(field.NewPath("metadata", "resourceVersion"), rv, "must be specified for an update"),
		})
	}
	if oldRV, _ := strconv.ParseUint(old.ResourceVersion, 10, 64); rv != oldRV {
		return nil, false, apierrors.NewConflict(leasesGR, l.Name, errors.New(optimisticLockMsg))
	}
	out, st := s.applyUpdateLocked(old, l)
	return out, false, st
}

// applyUpdateLocked replaces old by l once the preconditions have passed:
// it keeps the fields a client cannot change, validates, and stores l under
// a new resourceVersion unless nothing changed.
func (s *Server) applyUpdateLocked(old, l *Lease) (*Lease, *apierrors.StatusError) {
	s.dropDisabledFieldsLocked(l, old)
	if l.UID == "" {
		l.UID = old.UID
	}
	l.CreationTimestamp = old.CreationTimestamp
	l.DeletionTimestamp = old.DeletionTimestamp.DeepCopy()
	if old.DeletionGracePeriodSeconds != nil {
		v := *old.DeletionGracePeriodSeconds
		l.DeletionGracePeriodSeconds = &v
	} else {
		l.DeletionGracePeriodSeconds = nil
	}
	l.Generation = old.Generation
	l.ManagedFields = nil
	if errs := validateUpdate(l, old); len(errs) > 0 {
		return nil, invalid(l.Name, errs)
	}
	if l.DeletionTimestamp != nil && len(l.Finalizers) == 0 {
		// The last finalizer of a Lease being deleted is gone: it goes.
		delete(s.leases, objKey{l.Namespace, l.Name})
		l.ResourceVersion = s.nextRVLocked()
		c, err := canonical(l)
		if err != nil {
			return nil, internalf("leasetest: storing the lease: %v", err)
		}
		s.recordLocked(eventDeleted, c, nil)
		return withType(c), nil
	}
	same, err := sameContent(old, l)
	if err != nil {
		return nil, internalf("leasetest: comparing leases: %v", err)
	}
	if same {
		return withType(old), nil
	}
	return s.storeLocked(eventModified, l)
}

// sameContent reports whether an update of a to b changes nothing a client
// can change, so that it is a no-op (same resourceVersion, no event).
func sameContent(a, b *Lease) (bool, error) {
	type content struct {
		GenerateName    string                  `json:"generateName,omitempty"`
		Labels          map[string]string       `json:"labels,omitempty"`
		Annotations     map[string]string       `json:"annotations,omitempty"`
		OwnerReferences []metav1.OwnerReference `json:"ownerReferences,omitempty"`
		Finalizers      []string                `json:"finalizers,omitempty"`
		Spec            LeaseSpec               `json:"spec"`
	}
	enc := func(l *Lease) ([]byte, error) {
		return json.Marshal(content{l.GenerateName, l.Labels, l.Annotations, l.OwnerReferences, l.Finalizers, l.Spec})
	}
	ab, err := enc(a)
	if err != nil {
		return false, err
	}
	bb, err := enc(b)
	if err != nil {
		return false, err
	}
	return bytes.Equal(ab, bb), nil
}

// deleteLocked deletes a Lease, checking the preconditions first. It returns
// the success Status, or the object when finalizers keep it.
func (s *Server) deleteLocked(ns, name string, pre *metav1.Preconditions) (*metav1.Status, *Lease, *apierrors.StatusError) {
	k := objKey{ns, name}
	old := s.leases[k]
	if old == nil {
		return nil, nil, apierrors.NewNotFound(leasesGR, name)
	}
	if pre != nil {
		if pre.UID != nil && *pre.UID != old.UID {
			return nil, nil, apierrors.NewConflict(leaseAsResource, name, fmt.Errorf(
				"the UID in the precondition (%s) does not match the UID in record (%s). The object might have been deleted and then recreated",
				*pre.UID, old.UID))
		}
		if pre.ResourceVersion != nil && *pre.ResourceVersion != old.ResourceVersion {
			return nil, nil, apierrors.NewConflict(leaseAsResource, name, fmt.Errorf(
				"the ResourceVersion in the precondition (%s) does not match the ResourceVersion in record (%s). The object might have been modified",
				*pre.ResourceVersion, old.ResourceVersion))
		}
	}
	if len(old.Finalizers) > 0 {
		if old.DeletionTimestamp != nil {
			return nil, withType(old), nil
		}
		l := old.DeepCopy()
		now := metav1.Now().Rfc3339Copy()
		l.DeletionTimestamp = &now
		var zero int64
		l.DeletionGracePeriodSeconds = &zero
		out, st := s.storeLocked(eventModified, l)
		return nil, out, st
	}
	delete(s.leases, k)
	gone := old.DeepCopy()
	gone.ResourceVersion = s.nextRVLocked()
	s.recordLocked(eventDeleted, gone, nil)
	return &metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusSuccess,
		Details: &metav1.StatusDetails{
			Name: name, Group: group, Kind: leasesGR.Resource, UID: old.UID,
		},
	}, nil, nil
}

// dropDisabledFieldsLocked drops spec.strategy and spec.preferredHolder
// from l while the CoordinatedLeaderElection gate is off, unless old (the
// stored object of an update) already uses them, as the API server's
// dropDisabledFields does.
func (s *Server) dropDisabledFieldsLocked(l, old *Lease) {
	if s.cle || (old != nil && (old.Spec.Unknown["strategy"] != nil || old.Spec.Unknown["preferredHolder"] != nil)) {
		return
	}
	delete(l.Spec.Unknown, "strategy")
	delete(l.Spec.Unknown, "preferredHolder")
}
