package leasetest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
)

// confREST is the suite's own REST client: the third party that reads,
// edits, deletes and creates Leases behind the backs of the leases under
// test. Every request is bounded by realWait; a transport error fails the
// test.
type confREST struct {
	t     *testing.T
	httpc *http.Client
	base  string
	token string
	ns    string
}

// newConfREST returns the third-party client for cfg and namespace ns.
func newConfREST(t *testing.T, cfg *lease.Config, ns string) *confREST {
	t.Helper()
	r := &confREST{t: t, httpc: cfg.HTTPClient, base: strings.TrimSuffix(cfg.Host, "/"), token: cfg.BearerToken, ns: ns}
	if r.httpc == nil {
		r.httpc = http.DefaultClient
	}
	if r.token == "" && cfg.BearerTokenFile != "" {
		b, err := os.ReadFile(cfg.BearerTokenFile)
		if err != nil {
			t.Fatalf("reading Config.BearerTokenFile: %v", err)
		}
		r.token = strings.TrimSpace(string(b))
	}
	return r
}

// do sends one request to path with body (JSON, if not nil) and returns the
// status code and the answer's body.
func (r *confREST) do(method, path string, body any) (int, []byte) {
	r.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			r.t.Fatalf("encoding %s %s: %v", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), realWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, rd)
	if err != nil {
		r.t.Fatalf("building %s %s: %v", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	res, err := r.httpc.Do(req)
	if err != nil {
		r.t.Fatalf("third-party %s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		r.t.Fatalf("third-party %s %s: reading the answer: %v", method, path, err)
	}
	return res.StatusCode, data
}

// decode decodes a Lease answer, failing the test on garbage.
func (r *confREST) decode(what string, data []byte) *Lease {
	r.t.Helper()
	l := &Lease{}
	if err := json.Unmarshal(data, l); err != nil {
		r.t.Fatalf("%s: decoding the Lease: %v: %s", what, err, data)
	}
	return l
}

// getRaw reads the Lease name and returns its JSON, or nil when absent.
func (r *confREST) getRaw(name string) []byte {
	r.t.Helper()
	code, data := r.do(http.MethodGet, wire.Path(r.ns, name), nil)
	switch code {
	case http.StatusOK:
		return data
	case http.StatusNotFound:
		return nil
	}
	r.t.Fatalf("third-party GET of lease %s: %d: %s", name, code, data)
	return nil
}

// get reads the Lease name, or returns nil when absent.
func (r *confREST) get(name string) *Lease {
	r.t.Helper()
	data := r.getRaw(name)
	if data == nil {
		return nil
	}
	return r.decode("GET "+name, data)
}

// mustGet reads the Lease name and fails the test when it is absent.
func (r *confREST) mustGet(name string) *Lease {
	r.t.Helper()
	l := r.get(name)
	if l == nil {
		r.t.Fatalf("lease %s: absent, want present", name)
	}
	return l
}

// create POSTs l (name and spec filled in; namespace, type and
// resourceVersion are set here) and returns what the server stored.
func (r *confREST) create(l *Lease) *Lease {
	r.t.Helper()
	l = l.DeepCopy()
	l.TypeMeta = metav1.TypeMeta{APIVersion: wire.APIVersion, Kind: wire.Kind}
	l.Namespace, l.ResourceVersion, l.UID = r.ns, "", ""
	code, data := r.do(http.MethodPost, wire.Path(r.ns, ""), l)
	if code != http.StatusCreated {
		r.t.Fatalf("third-party POST of lease %s: got %d, want 201: %s", l.Name, code, data)
	}
	return r.decode("POST "+l.Name, data)
}

// edit does a read-modify-write of the Lease name with fn, retrying on 409,
// and returns what the server stored.
func (r *confREST) edit(name string, fn func(*Lease)) *Lease {
	r.t.Helper()
	for range 10 {
		l := r.mustGet(name)
		fn(l)
		code, data := r.do(http.MethodPut, wire.Path(r.ns, name), l)
		switch code {
		case http.StatusOK:
			return r.decode("PUT "+name, data)
		case http.StatusConflict:
			continue
		}
		r.t.Fatalf("third-party PUT of lease %s: got %d, want 200: %s", name, code, data)
	}
	r.t.Fatalf("third-party PUT of lease %s: 409 ten times in a row", name)
	return nil
}

// remove deletes the Lease name without preconditions; absent is fine.
func (r *confREST) remove(name string) {
	r.t.Helper()
	code, data := r.do(http.MethodDelete, wire.Path(r.ns, name), nil)
	if code != http.StatusOK && code != http.StatusAccepted && code != http.StatusNotFound {
		r.t.Errorf("third-party DELETE of lease %s: got %d, want 200 or 404: %s", name, code, data)
	}
}
