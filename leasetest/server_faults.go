package leasetest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Fault describes how to misbehave on matching requests. The waits
// (Latency, then Gate, then Hang) come first; then at most one of Reset,
// an injected answer (Status, PlainText or Body) or DropAnswer applies;
// a Fault with none of those three handles the request normally after
// waiting.
//
// A request released from a wait because its client gave up, or because
// the server is closing, is not applied and gets no answer: its connection
// is closed.
type Fault struct {
	// Verb is the Kubernetes verb to match ("get", "create", "update",
	// "delete", "list", "watch", ...); "" matches every request.
	Verb string
	// Resource is the resource to match: "leases", "events" (the Events
	// a lease posts with lease.Settings.EventSource) or "" for every
	// request.
	Resource string
	// Times is the number of matching requests the fault applies to: 0 means
	// 1, -1 means every one until ClearFaults.
	Times int

	// Latency is a real-time delay before handling, for load and chaos
	// tests; unit tests should use Gate or Hang instead.
	Latency time.Duration
	// Gate, when set, holds the request until the channel is closed; then
	// it is handled (or faulted) as usual.
	Gate <-chan struct{}
	// Hang holds the request until its client gives up, Unhang is called
	// (then it is handled or faulted as usual) or the server closes.
	Hang bool

	// Status, when set, answers with this HTTP status and a metav1.Status
	// body whose reason follows from the code (500 InternalError, or
	// ServerTimeout when RetryAfter is set; 503 ServiceUnavailable;
	// 504 Timeout; 429 TooManyRequests; 409 Conflict; 404 NotFound; ...).
	// The request is not applied.
	Status int
	// Reason overrides the reason of the Status body.
	Reason metav1.StatusReason
	// Message overrides the message of the Status body, or is the text of
	// a PlainText body.
	Message string
	// RetryAfter is the Retry-After header to send with Status, like "1";
	// when it is a number of seconds, the Status body's
	// details.retryAfterSeconds says it too.
	RetryAfter string
	// PlainText makes the body plain text, as priority-and-fairness sends
	// its 429: "Too many requests, please try again later.\n" with
	// Content-Type text/plain. Status defaults to 429.
	PlainText bool
	// Body, when non-nil, is sent as is instead (garbage, truncated or huge
	// bodies), with Status (default 200) and Content-Type application/json
	// (text/plain with PlainText).
	Body []byte

	// Reset closes the connection without an answer (a TCP reset, where
	// possible), before applying the request. Note that Go's http.Transport
	// transparently retries a GET whose reused connection breaks this way,
	// so the client may only see the retry.
	Reset bool
	// DropAnswer applies the request normally, then closes the connection
	// without writing the answer.
	DropAnswer bool
}

// faultState is an injected Fault and how many more requests it applies
// to (-1: unlimited).
type faultState struct {
	f    Fault
	left int
}

// InjectFault adds a fault. Faults are matched in the order injected; the
// first that matches a request applies to it, and only it.
func (s *Server) InjectFault(f Fault) {
	left := f.Times
	switch {
	case left == 0:
		left = 1
	case left < 0:
		left = -1
	}
	s.mu.Lock()
	s.faults = append(s.faults, &faultState{f: f, left: left})
	s.mu.Unlock()
}

// ClearFaults removes every fault not used up yet. Requests already held
// by a fault stay held.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

// Unhang releases every request held by a Hang fault so far; they are then
// handled (or faulted) as usual. Later requests can hang again.
func (s *Server) Unhang() {
	s.mu.Lock()
	close(s.unhang)
	s.unhang = make(chan struct{})
	s.mu.Unlock()
}

// Pause holds every request that arrives from now on, as if the server had
// stopped reading, until Resume, its client gives up, or Close.
func (s *Server) Pause() {
	s.mu.Lock()
	if s.paused == nil {
		s.paused = make(chan struct{})
	}
	s.mu.Unlock()
}

// Resume releases the requests held by Pause and stops holding new ones.
func (s *Server) Resume() {
	s.mu.Lock()
	if s.paused != nil {
		close(s.paused)
		s.paused = nil
	}
	s.mu.Unlock()
}

