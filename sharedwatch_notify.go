package lease

import (
	"maps"

	"github.com/kubelease/lease/internal/wire"
)

// onChange returns a channel that receives (without blocking w: it has
// room for one) after every change of what w knows or of its status, for
// a reader of the whole selection (a ShardSet's view of its members), and
// a function that stops it. It starts w.
func (w *NamespaceWatch) onChange() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.watchers == nil {
		w.watchers = map[chan struct{}]struct{}{}
	}
	w.watchers[ch] = struct{}{}
	w.startLocked()
	return ch, func() {
		w.mu.Lock()
		delete(w.watchers, ch)
		w.mu.Unlock()
	}
}

// pokeLocked tells every onChange reader that something changed.
func (w *NamespaceWatch) pokeLocked() {
	for ch := range w.watchers {
		select {
		case ch <- struct{}{}:
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
