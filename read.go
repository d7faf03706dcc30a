package lease

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/kubelease/lease/internal/wire"
)

// request sends one request about the Lease (body nil for a GET or a
// DELETE without options) bounded by timeout. When it times out on the
// library's own transport, the connection it was sent on is closed, so
// that the retry dials afresh: an HTTP/2 connection that another stream
// keeps busy is not idle, and CloseIdleConnections would leave it for the
// retry to queue behind.
func (l *KubernetesLease) request(ctx context.Context, method string, body *wire.Lease, timeout time.Duration) (*result, error) {
	rctx, cancel := withTimeout(ctx, l.clock, timeout)
	defer cancel()
	rctx, conn := traceConn(rctx)
	var payload any
	if body != nil {
		payload = body
	}
	res, err := l.rest.do(rctx, method, l.path, payload)
	if err != nil && l.rest.ownTransport && errors.Is(err, errTimeout) {
		conn.drop()
	}
	return res, err
}

// read GETs the Lease fresh, bounded by timeout (0: by ctx alone). It
// returns nil, nil when there is none (a 404 about the Lease itself), and an
// error matching ErrBadResponse for an answer that is not our Lease.
func (l *KubernetesLease) read(ctx context.Context, timeout time.Duration) (*wire.Lease, error) {
	var res *result
	var err error
	if timeout > 0 {
		res, err = l.request(ctx, http.MethodGet, nil, timeout)
	} else {
		res, err = l.rest.do(ctx, http.MethodGet, l.path, nil)
	}
	if isLeaseNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := l.checkObject(res.obj); err != nil {
		return nil, err
	}
	return res.obj, nil
}

// checkObject rejects an answer that is not our Lease.
func (l *KubernetesLease) checkObject(obj *wire.Lease) error {
	if obj.Name != l.s.Name || (obj.Namespace != "" && obj.Namespace != l.s.Namespace) {
		return fmt.Errorf("%w: asked for Lease %s/%s, got %s/%s", ErrBadResponse, l.s.Namespace, l.s.Name, obj.Namespace, obj.Name)
	}
	return nil
}

// isLeaseNotFound is a 404 Status about the Lease itself: not about its
// namespace, and not a 404 from something that is not a Kubernetes API
// server (a wrong Host or path prefix), which must stay an error.
func isLeaseNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.StatusCode == http.StatusNotFound && e.Kind == "leases"
}
