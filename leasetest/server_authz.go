package leasetest

import (
	"fmt"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// user is a restricted user: it may use only its verbs on Leases.
type user struct {
	name  string
	verbs map[string]bool
	// events are its verbs on events (GrantEvents); none by default.
	events map[string]bool
}

// AddUser registers a user who authenticates with the bearer token tok and
// may use only the given Kubernetes verbs ("get", "list", "watch",
// "create", "update", "patch", "delete", "deletecollection", or "*" for all)
// on Leases, as an RBAC Role would allow, and nothing on events until
// GrantEvents. Other requests of that user get
// 403 Forbidden with the Status a kube-apiserver sends. The user's token is
// accepted even when RequireToken is set; the token set by RequireToken (and,
// without RequireToken, any other token or none) keeps full access.
// Calling AddUser again with the same token replaces its verbs.
func (s *Server) AddUser(tok string, verbs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := &user{
		name:  fmt.Sprintf("system:serviceaccount:default:leasetest-user-%d", len(s.users)+1),
		verbs: map[string]bool{},
	}
	if old := s.users[tok]; old != nil {
		u.name, u.events = old.name, old.events
	}
	for _, verb := range verbs {
		u.verbs[verb] = true
	}
	s.users[tok] = u
}

// userOf returns the restricted user r authenticates as, or nil for the
// admin (the RequireToken token) and when r names no registered user.
func (s *Server) userOf(r *http.Request) *user {
	parts := strings.SplitN(r.Header.Get("Authorization"), " ", 3)
	if len(parts) < 2 || !strings.EqualFold(parts[0], "bearer") {
		return nil
	}
	tok := parts[1]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && tok == s.token {
		return nil
	}
	return s.users[tok]
}

// handleAuthz answers r as handle does, after authorizing a restricted
// user: a verb it may not use gets 403 Forbidden; an allowed request is
// then handled as the admin's would be.
func (s *Server) handleAuthz(w http.ResponseWriter, r *http.Request, rt *route) {
	u := s.userOf(r)
	if u == nil || rt.resource == "" {
		s.handle(w, r, rt)
		return
	}
	if rt.resource == "events" && !u.events[rt.verb] || rt.resource == "leases" && !u.verbs[rt.verb] && !u.verbs["*"] {
		writeStatus(w, forbidden(u, rt))
		return
	}
	s.mu.Lock()
	admin := s.token
	s.mu.Unlock()
	if admin != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+admin)
	}
	s.handle(w, r, rt)
}

// forbidden is the 403 the RBAC authorizer's denial gives, worded as the
// API server's authorization filter words it.
func forbidden(u *user, rt *route) *apierrors.StatusError {
	scope := fmt.Sprintf("in the namespace %q", rt.ns)
	if rt.ns == "" {
		scope = "at the cluster scope"
	}
	gr, grp := leasesGR, group
	if rt.resource == "events" {
		gr, grp = eventsGR, "" // the core group
	}
	//lint:ignore ST1005 worded exactly as kube-apiserver's authorization filter words it
	return apierrors.NewForbidden(gr, rt.name, fmt.Errorf(
		"User %q cannot %s resource %q in API group %q %s", u.name, rt.verb, gr.Resource, grp, scope))
}
