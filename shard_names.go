package lease

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// Labels that a ShardSet and a Semaphore put on the Leases they write, so
// that one NamespaceWatch per set sees them all and kubectl can list them
// (kubectl get leases -l kubelease.io/shard-set=orders).
const (
	// LabelShardSet names the shard set a Lease belongs to.
	LabelShardSet = "kubelease.io/shard-set"
	// LabelSemaphore names the semaphore a slot Lease belongs to.
	LabelSemaphore = "kubelease.io/semaphore"
	// LabelRole says what a Lease of a set is: RoleMember (a member's
	// announcement), RoleShard (one shard) or RoleSlot (a semaphore slot).
	LabelRole = "kubelease.io/role"
)

// Values of LabelRole.
const (
	RoleMember = "member"
	RoleShard  = "shard"
	RoleSlot   = "slot"
)

// maxSetName is the longest set or semaphore name: it is a label value
// (at most 63) and the start of every Lease name of the set.
const maxSetName = 63

// maxShardPart is the longest part of a shard Lease's name taken from the
// shard's own name, before the hash suffix.
const maxShardPart = 40

// nameHash is a short, stable hash of s for Lease names: 10 hex digits of
// its SHA-256 (40 bits).
func nameHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:5])
}

// ShardLeaseName is the name of the Lease of shard in shard set set:
// "<set>-s-<shard, made DNS-safe and cut to 40 characters>-<10 hex digits of
// its SHA-256>". The suffix keeps names distinct when two shard names
// differ only in characters a Lease name cannot hold, or beyond the cut.
func ShardLeaseName(set, shard string) string {
	if part := dnsPart(shard, maxShardPart); part != "" {
		return set + "-s-" + part + "-" + nameHash(shard)
	}
	return set + "-s-" + nameHash(shard)
}

// MemberLeaseName is the name of the Lease by which the member owner
// announces itself in shard set set: "<set>-m-<10 hex digits of the
// SHA-256 of owner>".
func MemberLeaseName(set, owner string) string {
	return set + "-m-" + nameHash(owner)
}

// SlotLeaseName is the name of the Lease of slot i (from 0) of semaphore
// name: "<name>-slot-<i>".
func SlotLeaseName(name string, i int) string {
	return name + "-slot-" + strconv.Itoa(i)
}

// dnsPart makes s usable inside a DNS-1123 name: lower case, every run of
// characters other than a-z and 0-9 turned into one '-', cut to at most
// max characters, with no '-' at either end. It may return "".
func dnsPart(s string, max int) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		default:
			dash = true
		}
		if b.Len() >= max {
			break
		}
	}
	out := b.String()
	if len(out) > max {
		out = out[:max]
	}
	return strings.Trim(out, "-")
}
