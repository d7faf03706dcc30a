package leasetest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubelease/lease/internal/wire"
)

// The package's TestMain (main_test.go) checks for leaked goroutines.

// testClient talks to a Server over real HTTP.
type testClient struct {
	t     *testing.T
	hc    *http.Client
	base  string
	token string
}

// newTestServer starts a Server and a client with its own transport, both
// closed at the end of the test.
func newTestServer(t *testing.T) (*Server, *testClient) {
	t.Helper()
	s := NewServerT(t)
	s.EnableCoordinatedLeaderElection() // the spec fields under test; the default is tested on its own
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections) // before the server closes
	return s, &testClient{t: t, hc: &http.Client{Transport: tr}, base: s.URL}
}

// response is a fully read HTTP response.
type response struct {
	code   int
	header http.Header
	body   []byte
}

// do sends a request; body is nil, a string or []byte sent as is, or a
// value encoded as JSON.
func (c *testClient) do(ctx context.Context, method, path string, body any) (*response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{code: resp.StatusCode, header: resp.Header, body: b}, nil
}

// must sends a request that must get an answer.
func (c *testClient) must(method, path string, body any) *response {
	c.t.Helper()
	r, err := c.do(context.Background(), method, path, body)
	require.NoError(c.t, err)
	return r
}

// status decodes a metav1.Status answer, checking its framing.
func (r *response) status(t *testing.T) metav1.Status {
	t.Helper()
	assert.Equal(t, "application/json", r.header.Get("Content-Type"), "Content-Type of a Status")
	var st metav1.Status
	require.NoError(t, json.Unmarshal(r.body, &st), "body: %s", r.body)
	assert.Equal(t, "Status", st.Kind)
	assert.Equal(t, "v1", st.APIVersion)
	return st
}

// lease decodes a Lease answer.
func (r *response) lease(t *testing.T) *Lease {
	t.Helper()
	var l Lease
	require.NoError(t, json.Unmarshal(r.body, &l), "body: %s", r.body)
	return &l
}

// micro formats t as a MicroTime.
func micro(t time.Time) string { return t.UTC().Format(metav1.RFC3339Micro) }

// leaseBody is the JSON of a Lease as a client would POST it.
func leaseBody(name string, spec map[string]any) map[string]any {
	return map[string]any{
		"apiVersion": wire.APIVersion, "kind": wire.Kind,
		"metadata": map[string]any{"name": name},
		"spec":     spec,
	}
}

// validSpec is a spec as a lease holder writes it.
func validSpec() map[string]any {
	now := micro(time.Now())
	return map[string]any{
		"holderIdentity": "a", "leaseDurationSeconds": 15,
		"acquireTime": now, "renewTime": now, "leaseTransitions": 0,
	}
}

func itemPath(ns, name string) string { return wire.Path(ns, name) }

// create POSTs a valid Lease and returns what the server stored.
func (c *testClient) create(ns, name string) *Lease {
	c.t.Helper()
	r := c.must(http.MethodPost, wire.Path(ns, ""), leaseBody(name, validSpec()))
	require.Equal(c.t, http.StatusCreated, r.code, "body: %s", r.body)
	return r.lease(c.t)
}

func rvOf(t *testing.T, l *Lease) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(l.ResourceVersion, 10, 64)
	require.NoError(t, err, "resourceVersion %q", l.ResourceVersion)
	return v
}

// ptr returns a pointer to a copy of v.
func ptr[T any](v T) *T { return &v }

// testCtx returns a context that ends with the test, with a generous
// deadline so that a broken await fails rather than hangs.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
