package e2e

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/e2e/cluster"
)

// TestCluster checks the harness itself: the three users get what their
// RBAC says, the pinned CA verifies the server, and a kubeconfig written by
// the harness loads with lease.LoadKubeconfig.
func TestCluster(t *testing.T) {
	c := needCluster(t)
	ctx := ctxFor(t, 30*time.Second)
	const leases = "/apis/coordination.k8s.io/v1/namespaces/" + cluster.Namespace + "/leases"
	name := leaseName(t)
	obj := map[string]any{
		"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
		"metadata": map[string]any{"name": name},
		"spec":     map[string]any{"holderIdentity": "harness", "leaseDurationSeconds": 1},
	}
	for _, tc := range []struct {
		token, method, path string
		body                any
		want                int
	}{
		{cluster.AdminToken, http.MethodGet, "/readyz", nil, http.StatusOK},
		{cluster.NoLeaseToken, http.MethodGet, leases, nil, http.StatusForbidden},
		{cluster.LimitedToken, http.MethodPost, leases, obj, http.StatusCreated},
		{cluster.LimitedToken, http.MethodGet, leases + "/" + name, nil, http.StatusOK},
		{cluster.LimitedToken, http.MethodDelete, leases + "/" + name, nil, http.StatusForbidden},
		{cluster.NoLeaseToken, http.MethodGet, leases + "/" + name, nil, http.StatusForbidden},
		{cluster.AdminToken, http.MethodDelete, leases + "/" + name, nil, http.StatusOK},
		{"wrong-token", http.MethodGet, leases, nil, http.StatusUnauthorized},
	} {
		code, body, err := c.Do(ctx, tc.token, tc.method, tc.path, tc.body)
		if err != nil || code != tc.want {
			t.Errorf("%s %s as %s: %d %v %.200s; want %d", tc.method, tc.path, tc.token, code, err, body, tc.want)
		}
	}

	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := c.Kubeconfig(path, cluster.AdminToken); err != nil {
		t.Fatal(err)
	}
	cfg, err := lease.LoadKubeconfig(path, "")
	if err != nil {
		t.Fatalf("LoadKubeconfig: %v", err)
	}
	if cfg.Host != c.URL || cfg.BearerToken != cluster.AdminToken || len(cfg.CAData) == 0 || cfg.Namespace != cluster.Namespace {
		t.Errorf("LoadKubeconfig = host %q token set %v CA %d bytes ns %q; want %q, true, >0, %q",
			cfg.Host, cfg.BearerToken == cluster.AdminToken, len(cfg.CAData), cfg.Namespace, c.URL, cluster.Namespace)
	}
	// The library's own transport (no HTTPClient) verifies the server with
	// the CA from the kubeconfig.
	l, err := lease.NewKubernetesLease(lease.Settings{Name: leaseName(t), Owner: "harness-" + randHex(3), Config: cfg, TTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := l.Acquire(ctx); err != nil || !ok {
		t.Fatalf("Acquire through the kubeconfig: %v, %v", ok, err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	t.Logf("kube-apiserver pid %d at %s, ready %v after exec", c.PID(), c.URL, c.ReadyAfter())
}
