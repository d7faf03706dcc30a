package lease

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kubelease/lease/internal/wire"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// adminOwner is the Owner of the KubernetesLease values the functions of
// this file use to reach one Lease; it never writes it as holder.
const adminOwner = "kubelease-admin"

// LeaseInfo is one Lease as ReadLease or ListLeases read it, with what it
// says about its holder computed as a contender that has just read it
// would (its ExpiresIn is at most the record's duration).
type LeaseInfo struct {
	Namespace, Name string
	// UID and Labels are the object's.
	UID    string
	Labels map[string]string
	HolderInfo
}

// newAdminLease is a KubernetesLease for reading, and writing other than as
// holder, the Lease namespace/name.
func newAdminLease(cfg *Config, namespace, name string) (*KubernetesLease, error) {
	return NewKubernetesLease(Settings{Name: name, Namespace: namespace, Owner: adminOwner, Config: cfg})
}

// ReadLease reads the Lease namespace/name once (namespace "" means
// cfg.Namespace, else "default"). A missing Lease is not an error: the
// answer's Exists is false. It needs "get" on the Lease.
func ReadLease(ctx context.Context, cfg *Config, namespace, name string) (LeaseInfo, error) {
	l, err := newAdminLease(cfg, namespace, name)
	if err != nil {
		return LeaseInfo{}, err
	}
	obj, err := l.read(ctx, 0)
	if err != nil {
		return LeaseInfo{}, err
	}
	info := LeaseInfo{Namespace: l.s.Namespace, Name: name}
	if obj != nil {
		info = infoOf(obj, l.s.Namespace, l.now().wall)
	}
	return info, nil
}

// ListLeases lists the Leases of namespace ("" means cfg.Namespace, else
// "default") that labelSelector selects ("" selects all), sorted by name.
// It needs "list" on leases.
func ListLeases(ctx context.Context, cfg *Config, namespace, labelSelector string) ([]LeaseInfo, error) {
	w, err := NewNamespaceWatch(cfg, namespace, labelSelector, NamespaceWatchOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w: ListLeases: %s", ErrInvalidSettings,
			strings.TrimPrefix(err.Error(), ErrInvalidSettings.Error()+": namespace watch: "))
	}
	items, _, err := w.fetch(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]LeaseInfo, 0, len(items))
	for _, obj := range items {
		out = append(out, infoOf(obj, w.ns, now))
	}
	slices.SortFunc(out, func(a, b LeaseInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// ForceRelease deletes the Lease info describes, but only if it is still
// that record: the DELETE carries info's UID and ResourceVersion as
// preconditions, so a renewal or a new holder since info was read makes it
// fail with a 409 *APIError (read again, look, and decide again). It is
// for an operator clearing a Lease by hand — a holder that is still alive
// loses it (LostDeleted at its next renewal or at once with
// WatchWhileHolding) and its work is stopped, but it may still be running
// when a peer takes over: prefer RequestHandoff, which stops the work
// first. A Lease already gone is not an error. It needs "delete".
func ForceRelease(ctx context.Context, cfg *Config, info LeaseInfo) error {
	if info.UID == "" || info.ResourceVersion == "" {
		return fmt.Errorf("%w: ForceRelease of %s/%s: no UID or ResourceVersion; pass a LeaseInfo from ReadLease or ListLeases of an existing Lease", ErrInvalidSettings, info.Namespace, info.Name)
	}
	l, err := newAdminLease(cfg, info.Namespace, info.Name)
	if err != nil {
		return err
	}
	obj := &wire.Lease{ObjectMeta: metav1.ObjectMeta{UID: types.UID(info.UID), ResourceVersion: info.ResourceVersion}}
	err = l.deleteIf(ctx, obj)
	if isLeaseNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lease: force-releasing %s: %w", l.path, err)
	}
	l.log.Info("kubelease: force-released", "holder", info.Holder)
	return nil
}

// infoOf is what obj says, read at now (wall clock) by a contender that
// has just read it.
func infoOf(obj *wire.Lease, ns string, now time.Time) LeaseInfo {
	info := LeaseInfo{Namespace: ns, Name: obj.Name, UID: string(obj.UID), Labels: maps.Clone(obj.Labels)}
	if obj.Namespace != "" {
		info.Namespace = obj.Namespace
	}
	h := recordInfo(obj, DefaultTTL)
	h.ObservedAt = now
	if holder := obj.Spec.Holder(); holder != "" {
		// A fresh observer: rule (a) has the record's whole duration to
		// run, rule (b) the time to renewTime + duration + the default skew.
		left := h.Duration
		if !h.RenewTime.IsZero() {
			left = min(left, h.RenewTime.Add(h.Duration+DefaultMaxClockSkew).Sub(now))
		}
		h.ExpiresIn = max(left, 0)
	}
	info.HolderInfo = h
	return info
}

// recordInfo is the part of HolderInfo that obj itself says; ttl stands in
// for a missing leaseDurationSeconds.
func recordInfo(obj *wire.Lease, ttl time.Duration) HolderInfo {
	h := HolderInfo{
		Exists:          true,
		Holder:          obj.Spec.Holder(),
		Transitions:     obj.Spec.Transitions(),
		ResourceVersion: obj.ResourceVersion,
		PreferredHolder: preferredOf(obj),
		Duration:        durationOf(obj, ttl),
	}
	if t := obj.Spec.AcquireTime; t != nil {
		h.AcquireTime = t.UTC()
	}
	if t := obj.Spec.RenewTime; t != nil {
		h.RenewTime = t.UTC()
	}
	// The token is the holder's only if the holder is a kubelease (it wrote
	// a nonce) and took the Lease at the transition count the token names:
	// another library (client-go) that took it over keeps the annotation of
	// the kubelease tenure before it.
	if h.Holder != "" && obj.Annotations[NonceAnnotation] != "" {
		if tok, err := ParseToken(obj.Annotations[TokenAnnotation]); err == nil && tok.Transitions == h.Transitions {
			h.HolderToken = tok
		}
	}
	return h
}
