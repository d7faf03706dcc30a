package lease

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/kubelease/lease/internal/wire"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxListBytes bounds a list of Leases: about 50,000 Leases of ~1.3 KiB.
const maxListBytes = 64 << 20

// leaseList is the part of a LeaseList the shared watch reads.
type leaseList struct {
	metav1.ListMeta `json:"metadata"`
	Items           []wire.Lease `json:"items"`
}

// fetch lists the Leases of w's namespace that w's selector selects, fresh
// (no resourceVersion), and returns them with the list's resourceVersion.
func (w *NamespaceWatch) fetch(ctx context.Context) ([]*wire.Lease, string, error) {
	ctx, cancel := withTimeout(ctx, w.clock, listTimeout)
	defer cancel()
	path := wire.Path(w.ns, "")
	if w.selector != "" {
		path += "?" + url.Values{"labelSelector": {w.selector}}.Encode()
	}
	resp, err := w.rest.open(ctx, "list", http.MethodGet, path, nil)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	var list leaseList
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxListBytes)).Decode(&list); err != nil {
		if ctx.Err() != nil {
			return nil, "", fmt.Errorf("lease: list %s: reading answer: %w", path, context.Cause(ctx))
		}
		return nil, "", fmt.Errorf("%w: list %s: %v", ErrBadResponse, path, err)
	}
	if list.ResourceVersion == "" {
		return nil, "", fmt.Errorf("%w: list %s: no resourceVersion", ErrBadResponse, path)
	}
	items := make([]*wire.Lease, 0, len(list.Items))
	for i := range list.Items {
		obj := &list.Items[i]
		if obj.Name == "" || obj.ResourceVersion == "" || (obj.Namespace != "" && obj.Namespace != w.ns) {
			return nil, "", fmt.Errorf("%w: list %s: item %d is not a Lease of namespace %s", ErrBadResponse, path, i, w.ns)
		}
		items = append(items, obj)
	}
	return items, list.ResourceVersion, nil
}
