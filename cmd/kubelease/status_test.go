package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubelease/lease/leasetest"
)

func TestStatus(t *testing.T) {
	srv, kc := newTestServer(t)
	holdLease(t, srv, "held")
	ghost, dur := "ghost", int32(15)
	old := metav1.NewMicroTime(time.Now().Add(-time.Hour))
	lease := &leasetest.Lease{ObjectMeta: metav1.ObjectMeta{Name: "expired", Namespace: "default"}}
	lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds, lease.Spec.RenewTime, lease.Spec.AcquireTime = &ghost, &dur, &old, &old
	if err := srv.Put(lease); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"held", []string{"held"}, 0, []string{"NAME", "HOLDER", "EXPIRES IN", "held", "other", "ago"}},
		{"held wide", []string{"held", "-o", "wide"}, 0, []string{"NAMESPACE", "RESOURCEVERSION", "ACQUIRED", "default", "other", "15s"}},
		{"held yaml", []string{"held", "-o", "yaml"}, 0, []string{"holder: other", "held: true", "leaseDuration: 15s"}},
		{"absent", []string{"nothing"}, 3, []string{"nothing", "<none>"}},
		{"expired", []string{"expired"}, 3, []string{"ghost", "expired", "1h0m0s ago"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := kubelease(append([]string{"status", "--kubeconfig", kc}, tc.args...)...)
			if r.code != tc.wantCode {
				t.Errorf("exit status: got %d, want %d (stderr %q)", r.code, tc.wantCode, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout: got\n%s\nwant it to contain %q", r.stdout, w)
				}
			}
		})
	}
}

func TestStatusJSON(t *testing.T) {
	srv, kc := newTestServer(t)
	holdLease(t, srv, "held")
	r := kubelease("status", "held", "-o", "json", "--kubeconfig", kc)
	if r.code != 0 {
		t.Fatalf("exit status: got %d, want 0 (stderr %q)", r.code, r.stderr)
	}
	var v leaseView
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("stdout %q: %v", r.stdout, err)
	}
	if !v.Held || v.Holder != "other" || v.Namespace != "default" || v.Name != "held" || v.RenewTime == nil || v.ExpiresIn == "" {
		t.Errorf("status -o json: got %+v, want held by other with renewTime and expiresIn", v)
	}
}

func TestStatusErrors(t *testing.T) {
	srv, kc := newTestServer(t)
	srv.AddUser("nobody")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad output", []string{"status", "x", "-o", "xml", "--kubeconfig", kc}, `-o "xml": unknown output format`},
		{"RBAC", []string{"status", "x", "--kubeconfig", writeKubeconfig(t, srv.URL, "nobody")}, `cannot get leases.coordination.k8s.io "x"`},
		{"two names", []string{"status", "x", "y", "--kubeconfig", kc}, "accepts 1 arg(s)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := kubelease(tc.args...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("got exit %d, stderr %q; want 1 and %q", r.code, r.stderr, tc.want)
			}
		})
	}
}
