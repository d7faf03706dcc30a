package lease

import (
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/clock"
)

// Defaults for the zero values of Settings fields, and the caps validation
// enforces.
const (
	// DefaultTTL is the lease duration used when Settings.TTL is 0.
	DefaultTTL = 15 * time.Second
	// DefaultAcquireRetries is the number of 409 retries one Acquire makes
	// when Settings.AcquireRetries is 0.
	DefaultAcquireRetries = 3
	// DefaultMaxClockSkew is the wall-clock disagreement between processes
	// that the expiry fast path tolerates when Settings.MaxClockSkew is 0.
	DefaultMaxClockSkew = time.Second
	// MinTTL is the shortest lease duration accepted.
	MinTTL = time.Second
	// MaxLeaseDuration caps Settings.TTL and Settings.MaxClockSkew, and
	// caps the leaseDurationSeconds read from a Lease written by someone
	// else when judging expiry.
	MaxLeaseDuration = time.Hour
	// MaxRenewAttemptTimeout caps the timeout of one renewal request.
	MaxRenewAttemptTimeout = 10 * time.Second
)

// Settings configure a KubernetesLease. The zero value of every optional
// field means its documented default. A Settings value is copied by
// NewKubernetesLease; changing it afterwards has no effect.
type Settings struct {
	// Name of the Lease object. Required; a DNS-1123 subdomain.
	Name string
	// Namespace of the Lease. Empty: Config.Namespace, else "default".
	Namespace string
	// Owner is written as holderIdentity. Required, and it must be unique
	// per live process: use the pod name plus a random suffix per start.
	Owner string

	// TTL is the lease duration. 0 means DefaultTTL; otherwise at least MinTTL
	// and at most MaxLeaseDuration. It goes on the wire as
	// leaseDurationSeconds, rounded up to whole seconds.
	TTL time.Duration
	// RenewalInterval is the time between renewals. 0 means TTL/3; otherwise
	// positive and below TTL. Each wait is jittered by ±10 %, mean RenewalInterval.
	RenewalInterval time.Duration

	// AcquireRetries is how many times one Acquire re-reads and retries after
	// a 409 before it gives up and returns false, nil. 0 means
	// DefaultAcquireRetries; negative is invalid.
	AcquireRetries int

	// MaxClockSkew is how far wall clocks of contending processes may
	// disagree for the expiry fast path: a record whose renewTime +
	// leaseDurationSeconds + MaxClockSkew is before our wall clock is
	// expired. 0 means DefaultMaxClockSkew; otherwise at most
	// MaxLeaseDuration. Negative (any negative value) turns the fast path
	// off, so that expiry is judged only by observing the record unchanged
	// for its duration on our monotonic clock (safe under any clock offset):
	// write -1, not math.MaxInt64, for "never use the fast path".
	MaxClockSkew time.Duration

	// WatchWhileHolding makes the holder watch its Lease while it holds it,
	// so that a third party's delete or takeover ends the tenure at once
	// (LostDeleted, LostConflict) instead of at the next renewal. It costs
	// one long-lived watch request per held lease. Off by default.
	WatchWhileHolding bool

	// DisableHandoff turns planned handoffs off for this instance: as
	// holder it ignores PreferredHolderAnnotation (and spec.preferredHolder),
	// and as contender it does not defer to another preferred holder. See
	// RequestHandoff.
	DisableHandoff bool
	// HandoffWait is how long a contender defers to the preferred holder a
	// takeable Lease names (a planned handoff whose target has not taken it
	// yet), counted from when it first sees the record so, before it
	// contends as usual. 0 means TTL; otherwise positive and at most
	// MaxLeaseDuration.
	HandoffWait time.Duration

	// Config says where and how to reach the API server. Required: call
	// DefaultConfig explicitly to use the usual discovery.
	Config *Config

	// Clock is the source of time for stamps, timers and request timeouts.
	// nil means the real clock. Tests pass k8s.io/utils/clock/testing's
	// FakeClock.
	Clock clock.WithTicker

	// Logger receives structured events. nil discards them. Tokens and
	// credentials are never logged.
	Logger *slog.Logger

	// Observer receives metrics events (held, renewals, losses). nil: none.
	Observer Observer

	// Labels are put on the Lease by every acquiring write (a create or a
	// takeover) that finds them missing; labels already on the Lease,
	// whoever wrote them, are never changed or removed, and renewals keep
	// them all. Keys and values must be valid Kubernetes label keys and
	// values. They let a NamespaceWatch select the Leases it shares.
	Labels map[string]string

	// EventSource, when set, turns on Kubernetes Events about the Lease, as
	// client-go's leader election records them: it names the component
	// that reports them (source.component and reportingComponent, e.g.
	// "my-operator"; a qualified name of at most 128 bytes). Empty, the
	// default: no events. The lease then posts core/v1 Events in the
	// Lease's namespace, about the Lease: Normal "LeaderElection" "<Owner>
	// became leader" on each acquire, "<Owner> stopped leading" on Release,
	// "<Owner> handed the lease to <target>" on a planned handoff, and
	// Warning "LeaseLost" on a loss (see EventReasonLeaseLost). They are
	// best effort and asynchronous: they never block or fail Acquire,
	// renewals or Release; they need "create" on events (core group), and
	// a refusal is logged once.
	EventSource string

	// SharedWatch, when set, is the NamespaceWatch that Wait and Holder
	// use instead of a watch of this lease's own. It must watch the
	// Lease's namespace, and its label selector must match Labels.
	SharedWatch *NamespaceWatch
}

