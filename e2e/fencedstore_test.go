package e2e

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/kubelease/lease"
)

// fencedStore is the resource the partition campaign's works write to: an
// HTTP endpoint on 127.0.0.1 in the test process, so that its order of
// receipt is one clock for every contender. It keeps the highest token it
// has seen and refuses (409, recorded as stale) a write with a smaller one;
// a write with an equal or greater token is accepted (200) and raises the
// highest. Every write is recorded with the time the store received it.
//
//	POST /write  owner=<owner> token=<rv/transitions> kind=work|late seq=<n> ts=<writer's Unix ns>
type fencedStore struct {
	srv *http.Server
	ln  net.Listener

	mu      sync.Mutex
	max     lease.Token
	entries []storeEntry
}

// storeEntry is one write as the store received it.
type storeEntry struct {
	Owner    string
	Token    lease.Token
	Kind     string // "work": from a live work; "late": the deliberate late write after a stop
	Seq      int
	TS       int64     // writer's wall clock when it sent the write (Unix ns)
	Recv     time.Time // the store's clock on receipt
	Accepted bool
}

func newFencedStore() (*fencedStore, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &fencedStore{ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /write", s.write)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// URL is the store's base URL, http://127.0.0.1:port.
func (s *fencedStore) URL() string { return "http://" + s.ln.Addr().String() }

func (s *fencedStore) Close() { s.srv.Close() }

func (s *fencedStore) write(w http.ResponseWriter, r *http.Request) {
	tok, err := lease.ParseToken(r.FormValue("token"))
	seq, err2 := strconv.Atoi(r.FormValue("seq"))
	ts, err3 := strconv.ParseInt(r.FormValue("ts"), 10, 64)
	if err := errors.Join(err, err2, err3); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	e := storeEntry{Owner: r.FormValue("owner"), Token: tok, Kind: r.FormValue("kind"), Seq: seq, TS: ts}
	s.mu.Lock()
	e.Recv = time.Now()
	e.Accepted = true
	if !s.max.IsZero() {
		c, err := tok.Compare(s.max)
		if err != nil {
			s.mu.Unlock()
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		e.Accepted = c >= 0
	}
	if e.Accepted {
		s.max = tok
	}
	s.entries = append(s.entries, e)
	s.mu.Unlock()
	if !e.Accepted {
		http.Error(w, "stale token", http.StatusConflict)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// Max returns the highest token accepted so far.
func (s *fencedStore) Max() lease.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max
}

// Entries returns every write received so far, in order of receipt.
func (s *fencedStore) Entries() []storeEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]storeEntry(nil), s.entries...)
}
