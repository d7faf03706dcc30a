package leasetest_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/kubelease/lease/leasetest"
)

// event is a core/v1 Event about the Lease ns/job named name.
func event(ns, name string) map[string]any {
	return map[string]any{
		"apiVersion": "v1", "kind": "Event",
		"metadata":       map[string]any{"name": name, "namespace": ns},
		"involvedObject": map[string]any{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "namespace": ns, "name": "job"},
		"type":           "Normal", "reason": "LeaderElection", "message": "pod-a became leader", "count": 1,
	}
}

func TestServerEvents(t *testing.T) {
	srv := leasetest.NewServerT(t)
	srv.AddUser("lease-only", "*")
	const path = "/api/v1/namespaces/default/events"
	for _, tc := range []struct {
		name, tok, path string
		body            any
		want            int
	}{
		{"accepted", "", path, event("default", "job.1"), http.StatusCreated},
		{"same name", "", path, event("default", "job.1"), http.StatusConflict},
		{"involvedObject in another namespace", "", path, event("kube-system", "job.2"), http.StatusBadRequest},
		{"bad name", "", path, event("default", "Job_2"), http.StatusUnprocessableEntity},
		{"missing namespace", "", "/api/v1/namespaces/nope/events", event("nope", "job.3"), http.StatusNotFound},
		{"no RBAC for events", "lease-only", path, event("default", "job.4"), http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := authzDo(t, srv, tc.tok, http.MethodPost, tc.path, tc.body); code != tc.want {
				t.Errorf("POST: %d, want %d: %s", code, tc.want, body)
			}
		})
	}
	if err := srv.GrantEvents("lease-only", "create"); err != nil {
		t.Fatal(err)
	}
	if code, body := authzDo(t, srv, "lease-only", http.MethodPost, path, event("default", "job.5")); code != http.StatusCreated {
		t.Errorf("POST after GrantEvents: %d: %s", code, body)
	}
	if err := srv.GrantEvents("nobody", "create"); err == nil {
		t.Error("GrantEvents of an unknown token: no error")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs, err := srv.AwaitEvents(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Name != "job.1" || evs[1].Name != "job.5" || evs[0].UID == "" ||
		evs[0].InvolvedObject.Kind != "Lease" || evs[0].Reason != "LeaderElection" {
		t.Errorf("events %+v", evs)
	}
	var n int
	for _, r := range srv.Requests() {
		if r.Resource == "events" {
			n++
		}
	}
	if n != 7 {
		t.Errorf("%d event requests logged, want 7", n)
	}
}
