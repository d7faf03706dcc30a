package leasetest

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubelease/lease/internal/wire"
)

func TestServerUnknownFields(t *testing.T) {
	s, c := newTestServer(t)
	sp := validSpec()
	sp["foo"] = map[string]any{"a": 1}
	sp["strategy"] = "OldestEmulationVersion"
	sp["preferredHolder"] = "b"
	body := leaseBody("x", sp)
	body["status"] = map[string]any{}
	body["metadata"].(map[string]any)["bar"] = 1
	body["metadata"].(map[string]any)["ownerReferences"] = []any{
		map[string]any{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u", "baz": true},
	}
	r := c.must(http.MethodPost, wire.Path("default", ""), body)
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)
	assert.Equal(t, []string{
		`299 - "unknown field \"metadata.bar\""`,
		`299 - "unknown field \"metadata.ownerReferences[0].baz\""`,
		`299 - "unknown field \"spec.foo\""`,
		`299 - "unknown field \"status\""`,
	}, r.header.Values("Warning"))

	got, ok := s.Get("default", "x")
	require.True(t, ok)
	assert.Equal(t, map[string]json.RawMessage{
		"strategy":        json.RawMessage(`"OldestEmulationVersion"`),
		"preferredHolder": json.RawMessage(`"b"`),
	}, got.Spec.Unknown, "known spec fields that the wire type does not model are kept, others dropped")
	require.Len(t, got.OwnerReferences, 1)

	// A renewal that carries them back is accepted without warnings, and
	// keeps them.
	got.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
	r = c.must(http.MethodPut, itemPath("default", "x"), got)
	require.Equal(t, http.StatusOK, r.code, "body: %s", r.body)
	assert.Empty(t, r.header.Values("Warning"))
	assert.Equal(t, got.Spec.Unknown, r.lease(t).Spec.Unknown)

	// A domain-prefixed strategy is accepted, and a null spec too.
	sp = validSpec()
	sp["strategy"] = "example.com/mine"
	r = c.must(http.MethodPost, wire.Path("default", ""), leaseBody("z", sp))
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)
	r = c.must(http.MethodPost, wire.Path("default", ""), `{"metadata":{"name":"n"},"spec":null}`)
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)

	// fieldValidation=Ignore drops without warning.
	body = leaseBody("y", map[string]any{"foo": 1})
	r = c.must(http.MethodPost, wire.Path("default", "")+"?fieldValidation=Ignore", body)
	require.Equal(t, http.StatusCreated, r.code, "body: %s", r.body)
	assert.Empty(t, r.header.Values("Warning"))
}

// With the CoordinatedLeaderElection gate off (the default, as on a real
// kube-apiserver 1.37), strategy and preferredHolder are dropped silently on
// create, and on update when the stored object does not have them.
func TestServerDropsGatedSpecFieldsByDefault(t *testing.T) {
	s := NewServer()
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		s.Close()
	})
	c := &testClient{t: t, hc: &http.Client{Transport: tr}, base: s.URL}
	sp := validSpec()
	sp["strategy"] = "OldestEmulationVersion"
	sp["preferredHolder"] = "b"
	r := c.must(http.MethodPost, wire.Path("default", ""), leaseBody("x", sp))
	if r.code != http.StatusCreated {
		t.Fatalf("create: got %d, want 201", r.code)
	}
	got, ok := s.Get("default", "x")
	if !ok {
		t.Fatal("created lease is absent")
	}
	if len(got.Spec.Unknown) != 0 {
		t.Errorf("stored gated spec fields: got %v, want none", got.Spec.Unknown)
	}
	if w := r.header.Values("Warning"); len(w) != 0 {
		t.Errorf("warnings: got %q, want none (the real server drops them silently)", w)
	}
}
