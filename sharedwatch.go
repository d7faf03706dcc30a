package lease

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/kubelease/lease/internal/wire"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/clock"
)

// DefaultNamespacePollInterval is how often a NamespaceWatch lists the
// Leases while the API server refuses to watch them, when
// NamespaceWatchOptions.PollInterval is 0: the renewal interval at the
// default TTL.
const DefaultNamespacePollInterval = DefaultTTL / 3

// NamespaceWatch is one list+watch of the Leases of a namespace that a
// label selector selects, shared by many KubernetesLeases (each with
// Settings.SharedWatch set to it): a process that contends for many Leases
// (a shard set, a lease per tenant) then keeps one watch open instead of
// one per Lease.
//
// It lists the selected Leases (the list's resourceVersion is where the
// watch starts), then watches from there with bookmarks, resuming from the
// last resourceVersion seen after a stream ends, listing afresh after a 410
// (compacted), and reconnecting with jittered backoff after errors. Each
// event goes, by Lease name, to the leases subscribed to that name: it
// counts as an observation received at that moment for the expiry rules (as
// a lease's own GET or watch would), wakes their Waits, and reports holder
// changes to OnHolderChange. A name absent from the list is "no Lease".
// When the server refuses to watch (403 without the "watch" verb, a proxy
// that does not serve watches), which is logged once, it lists every
// PollInterval instead, and tries to watch again every minute. When it
// may not list, leases watch their Lease alone (which a Role restricted by
// resourceNames may allow), and it tries to list again every PollInterval.
//
// A lease subscribes while it stands by (from its Wait until it acquires,
// Releases, or one TTL after its last Wait), as it would open a watch of its
// own. The NamespaceWatch runs from Start or the first subscription until
// Close, whether or not leases are subscribed: an idle one costs one open
// stream, which kube-apiserver ends every 30–60 minutes and which resumes
// with one request. It needs "list" and "watch" on leases in its namespace,
// which a Role cannot restrict by resourceNames (a per-lease watch can be).
//
// A NamespaceWatch is safe for concurrent use.
type NamespaceWatch struct {
	ns       string
	selector string // the labelSelector sent, as given
	sel      labels.Selector
	rest     *restClient
	clock    clock.WithTicker
	log      *slog.Logger
	poll     time.Duration

	mu     sync.Mutex // guards the fields below; leases take it under their mu, never the reverse
	closed bool
	cancel context.CancelFunc // stops the goroutine; nil until it starts
	done   chan struct{}      // closed when the goroutine has returned; nil until it starts
	// leases are the selected Leases by name, as last listed or watched;
	// the objects are never modified (leases keep them as seen).
	leases map[string]*wire.Lease
	rv     string // the resourceVersion leases is current at
	synced bool   // leases is current: listed, and kept current by a stream or polling
	// refused is set while listing is refused: leases watch alone.
	refused bool
	// subs are the leases standing by, by Lease name.
	subs map[string]map[*standby]*KubernetesLease
	// watchers hear of every change (onChange); nil until the first.
	watchers map[chan struct{}]*changeSet
}

// NamespaceWatchOptions are the optional settings of a NamespaceWatch. The
// zero value means every default.
type NamespaceWatchOptions struct {
	// PollInterval is how often the Leases are listed while the server
	// refuses to watch them. 0 means DefaultNamespacePollInterval;
	// otherwise at least one second.
	PollInterval time.Duration
	// Clock is the source of time for timeouts, backoff and polling, and
	// for nothing else (each lease stamps what it receives on its own
	// clock). nil means the real clock.
	Clock clock.WithTicker
	// Logger receives the watch's events (a refused watch, errors). nil
	// discards them.
	Logger *slog.Logger
}

