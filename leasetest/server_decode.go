package leasetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kubelease/lease/internal/wire"
)

// maxBodyBytes is the API server's limit on a request body (3 MiB).
const maxBodyBytes = 3 << 20

// The JSON field names a v1 Lease knows. Everything else is an unknown
// field: dropped, with a warning (or an error with fieldValidation=Strict).
var (
	knownTop  = set("apiVersion", "kind", "metadata", "spec")
	knownMeta = set("name", "generateName", "namespace", "selfLink", "uid",
		"resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
		"deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences",
		"finalizers", "managedFields")
	knownOwnerRef = set("apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion")
	knownSpec     = set("holderIdentity", "leaseDurationSeconds", "acquireTime",
		"renewTime", "leaseTransitions", "strategy", "preferredHolder")
)

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// Field validation directives (the fieldValidation query parameter).
const (
	fieldIgnore = "Ignore"
	fieldWarn   = "Warn"
	fieldStrict = "Strict"
)

// fieldValidation returns the request's fieldValidation directive; optsKind
// is "CreateOptions" or "UpdateOptions" for the error.
func fieldValidation(r *http.Request, optsKind string) (string, *apierrors.StatusError) {
	v := r.URL.Query().Get("fieldValidation")
	switch v {
	case "":
		return fieldWarn, nil
	case fieldIgnore, fieldWarn, fieldStrict:
		return v, nil
	}
	return "", apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: optsKind}, "",
		field.ErrorList{field.NotSupported(field.NewPath("fieldValidation"), v, []string{fieldIgnore, fieldStrict, fieldWarn})})
}

// readBody reads a request body of at most maxBodyBytes of JSON.
func readBody(r *http.Request) ([]byte, *apierrors.StatusError) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return nil, unsupportedMediaType(ct)
		}
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, badRequestf("leasetest: reading the request body: %v", err)
	}
	if len(b) > maxBodyBytes {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", maxBodyBytes))
	}
	return b, nil
}

// unrecognized is the 400 of a body that is not a JSON object with a
// usable apiVersion and kind.
func unrecognized(reason string, body []byte) *apierrors.StatusError {
	return badRequestf("the object provided is unrecognized (must be of type Lease): couldn't get version/kind; json parse error: %s (%s)", reason, summarize(body))
}

// cannotHandle is the 400 of a body that is JSON but not a valid v1 Lease.
func cannotHandle(err error) *apierrors.StatusError {
	return badRequestf("Lease in version \"v1\" cannot be handled as a Lease: %v", err)
}

// decodeLease decodes a request body into a Lease the way the API server
// does: it checks apiVersion and kind, checks MicroTimes on the raw strings,
// drops unknown fields (returning a warning for each, or failing under
// fieldValidation=Strict), and keeps the known spec fields the wire type does
// not model (strategy, preferredHolder).
func decodeLease(body []byte, directive string) (*Lease, []string, *apierrors.StatusError) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, nil, unrecognized(err.Error(), body)
	}
	if top == nil {
		return nil, nil, unrecognized(fmt.Sprintf("Object 'Kind' is missing in '%s'", body), body)
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(body, &tm); err != nil {
		return nil, nil, unrecognized(err.Error(), body)
	}
	if tm.APIVersion != "" && tm.APIVersion != wire.APIVersion {
		return nil, nil, badRequestf("the API version in the data (%s) does not match the expected API version (%s)", tm.APIVersion, wire.APIVersion)
	}
	if tm.Kind != "" && tm.Kind != wire.Kind {
		return nil, nil, badRequestf("%s in version \"v1\" cannot be handled as a Lease: no kind %q is registered for version %q", tm.Kind, tm.Kind, wire.APIVersion)
	}

	var unknown []string
	dropUnknown(top, knownTop, "", &unknown)
	if err := cleanObject(top, "metadata", func(meta map[string]json.RawMessage) error {
		dropUnknown(meta, knownMeta, "metadata.", &unknown)
		return cleanOwnerRefs(meta, &unknown)
	}); err != nil {
		return nil, nil, cannotHandle(err)
	}
	if err := cleanObject(top, "spec", func(spec map[string]json.RawMessage) error {
		dropUnknown(spec, knownSpec, "spec.", &unknown)
		return checkSpecRaw(spec)
	}); err != nil {
		return nil, nil, cannotHandle(err)
	}
	sort.Strings(unknown)
	var warnings []string
	for _, u := range unknown {
		warnings = append(warnings, fmt.Sprintf("unknown field %q", u))
	}
	switch directive {
	case fieldStrict:
		if len(warnings) > 0 {
			return nil, nil, cannotHandle(fmt.Errorf("strict decoding error: %s", strings.Join(warnings, ", ")))
		}
	case fieldIgnore:
		warnings = nil
	}

	clean, err := json.Marshal(top)
	if err != nil {
		return nil, nil, cannotHandle(err)
	}
	l := &Lease{}
	if err := json.Unmarshal(clean, l); err != nil {
		return nil, nil, cannotHandle(err)
	}
	l.TypeMeta = metav1.TypeMeta{}
	return l, warnings, nil
}