// Validate reports every invalid field of s, naming the field and its
// value, on one line: "lease: invalid settings: Name is empty; TTL 500ms is
// below the minimum 1s". The error matches ErrInvalidSettings.
func (s Settings) Validate() error {
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	if s.Name == "" {
		bad("Name is empty")
	} else if msgs := validation.IsDNS1123Subdomain(s.Name); len(msgs) > 0 {
		bad("Name %q is not a DNS-1123 subdomain: %s", s.Name, msgs[0])
	}
	if s.Namespace != "" {
		if msg := namespaceProblem(s.Namespace); msg != "" {
			bad("Namespace %s", msg)
		}
	}
	if s.Owner == "" {
		bad("Owner is empty")
	}
	ttl := s.TTL
	switch {
	case ttl == 0:
		ttl = DefaultTTL
	case ttl < MinTTL:
		bad("TTL %v is below the minimum %v", s.TTL, MinTTL)
	case ttl > MaxLeaseDuration:
		bad("TTL %v is above MaxLeaseDuration %v", s.TTL, MaxLeaseDuration)
	}
	switch {
	case s.RenewalInterval < 0:
		bad("RenewalInterval %v is negative", s.RenewalInterval)
	case s.RenewalInterval != 0 && s.RenewalInterval >= ttl:
		bad("RenewalInterval %v is not below TTL %v", s.RenewalInterval, ttl)
	}
	if s.HandoffWait < 0 || s.HandoffWait > MaxLeaseDuration {
		bad("HandoffWait %v is not from 0 to MaxLeaseDuration %v", s.HandoffWait, MaxLeaseDuration)
	}
	if s.AcquireRetries < 0 {
		bad("AcquireRetries %d is negative", s.AcquireRetries)
	}
	if s.MaxClockSkew > MaxLeaseDuration {
		bad("MaxClockSkew %v is above MaxLeaseDuration %v; use a negative value to turn the fast path off", s.MaxClockSkew, MaxLeaseDuration)
	}
	if msg := eventSourceProblem(s.EventSource); msg != "" {
		bad("%s", msg)
	}
	if s.Config == nil {
		bad("Config is nil (call DefaultConfig to discover one)")
	} else if s.Config.Host == "" {
		bad("Config.Host is empty")
	}
	problems = append(problems, s.sharedProblems()...)
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidSettings, strings.Join(problems, "; "))
}

// namespaceProblem says why ns is not a namespace name ("" when it is
// one), starting with ns quoted.
func namespaceProblem(ns string) string {
	if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
		return fmt.Sprintf("%q is not a DNS-1123 label: %s", ns, msgs[0])
	}
	return ""
}

// resolved is Settings with every default filled in; Namespace is the one
// the Lease lives in (Settings.Namespace, else Config.Namespace, else
// "default").
type resolved struct {
	Settings
}

// withDefaults returns s with defaults applied. s must be valid.
func (s Settings) withDefaults() resolved {
	if s.TTL == 0 {
		s.TTL = DefaultTTL
	}
	if s.RenewalInterval == 0 {
		s.RenewalInterval = s.TTL / 3
	}
	if s.HandoffWait == 0 {
		s.HandoffWait = s.TTL
	}
	if s.AcquireRetries == 0 {
		s.AcquireRetries = DefaultAcquireRetries
	}
	if s.MaxClockSkew == 0 {
		s.MaxClockSkew = DefaultMaxClockSkew
	}
	if s.Clock == nil {
		s.Clock = clock.RealClock{}
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Observer == nil {
		s.Observer = nopObserver{}
	}
	if s.Namespace == "" {
		s.Namespace = s.Config.Namespace
	}
	if s.Namespace == "" {
		s.Namespace = "default"
	}
	s.Labels = maps.Clone(s.Labels)
	return resolved{Settings: s}
}

// margin is how much earlier than TTL after its stamp a holder stops
// believing it holds the lease: 2 % of TTL. It absorbs clock rate
// differences between the holder and its contenders.
func margin(ttl time.Duration) time.Duration { return ttl / 50 }

// wireSeconds is TTL rounded up to whole seconds, as leaseDurationSeconds.
func wireSeconds(ttl time.Duration) int32 {
	return int32((ttl + time.Second - 1) / time.Second)
}