// matchFaultLocked returns a copy of the first fault matching verb and resource, using
// it up by one, or nil.
func (s *Server) matchFaultLocked(verb, resource string) *Fault {
	for i, fs := range s.faults {
		if fs.f.Verb != "" && fs.f.Verb != verb || fs.f.Resource != "" && fs.f.Resource != resource {
			continue
		}
		f := fs.f
		if fs.left > 0 {
			fs.left--
			if fs.left == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return &f
	}
	return nil
}

// hasAnswer reports whether f replaces the answer.
func (f *Fault) hasAnswer() bool {
	return f.Status != 0 || f.PlainText || f.Body != nil
}

// writeFault writes the answer f injects.
func writeFault(w http.ResponseWriter, rt *route, f *Fault) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	switch {
	case f.Body != nil:
		code := f.Status
		if code == 0 {
			code = http.StatusOK
		}
		ct := "application/json"
		if f.PlainText {
			ct = "text/plain; charset=utf-8"
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(code)
		_, _ = w.Write(f.Body)
	case f.PlainText:
		code := f.Status
		if code == 0 {
			code = http.StatusTooManyRequests
		}
		msg := f.Message
		if msg == "" {
			msg = http.StatusText(code)
			if code == http.StatusTooManyRequests {
				msg = "Too many requests, please try again later."
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, msg+"\n")
	default:
		writeStatus(w, faultStatus(rt, f))
	}
}

// faultStatus builds the metav1.Status of an injected Status fault, as the
// API server words such errors.
func faultStatus(rt *route, f *Fault) *apierrors.StatusError {
	retry, _ := strconv.Atoi(f.RetryAfter)
	msg := func(def string) string {
		if f.Message != "" {
			return f.Message
		}
		return def
	}
	var st *apierrors.StatusError
	switch f.Status {
	case http.StatusBadRequest:
		st = apierrors.NewBadRequest(msg("leasetest: injected bad request"))
	case http.StatusUnauthorized:
		st = apierrors.NewUnauthorized(msg("Unauthorized"))
	case http.StatusForbidden:
		st = apierrors.NewForbidden(leasesGR, rt.name, errors.New(msg(fmt.Sprintf(
			"User \"leasetest\" cannot %s resource \"leases\" in API group %q in the namespace %q", rt.verb, group, rt.ns))))
	case http.StatusNotFound:
		st = apierrors.NewNotFound(leasesGR, rt.name)
	case http.StatusConflict:
		st = apierrors.NewConflict(leasesGR, rt.name, errors.New(msg(optimisticLockMsg)))
	case http.StatusGone:
		st = apierrors.NewResourceExpired(msg("too old resource version"))
	case http.StatusUnprocessableEntity:
		st = invalid(rt.name, field.ErrorList{field.Invalid(field.NewPath("spec"), "", msg("leasetest: injected invalid"))})
	case http.StatusTooManyRequests:
		st = apierrors.NewTooManyRequests(msg("Too many requests, please try again later."), retry)
	case http.StatusInternalServerError:
		if retry > 0 && f.Message == "" {
			st = apierrors.NewServerTimeout(leasesGR, rt.verb, retry)
		} else {
			st = apierrors.NewInternalError(errors.New(msg("leasetest: injected internal error")))
		}
	case http.StatusServiceUnavailable:
		st = apierrors.NewServiceUnavailable(msg("apiserver is shutting down"))
	case http.StatusGatewayTimeout:
		st = apierrors.NewTimeoutError(msg("request did not complete within requested timeout - context deadline exceeded"), 0)
	default:
		st = apierrors.NewGenericServerResponse(f.Status, "", leasesGR, rt.name, f.Message, 0, false)
	}
	if f.Reason != "" {
		st.ErrStatus.Reason = f.Reason
	}
	if retry > 0 {
		if st.ErrStatus.Details == nil {
			st.ErrStatus.Details = &metav1.StatusDetails{}
		}
		st.ErrStatus.Details.RetryAfterSeconds = int32(retry)
	}
	return st
}
