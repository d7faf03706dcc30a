package leasetest

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubelease/lease/internal/wire"
)

func TestServerList(t *testing.T) {
	s, c := newTestServer(t)
	c.create("default", "b")
	c.create("default", "a")
	c.create("kube-system", "c")
	require.NoError(t, s.Edit("default", "b", func(l *Lease) { l.Labels = map[string]string{"app": "x"} }))

	type list struct {
		Kind       string          `json:"kind"`
		APIVersion string          `json:"apiVersion"`
		Metadata   metav1.ListMeta `json:"metadata"`
		Items      []Lease         `json:"items"`
	}
	names := func(l list) []string {
		var out []string
		for _, it := range l.Items {
			out = append(out, it.Namespace+"/"+it.Name)
		}
		return out
	}
	tests := []struct {
		path string
		want []string
	}{
		{wire.Path("default", ""), []string{"default/a", "default/b"}},
		{wire.Path("default", "") + "?labelSelector=app%3Dx", []string{"default/b"}},
		{wire.Path("default", "") + "?fieldSelector=metadata.name%3Da", []string{"default/a"}},
		{"/apis/coordination.k8s.io/v1/leases", []string{"default/a", "default/b", "kube-system/c"}},
		{wire.Path("no-such-namespace", ""), nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := c.must(http.MethodGet, tt.path, nil)
			require.Equal(t, http.StatusOK, r.code, "body: %s", r.body)
			var l list
			require.NoError(t, json.Unmarshal(r.body, &l))
			assert.Equal(t, "LeaseList", l.Kind)
			assert.Equal(t, wire.APIVersion, l.APIVersion)
			assert.Equal(t, s.ResourceVersion(), l.Metadata.ResourceVersion)
			assert.Equal(t, tt.want, names(l))
			assert.Contains(t, string(r.body), `"items":[`)
		})
	}
	r := c.must(http.MethodGet, wire.Path("default", "")+"?fieldSelector=spec.holderIdentity%3Da", nil)
	assert.Equal(t, http.StatusBadRequest, r.code)
}
