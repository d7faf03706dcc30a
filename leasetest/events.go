package leasetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// eventsGR is the core group's events resource.
var eventsGR = schema.GroupResource{Resource: "events"}

// isEventsPath reports whether p is /api/v1/namespaces/{ns}/events.
func isEventsPath(p string) bool {
	parts := strings.Split(p, "/")
	return len(parts) == 6 && parts[0] == "" && parts[1] == "api" && parts[2] == "v1" &&
		parts[3] == "namespaces" && parts[4] != "" && parts[5] == "events"
}

// Event is a core/v1 Event the Server accepted (a lease with
// lease.Settings.EventSource posts them): the fields a lease sets, and the
// uid and resourceVersion the server gave it.
type Event struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`

	InvolvedObject EventObject `json:"involvedObject"`
	// Type is "Normal" or "Warning".
	Type    string `json:"type,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	Source  struct {
		Component string `json:"component,omitempty"`
		Host      string `json:"host,omitempty"`
	} `json:"source"`
	FirstTimestamp     metav1.Time `json:"firstTimestamp,omitempty"`
	LastTimestamp      metav1.Time `json:"lastTimestamp,omitempty"`
	Count              int32       `json:"count,omitempty"`
	ReportingComponent string      `json:"reportingComponent,omitempty"`
	ReportingInstance  string      `json:"reportingInstance,omitempty"`
}

// EventObject is an Event's involvedObject (a core/v1 ObjectReference).
type EventObject struct {
	APIVersion      string    `json:"apiVersion,omitempty"`
	Kind            string    `json:"kind,omitempty"`
	Namespace       string    `json:"namespace,omitempty"`
	Name            string    `json:"name,omitempty"`
	UID             types.UID `json:"uid,omitempty"`
	ResourceVersion string    `json:"resourceVersion,omitempty"`
}

// serveEvent answers a POST of a core/v1 Event: it checks what a
// kube-apiserver checks of an Event without eventTime (the namespace
// exists and matches the involved object's, the name is free and a
// DNS-1123 subdomain), records it, and answers 201 with it.
func (s *Server) serveEvent(w http.ResponseWriter, r *http.Request, rt *route) {
	body, st := readBody(r)
	if st != nil {
		writeStatus(w, st)
		return
	}
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil {
		writeStatus(w, badRequestf("Event in version \"v1\" cannot be handled as a Event: %v", err))
		return
	}
	if ev.APIVersion != "v1" || ev.Kind != "Event" {
		writeStatus(w, badRequestf("the object provided is unrecognized (must be of type Event): apiVersion %q, kind %q", ev.APIVersion, ev.Kind))
		return
	}
	rt.name = ev.Name
	if ev.Namespace != "" && ev.Namespace != rt.ns {
		writeStatus(w, badRequestf("the namespace of the provided object does not match the namespace sent on the request"))
		return
	}
	ev.Namespace = rt.ns
	var errs field.ErrorList
	if ev.Name == "" {
		errs = append(errs, field.Required(field.NewPath("metadata", "name"), "name or generateName is required"))
	}
	for _, msg := range validation.IsDNS1123Subdomain(ev.Name) {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), ev.Name, msg))
	}
	if ev.InvolvedObject.Namespace != ev.Namespace {
		errs = append(errs, field.Invalid(field.NewPath("involvedObject", "namespace"), ev.InvolvedObject.Namespace, "does not match event.namespace"))
	}
	if len(errs) > 0 {
		writeStatus(w, apierrors.NewInvalid(schema.GroupKind{Kind: "Event"}, ev.Name, errs))
		return
	}
	s.mu.Lock()
	switch {
	case !s.namespaces[rt.ns]:
		s.mu.Unlock()
		writeStatus(w, apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, rt.ns))
		return
	case s.eventNamed(rt.ns, ev.Name):
		s.mu.Unlock()
		writeStatus(w, apierrors.NewAlreadyExists(eventsGR, ev.Name))
		return
	}
	s.rv++
	ev.UID = types.UID(newUID())
	ev.ResourceVersion = strconv.FormatUint(s.rv, 10)
	ev.CreationTimestamp = metav1.Now()
	s.events = append(s.events, ev)
	s.broadcastLocked()
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, &ev)
}

// eventNamed reports whether an event ns/name was recorded. s.mu is held.
func (s *Server) eventNamed(ns, name string) bool {
	for i := range s.events {
		if s.events[i].Namespace == ns && s.events[i].Name == name {
			return true
		}
	}
	return false
}

// Events returns the Events the server accepted, in order, in every
// namespace. The fake records them only: it does not list, watch,
// update (client-go's count aggregation) or expire them.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// AwaitEvents blocks until the server has accepted at least n Events since
// it started, and returns them, or returns ctx's error.
func (s *Server) AwaitEvents(ctx context.Context, n int) ([]Event, error) {
	if err := s.await(ctx, func() bool { return len(s.events) >= n }); err != nil {
		return s.Events(), fmt.Errorf("leasetest: waiting for %d events, got %d: %w", n, len(s.Events()), err)
	}
	return s.Events(), nil
}

// GrantEvents lets the restricted user with bearer token tok (see
// AddUser) use verbs on events in the core API group, as an RBAC rule
// would ("create" is what a lease needs). A restricted user has no access
// to events until then: its POSTs get 403 Forbidden. The admin (the
// RequireToken token, or any token without RequireToken) may always post
// events.
func (s *Server) GrantEvents(tok string, verbs ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[tok]
	if u == nil {
		return errors.New("leasetest: GrantEvents: no user with that token; call AddUser first")
	}
	u.events = map[string]bool{}
	for _, v := range verbs {
		u.events[v] = true
	}
	return nil
}
