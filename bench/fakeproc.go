package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/kubelease/lease/leasetest"
)

// serverHello is the first line a server child writes on its stdout.
type serverHello struct {
	URL       string `json:"url"`
	CA        []byte `json:"ca"`
	Token     string `json:"token,omitempty"`
	Namespace string `json:"namespace"`
	Control   string `json:"control,omitempty"`
	Version   string `json:"version,omitempty"`
	Err       string `json:"err,omitempty"`
}

// serveFake runs a leasetest.Server over TLS with HTTP/2 (as a real API
// server), plus a plain-HTTP control endpoint for its request counts,
// until the parent is done.
func serveFake() {
	srv := leasetest.NewUnstartedServer()
	srv.StartTLS()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: fake control listener:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /counts", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(srv.Counts())
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, _ *http.Request) {
		srv.ResetCounts()
	})
	mux.HandleFunc("GET /watchers", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(srv.Watchers())
	})
	mux.HandleFunc("POST /hold", func(w http.ResponseWriter, r *http.Request) {
		var h SimHolders
		err := json.NewDecoder(r.Body).Decode(&h)
		if err == nil {
			err = startSimHolders(srv, h)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("GET /renewals", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(simRenewals.Load())
	})
	go func() { _ = http.Serve(ln, mux) }()
	hello := serverHello{URL: srv.URL, CA: srv.Config().CAData, Namespace: "default", Control: "http://" + ln.Addr().String()}
	if err := json.NewEncoder(os.Stdout).Encode(hello); err != nil {
		os.Exit(1)
	}
	awaitParent()
}

// Fake is a leasetest.Server running in a child process. It speaks JSON
// only, so client-go is configured for JSON against it (against a real
// server client-go uses its default, protobuf).
type Fake struct {
	*endpoint
	child   *child
	control string
}

// StartFake starts a fake API server process and returns when it serves.
func StartFake() (*Fake, error) {
	c, err := startChild("fake", nil)
	if err != nil {
		return nil, err
	}
	var hello serverHello
	if err := c.decode(&hello); err != nil {
		c.stop(time.Second)
		return nil, fmt.Errorf("bench: fake API server did not start: %w", err)
	}
	e, err := newEndpoint(hello.URL, "", hello.Namespace, hello.CA)
	if err != nil {
		c.stop(time.Second)
		return nil, err
	}
	e.jsonOnly = true
	return &Fake{endpoint: e, child: c, control: hello.Control}, nil
}

// Name implements Backend.
func (f *Fake) Name() string { return "fake" }

// ServerCounts implements Backend: leasetest.Server.Counts of the child.
func (f *Fake) ServerCounts() (map[string]int, bool) {
	resp, err := http.Get(f.control + "/counts")
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	var m map[string]int
	if json.NewDecoder(resp.Body).Decode(&m) != nil {
		return nil, false
	}
	return m, true
}

// Watchers returns the number of watch streams open at the fake
// (leasetest.Server.Watchers), or -1 when it cannot be read.
func (f *Fake) Watchers() int { return f.getInt("/watchers") }

// Hold makes the fake process hold Leases itself (see SimHolders).
func (f *Fake) Hold(h SimHolders) error {
	data, err := json.Marshal(h)
	if err != nil {
		return err
	}
	resp, err := http.Post(f.control+"/hold", "application/json", bytes.NewReader(data))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("bench: fake: hold: %s", bytes.TrimSpace(msg))
	}
	return nil
}

// SimRenewals returns how many renewals the fake's simulated holders have
// made so far, or -1 when it cannot be read.
func (f *Fake) SimRenewals() int { return f.getInt("/renewals") }

// getInt reads one JSON number from the fake's control path, or -1 when it
// cannot.
func (f *Fake) getInt(path string) int {
	resp, err := http.Get(f.control + path)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	n := -1
	if json.NewDecoder(resp.Body).Decode(&n) != nil {
		return -1
	}
	return n
}

// ResetServerCounts implements Backend.
func (f *Fake) ResetServerCounts() {
	resp, err := http.Post(f.control+"/reset", "", nil)
	if err == nil {
		resp.Body.Close()
	}
}

// Close implements Backend: it ends the child process.
func (f *Fake) Close() {
	f.shared.CloseIdleConnections()
	f.child.stop(5 * time.Second)
}
