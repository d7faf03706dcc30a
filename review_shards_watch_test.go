package lease_test

import (
	"context"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"
)

// Review: a member that may not list Leases (RBAC without "list") once
// announced itself, so the others handed it its share of the shards, which
// it never started, its watch never being current: those shards ran
// nowhere. Now a member announces itself only while it sees the set: b
// never does, and every shard stays on a.
func TestReviewShardsListRefusedMemberOrphansShards(t *testing.T) {
	e := newEnv(t)
	e.srv.AddUser("no-list", "get", "create", "update", "delete", "watch")
	r := newShardRig(e, 8)
	r.join("a")
	r.settled(t, nil, "a")
	bclk := clocktesting.NewFakeClock(epoch)
	b := r.joinWith("b", bclk, func(s *lease.Settings) {
		s.Config.BearerToken = "no-list"
	}, lease.ShardOptions{})
	// b's watch tries to list (refused) and falls back; let its clock run
	// through several poll intervals: b must never announce itself.
	for range 40 {
		bclk.Step(500 * time.Millisecond)
		got, _ := r.settledWithin(10*time.Millisecond, nil, "a")
		require.Len(t, got, 8, "a shard stopped running while b could not see the set: %v", got)
		require.False(t, b.set.Status().Announced, "b announced itself without seeing the set")
	}
	_, exists := r.e.srv.Get("default", lease.MemberLeaseName("orders", "b"))
	require.False(t, exists, "b wrote its member Lease")
}

// Review: ShardSet.Close during Run once left Run running, announced, with
// a closed watch, so shards that moved to it ran nowhere. Close now ends
// the Run (cause ErrClosed), which withdraws.
func TestReviewShardsCloseDuringRunOrphansShards(t *testing.T) {
	e := newEnv(t)
	r := newShardRig(e, 8)
	a := r.join("a")
	b := r.join("b")
	r.settled(t, nil, "a", "b")
	b.set.Close()
	select {
	case err := <-b.done:
		b.done <- err
		require.ErrorIs(t, err, lease.ErrClosed)
	case <-time.After(waitFor):
		t.Fatal("Run did not return after Close")
	}
	r.settled(t, nil, "a")
	require.True(t, a.set.Status().Announced)
	require.ErrorIs(t, b.set.Run(e.ctx(), func(context.Context, string, lease.Token) error { return nil }, lease.ShardOptions{}), lease.ErrClosed)
}
