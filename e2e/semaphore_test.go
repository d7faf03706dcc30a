package e2e

import (
	"sync"
	"testing"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/e2e/cluster"
	"github.com/kubelease/lease/leasetest"
)

// TestSemaphore runs leasetest.TestSemaphore, the table the fake passes in
// the root module, against kube-apiserver: Semaphores on the real clock
// (TTL 15 s: no subtest waits for an expiry), a fresh semaphore name per
// subtest.
func TestSemaphore(t *testing.T) {
	c := needCluster(t)
	var mu sync.Mutex // guards names
	names := map[*testing.T]string{}
	nameFor := func(t *testing.T) string {
		mu.Lock()
		defer mu.Unlock()
		if n, ok := names[t]; ok {
			return n
		}
		n := leaseName(t) // a DNS-1123 label of at most 51 characters
		names[t] = n
		return n
	}
	settings := func(t *testing.T, owner string, slots int) lease.SemaphoreSettings {
		return lease.SemaphoreSettings{
			Name: nameFor(t), Slots: slots,
			Lease: lease.Settings{Owner: owner + "-" + randHex(3), Namespace: cluster.Namespace, Config: c.AdminConfig()},
		}
	}
	leasetest.TestSemaphore(t, leasetest.SemaphoreBackend{
		New: func(t *testing.T, owner string, slots int) *lease.Semaphore {
			sem, err := lease.NewSemaphore(settings(t, owner, slots))
			if err != nil {
				t.Fatal(err)
			}
			return sem
		},
		Valid: func(t *testing.T) lease.SemaphoreSettings { return settings(t, "valid", 2) },
	})
}
