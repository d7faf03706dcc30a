package lease

import (
	"context"
	"errors"
	"io"
	"net/url"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/kubelease/lease/internal/wire"
)

const (
	// sharedWatchRetry is how long a NamespaceWatch polls after the server
	// refused to watch before it tries to watch again.
	sharedWatchRetry = time.Minute
	// listTimeout bounds one list of Leases.
	listTimeout = time.Minute
)

// run is w's goroutine: list, watch from the list's resourceVersion, resume
// from the last resourceVersion seen after a stream ends (at once after a
// clean end of a stream that delivered events, else with backoff), list
// afresh after a 410, and poll while the server refuses to watch.
func (w *NamespaceWatch) run(ctx context.Context) {
	defer close(w.done)
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(w.poll),
		backoff.WithMaxElapsedTime(0),
		backoff.WithClockProvider(w.clock),
	)
	var (
		rv      string // where the next watch starts; "": list first
		listed  bool   // rv comes from a list made just before this watch
		refusal bool   // a refused watch was logged
	)
	for ctx.Err() == nil {
		if rv == "" {
			var err error
			if rv, err = w.list(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				d := w.poll
				if !w.listFailed(err) {
					d = b.NextBackOff()
				}
				if !w.pause(ctx, d) {
					return
				}
				continue
			}
			listed = true
		}
		justListed := listed
		listed = false
		got := false // this stream delivered an event
		err := w.watch(ctx, rv, func(typ string, obj *wire.Lease) bool {
			if obj.ResourceVersion != "" {
				rv = obj.ResourceVersion
			}
			got = true
			b.Reset()
			w.apply(typ, obj)
			return true
		})
		if ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, errWatchGone):
			// Compacted past rv: list afresh, at once unless rv came
			// from a list just made.
			w.setStatus(false, false)
			rv = ""
			if !justListed {
				continue
			}
		case watchRefused(err):
			if !refusal {
				refusal = true
				w.log.Warn("kubelease: the API server refused to watch the Leases; the shared watch lists them every PollInterval instead (grant watch on leases)",
					"err", err, "every", w.poll)
			}
			rv = w.pollFor(ctx, rv)
			continue
		case errors.Is(err, io.EOF) && got:
			// A clean end after events (kube-apiserver ends a watch
			// after 30–60 minutes): resume at once.
			w.setStatus(false, false)
			continue
		default:
			w.setStatus(false, false)
			w.log.Debug("kubelease: shared watch ended", "err", err)
		}
		if !w.pause(ctx, b.NextBackOff()) {
			return
		}
	}
}

// list lists the selected Leases, makes them what w knows, and returns the
// list's resourceVersion.
func (w *NamespaceWatch) list(ctx context.Context) (string, error) {
	items, rv, err := w.fetch(ctx)
	if err != nil {
		return "", err
	}
	w.replace(items, rv)
	return rv, nil
}

// listFailed records a failed list and reports whether listing is refused
// (logged once while it lasts): subscribers then watch alone.
func (w *NamespaceWatch) listFailed(err error) bool {
	if !watchRefused(err) {
		w.setStatus(false, false)
		w.log.Debug("kubelease: listing Leases failed", "err", err)
		return false
	}
	w.mu.Lock()
	logIt := !w.refused
	w.mu.Unlock()
	if logIt {
		w.log.Warn("kubelease: the API server refused to list the Leases; leases using the shared watch watch their Lease alone (grant list and watch on leases)",
			"err", err)
	}
	w.setStatus(false, true)
	return true
}

// pollFor lists every PollInterval for sharedWatchRetry, or until ctx
// ends, and returns the resourceVersion of the last list (rv when none
// succeeded), from which the watch is tried again.
func (w *NamespaceWatch) pollFor(ctx context.Context, rv string) string {
	until := w.clock.Now().Add(sharedWatchRetry)
	for w.clock.Now().Before(until) {
		if !w.pause(ctx, w.poll) {
			return rv
		}
		nrv, err := w.list(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return rv
			}
			w.listFailed(err)
			continue
		}
		rv = nrv
	}
	return rv
}

// watch streams the events of the selected Leases from resourceVersion rv
// to fn until ctx ends or the stream ends; see readWatch for its errors.
func (w *NamespaceWatch) watch(ctx context.Context, rv string, fn func(typ string, obj *wire.Lease) bool) error {
	var sel url.Values
	if w.selector != "" {
		sel = url.Values{"labelSelector": {w.selector}}
	}
	body, err := openWatch(ctx, w.rest, w.ns, rv, sel)
	if err != nil {
		return err
	}
	defer body.Close()
	return readWatch(ctx, body, fn)
}

// pause waits d on w's clock; it reports false when ctx ends first.
func (w *NamespaceWatch) pause(ctx context.Context, d time.Duration) bool {
	return sleepCtx(ctx, w.clock, d)
}
