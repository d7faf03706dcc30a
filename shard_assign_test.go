package lease_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/kubelease/lease"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/util/validation"
)

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// spread returns how many shards each member owns, members with none
// included.
func spread(a map[string]string, members []string) []int {
	count := map[string]int{}
	for _, m := range a {
		count[m]++
	}
	out := make([]int, 0, len(members))
	for _, m := range members {
		out = append(out, count[m])
	}
	return out
}

func moved(a, b map[string]string) int {
	n := 0
	for s, m := range a {
		if b[s] != m {
			n++
		}
	}
	return n
}

func TestAssignShardsBalancedAndComplete(t *testing.T) {
	for _, c := range []struct{ shards, members int }{
		{1, 1}, {1, 3}, {12, 5}, {100, 5}, {100, 6}, {100, 7}, {1000, 10}, {7, 7}, {3, 10},
	} {
		shards, members := numbered("s", c.shards), numbered("m", c.members)
		a := lease.AssignShards(shards, members)
		require.Len(t, a, c.shards, "%+v: every shard has an owner", c)
		for s, m := range a {
			require.Contains(t, shards, s)
			require.Contains(t, members, m)
		}
		sp := spread(a, members)
		require.LessOrEqual(t, slices.Max(sp)-slices.Min(sp), 1, "%+v: spread %v", c, sp)
	}
}

func TestAssignShardsDeterministic(t *testing.T) {
	shards, members := numbered("s", 50), numbered("m", 4)
	want := lease.AssignShards(shards, members)
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		s2, m2 := slices.Clone(shards), slices.Clone(members)
		r.Shuffle(len(s2), func(i, j int) { s2[i], s2[j] = s2[j], s2[i] })
		r.Shuffle(len(m2), func(i, j int) { m2[i], m2[j] = m2[j], m2[i] })
		m2 = append(m2, m2[0], "") // duplicates and "" do not count
		require.Equal(t, want, lease.AssignShards(s2, m2))
	}
	require.Empty(t, lease.AssignShards(shards, nil))
	require.Empty(t, lease.AssignShards(nil, members))
}

// A join or a leave moves few more shards than the ideal N/(M+1): the
// assignment is not reshuffled.
func TestAssignShardsMovesFew(t *testing.T) {
	for _, c := range []struct{ shards, members int }{{100, 5}, {12, 3}, {1000, 10}, {60, 2}} {
		shards, members := numbered("s", c.shards), numbered("m", c.members)
		before := lease.AssignShards(shards, members)
		joined := lease.AssignShards(shards, append(slices.Clone(members), "new"))
		ideal := float64(c.shards) / float64(c.members+1)
		got := moved(before, joined)
		t.Logf("%d shards over %d members: a join moves %d (ideal %.1f)", c.shards, c.members, got, ideal)
		require.LessOrEqual(t, float64(got), 1.5*ideal+1, "join of %+v", c)
		left := lease.AssignShards(shards, members[1:])
		got = moved(before, left)
		ideal = float64(c.shards) / float64(c.members)
		t.Logf("%d shards over %d members: a leave moves %d (ideal %.1f)", c.shards, c.members, got, ideal)
		require.LessOrEqual(t, float64(got), 1.5*ideal+1, "leave of %+v", c)
	}
}

func BenchmarkAssignShards1000x10(b *testing.B) {
	shards, members := numbered("s", 1000), numbered("m", 10)
	for b.Loop() {
		lease.AssignShards(shards, members)
	}
}

// validationProblems are the reasons name is not a valid Lease name.
func validationProblems(name string) []string {
	return validation.IsDNS1123Subdomain(name)
}
