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
	body, err := l.rest.stream(ctx, wire.Path(l.s.namespace, "")+"?"+q.Encode())
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

// stream opens a GET whose body is read as a stream. The 401 re-read of
// credentials, and the note on a 401 error, apply as for other requests.
func (c *restClient) stream(ctx context.Context, path string) (io.ReadCloser, error) {
	open := func() (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
		if err != nil {
			return nil, fmt.Errorf("lease: building watch %s: %w", path, err)
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", userAgent)
		if err := c.creds.authorize(req); err != nil {
			return nil, err
		}
		resp, err := c.httpc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("lease: watch %s: %w", path, context.Cause(ctx))
			}
			return nil, fmt.Errorf("lease: watch %s: %w", path, stripURL(err))
		}
		if resp.StatusCode != http.StatusOK {
			defer resp.Body.Close()
			data, _ := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
			return nil, decodeError(http.MethodGet, path, resp, data, c.clock.Now())
		}
		return resp, nil
	}
	resp, err := open()
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized && c.creds.refresh() {
		resp, err = open()
	}
	if err != nil {
		c.noteUnauthorized(err)
		return nil, err
	}
	return resp.Body, nil
}

// Wait returns when an Acquire may succeed: when a watch on the Lease shows
// it deleted or without a holder, when the last record seen would have
// expired (rules (a) and (b) of the package documentation), when the watch
// cannot say (a 410, a broken stream that could not be resumed), or at
// once when no record has been seen or the lease is ours. It returns ctx's
// error when ctx ends first. RunSingleton uses it, so contenders wake
// within a round trip of a Release instead of polling.
//
// Wait implements Waker.
func (l *KubernetesLease) Wait(ctx context.Context) error {
	l.mu.Lock()
	seen, obj := l.seen, l.seenObj
	l.mu.Unlock()
	if seen == nil || obj == nil || l.free(obj) {
		return ctx.Err()
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	woke := make(chan struct{}, 1)
	wake := func() {
		select {
		case woke <- struct{}{}:
		default:
		}
	}
	gone := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if l.watchForFree(wctx, obj.ResourceVersion, wake) {
			close(gone)
		}
	}()
	defer func() {
		cancel()
		<-done
	}()
	for {
		d := l.untilExpiry()
		if d <= 0 {
			return nil
		}
		t := l.clock.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-gone: // only a fresh read can tell
			t.Stop()
			return nil
		case <-woke:
			t.Stop()
			l.mu.Lock()
			obj := l.seenObj
			l.mu.Unlock()
			if obj == nil || l.free(obj) {
				return nil
			}
			// A renewal or a new holder: wait for the new expiry.
		case <-t.C():
		}
	}
}

// untilExpiry is how long until the last record seen expires by rule (a) or
// (b); 0 when there is none.
func (l *KubernetesLease) untilExpiry() time.Duration {
	l.mu.Lock()
	seen, obj := l.seen, l.seenObj
	l.mu.Unlock()
	if seen == nil || obj == nil || obj.Spec.Holder() == "" {
		return 0
	}
	dur := l.recordDuration(obj)
	n := l.now()
	d := dur - n.mono.Sub(seen.since)
	if l.s.MaxClockSkew >= 0 && obj.Spec.RenewTime != nil {
		d = min(d, addSat(obj.Spec.RenewTime.Add(addSat(dur, l.s.MaxClockSkew)).Sub(n.wall), time.Microsecond))
	}
	return max(d, 0)
}

// watchForFree watches the Lease from rv, recording what it sees for the
// expiry rules and calling wake on every change; a deletion is recorded as
// "no record". It reconnects with backoff until ctx ends, and gives up,
// returning true, on a 410, since only a fresh read can tell.
func (l *KubernetesLease) watchForFree(ctx context.Context, rv string, wake func()) (gone bool) {
	b := l.watchBackoff()
	for ctx.Err() == nil {
		err := l.watch(ctx, rv, func(typ string, obj *wire.Lease) bool {
			rv = obj.ResourceVersion
			b.Reset()
			switch typ {
			case "BOOKMARK":
				return true
			case "DELETED":
				l.mu.Lock()
				l.seen, l.seenObj = nil, nil
				l.mu.Unlock()
			default:
				l.observe(obj, l.now())
			}
			wake()
			return true
		})
		if ctx.Err() != nil {
			return false
		}
		if errors.Is(err, errWatchGone) {
			return true
		}
		if !l.pause(ctx, b.NextBackOff()) {
			return false
		}
	}
	return false
}

// holderWatch ends tenure t at once when a watch shows the Lease deleted
// (LostDeleted) or naming another holder or instance (LostConflict),
// instead of at the next renewal. It reconnects with backoff; our own
// renewals are recognised by holder and nonce.
func (l *KubernetesLease) holderWatch(ctx context.Context, t *tenure) {
	b := l.watchBackoff()
	l.mu.Lock()
	rv, uid := t.obj.ResourceVersion, t.obj.UID
	l.mu.Unlock()
	for ctx.Err() == nil {
		err := l.watch(ctx, rv, func(typ string, obj *wire.Lease) bool {
			rv = obj.ResourceVersion
			b.Reset()
			if typ == "BOOKMARK" {
				return true
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			switch {
			case !l.aliveLocked():
				return false
			case typ == "DELETED" || obj.UID != uid:
				l.endLocked(t, LostDeleted, holderOf(typ, obj), nil)
				return false
			case !l.isOurs(obj):
				l.endLocked(t, LostConflict, obj.Spec.Holder(), nil)
				return false
			}
			return true
		})
		if ctx.Err() != nil || err == nil {
			return
		}
		if errors.Is(err, errWatchGone) {
			rv = "" // start over from the current object (a synthetic ADDED)
		}
		if !l.pause(ctx, b.NextBackOff()) {
			return
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

func holderOf(typ string, obj *wire.Lease) string {
	if typ == "DELETED" {
		return ""
	}
	return obj.Spec.Holder()
}

// LastSeenHolder returns the holderIdentity of the last record this
// instance read, watched or wrote — its own Owner while it holds the lease —
// and "" when none (it implements HolderReporter).
func (l *KubernetesLease) LastSeenHolder() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seenObj == nil {
		return ""
	}
	return l.seenObj.Spec.Holder()
}
