package lease

import (
	"maps"

	"github.com/kubelease/lease/internal/wire"
)

// changeSet is what changed for one onChange reader since it last asked:
// the names of the Leases that changed, or all (a list replaced what was
// known, or the status changed).
type changeSet struct {
	names map[string]struct{}
	all   bool
}

// onChange registers a reader of the whole selection (a ShardSet's view of
// its members and shards) and starts w. The channel receives (without
// blocking w: it has room for one) after every change of what w knows or
// of its status; changed then says what changed. stop unregisters it.
func (w *NamespaceWatch) onChange() (ch <-chan struct{}, changed func() (names []string, all bool), stop func()) {
	c := make(chan struct{}, 1)
	cs := &changeSet{names: map[string]struct{}{}, all: true}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watchers == nil {
		w.watchers = map[chan struct{}]*changeSet{}
	}
	w.watchers[c] = cs
	w.startLocked()
	changed = func() ([]string, bool) {
		w.mu.Lock()
		defer w.mu.Unlock()
		names, all := make([]string, 0, len(cs.names)), cs.all
		for n := range cs.names {
			names = append(names, n)
		}
		clear(cs.names)
		cs.all = false
		return names, all
	}
	stop = func() {
		w.mu.Lock()
		delete(w.watchers, c)
		w.mu.Unlock()
	}
	return c, changed, stop
}

// pokeLocked tells every onChange reader that the Leases named in changed
// changed, or, when all is set, that everything may have.
func (w *NamespaceWatch) pokeLocked(changed []string, all bool) {
	if !all && len(changed) == 0 {
		return
	}
	for c, cs := range w.watchers {
		if all {
			cs.all = true
		} else {
			for _, n := range changed {
				cs.names[n] = struct{}{}
			}
		}
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// snapshot returns the selected Leases by name (a copy of the map; the
// objects are shared and must not be modified) and whether w is current.
func (w *NamespaceWatch) snapshot() (map[string]*wire.Lease, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.leases), w.synced && !w.refused
}

// lookup returns what w knows of the Leases named (nil for each it does not
// have) and whether w is current.
func (w *NamespaceWatch) lookup(names []string) ([]*wire.Lease, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*wire.Lease, len(names))
	for i, n := range names {
		out[i] = w.leases[n]
	}
	return out, w.synced && !w.refused
}

// listRefused reports whether w's last list was refused (403 and the
// like): it then polls, and its leases watch alone.
func (w *NamespaceWatch) listRefused() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.refused
}
