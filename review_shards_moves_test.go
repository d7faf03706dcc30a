package lease_test

import (
	"errors"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"
)

// Review: when a member loses its own member Lease (deleted by a third
// party here; also a deadline loss after a brief outage), reconcile takes
// "not announced" as "assigned elsewhere": every work is cancelled with
// errReassigned ("the shard was assigned to another member") and counted
// in MovedOut ("shards it gave up because they were assigned elsewhere"),
// though it is the only member and no other member exists to take them.
func TestReviewShardsMemberLossIsNotAReassignment(t *testing.T) {
	e := newEnv(t)
	r := newShardRig(e, 3)
	clk := clocktesting.NewFakeClock(epoch)
	a := r.joinOn("a", clk)
	r.settled(t, nil, "a")
	require.NoError(t, e.srv.Delete("default", lease.MemberLeaseName("orders", "a")))
	// a's next renewal of its member Lease finds it gone: step a's clock
	// until a work is stopped.
	deadline := time.After(waitFor)
	for {
		r.mu.Lock()
		n := len(r.causes)
		r.mu.Unlock()
		if n > 0 {
			break
		}
		select {
		case <-r.poke:
		case <-time.After(10 * time.Millisecond):
			clk.Step(500 * time.Millisecond)
		case <-deadline:
			t.Fatal("no work stopped after a's member Lease was deleted")
		}
	}
	r.mu.Lock()
	cause := r.causes[0]
	r.mu.Unlock()
	st := a.set.Status()
	require.False(t, errors.Is(cause, lease.ErrNotHeld) && st.MovedOut > 0 && len(st.Members) <= 1,
		"a, the only member, stopped its works with cause %q and MovedOut=%d (members %v): the loss of its "+
			"member Lease is reported as a move to another member (shard_run.go:163-165, 211-218)", cause, st.MovedOut, st.Members)
}
