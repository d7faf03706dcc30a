package leasetest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubelease/lease/internal/wire"
)

func TestServerCreateAndGet(t *testing.T) {
	s, c := newTestServer(t)
	before := time.Now().Truncate(time.Second)
	r := c.must(http.MethodPost, wire.Path("default", ""), leaseBody("a", validSpec()))
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	created := r.lease(t)
	assert.Equal(t, wire.APIVersion, created.APIVersion)
	assert.Equal(t, wire.Kind, created.Kind)
	assert.Equal(t, "default", created.Namespace)
	assert.Len(t, string(created.UID), 36)
	assert.Greater(t, rvOf(t, created), uint64(firstResourceVersion))
	assert.Equal(t, strconv.FormatUint(rvOf(t, created), 10), created.ResourceVersion, "canonical decimal")
	assert.False(t, created.CreationTimestamp.Time.Before(before), "creationTimestamp %v before %v", created.CreationTimestamp, before)
	assert.Equal(t, "a", created.Spec.Holder())

	r = c.must(http.MethodGet, itemPath("default", "a"), nil)
	require.Equal(t, http.StatusOK, r.code)
	got := r.lease(t)
	assert.Equal(t, created, got)
	assert.Equal(t, created.ResourceVersion, s.ResourceVersion())
}

func TestServerCreateErrors(t *testing.T) {
	spec := validSpec
	withSpec := func(k string, v any) map[string]any {
		sp := spec()
		sp[k] = v
		return leaseBody("x", sp)
	}
	withMeta := func(k string, v any) map[string]any {
		b := leaseBody("x", spec())
		b["metadata"].(map[string]any)[k] = v
		return b
	}
	tests := []struct {
		name     string
		ns       string
		query    string
		body     any
		code     int
		reason   metav1.StatusReason
		contains string
	}{
		{"garbage", "default", "", "garbage!", 400, metav1.StatusReasonBadRequest, "the object provided is unrecognized (must be of type Lease)"},
		{"not an object", "default", "", "[1,2]", 400, metav1.StatusReasonBadRequest, "must be of type Lease"},
		{"resourceVersion set", "default", "", withMeta("resourceVersion", "5"), 500, "", "resourceVersion should not be set on objects to be created"},
		{"missing namespace", "nope", "", leaseBody("x", spec()), 404, metav1.StatusReasonNotFound, `namespaces "nope" not found`},
		{"already exists", "default", "", leaseBody("exists", spec()), 409, metav1.StatusReasonAlreadyExists, `leases.coordination.k8s.io "exists" already exists`},
		{"zero duration", "default", "", withSpec("leaseDurationSeconds", 0), 422, metav1.StatusReasonInvalid, `Lease.coordination.k8s.io "x" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0`},
		{"negative transitions", "default", "", withSpec("leaseTransitions", -1), 422, metav1.StatusReasonInvalid, "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0"},
		{"bad name", "default", "", leaseBody("Bad_Name", spec()), 422, metav1.StatusReasonInvalid, `metadata.name: Invalid value: "Bad_Name"`},
		{"no name", "default", "", leaseBody("", spec()), 422, metav1.StatusReasonInvalid, "metadata.name: Required value"},
		{"namespace mismatch", "default", "", withMeta("namespace", "kube-system"), 400, metav1.StatusReasonBadRequest, "the namespace of the provided object does not match the namespace sent on the request"},
		{"seconds only", "default", "", withSpec("renewTime", "2024-01-02T03:04:05Z"), 400, metav1.StatusReasonBadRequest, `Lease in version "v1" cannot be handled as a Lease: parsing time "2024-01-02T03:04:05Z" as "2006-01-02T15:04:05.000000Z07:00"`},
		{"millis", "default", "", withSpec("acquireTime", "2024-01-02T03:04:05.123Z"), 400, metav1.StatusReasonBadRequest, "cannot be handled as a Lease: parsing time"},
		{"nanos", "default", "", withSpec("renewTime", "2024-01-02T03:04:05.123456789Z"), 400, metav1.StatusReasonBadRequest, "cannot be handled as a Lease: parsing time"},
		{"time not a string", "default", "", withSpec("renewTime", 5), 400, metav1.StatusReasonBadRequest, "cannot be handled as a Lease"},
		{"duration not a number", "default", "", withSpec("leaseDurationSeconds", "15"), 400, metav1.StatusReasonBadRequest, "cannot be handled as a Lease"},
		{"wrong apiVersion", "default", "", map[string]any{"apiVersion": "v1", "kind": "Lease", "metadata": map[string]any{"name": "x"}}, 400, metav1.StatusReasonBadRequest, "the API version in the data (v1) does not match the expected API version (coordination.k8s.io/v1)"},
		{"wrong kind", "default", "", map[string]any{"apiVersion": wire.APIVersion, "kind": "Pod", "metadata": map[string]any{"name": "x"}}, 400, metav1.StatusReasonBadRequest, `no kind "Pod"`},
		{"strict unknown field", "default", "?fieldValidation=Strict", withSpec("foo", 1), 400, metav1.StatusReasonBadRequest, `strict decoding error: unknown field "spec.foo"`},
		{"bad fieldValidation", "default", "?fieldValidation=Loose", leaseBody("x", spec()), 422, metav1.StatusReasonInvalid, "fieldValidation"},
		{"preferredHolder without strategy", "default", "", withSpec("preferredHolder", "b"), 422, metav1.StatusReasonInvalid, "spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined"},
		{"prefixed strategy not a qualified name", "default", "", withSpec("strategy", "example.com/a/b"), 422, metav1.StatusReasonInvalid, "spec.strategy: Invalid value"},
		{"unknown strategy", "default", "", withSpec("strategy", "Random"), 422, metav1.StatusReasonInvalid, "spec.strategy: Unsupported value"},
	}
	s, c := newTestServer(t)
	c.create("default", "exists")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rv := s.ResourceVersion()
			r := c.must(http.MethodPost, wire.Path(tt.ns, "")+tt.query, tt.body)
			require.Equal(t, tt.code, r.code, "got %d, want %d; body: %s", r.code, tt.code, r.body)
			st := r.status(t)
			assert.Equal(t, int32(tt.code), st.Code)
			assert.Equal(t, metav1.StatusFailure, st.Status)
			assert.Equal(t, tt.reason, st.Reason)
			assert.Contains(t, st.Message, tt.contains)
			assert.Equal(t, rv, s.ResourceVersion(), "a failed create must not bump the resourceVersion")
		})
	}
}