// NewNamespaceWatch returns a watch of the Leases in namespace (""
// means cfg's namespace, else "default") that labelSelector selects (in
// the syntax of kubectl's -l; "" selects all), reached through cfg. It
// validates its arguments, naming each bad one, and makes no request until
// Start or the first Wait of a lease that uses it. The error matches
// ErrInvalidSettings. Close it when done.
func NewNamespaceWatch(cfg *Config, namespace, labelSelector string, opts NamespaceWatchOptions) (*NamespaceWatch, error) {
	var problems []string
	if cfg == nil {
		problems = append(problems, "Config is nil (call DefaultConfig to discover one)")
	} else if cfg.Host == "" {
		problems = append(problems, "Config.Host is empty")
	}
	ns := namespace
	if ns == "" && cfg != nil {
		ns = cfg.Namespace
	}
	if ns == "" {
		ns = "default"
	}
	if msg := namespaceProblem(ns); msg != "" {
		problems = append(problems, "namespace "+msg)
	}
	sel, err := labels.Parse(labelSelector)
	if err != nil {
		problems = append(problems, fmt.Sprintf("labelSelector %q: %v", labelSelector, err))
	}
	if opts.PollInterval != 0 && opts.PollInterval < time.Second {
		problems = append(problems, fmt.Sprintf("PollInterval %v is below 1s", opts.PollInterval))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: namespace watch: %s", ErrInvalidSettings, strings.Join(problems, "; "))
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = DefaultNamespacePollInterval
	}
	// The connection is set up as a lease's at the default TTL, so that
	// leases at that TTL share its connection pool.
	r := Settings{Config: cfg, Namespace: ns, Clock: opts.Clock, Logger: opts.Logger}.withDefaults()
	rest, err := newRESTClient(cfg, r)
	if err != nil {
		return nil, invalidSettings(err)
	}
	return &NamespaceWatch{
		ns:       ns,
		selector: labelSelector,
		sel:      sel,
		rest:     rest,
		clock:    r.Clock,
		log:      r.Logger.With("namespace", ns, "labelSelector", labelSelector),
		poll:     opts.PollInterval,
		leases:   map[string]*wire.Lease{},
		subs:     map[string]map[*standby]*KubernetesLease{},
	}, nil
}

// Start starts listing and watching now, rather than at the first Wait of
// a lease that uses w. It does nothing when w runs already or was closed.
func (w *NamespaceWatch) Start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.startLocked()
}

func (w *NamespaceWatch) startLocked() {
	if w.done != nil || w.closed {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel, w.done = cancel, make(chan struct{})
	go w.run(ctx)
}

// Close stops w and waits for its goroutine to return; it is idempotent.
// Leases still standing by on w then poll, as when the server refuses to
// watch, until their next Wait, which opens a watch of their own.
func (w *NamespaceWatch) Close() {
	w.mu.Lock()
	if w.closed {
		done := w.done
		w.mu.Unlock()
		if done != nil {
			<-done
		}
		return
	}
	w.closed, w.synced = true, false
	w.pokeLocked(nil, true)
	cancel, done := w.cancel, w.done
	subs := w.subs
	w.subs = map[string]map[*standby]*KubernetesLease{}
	w.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	for _, set := range subs {
		for sb, l := range set {
			l.sharedClosed(sb)
		}
	}
}

// subscribe makes sb, the standby of lease l, hear about the Lease name,
// starting w if needed, and returns what w knows of it now. ok is false
// when w is closed or refused to list.
func (w *NamespaceWatch) subscribe(name string, l *KubernetesLease, sb *standby) (n sharedNews, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.refused {
		return sharedNews{}, false
	}
	w.startLocked()
	set := w.subs[name]
	if set == nil {
		set = map[*standby]*KubernetesLease{}
		w.subs[name] = set
	}
	set[sb] = l
	return w.newsLocked(name, w.synced), true
}

// unsubscribe undoes subscribe.
func (w *NamespaceWatch) unsubscribe(name string, sb *standby) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if set := w.subs[name]; set != nil {
		delete(set, sb)
		if len(set) == 0 {
			delete(w.subs, name)
		}
	}
}

// newsLocked is what w tells a subscriber to name: its status, and the
// Lease's state when withState and w is synced.
func (w *NamespaceWatch) newsLocked(name string, withState bool) sharedNews {
	n := sharedNews{live: w.synced, refused: w.refused}
	if withState && w.synced {
		n.state, n.obj = true, w.leases[name]
		n.rv = w.rv
		if n.obj != nil {
			n.rv = n.obj.ResourceVersion
		}
	}
	return n
}

// selects reports whether w would see obj: it is in w's namespace and
// matches w's selector.
func (w *NamespaceWatch) selects(obj *wire.Lease) bool {
	return (obj.Namespace == "" || obj.Namespace == w.ns) && w.sel.Matches(labels.Set(obj.Labels))
}
