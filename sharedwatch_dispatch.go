package lease

import "github.com/kubelease/lease/internal/wire"

// sharedNews is what a NamespaceWatch tells one subscriber: its status and,
// when state is set, what it knows of the subscriber's Lease.
type sharedNews struct {
	live    bool // the watch is current (listed, and a stream or polling keeps it so)
	refused bool // listing is refused (or the watch closed): watch alone
	state   bool // obj and rv are set
	obj     *wire.Lease
	rv      string // the resourceVersion at which obj (nil: no Lease) is known
}

// delivery is news for one subscriber.
type delivery struct {
	l  *KubernetesLease
	sb *standby
	n  sharedNews
}

// apply records one watch event and tells the subscribers of its Lease.
// An object that leaves the selection (a DELETED event, or one w would not
// select) is no Lease.
func (w *NamespaceWatch) apply(typ string, obj *wire.Lease) {
	w.mu.Lock()
	wasLive := w.synced
	w.synced = true
	if obj.ResourceVersion != "" {
		w.rv = obj.ResourceVersion
	}
	var changed []string
	if typ != "BOOKMARK" && obj.Name != "" {
		if typ == "DELETED" || !w.selects(obj) {
			delete(w.leases, obj.Name)
		} else {
			w.leases[obj.Name] = obj
		}
		changed = []string{obj.Name}
	}
	out := w.deliveriesLocked(changed, !wasLive)
	w.pokeLocked(changed, !wasLive)
	w.mu.Unlock()
	deliver(out)
}

// replace makes items, listed at resourceVersion rv, what w knows, and
// tells the subscribers of each Lease that changed (of every Lease, and
// every subscriber its status, when w was not current).
func (w *NamespaceWatch) replace(items []*wire.Lease, rv string) {
	w.mu.Lock()
	old, wasLive, wasRefused := w.leases, w.synced, w.refused
	w.leases = make(map[string]*wire.Lease, len(items))
	for _, obj := range items {
		if w.selects(obj) {
			w.leases[obj.Name] = obj
		}
	}
	w.rv, w.synced, w.refused = rv, true, false
	var changed []string
	for name := range w.subs {
		o, n := old[name], w.leases[name]
		if !wasLive || (o == nil) != (n == nil) || (o != nil && o.ResourceVersion != n.ResourceVersion) {
			changed = append(changed, name)
		}
	}
	out := w.deliveriesLocked(changed, !wasLive || wasRefused)
	w.pokeLocked(nil, true)
	w.mu.Unlock()
	deliver(out)
}

// setStatus records whether w is current and whether listing is refused,
// and tells every subscriber when that changed.
func (w *NamespaceWatch) setStatus(live, refused bool) {
	w.mu.Lock()
	if w.synced == live && w.refused == refused {
		w.mu.Unlock()
		return
	}
	w.synced, w.refused = live, refused
	out := w.deliveriesLocked(nil, true)
	w.pokeLocked(nil, true)
	w.mu.Unlock()
	deliver(out)
}

// deliveriesLocked returns the news for the subscribers of the Leases
// named in changed, with their state, and, when all is set, for every
// other subscriber, with w's status only.
func (w *NamespaceWatch) deliveriesLocked(changed []string, all bool) []delivery {
	var out []delivery
	add := func(name string, state bool) {
		for sb, l := range w.subs[name] {
			out = append(out, delivery{l: l, sb: sb, n: w.newsLocked(name, state)})
		}
	}
	if !all {
		for _, name := range changed {
			add(name, true)
		}
		return out
	}
	isChanged := make(map[string]bool, len(changed))
	for _, name := range changed {
		isChanged[name] = true
	}
	for name := range w.subs {
		add(name, isChanged[name])
	}
	return out
}

// deliver hands out news, in order, each under its lease's lock (w.mu is
// not held: a lease takes w.mu under its own lock when it subscribes).
func deliver(out []delivery) {
	for _, d := range out {
		d.l.hearShared(d.sb, d.n)
	}
}