func TestServerCreateMissingNamespaceDetails(t *testing.T) {
	_, c := newTestServer(t)
	st := c.must(http.MethodPost, wire.Path("nope", ""), leaseBody("x", validSpec())).status(t)
	require.NotNil(t, st.Details)
	assert.Equal(t, "namespaces", st.Details.Kind)
	assert.Equal(t, "nope", st.Details.Name)
	assert.Equal(t, "", st.Details.Group)
}

func TestServerAddNamespace(t *testing.T) {
	s, c := newTestServer(t)
	s.AddNamespace("team-a")
	l := c.create("team-a", "x")
	assert.Equal(t, "team-a", l.Namespace)
	for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		c.create(ns, "x")
	}
}

func TestServerMicroTimeOffsetAndCanonicalForm(t *testing.T) {
	_, c := newTestServer(t)
	sp := validSpec()
	sp["renewTime"] = "2024-01-02T05:04:05.123456+02:00"
	r := c.must(http.MethodPost, wire.Path("default", ""), leaseBody("x", sp))
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)
	var raw struct {
		Spec map[string]any `json:"spec"`
	}
	require.NoError(t, json.Unmarshal(r.body, &raw))
	assert.Equal(t, "2024-01-02T03:04:05.123456Z", raw.Spec["renewTime"])
}

func TestServerGetMissing(t *testing.T) {
	_, c := newTestServer(t)
	for _, ns := range []string{"default", "no-such-namespace"} {
		t.Run(ns, func(t *testing.T) {
			r := c.must(http.MethodGet, itemPath(ns, "x"), nil)
			require.Equal(t, http.StatusNotFound, r.code)
			st := r.status(t)
			assert.Equal(t, metav1.StatusReasonNotFound, st.Reason)
			require.NotNil(t, st.Details)
			assert.Equal(t, "leases", st.Details.Kind, "a GET never reveals a missing namespace")
			assert.Equal(t, "coordination.k8s.io", st.Details.Group)
			assert.Equal(t, "x", st.Details.Name)
			assert.Equal(t, `leases.coordination.k8s.io "x" not found`, st.Message)
		})
	}
}

func TestServerGetIgnoresResourceVersionParam(t *testing.T) {
	_, c := newTestServer(t)
	l := c.create("default", "x")
	l.Spec.HolderIdentity = ptr("b")
	r := c.must(http.MethodPut, itemPath("default", "x"), l)
	require.Equal(t, http.StatusOK, r.code)
	got := c.must(http.MethodGet, itemPath("default", "x")+"?resourceVersion=0", nil).lease(t)
	assert.Equal(t, "b", got.Spec.Holder(), "reads are always fresh")
}

func TestServerAuth(t *testing.T) {
	s, c := newTestServer(t)
	s.RequireToken("sekret")
	assert.Equal(t, "sekret", s.Config().BearerToken)
	for _, tok := range []string{"", "wrong"} {
		c.token = tok
		r := c.must(http.MethodGet, itemPath("default", "x"), nil)
		require.Equal(t, http.StatusUnauthorized, r.code)
		st := r.status(t)
		assert.Equal(t, metav1.StatusReasonUnauthorized, st.Reason)
		assert.Equal(t, "Unauthorized", st.Message)
	}
	c.token = "sekret"
	r := c.must(http.MethodGet, itemPath("default", "x"), nil)
	assert.Equal(t, http.StatusNotFound, r.code)

	s.RequireToken("")
	c.token = ""
	r = c.must(http.MethodGet, itemPath("default", "x"), nil)
	assert.Equal(t, http.StatusNotFound, r.code)
	assert.Equal(t, "", s.Config().BearerToken)
}

