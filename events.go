package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kubelease/lease/internal/wire"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Reasons of the Kubernetes Events a KubernetesLease posts about its Lease
// when Settings.EventSource is set.
const (
	// EventReasonLeaderElection is the reason of the Normal events "<owner>
	// became leader", "<owner> stopped leading" and "<owner> handed the
	// lease to <target>", as client-go's leader election records them.
	EventReasonLeaderElection = "LeaderElection"
	// EventReasonLeaseLost is the reason of the Warning event posted when a
	// tenure is lost: "<owner> lost the lease (<LostReason>[, now held by
	// <holder>])".
	EventReasonLeaseLost = "LeaseLost"
)

// Types of the events.
const (
	eventNormal  = "Normal"
	eventWarning = "Warning"
)

// Bounds of the event queue and of each event's delivery.
const (
	// maxQueuedEvents is how many events may wait to be posted; more are
	// dropped (and counted, and logged).
	maxQueuedEvents = 32
	// eventAttempts bounds the POSTs of one event.
	eventAttempts = 3
	// eventRetryWait is the wait before the first retry, doubled after
	// each; a longer Retry-After is honoured up to maxEventRetryWait.
	eventRetryWait    = 250 * time.Millisecond
	maxEventRetryWait = 2 * time.Second
	// maxEventTimeout bounds one POST (and TTL bounds it too).
	maxEventTimeout = 10 * time.Second
	// maxEventMessage bounds an event's message (the API's note limit).
	maxEventMessage = 1024
	// maxEventSource bounds Settings.EventSource and reportingInstance.
	maxEventSource = 128
)

// eventSourceProblem says why src is no valid Settings.EventSource, ""
// when it is one (or empty: events off).
func eventSourceProblem(src string) string {
	if src == "" {
		return ""
	}
	if len(src) > maxEventSource {
		return fmt.Sprintf("EventSource is %d bytes long, above %d", len(src), maxEventSource)
	}
	if msgs := validation.IsQualifiedName(src); len(msgs) > 0 {
		return fmt.Sprintf("EventSource %q is not a qualified name like \"my-operator\" or \"example.com/my-operator\": %s", src, msgs[0])
	}
	return ""
}

// eventObject is the core/v1 Event the library posts: only the fields it
// sets, in the legacy shape client-go's event recorder uses (count,
// firstTimestamp and lastTimestamp; no eventTime).
type eventObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`

	InvolvedObject eventReference `json:"involvedObject"`
	Reason         string         `json:"reason"`
	Message        string         `json:"message"`
	Source         eventSource    `json:"source"`
	FirstTimestamp metav1.Time    `json:"firstTimestamp"`
	LastTimestamp  metav1.Time    `json:"lastTimestamp"`
	Count          int32          `json:"count"`
	Type           string         `json:"type"`

	ReportingComponent string `json:"reportingComponent,omitempty"`
	ReportingInstance  string `json:"reportingInstance,omitempty"`
}

// eventReference is a core/v1 ObjectReference to the Lease.
type eventReference struct {
	APIVersion      string `json:"apiVersion"`
	Kind            string `json:"kind"`
	Namespace       string `json:"namespace"`
	Name            string `json:"name"`
	UID             string `json:"uid,omitempty"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

// eventSource is a core/v1 EventSource.
type eventSource struct {
	Component string `json:"component,omitempty"`
}

// eventSink posts a lease's events, best effort, in order, from a bounded
// queue. At most one goroutine (run) posts at a time; it exists only
// while events are queued or being posted, and returns as soon as the
// queue is empty, so an idle or released lease has none.
type eventSink struct {
	l    *KubernetesLease
	path string // POST path of the Lease namespace's events

	mu      sync.Mutex // guards the fields below; never held while blocking or logging
	queue   []*eventObject
	running bool   // a run goroutine is live
	dropped uint64 // events dropped because the queue was full
	told    uint64 // dropped events logged so far
	warned  bool   // a failure was logged at Warn already
}

func newEventSink(l *KubernetesLease) *eventSink {
	if l.s.EventSource == "" {
		return nil
	}
	return &eventSink{l: l, path: "/api/v1/namespaces/" + l.s.Namespace + "/events"}
}

// postEventLocked queues an event about the Lease obj (as last written by
// this instance; nil when unknown). It never blocks: with the queue full
// the event is dropped and counted. Called with or without l.mu held.
func (l *KubernetesLease) postEventLocked(obj *wire.Lease, typ, reason, message string) {
	s := l.events
	if s == nil {
		return
	}
	ev := l.newEvent(obj, typ, reason, message)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) >= maxQueuedEvents {
		s.dropped++
		return
	}
	s.queue = append(s.queue, ev)
	if !s.running {
		s.running = true
		go s.run()
	}
}

