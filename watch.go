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
	q := url.Values{}
	q.Set("watch", "true")
	q.Set("fieldSelector", "metadata.name="+l.s.Name)
	q.Set("allowWatchBookmarks", "true")
	if rv != "" {
		q.Set("resourceVersion", rv)
	}
	body, err := l.rest.stream(ctx, wire.Path(l.s.Namespace, "")+"?"+q.Encode())
	if err != nil {
		var e *APIError
		if errors.As(err, &e) && e.StatusCode == http.StatusGone {
			return errWatchGone
		}
		return err
	}
	defer body.Close()
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
			if ev.Type != "BOOKMARK" && obj.Name != l.s.Name {
				continue
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
	t := l.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}
