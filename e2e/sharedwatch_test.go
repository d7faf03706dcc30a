package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/e2e/cluster"
)

// verbCounter counts the list and watch requests of the Lease
// collection.
type verbCounter struct {
	rt             http.RoundTripper
	lists, watches atomic.Int64
}

func (c *verbCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/leases") {
		if r.URL.Query().Get("watch") == "true" {
			c.watches.Add(1)
		} else {
			c.lists.Add(1)
		}
	}
	return c.rt.RoundTrip(r)
}

// TestSharedWatch: standbys for 20 Leases on one NamespaceWatch cost one
// list and one watch on kube-apiserver, and each wakes on its own Lease's
// release.
func TestSharedWatch(t *testing.T) {
	c := needCluster(t)
	const n = 20
	prefix := leaseName(t)
	labels := map[string]string{"kubelease.io/e2e-shard-set": randHex(4)}
	counting := &verbCounter{rt: c.HTTPClient().Transport}
	wcfg := c.AdminConfig()
	wcfg.HTTPClient = &http.Client{Transport: counting}
	w, err := lease.NewNamespaceWatch(wcfg, cluster.Namespace, "kubelease.io/e2e-shard-set="+labels["kubelease.io/e2e-shard-set"], lease.NamespaceWatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	mk := func(name, owner string, shared *lease.NamespaceWatch) *lease.KubernetesLease {
		l, err := lease.NewKubernetesLease(lease.Settings{Name: name, Namespace: cluster.Namespace, Owner: owner + "-" + randHex(3),
			Config: c.AdminConfig(), Labels: labels, SharedWatch: shared})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Release(context.Background()) })
		return l
	}
	holders := make([]*lease.KubernetesLease, n)
	standbys := make([]*lease.KubernetesLease, n)
	for i := range n {
		name := fmt.Sprintf("%s-%02d", prefix, i)
		holders[i], standbys[i] = mk(name, "holder", nil), mk(name, "standby", w)
		if ok, err := holders[i].Acquire(ctxFor(t, 10*time.Second)); err != nil || !ok {
			t.Fatalf("holder %d: Acquire = %v, %v", i, ok, err)
		}
		if ok, err := standbys[i].Acquire(ctxFor(t, 10*time.Second)); err != nil || ok {
			t.Fatalf("standby %d: Acquire = %v, %v; want false, nil", i, ok, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	woke := make(chan int, n)
	for i, s := range standbys {
		wg.Go(func() {
			if s.Wait(ctx) == nil {
				woke <- i
			}
		})
	}
	for counting.watches.Load() == 0 {
		time.Sleep(10 * time.Millisecond) // e2e: real time; the watch request is on its way
	}
	time.Sleep(200 * time.Millisecond) // let the watch be established before the first release
	for i, h := range holders {
		start := time.Now()
		if err := h.Release(ctxFor(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-woke:
			if got != i {
				t.Fatalf("after releasing %d, standby %d woke", i, got)
			}
			if i == 0 {
				t.Logf("release to wake-up: %v", time.Since(start))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("standby %d did not wake within 10s of its release", i)
		}
	}
	if l, wt := counting.lists.Load(), counting.watches.Load(); l != 1 || wt != 1 {
		t.Errorf("%d standbys: %d lists, %d watches; want 1, 1", n, l, wt)
	}
}

// TestResourceNamesRBAC checks the RBAC each mode needs on kube-apiserver:
// a Role restricted by resourceNames allows the per-lease watch (it sends
// fieldSelector metadata.name=<name>, which the authorizer takes as the
// name), so a standby is woken by the watch; the shared watch's list by
// label selector has no name, and is refused.
func TestResourceNamesRBAC(t *testing.T) {
	c := needCluster(t)
	name := leaseName(t)
	h := newLease(t, c.AdminConfig(), name, "holder", 15*time.Second)
	if ok, err := h.Acquire(ctxFor(t, 10*time.Second)); err != nil || !ok {
		t.Fatalf("holder: Acquire = %v, %v", ok, err)
	}
	role := "e2e-rn-" + randHex(4)
	const rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/" + cluster.Namespace
	for _, o := range []struct {
		path string
		obj  map[string]any
	}{
		{rbac + "/roles", map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
			"metadata": map[string]any{"name": role},
			"rules": []any{map[string]any{"apiGroups": []string{"coordination.k8s.io"}, "resources": []string{"leases"},
				"resourceNames": []string{name}, "verbs": []string{"get", "watch"}}}}},
		{rbac + "/rolebindings", map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
			"metadata": map[string]any{"name": role},
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
			"subjects": []any{map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "nolease"}}}},
	} {
		code, body, err := c.Do(ctxFor(t, 10*time.Second), cluster.AdminToken, http.MethodPost, o.path, o.obj)
		if err != nil || code != http.StatusCreated {
			t.Fatalf("POST %s: %d %v %s", o.path, code, err, body)
		}
		t.Cleanup(func() {
			c.Do(context.Background(), cluster.AdminToken, http.MethodDelete, o.path+"/"+role, nil)
		})
	}
	item := leasesPath + name
	deadline := time.Now().Add(30 * time.Second)
	for { // RBAC is served from an informer cache
		code, _, err := c.Do(ctxFor(t, 10*time.Second), cluster.NoLeaseToken, http.MethodGet, item, nil)
		if err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET as nolease: %d %v after 30s", code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	collection := strings.TrimSuffix(leasesPath, "/") + "?"
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"watch=true&timeoutSeconds=1&fieldSelector=" + url.QueryEscape("metadata.name="+name), http.StatusOK},
		{"watch=true&timeoutSeconds=1", http.StatusForbidden},
		{"labelSelector=app%3Dx", http.StatusForbidden},
	} {
		code, body, err := c.Do(ctxFor(t, 10*time.Second), cluster.NoLeaseToken, http.MethodGet, collection+tc.query, nil)
		if err != nil || code != tc.want {
			t.Errorf("GET %s as nolease: %d %v, want %d (%.200s)", tc.query, code, err, tc.want, body)
		}
	}

	logs := &logLines{}
	s, err := lease.NewKubernetesLease(lease.Settings{Name: name, Namespace: cluster.Namespace, Owner: "standby-" + randHex(3),
		Config: c.Config(cluster.NoLeaseToken), Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Acquire(ctxFor(t, 10*time.Second)); err != nil || ok {
		t.Fatalf("standby: Acquire = %v, %v; want false, nil", ok, err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait(ctxFor(t, 30*time.Second)) }()
	time.Sleep(500 * time.Millisecond) // let the standby's watch be established
	start := time.Now()
	if err := h.Release(ctxFor(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("standby woke %v after the release; want a watch event, not a poll", d)
	}
	if strings.Contains(logs.String(), "refused") {
		t.Errorf("the standby's watch was refused: %s", logs.String())
	}
}

// logLines collects log output.
type logLines struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
