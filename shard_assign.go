package lease

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

// AssignShards returns which member owns each shard: a deterministic
// function of the two lists (their order does not matter), which every
// member of a shard set computes alike from the members it sees live.
//
// It is rendezvous hashing with exact quotas. Every (shard, member) pair
// gets a score, the first 8 bytes of SHA-256(member NUL shard); pairs are
// taken from the highest score down, and a shard goes to the member of its
// pair unless it already has an owner or the member is full. With N shards
// and M members a member is full at ⌈N/M⌉ shards, or at ⌊N/M⌋ once N mod M
// members have ⌈N/M⌉: so every member owns ⌊N/M⌋ or ⌈N/M⌉ shards
// (max − min ≤ 1), and since each shard goes to the member that scores it
// highest unless that member is full, a member joining or leaving moves
// about N/M shards rather than reshuffling all of them.
//
// Duplicate shards or members count once; the empty member is ignored. The
// result is empty when there are no members.
func AssignShards(shards, members []string) map[string]string {
	shards = uniqueSorted(shards, true)
	members = uniqueSorted(members, false)
	out := make(map[string]string, len(shards))
	if len(members) == 0 || len(shards) == 0 {
		return out
	}
	type pair struct {
		score  uint64
		shard  int
		member int
	}
	pairs := make([]pair, 0, len(shards)*len(members))
	for mi, m := range members {
		h := sha256.New()
		for si, s := range shards {
			h.Reset()
			h.Write([]byte(m))
			h.Write([]byte{0})
			h.Write([]byte(s))
			var sum [sha256.Size]byte
			pairs = append(pairs, pair{binary.BigEndian.Uint64(h.Sum(sum[:0])), si, mi})
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		if c := cmp.Compare(a.shard, b.shard); c != 0 {
			return c
		}
		return cmp.Compare(a.member, b.member)
	})
	q, r := len(shards)/len(members), len(shards)%len(members)
	count := make([]int, len(members))
	taken := make([]bool, len(shards))
	atCeil := 0 // members holding q+1 shards
	left := len(shards)
	for _, p := range pairs {
		if taken[p.shard] {
			continue
		}
		switch c := count[p.member]; {
		case c < q:
		case c == q && atCeil < r:
			atCeil++
		default:
			continue
		}
		count[p.member]++
		taken[p.shard] = true
		out[shards[p.shard]] = members[p.member]
		if left--; left == 0 {
			break
		}
	}
	return out
}

// uniqueSorted returns a sorted copy of xs without duplicates, and without
// "" unless keepEmpty.
func uniqueSorted(xs []string, keepEmpty bool) []string {
	out := slices.Clone(xs)
	if !keepEmpty {
		out = slices.DeleteFunc(out, func(s string) bool { return s == "" })
	}
	slices.Sort(out)
	return slices.Compact(out)
}