// dropUnknown deletes the keys of m that are not in known, recording them.
func dropUnknown(m map[string]json.RawMessage, known map[string]bool, prefix string, unknown *[]string) {
	for k := range m {
		if !known[k] {
			*unknown = append(*unknown, prefix+k)
			delete(m, k)
		}
	}
}

// cleanObject applies fn to the JSON object top[key], if present and not
// null, and stores it back.
func cleanObject(top map[string]json.RawMessage, key string, fn func(map[string]json.RawMessage) error) error {
	raw, ok := top[key]
	if !ok || isNull(raw) {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("json: cannot unmarshal %s into Go struct field Lease.%s", kindOf(raw), key)
	}
	if err := fn(m); err != nil {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	top[key] = b
	return nil
}

// cleanOwnerRefs drops unknown fields of metadata.ownerReferences items.
func cleanOwnerRefs(meta map[string]json.RawMessage, unknown *[]string) error {
	raw, ok := meta["ownerReferences"]
	if !ok || isNull(raw) {
		return nil
	}
	var refs []json.RawMessage
	if err := json.Unmarshal(raw, &refs); err != nil {
		return nil // left to the typed decode, which reports it
	}
	for i, r := range refs {
		var m map[string]json.RawMessage
		if json.Unmarshal(r, &m) != nil || m == nil {
			continue
		}
		dropUnknown(m, knownOwnerRef, fmt.Sprintf("metadata.ownerReferences[%d].", i), unknown)
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		refs[i] = b
	}
	b, err := json.Marshal(refs)
	if err != nil {
		return err
	}
	meta["ownerReferences"] = b
	return nil
}

// checkSpecRaw checks the raw spec fields the typed decode cannot: that
// MicroTimes have exactly six fractional digits, and that the kept
// strategy/preferredHolder are strings (a null one is dropped). It
// re-encodes those two so that equal values compare equal.
func checkSpecRaw(spec map[string]json.RawMessage) error {
	for _, k := range []string{"acquireTime", "renewTime"} {
		raw, ok := spec[k]
		if !ok || isNull(raw) {
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("json: cannot unmarshal %s into Go struct field LeaseSpec.spec.%s of type string", kindOf(raw), k)
		}
		if _, err := time.Parse(metav1.RFC3339Micro, s); err != nil {
			return err
		}
	}
	for _, k := range []string{"strategy", "preferredHolder"} {
		raw, ok := spec[k]
		if !ok {
			continue
		}
		if isNull(raw) {
			delete(spec, k)
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("json: cannot unmarshal %s into Go struct field LeaseSpec.spec.%s of type string", kindOf(raw), k)
		}
		b, _ := json.Marshal(s)
		spec[k] = b
	}
	return nil
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// kindOf names the JSON type of raw, as encoding/json errors do.
func kindOf(raw json.RawMessage) string {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// summarize returns the start of a body for an error message.
func summarize(b []byte) string {
	const max = 30
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}
