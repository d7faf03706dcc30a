package leasetest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubelease/lease/internal/wire"
)

// apiPrefix is the path of the coordination.k8s.io/v1 group version.
const apiPrefix = "/apis/" + wire.APIVersion + "/"

// Kinds of request path.
const (
	routeUnknown    = iota
	routeHealth     // /healthz, /readyz, /livez
	routeItem       // .../namespaces/{ns}/leases/{name}
	routeCollection // .../namespaces/{ns}/leases
	routeAll        // .../leases (all namespaces)
	routeEvents     // /api/v1/namespaces/{ns}/events (events.go)
)

// route is what the path and method of a request say.
type route struct {
	kind     int
	verb     string // Kubernetes verb: get, list, watch, create, update, patch, delete, ...
	resource string // "leases", "events", or "" for a path that is no resource
	ns, name string
}

// parseRoute classifies a request.
func parseRoute(r *http.Request) *route {
	rt := &route{}
	p := r.URL.Path
	switch {
	case p == "/healthz" || p == "/readyz" || p == "/livez":
		rt.kind = routeHealth
	case strings.HasPrefix(p, apiPrefix):
		parts := strings.Split(strings.TrimPrefix(p, apiPrefix), "/")
		switch {
		case len(parts) == 1 && parts[0] == "leases":
			rt.kind = routeAll
		case len(parts) == 3 && parts[0] == "namespaces" && parts[1] != "" && parts[2] == "leases":
			rt.kind, rt.ns = routeCollection, parts[1]
		case len(parts) == 4 && parts[0] == "namespaces" && parts[1] != "" && parts[2] == "leases" && parts[3] != "":
			rt.kind, rt.ns, rt.name = routeItem, parts[1], parts[3]
		}
	case isEventsPath(p):
		rt.kind, rt.ns = routeEvents, strings.Split(p, "/")[4]
	}
	switch rt.kind {
	case routeItem, routeCollection, routeAll:
		rt.resource = "leases"
	case routeEvents:
		rt.resource = "events"
	}
	rt.verb = verbOf(r, rt.kind)
	return rt
}

// verbOf returns the Kubernetes verb of a request, or for a path that is no
// resource, the lower-case method.
func verbOf(r *http.Request, kind int) string {
	resource := kind == routeItem || kind == routeCollection || kind == routeAll || kind == routeEvents
	if !resource {
		return strings.ToLower(r.Method)
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if kind == routeItem {
			return "get"
		}
		if boolParam(r.URL.Query(), "watch") {
			return "watch"
		}
		return "list"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		if kind == routeItem {
			return "delete"
		}
		return "deletecollection"
	}
	return strings.ToLower(r.Method)
}

// boolParam decodes a boolean query parameter as the API server's
// parameter codec does: absent is false, "false" (in any case) and "0" are
// false, and anything else, even an empty value, is true.
func boolParam(q url.Values, name string) bool {
	v, ok := q[name]
	if !ok || len(v) == 0 {
		return false
	}
	return v[0] != "0" && !strings.EqualFold(v[0], "false")
}

// authorized reports whether r carries the required bearer token.
func (s *Server) authorized(r *http.Request) bool {
	s.mu.Lock()
	tok := s.token
	s.mu.Unlock()
	if tok == "" {
		return true
	}
	parts := strings.SplitN(r.Header.Get("Authorization"), " ", 3)
	return len(parts) >= 2 && strings.EqualFold(parts[0], "bearer") && parts[1] == tok
}

