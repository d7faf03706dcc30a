package leasetest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kubelease/lease/internal/wire"
)

const group = "coordination.k8s.io"

var (
	// leasesGR is the resource of most errors: NotFound, Conflict, ...
	leasesGR = schema.GroupResource{Group: group, Resource: "leases"}
	// leaseGK is the kind of validation errors (422 from validation).
	leaseGK = schema.GroupKind{Group: group, Kind: wire.Kind}
	// leasesAsKind is the odd "kind" of the 422 a store gives for an update
	// without resourceVersion: the resource name in the Kind field.
	leasesAsKind = schema.GroupKind{Group: group, Kind: "leases"}
	// leaseAsResource is the odd resource of a DELETE precondition conflict:
	// the Kind in the Resource field.
	leaseAsResource = schema.GroupResource{Group: group, Resource: wire.Kind}
	// namespacesGR is the resource of the 404 for a missing namespace.
	namespacesGR = schema.GroupResource{Resource: "namespaces"}
)

// optimisticLockMsg is the reason of a 409 for a stale resourceVersion.
const optimisticLockMsg = "the object has been modified; please apply your changes to the latest version and try again"

// badRequestf returns a 400 BadRequest.
func badRequestf(format string, args ...any) *apierrors.StatusError {
	return apierrors.NewBadRequest(fmt.Sprintf(format, args...))
}

// invalid returns a 422 Invalid for a Lease, as validation gives it.
func invalid(name string, errs field.ErrorList) *apierrors.StatusError {
	return apierrors.NewInvalid(leaseGK, name, errs)
}

// internalf returns a 500 InternalError.
func internalf(format string, args ...any) *apierrors.StatusError {
	return apierrors.NewInternalError(fmt.Errorf(format, args...))
}

// unsupportedMediaType returns a 415 for a body that is not JSON.
func unsupportedMediaType(ct string) *apierrors.StatusError {
	msg := fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json (leasetest does not speak %s)", ct)
	return apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "", schema.GroupResource{}, "", msg, 0, false)
}

// storageKey is the etcd key of a Lease, as storage errors print it.
func storageKey(ns, name string) string {
	return "/registry/leases/" + ns + "/" + name
}

// uidPreconditionConflict is the 409 of an update whose metadata.uid does
// not match the stored object (or no object), as the storage layer words it.
func uidPreconditionConflict(ns, name, want, have string) *apierrors.StatusError {
	return apierrors.NewConflict(leasesGR, name, fmt.Errorf(
		"StorageError: invalid object, Code: 4, Key: %s, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: %s, UID in object meta: %s",
		storageKey(ns, name), want, have))
}

// writeStatus writes st as a metav1.Status JSON body with its code.
func writeStatus(w http.ResponseWriter, st *apierrors.StatusError) {
	status := st.ErrStatus
	status.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	if status.Status == "" {
		status.Status = metav1.StatusFailure
	}
	code := int(status.Code)
	if code == 0 {
		code = http.StatusInternalServerError
	}
	writeJSON(w, code, &status)
}

// writeJSON writes v as JSON with the given code, as a real server does
// (with a trailing newline).
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		st := internalf("leasetest: encoding the response: %v", err)
		st.ErrStatus.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
		b, _ = json.Marshal(&st.ErrStatus)
		code = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache, private")
	h.Set("Audit-Id", newUID())
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// addWarnings adds one Warning header per message, as the API server does.
func addWarnings(w http.ResponseWriter, msgs []string) {
	for _, m := range msgs {
		w.Header().Add("Warning", "299 - "+strconv.Quote(m))
	}
}

// newUID returns a random (version 4) UUID string.
func newUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
