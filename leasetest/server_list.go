package leasetest

import (
	"net/http"
	"sort"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubelease/lease/internal/wire"
)

// leaseList is a coordination.k8s.io/v1 LeaseList. Its items carry no
// apiVersion or kind, as in a real list.
type leaseList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata"`
	Items           []Lease `json:"items"`
}

// serveList answers a GET of the collection (of one namespace, or of all
// when rt.ns is ""), with labelSelector and fieldSelector (metadata.name,
// metadata.namespace). The list's resourceVersion is the global one.
// Pagination is not supported: every match is returned.
func (s *Server) serveList(w http.ResponseWriter, r *http.Request, rt *route) {
	q := r.URL.Query()
	lsel, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	fsel, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	for _, req := range fsel.Requirements() {
		if req.Field != "metadata.name" && req.Field != "metadata.namespace" {
			writeStatus(w, badRequestf("field label not supported: %s", req.Field))
			return
		}
	}
	list := &leaseList{
		TypeMeta: metav1.TypeMeta{APIVersion: wire.APIVersion, Kind: "LeaseList"},
		Items:    []Lease{},
	}
	s.mu.Lock()
	list.ResourceVersion = strconv.FormatUint(s.rv, 10)
	for k, l := range s.leases {
		if rt.ns != "" && k.ns != rt.ns {
			continue
		}
		if !lsel.Matches(labels.Set(l.Labels)) {
			continue
		}
		if !fsel.Matches(fields.Set{"metadata.name": l.Name, "metadata.namespace": l.Namespace}) {
			continue
		}
		list.Items = append(list.Items, *l.DeepCopy())
	}
	s.mu.Unlock()
	sort.Slice(list.Items, func(i, j int) bool {
		a, b := list.Items[i], list.Items[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	writeJSON(w, http.StatusOK, list)
}
