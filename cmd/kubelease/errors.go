package main

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/kubelease/lease"
)

// describe turns an error from the lease library into one line that names
// what went wrong with the Lease ns/name and how to fix it.
func describe(err error, ns, name string) string {
	e, ok := errors.AsType[*lease.APIError](err)
	if !ok {
		return err.Error()
	}
	switch {
	case e.StatusCode == http.StatusForbidden:
		return fmt.Sprintf("forbidden: cannot %s leases.coordination.k8s.io %q in namespace %q: grant the verb %q on leases in a Role bound to this user (server said: %s)",
			verb(e), name, ns, verb(e), e.Message)
	case e.StatusCode == http.StatusNotFound && e.Kind == "namespaces":
		return fmt.Sprintf("namespace %q not found: create it (kubectl create namespace %s) or pick another with -n", ns, ns)
	case e.StatusCode == http.StatusUnauthorized:
		return fmt.Sprintf("unauthorized: the API server refused the credentials: refresh them or pick another context with --context (%s)", err)
	}
	return err.Error()
}

// verb is the Kubernetes verb of the request that got e.
func verb(e *lease.APIError) string {
	switch e.Method {
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodDelete:
		return "delete"
	case http.MethodPatch:
		return "patch"
	}
	if strings.Contains(e.Path, "watch=") {
		return "watch"
	}
	if strings.HasSuffix(strings.SplitN(e.Path, "?", 2)[0], "/leases") {
		return "list"
	}
	return "get"
}

// fatal reports whether err will not go away by trying again: a client
// error other than a conflict or throttling, or a configuration error.
func fatal(err error) bool {
	e, ok := errors.AsType[*lease.APIError](err)
	if !ok {
		return errors.Is(err, lease.ErrInvalidSettings)
	}
	return e.StatusCode >= 400 && e.StatusCode < 500 && e.StatusCode != http.StatusConflict && e.StatusCode != http.StatusTooManyRequests
}
