package lease

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// APIError is an answer from the API server that was not a success: its
// HTTP status code, the metav1.Status reason and message (or, for bodies
// that are not a Status, such as priority-and-fairness 429s, the reason the
// code implies and the start of the text), and the Retry-After it asked for.
//
// It implements apimachinery's APIStatus interface, so the helpers of
// k8s.io/apimachinery/pkg/api/errors (IsNotFound, IsConflict, ...) work on it.
type APIError struct {
	// StatusCode is the HTTP status code.
	StatusCode int
	// Reason is the Status reason, e.g. "Conflict", "NotFound", "Forbidden".
	Reason metav1.StatusReason
	// Message is the server's message, at most a few hundred bytes.
	Message string
	// Kind is details.kind of the Status, e.g. "leases" or "namespaces".
	Kind string
	// RetryAfter is the delay the server asked for, 0 if none.
	RetryAfter time.Duration
	// Method and Path say which request got the answer.
	Method, Path string

	// hint is the library's explanation, shown in parentheses after the
	// message: which credentials a 401 was sent with, and to which server,
	// or that the answer does not look like the Kubernetes API's. It never
	// holds a credential.
	hint string
}

// Error implements error. After the server's message it may add, in
// parentheses, what the library knows about the failure, e.g. for a 401
// "(sent bearer token from file /var/run/.../token to https://10.0.0.1:443)",
// or for a proxy's HTML page "(not a Kubernetes API answer; is Config.Host
// https://10.0.0.1:443 the Kubernetes API server?)".
func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	s := fmt.Sprintf("lease: %s %s: %d %s: %s", e.Method, e.Path, e.StatusCode, e.Reason, msg)
	if e.hint != "" {
		s += " (" + e.hint + ")"
	}
	return s
}

// addHint adds h to e's hint.
func (e *APIError) addHint(h string) {
	if e.hint != "" {
		e.hint += "; "
	}
	e.hint += h
}

// Status returns the error as a metav1.Status, for apimachinery's helpers.
func (e *APIError) Status() metav1.Status {
	st := metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    int32(e.StatusCode),
		Reason:  e.Reason,
		Message: e.Message,
	}
	if e.Kind != "" || e.RetryAfter > 0 {
		st.Details = &metav1.StatusDetails{Kind: e.Kind, RetryAfterSeconds: int32(e.RetryAfter / time.Second)}
	}
	return st
}

// reasonForCode is the Status reason a bare HTTP code implies: the one
// apimachinery gives it, else the code's status text without spaces (e.g.
// "RequestEntityTooLarge"), else "Unknown".
func reasonForCode(code int) metav1.StatusReason {
	if r := apierrors.ReasonForError(apierrors.NewGenericServerResponse(code, "", schemaLeases, "", "", 0, false)); r != "" {
		return r
	}
	if text := http.StatusText(code); text != "" {
		return metav1.StatusReason(strings.ReplaceAll(strings.ReplaceAll(text, " ", ""), "-", ""))
	}
	return "Unknown"
}

// invalidSettingsError is a problem with the settings found by a check
// other than Validate (the Config's host, TLS files, proxy, credentials),
// worded as Validate words its own: one line, one "lease: " prefix.
type invalidSettingsError struct{ err error }

// invalidSettings wraps err so that it matches both ErrInvalidSettings and
// err, reading "lease: invalid settings: <err without its lease: prefix>".
func invalidSettings(err error) error { return &invalidSettingsError{err: err} }

func (e *invalidSettingsError) Error() string {
	return ErrInvalidSettings.Error() + ": " + strings.TrimPrefix(e.err.Error(), "lease: ")
}

func (e *invalidSettingsError) Unwrap() []error { return []error{ErrInvalidSettings, e.err} }
