package e2e

import (
	"testing"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/e2e/cluster"
	"github.com/kubelease/lease/leasetest"
)

// TestConformance runs the same suite as leasetest's TestConformance, here
// against the real kube-apiserver: any scenario that passes on the fake and
// fails here is a bug in the fake (or in the library).
func TestConformance(t *testing.T) {
	c := needCluster(t)
	withClient := func(cfg *lease.Config) *lease.Config {
		// The suite's own (third-party) requests need a client that trusts
		// the server's self-signed certificate.
		cfg.HTTPClient = c.HTTPClient()
		return cfg
	}
	leasetest.Conformance(t, leasetest.ConformanceBackend{
		Config:    func(t *testing.T) *lease.Config { return withClient(c.AdminConfig()) },
		NoAccess:  func(t *testing.T) *lease.Config { return withClient(c.Config(cluster.NoLeaseToken)) },
		Namespace: cluster.Namespace,
	})
}