// handle answers a request the way the API server would, without faults.
func (s *Server) handle(w http.ResponseWriter, r *http.Request, rt *route) {
	if rt.kind == routeHealth {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "ok")
		return
	}
	if !s.authorized(r) {
		writeStatus(w, apierrors.NewUnauthorized("Unauthorized"))
		return
	}
	switch {
	case rt.kind == routeItem && r.Method == http.MethodGet:
		s.serveGet(w, rt)
	case rt.kind == routeItem && r.Method == http.MethodPut:
		s.serveUpdate(w, r, rt)
	case rt.kind == routeItem && r.Method == http.MethodDelete:
		s.serveDelete(w, r, rt)
	case (rt.kind == routeCollection || rt.kind == routeAll) && r.Method == http.MethodGet && rt.verb == "watch":
		s.serveWatch(w, r, rt)
	case (rt.kind == routeCollection || rt.kind == routeAll) && r.Method == http.MethodGet:
		s.serveList(w, r, rt)
	case rt.kind == routeCollection && r.Method == http.MethodPost:
		s.serveCreate(w, r, rt)
	case rt.kind == routeEvents && r.Method == http.MethodPost:
		s.serveEvent(w, r, rt)
	case rt.kind == routeUnknown:
		writeStatus(w, apierrors.NewGenericServerResponse(http.StatusNotFound, "", schema.GroupResource{}, "", "", 0, false))
	default:
		writeStatus(w, apierrors.NewGenericServerResponse(http.StatusMethodNotAllowed, "", schema.GroupResource{}, "", "", 0, false))
	}
}

// serveGet answers a GET of one Lease. Reads are always fresh: a
// resourceVersion parameter is ignored.
func (s *Server) serveGet(w http.ResponseWriter, rt *route) {
	s.mu.Lock()
	l := s.leases[objKey{rt.ns, rt.name}]
	if l != nil {
		l = withType(l)
	}
	s.mu.Unlock()
	if l == nil {
		writeStatus(w, apierrors.NewNotFound(leasesGR, rt.name))
		return
	}
	writeJSON(w, http.StatusOK, l)
}

// serveCreate answers a POST to the collection.
func (s *Server) serveCreate(w http.ResponseWriter, r *http.Request, rt *route) {
	l, warnings, st := decodeRequest(r, "CreateOptions")
	addWarnings(w, warnings)
	if st != nil {
		writeStatus(w, st)
		return
	}
	rt.name = l.Name
	if l.Namespace != "" && l.Namespace != rt.ns {
		writeStatus(w, badRequestf("the namespace of the provided object does not match the namespace sent on the request"))
		return
	}
	l.Namespace = rt.ns
	s.mu.Lock()
	out, st := s.createLocked(l, false)
	s.mu.Unlock()
	if st != nil {
		writeStatus(w, st)
		return
	}
	rt.name = out.Name
	writeJSON(w, http.StatusCreated, out)
}

// serveUpdate answers a PUT of one Lease.
func (s *Server) serveUpdate(w http.ResponseWriter, r *http.Request, rt *route) {
	l, warnings, st := decodeRequest(r, "UpdateOptions")
	addWarnings(w, warnings)
	if st != nil {
		writeStatus(w, st)
		return
	}
	if l.Name != rt.name {
		writeStatus(w, badRequestf("the name of the object (%s) does not match the name on the URL (%s)", l.Name, rt.name))
		return
	}
	if l.Namespace != "" && l.Namespace != rt.ns {
		writeStatus(w, badRequestf("the namespace of the object (%s) does not match the namespace on the request (%s)", l.Namespace, rt.ns))
		return
	}
	l.Namespace = rt.ns
	s.mu.Lock()
	out, created, st := s.updateLocked(l)
	s.mu.Unlock()
	if st != nil {
		writeStatus(w, st)
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeJSON(w, code, out)
}

// decodeRequest reads and decodes the Lease in a POST or PUT.
func decodeRequest(r *http.Request, optsKind string) (*Lease, []string, *apierrors.StatusError) {
	directive, st := fieldValidation(r, optsKind)
	if st != nil {
		return nil, nil, st
	}
	body, st := readBody(r)
	if st != nil {
		return nil, nil, st
	}
	return decodeLease(body, directive)
}

// serveDelete answers a DELETE of one Lease, with optional preconditions
// in a DeleteOptions body.
func (s *Server) serveDelete(w http.ResponseWriter, r *http.Request, rt *route) {
	body, st := readBody(r)
	if st != nil {
		writeStatus(w, st)
		return
	}
	var opts wire.DeleteOptions
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &opts); err != nil {
			writeStatus(w, badRequestf("%v", err))
			return
		}
	}
	s.mu.Lock()
	status, l, st := s.deleteLocked(rt.ns, rt.name, opts.Preconditions)
	s.mu.Unlock()
	switch {
	case st != nil:
		writeStatus(w, st)
	case l != nil:
		writeJSON(w, http.StatusOK, l)
	default:
		writeJSON(w, http.StatusOK, status)
	}
}
