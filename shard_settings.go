package lease

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// MaxShards caps ShardSettings.Shards: the assignment scores every
// (shard, member) pair at each change of membership.
const MaxShards = 10000

// ShardSettings configure a ShardSet. A ShardSettings value is copied by
// NewShardSet; changing it afterwards has no effect.
type ShardSettings struct {
	// Set names the shard set: every process that runs a ShardSet with
	// this name (in the same namespace) is a member of it. It must be a
	// DNS-1123 label (lower case letters, digits and '-', at most 63
	// characters); it labels every Lease of the set (LabelShardSet) and
	// starts their names.
	Set string
	// Shards are the names of the shards, any non-empty strings, each once.
	// Every member must be given the same list (in any order): the
	// assignment is computed from it. At most MaxShards.
	Shards []string
	// Lease is the template for every Lease the set writes: its member
	// Lease and one Lease per shard. Owner (unique per live process) and
	// Config are required; Namespace, TTL, RenewalInterval,
	// AcquireRetries, MaxClockSkew, WatchWhileHolding, Clock, Logger and
	// Observer apply to each Lease as they do to a KubernetesLease (one
	// Observer sees the events of all of them; for per-set metrics use
	// ShardSet.Status, or the Prometheus adapter's ShardCollector). Name,
	// Labels and SharedWatch must be left empty: the set names and labels
	// its Leases (ShardLeaseName, MemberLeaseName) and watches them all with
	// one NamespaceWatch of its own.
	Lease Settings
}

// Validate reports every invalid field of s, naming the field and its
// value, on one line. The error matches ErrInvalidSettings.
func (s ShardSettings) Validate() error {
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	problems = append(problems, setNameProblems("Set", s.Set)...)
	switch {
	case len(s.Shards) == 0:
		bad("Shards is empty; list the shards to spread over the members")
	case len(s.Shards) > MaxShards:
		bad("Shards has %d entries, more than MaxShards %d", len(s.Shards), MaxShards)
	}
	seen := make(map[string]int, len(s.Shards))
	names := make(map[string]string, len(s.Shards))
	for i, sh := range s.Shards {
		if sh == "" {
			bad("Shards[%d] is empty", i)
			continue
		}
		if j, dup := seen[sh]; dup {
			bad("Shards[%d] %q repeats Shards[%d]", i, sh, j)
			continue
		}
		seen[sh] = i
		if s.Set != "" {
			n := ShardLeaseName(s.Set, sh)
			if other, clash := names[n]; clash {
				bad("Shards %q and %q have the same Lease name %q; rename one", other, sh, n)
			}
			names[n] = sh
		}
	}
	problems = append(problems, templateProblems(s.Lease)...)
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: shard set: %s", ErrInvalidSettings, strings.Join(problems, "; "))
}

// setNameProblems says why name, the field, cannot name a shard set or a
// semaphore.
func setNameProblems(field, name string) []string {
	if name == "" {
		return []string{field + " is empty"}
	}
	if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
		return []string{fmt.Sprintf("%s %q is not a DNS-1123 label (lower case letters, digits and '-', at most %d characters): %s", field, name, maxSetName, msgs[0])}
	}
	return nil
}

// templateProblems checks the Lease template of a set or a semaphore:
// Settings.Validate's checks, with the fields the set fills in left out.
func templateProblems(t Settings) []string {
	var problems []string
	if t.Name != "" {
		problems = append(problems, fmt.Sprintf("Lease.Name %q must be empty (the set names its Leases)", t.Name))
	}
	if len(t.Labels) > 0 {
		problems = append(problems, fmt.Sprintf("Lease.Labels %v must be empty (the set labels its Leases)", t.Labels))
	}
	if t.SharedWatch != nil {
		problems = append(problems, "Lease.SharedWatch must be nil (the set watches its Leases itself)")
	}
	t.Name, t.Labels, t.SharedWatch = "x", nil, nil
	if err := t.Validate(); err != nil {
		msg := strings.TrimPrefix(err.Error(), ErrInvalidSettings.Error()+": ")
		for _, p := range strings.Split(msg, "; ") {
			problems = append(problems, "Lease."+p)
		}
	}
	return problems
}

// ShardOptions configure ShardSet.Run. The zero value uses the defaults.
type ShardOptions struct {
	// GracePeriod bounds the wait for a shard's work to return once its
	// context is cancelled (0: DefaultGracePeriod).
	GracePeriod time.Duration
	// MaxBackoff caps the backoff after errors, and before a shard whose
	// work returned by itself is started again (0: DefaultMaxBackoff).
	MaxBackoff time.Duration

	// OnStarted is called just before a shard's work starts, with the
	// shard and its tenure's token. It must not block.
	OnStarted func(shard string, token Token)
	// OnStopped is called after a shard's work has returned and before
	// the shard's Lease is released, with why it was stopped (as
	// SingletonOptions.OnStopped). It must not block.
	OnStopped func(shard string, token Token, reason error)
	// OnAssigned is called, on the set's goroutine, each time the
	// assignment changes as this member sees it: the live members (sorted,
	// this one included while it is announced) and the shards assigned to
	// this member (sorted). It must not block.
	OnAssigned func(members, mine []string)

	// Logger receives the set's events (nil: Lease.Logger of the settings).
	Logger *slog.Logger
}

// setLeases is what a shard set and a semaphore share: their Lease
// template with defaults (its Namespace the one their Leases live in) and
// one NamespaceWatch of their Leases, those labelled key=value.
type setLeases struct {
	tmpl  Settings
	r     resolved
	key   string
	value string
	watch *NamespaceWatch
}

// newSetLeases resolves the template t and makes the watch of the Leases
// labelled key=value. t must be valid (templateProblems).
func newSetLeases(t Settings, key, value string) (setLeases, error) {
	rt := t
	rt.Name = "x" // filled in per Lease
	r := rt.withDefaults()
	w, err := NewNamespaceWatch(t.Config, r.Namespace, key+"="+value,
		NamespaceWatchOptions{Clock: r.Clock, Logger: r.Logger})
	if err != nil {
		return setLeases{}, err
	}
	return setLeases{tmpl: t, r: r, key: key, value: value, watch: w}, nil
}

// lease returns a KubernetesLease named name from the template, labelled
// with the set's label and role, listening to the set's watch.
func (sl setLeases) lease(name, role string) (*KubernetesLease, error) {
	ls := sl.tmpl
	ls.Name = name
	ls.Namespace = sl.r.Namespace
	ls.Labels = map[string]string{sl.key: sl.value, LabelRole: role}
	ls.SharedWatch = sl.watch
	// Who holds what is the assignment's to say (and a semaphore's slots
	// are alike): a planned handoff does not apply.
	ls.DisableHandoff = true
	return NewKubernetesLease(ls)
}