// newEvent builds one event about the Lease, stamped now on the lease's
// clock, with a random name so that a retry after a lost answer is
// recognized (409 AlreadyExists).
func (l *KubernetesLease) newEvent(obj *wire.Lease, typ, reason, message string) *eventObject {
	now := metav1.NewTime(l.now().wall)
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	base := l.s.Name
	if len(base) > 253-len(rnd)*2-1 {
		base = strings.TrimRight(base[:253-len(rnd)*2-1], ".-")
	}
	if len(message) > maxEventMessage {
		message = message[:maxEventMessage]
	}
	ev := &eventObject{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Event"},
		ObjectMeta: metav1.ObjectMeta{Name: base + "." + hex.EncodeToString(rnd[:]), Namespace: l.s.Namespace},
		InvolvedObject: eventReference{
			APIVersion: wire.APIVersion, Kind: wire.Kind,
			Namespace: l.s.Namespace, Name: l.s.Name,
		},
		Reason: reason, Message: message, Type: typ,
		Source:         eventSource{Component: l.s.EventSource},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,

		ReportingComponent: l.s.EventSource,
		ReportingInstance:  truncate(l.s.Owner, maxEventSource),
	}
	if obj != nil {
		ev.InvolvedObject.UID = string(obj.UID)
		ev.InvolvedObject.ResourceVersion = obj.ResourceVersion
	}
	return ev
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// run posts queued events until the queue is empty, then returns.
func (s *eventSink) run() {
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.running = false
			dropped := s.dropped - s.told
			s.told = s.dropped
			s.mu.Unlock()
			if dropped > 0 {
				s.l.log.Warn("kubelease: events dropped: the queue was full", "dropped", dropped, "limit", maxQueuedEvents)
			}
			s.l.emit("events idle")
			return
		}
		ev := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.mu.Unlock()
		s.deliver(ev)
	}
}

// deliver posts ev, retrying a failure that may pass (no answer, 429,
// 5xx) up to eventAttempts times in all. A refusal (403: no RBAC for
// events) and the last failure are logged at Warn the first time, then at
// Debug: events never fail or slow the lease.
//
// Its timeout and waits are real time, not Settings.Clock: delivering an
// event is I/O whose pace the lease's logic does not set, and a test on a
// fake clock must not have to step it for events, nor leave the goroutine
// waiting for a step that never comes (the event's timestamps are read
// from Settings.Clock).
func (s *eventSink) deliver(ev *eventObject) {
	l := s.l
	wait := eventRetryWait
	var err error
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), min(l.s.TTL, maxEventTimeout))
		err = l.rest.send(ctx, "create event", http.MethodPost, s.path, ev)
		cancel()
		if err == nil || apierrors.IsAlreadyExists(err) {
			l.emit("event " + ev.Reason + ": " + ev.Message)
			return
		}
		if attempt >= eventAttempts || !eventRetryable(err) {
			break
		}
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.RetryAfter > wait {
			wait = min(apiErr.RetryAfter, maxEventRetryWait)
		}
		l.emit("event retry")
		time.Sleep(wait)
		wait *= 2
	}
	s.mu.Lock()
	first := !s.warned
	s.warned = true
	s.mu.Unlock()
	msg := "kubelease: posting an event failed; the lease is not affected"
	if apierrors.IsForbidden(err) {
		msg += ` (grant "create" on "events" in the core API group to post them)`
	}
	if first {
		l.log.Warn(msg+"; later failures are logged at debug level", "reason", ev.Reason, "err", err)
	} else {
		l.log.Debug(msg, "reason", ev.Reason, "err", err)
	}
	l.emit("event failed")
}

// eventRetryable reports whether a POST that failed with err may succeed
// if sent again: no answer, 429 or 5xx.
func eventRetryable(err error) bool {
	var e *APIError
	if !errors.As(err, &e) {
		return true
	}
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// Messages of the events, as client-go's leader election words the first two.

func becameLeader(owner string) string   { return owner + " became leader" }
func stoppedLeading(owner string) string { return owner + " stopped leading" }
func handedTo(owner, to string) string {
	return fmt.Sprintf("%s handed the lease to %s", owner, to)
}
func lostLease(owner string, reason LostReason, holder string) string {
	if holder != "" {
		return fmt.Sprintf("%s lost the lease (%s, now held by %s)", owner, reason, holder)
	}
	return fmt.Sprintf("%s lost the lease (%s)", owner, reason)
}
