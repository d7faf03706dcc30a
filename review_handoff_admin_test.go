package lease_test

import (
	"testing"

	"github.com/kubelease/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReviewAdminInputErrors (regression): the operator functions reject a
// nil Config and bad names with one ErrInvalidSettings line naming the bad
// value, and do not panic.
func TestReviewAdminInputErrors(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx()
	cfg := e.srv.Config()
	info := lease.LeaseInfo{Name: "job", UID: "u", HolderInfo: lease.HolderInfo{ResourceVersion: "1"}}
	for name, err := range map[string]error{
		"ReadLease nil cfg":      func() error { _, err := lease.ReadLease(ctx, nil, "", "job"); return err }(),
		"ReadLease bad name":     func() error { _, err := lease.ReadLease(ctx, cfg, "", "Bad_Name"); return err }(),
		"ReadLease bad ns":       func() error { _, err := lease.ReadLease(ctx, cfg, "Bad_NS", "job"); return err }(),
		"ListLeases nil cfg":     func() error { _, err := lease.ListLeases(ctx, nil, "", ""); return err }(),
		"ListLeases bad ns":      func() error { _, err := lease.ListLeases(ctx, cfg, "Bad_NS", ""); return err }(),
		"ForceRelease nil cfg":   lease.ForceRelease(ctx, nil, info),
		"ForceRelease no UID":    lease.ForceRelease(ctx, cfg, lease.LeaseInfo{Name: "job"}),
		"RequestHandoff nil cfg": lease.RequestHandoff(ctx, nil, "", "job", "pod-b"),
		"RequestHandoff no to":   lease.RequestHandoff(ctx, cfg, "", "job", ""),
	} {
		require.ErrorIs(t, err, lease.ErrInvalidSettings, name)
		assert.NotContains(t, err.Error(), "\n", name)
	}
}
