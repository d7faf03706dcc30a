package e2e

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/kubelease/lease/e2e/cluster"
)

// TestBrownoutServerSheds starts a kube-apiserver of its own with API
// Priority and Fairness shedding the "shed" user (cluster.Shedding), runs
// the bounded load generator, and checks that the server itself answers
// the shed user with 429 and a Retry-After while the load runs, and 200
// once it stops.
func TestBrownoutServerSheds(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: needs a real kube-apiserver; skipped with -short")
	}
	c := cluster.StartWithOptions(t, cluster.Options{Shedding: &cluster.Shedding{}})
	tr := c.NewTransport(30*time.Second, 15*time.Second)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	get := func() (int, string) {
		req, _ := http.NewRequest(http.MethodGet, c.URL+"/apis/coordination.k8s.io/v1/namespaces/"+cluster.Namespace+"/leases/rbac-probe", nil)
		req.Header.Set("Authorization", "Bearer "+cluster.ShedToken)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	if code, _ := get(); code != http.StatusNotFound {
		t.Fatalf("before the load: %d, want 404", code)
	}
	stop := c.Overload(8, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var shed int
	var retryAfter string
	for shed < 3 && ctx.Err() == nil {
		if code, ra := get(); code == http.StatusTooManyRequests {
			shed++
			retryAfter = ra
		}
	}
	ls := stop()
	t.Logf("load: %d requests, %d rejected; shed user: %d answers 429, Retry-After %q", ls.Requests, ls.Rejected, shed, retryAfter)
	if shed < 3 || retryAfter == "" {
		t.Fatalf("the server shed %d requests of the shed user (Retry-After %q), want ≥ 3 with Retry-After", shed, retryAfter)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	for {
		if code, _ := get(); code == http.StatusNotFound {
			break
		}
		if ctx2.Err() != nil {
			t.Fatal("the server still sheds after the load stopped")
		}
	}
}