func TestServerConfig(t *testing.T) {
	s, _ := newTestServer(t)
	cfg := s.Config()
	assert.Equal(t, s.URL, cfg.Host)
	assert.True(t, strings.HasPrefix(s.URL, "http://127.0.0.1:"), "URL %q", s.URL)
	assert.Equal(t, "", cfg.Namespace)
	assert.Equal(t, "", cfg.BearerToken)
	assert.Nil(t, cfg.CAData)
}

func TestServerRouting(t *testing.T) {
	tests := []struct {
		method, path string
		code         int
		reason       metav1.StatusReason
	}{
		{http.MethodGet, "/api/v1/namespaces/default/pods", 404, metav1.StatusReasonNotFound},
		{http.MethodGet, "/apis/coordination.k8s.io/v1/namespaces/default/leases/x/status", 404, metav1.StatusReasonNotFound},
		{http.MethodGet, "/apis/coordination.k8s.io/v2/namespaces/default/leases/x", 404, metav1.StatusReasonNotFound},
		{http.MethodPost, "/apis/coordination.k8s.io/v1/namespaces/default/leases/x", 405, metav1.StatusReasonMethodNotAllowed},
		{http.MethodPatch, "/apis/coordination.k8s.io/v1/namespaces/default/leases/x", 405, metav1.StatusReasonMethodNotAllowed},
		{http.MethodPut, "/apis/coordination.k8s.io/v1/namespaces/default/leases", 405, metav1.StatusReasonMethodNotAllowed},
		{http.MethodPost, "/apis/coordination.k8s.io/v1/leases", 405, metav1.StatusReasonMethodNotAllowed},
	}
	_, c := newTestServer(t)
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := c.must(tt.method, tt.path, nil)
			require.Equal(t, tt.code, r.code, "body: %s", r.body)
			assert.Equal(t, tt.reason, r.status(t).Reason)
		})
	}
	r := c.must(http.MethodGet, "/readyz", nil)
	assert.Equal(t, http.StatusOK, r.code)
	assert.Equal(t, "ok", string(r.body))
}

func TestServerUnsupportedBodies(t *testing.T) {
	_, c := newTestServer(t)
	req, err := http.NewRequest(http.MethodPost, c.base+wire.Path("default", ""), strings.NewReader("a: b"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := c.hc.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode)

	r := c.must(http.MethodPost, wire.Path("default", ""), bytes.Repeat([]byte(" "), maxBodyBytes+1))
	assert.Equal(t, http.StatusRequestEntityTooLarge, r.code)
	assert.Equal(t, metav1.StatusReasonRequestEntityTooLarge, r.status(t).Reason)
}

func TestServerConcurrentUpdatesOneWins(t *testing.T) {
	s, c := newTestServer(t)
	l := c.create("default", "x")
	const n = 8
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			next := l.DeepCopy()
			next.Spec.HolderIdentity = ptr(strconv.Itoa(i))
			r, err := c.do(context.Background(), http.MethodPut, itemPath("default", "x"), next)
			if err == nil {
				codes[i] = r.code
			}
		})
	}
	wg.Wait()
	won := 0
	for _, code := range codes {
		switch code {
		case http.StatusOK:
			won++
		case http.StatusConflict:
		default:
			t.Errorf("got code %d, want 200 or 409", code)
		}
	}
	assert.Equal(t, 1, won, "exactly one of the racing PUTs wins")
	assert.Equal(t, rvOf(t, l)+1, mustParse(t, s.ResourceVersion()))
}

func TestServerTLS(t *testing.T) {
	s := NewUnstartedServer()
	s.StartTLS()
	defer s.Close()
	cfg := s.Config()
	require.NotEmpty(t, cfg.CAData)
	assert.True(t, strings.HasPrefix(cfg.Host, "https://"))

	tr := s.ts.Client().Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = true
	defer tr.CloseIdleConnections()
	c := &testClient{t: t, hc: &http.Client{Transport: tr}, base: s.URL}
	c.create("default", "x")
	resp, err := c.hc.Get(s.URL + itemPath("default", "x"))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Equal(t, 2, resp.ProtoMajor, "a TLS server speaks HTTP/2 like a real API server")

	// A reset under HTTP/2 resets the stream.
	s.InjectFault(Fault{Verb: "update", Reset: true})
	l, _ := s.Get("default", "x")
	_, err = c.do(context.Background(), http.MethodPut, itemPath("default", "x"), l)
	assert.Error(t, err)
}
