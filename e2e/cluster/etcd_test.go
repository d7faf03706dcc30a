package cluster

import (
	"io"
	"net/http"
	"testing"
)

func TestEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	e, err := startEtcd(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer e.stop()
	resp, err := http.Get(e.clientURL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("etcd /health: %d %s", resp.StatusCode, body)
	}
	t.Logf("etcd at %s: %s", e.clientURL, body)
}
