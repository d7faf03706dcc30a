package lease_test

import (
	"sync"
	"testing"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/require"
)

// TestBehaviour runs the table every Lease implementation passes (the
// in-memory one in leasetest runs it too).
func TestBehaviour(t *testing.T) {
	var mu sync.Mutex // guards envs and leases
	envs := map[*testing.T]*env{}
	leases := map[lease.Lease]*contender{}
	envFor := func(t *testing.T) *env {
		mu.Lock()
		defer mu.Unlock()
		if e, ok := envs[t]; ok {
			return e
		}
		e := newEnv(t)
		envs[t] = e
		return e
	}
	leasetest.TestLease(t, leasetest.LeaseBackend{
		New: func(t *testing.T, owner string) lease.Lease {
			c := envFor(t).newLease(owner)
			mu.Lock()
			leases[c.KubernetesLease] = c
			mu.Unlock()
			return c.KubernetesLease
		},
		Revoke: func(t *testing.T, holder lease.Lease) {
			mu.Lock()
			c := leases[holder]
			mu.Unlock()
			e := envFor(t)
			wait := c.events.waitArmed(t)
			require.NoError(t, e.srv.Edit("default", "job", func(l *leasetest.Lease) {
				l.Spec.HolderIdentity = nil // freed by a third party
			}))
			c.clk.Step(wait)
			c.events.wait(t, "lost")
		},
	})
}
