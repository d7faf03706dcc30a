package leasetest

import "context"

// Watchers returns the number of open watch streams. A watch counts from
// the moment it is established, before its response headers are sent (so
// once a client has the headers, the server already counts it and will
// send it every later change), until its stream ends or DropWatches drops
// it.
func (s *Server) Watchers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watchers)
}

// AwaitWatchers blocks until at least n watch streams are open (see
// Watchers), or returns ctx's error. It lets a test wait until a client's
// watch is established before making the change it should see.
func (s *Server) AwaitWatchers(ctx context.Context, n int) error {
	return s.await(ctx, func() bool { return len(s.watchers) >= n })
}

// Bookmark makes every open watch that asked for bookmarks
// (allowWatchBookmarks=true) send a BOOKMARK event at the current global
// resourceVersion, after the events of every change up to it. Each call
// makes one bookmark per such watch.
func (s *Server) Bookmark() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for wt := range s.watchers {
		if wt.bookmarks {
			wt.pending = append(wt.pending, s.rv)
			wt.signal()
		}
	}
}

// DropWatches ends every open watch stream at once, without sending its
// pending events: each body ends cleanly (the client reads EOF), as when a
// real server ends a watch. Watchers counts them no more as soon as
// DropWatches returns, so AwaitWatchers can then wait for the clients to
// watch again. Watches established later are not affected.
func (s *Server) DropWatches() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for wt := range s.watchers {
		wt.dropped = true
		wt.signal()
		delete(s.watchers, wt)
	}
	s.broadcastLocked()
}

// CompactLog forgets the history of changes, as an etcd compaction does: a
// watch from any resourceVersion older than the current global one then
// gets a 410 Expired ERROR event. Open watches are not affected (a real
// server serves them from its watch cache).
func (s *Server) CompactLog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compacted = s.rv
}
