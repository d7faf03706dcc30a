package leasetest

import (
	"math"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// watchOptions are the parsed query parameters of a watch.
type watchOptions struct {
	filter    *watchFilter
	rv        uint64 // 0 for "" and "0": start from the current state
	bookmarks bool
	timeout   time.Duration // 0: none
}

// parseWatchOptions reads and checks the query parameters of a watch.
func parseWatchOptions(r *http.Request, rt *route) (*watchOptions, *apierrors.StatusError) {
	q := r.URL.Query()
	if boolParam(q, "sendInitialEvents") {
		return nil, badRequestf("leasetest: sendInitialEvents (streaming lists) is not supported")
	}
	if q.Get("resourceVersionMatch") != "" {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "ListOptions"}, "", field.ErrorList{
			field.Forbidden(field.NewPath("resourceVersionMatch"), "resourceVersionMatch is forbidden for watch"),
		})
	}
	lsel, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	fsel, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	for _, req := range fsel.Requirements() {
		if req.Field != "metadata.name" && req.Field != "metadata.namespace" {
			return nil, badRequestf("field label not supported: %s", req.Field)
		}
	}
	o := &watchOptions{
		filter:    &watchFilter{ns: rt.ns, labels: lsel, fields: fsel},
		bookmarks: boolParam(q, "allowWatchBookmarks"),
	}
	if v := q.Get("timeoutSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		if n > 0 {
			o.timeout = time.Duration(min(n, math.MaxInt64/int64(time.Second))) * time.Second
		}
	}
	if v := q.Get("resourceVersion"); v != "" && v != "0" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, apierrors.NewInvalid(leasesAsKind, "", field.ErrorList{
				field.Invalid(field.NewPath("resourceVersion"), v, err.Error()),
			})
		}
		o.rv = n
	}
	return o, nil
}
