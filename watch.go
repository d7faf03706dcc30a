package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/kubelease/lease/internal/wire"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// watchEvent is one event of a Kubernetes watch stream.
type watchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// errWatchGone is a watch whose resourceVersion is too old (410): the
// caller must read afresh.
var errWatchGone = errors.New("lease: watch: resourceVersion too old (410)")

// watch streams events about our Lease from resourceVersion rv to fn until
// fn returns false, ctx ends, or the stream ends. It returns nil when fn
// stopped it, errWatchGone for a 410, and the stream's error otherwise.
func (l *KubernetesLease) watch(ctx context.Context, rv string, fn func(typ string, obj *wire.Lease) bool) error {
	body, err := openWatch(ctx, l.rest, l.s.Namespace, rv, url.Values{"fieldSelector": {"metadata.name=" + l.s.Name}})
	if err != nil {
		return err
	}
	defer body.Close()
	return readWatch(ctx, body, func(typ string, obj *wire.Lease) bool {
		if typ != "BOOKMARK" && obj.Name != l.s.Name {
			return true
		}
		return fn(typ, obj)
	})
}

// openWatch opens a watch of the Leases of namespace ns from resourceVersion
// rv ("": from now, with the current state first), bookmarks on, with the
// given selectors. A 410 answer is errWatchGone.
func openWatch(ctx context.Context, rest *restClient, ns, rv string, selectors url.Values) (io.ReadCloser, error) {
	q := url.Values{}
	for k, v := range selectors {
		q[k] = v
	}
	q.Set("watch", "true")
	q.Set("allowWatchBookmarks", "true")
	if rv != "" {
		q.Set("resourceVersion", rv)
	}
	body, err := rest.stream(ctx, wire.Path(ns, "")+"?"+q.Encode())
	var e *APIError
	if errors.As(err, &e) && e.StatusCode == http.StatusGone {
		return nil, errWatchGone
	}
	return body, err
}

// readWatch decodes a watch stream and hands each ADDED, MODIFIED, DELETED
// or BOOKMARK event to fn until fn returns false (nil), ctx ends (its
// cause), the stream ends (io.EOF), or an ERROR event or undecodable data
// comes (errWatchGone for a 410, else an error matching ErrBadResponse).
func readWatch(ctx context.Context, body io.Reader, fn func(typ string, obj *wire.Lease) bool) error {
	dec := json.NewDecoder(io.LimitReader(body, 1<<30))
	for {
		var ev watchEvent
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if errors.Is(err, io.EOF) {
				return io.EOF
			}
			return fmt.Errorf("%w: watch stream: %v", ErrBadResponse, err)
		}
		switch ev.Type {
		case "ERROR":
			var st metav1.Status
			if json.Unmarshal(ev.Object, &st) == nil && st.Code == http.StatusGone {
				return errWatchGone
			}
			return fmt.Errorf("%w: watch error event: %s", ErrBadResponse, snippet(ev.Object))
		case "ADDED", "MODIFIED", "DELETED", "BOOKMARK":
			var obj wire.Lease
			if err := json.Unmarshal(ev.Object, &obj); err != nil {
				return fmt.Errorf("%w: watch event object: %v", ErrBadResponse, err)
			}
			if !fn(ev.Type, &obj) {
				return nil
			}
		}
	}
}

// watchBackoff paces watch reconnections: from 100 ms, jittered, up to the
// renewal interval.
func (l *KubernetesLease) watchBackoff() *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(l.s.RenewalInterval),
		backoff.WithMaxElapsedTime(0),
		backoff.WithClockProvider(passiveClock{l}),
	)
}

// pause waits d on the lease's clock; it reports false when ctx ends first.
func (l *KubernetesLease) pause(ctx context.Context, d time.Duration) bool {
	return sleepCtx(ctx, l.clock, d)
}
