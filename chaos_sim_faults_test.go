package lease_test

// The faults the lease campaign's simulation (chaos_sim_test.go) injects,
// and the late writes some of them leave behind.

import (
	"bytes"
	"fmt"
	"net/http"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
	"github.com/kubelease/lease/leasetest"
)

// faultKinds are the faults a schedule injects, by name, for the report.
var faultKinds = []string{
	"latency", "hang", "late-apply", "drop-answer", "reset", "5xx", "5xx+retry-after",
	"429-plain", "429+retry-after", "partition", "server-pause", "label-edit", "delete",
	"spec-edit", "suspend", "wall-step",
}

// lateWrite is a request whose client gave up, delivered later.
type lateWrite struct {
	due    time.Duration
	method string
	url    string
	header http.Header
	body   []byte
}

// endFaultsLocked clears every fault: server faults, partitions, pauses,
// suspends, held requests.
func (s *sim) endFaultsLocked() {
	s.srv.ClearFaults()
	s.paused = false
	close(s.release)
	s.release = make(chan struct{})
	for _, c := range s.cs {
		c.partitioned = false
		c.pending = nil
		if c.suspendTill > 0 {
			c.suspendTill = 0
		}
	}
}

// deliverLocked delivers fenced writes and late-applied requests that are due.
func (s *sim) deliverLocked() {
	keep := s.store.inflight[:0]
	for _, w := range s.store.inflight {
		if w.due <= s.now {
			s.fenceLocked(w.ten)
		} else {
			keep = append(keep, w)
		}
	}
	s.store.inflight = keep
	lateKeep := s.late[:0]
	for _, lw := range s.late {
		if lw.due > s.now {
			lateKeep = append(lateKeep, lw)
			continue
		}
		req, err := http.NewRequest(lw.method, lw.url, bytes.NewReader(lw.body))
		if err != nil {
			continue
		}
		req.Header = lw.header
		resp, err := s.lateClient.Do(req)
		code := 0
		if err == nil {
			code = resp.StatusCode
			resp.Body.Close()
		}
		s.tracef("late %s applied: %d", lw.method, code)
	}
	s.late = lateKeep
}

// lateApply queues a held write for delivery after its client gave up.
func (s *sim) lateApply(req *http.Request, body []byte) {
	if req.Method == http.MethodGet {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	due := s.now + time.Duration(s.rng.Int64N(int64(2*s.cfg.ttl)))
	if s.lateNow {
		due = s.now
	}
	s.late = append(s.late, lateWrite{
		due:    due,
		method: req.Method, url: req.URL.String(), header: req.Header.Clone(), body: body,
	})
}

// injectLocked picks this step's faults.
func (s *sim) injectLocked() {
	if s.rng.IntN(12) != 0 {
		return
	}
	kind := faultKinds[s.rng.IntN(len(faultKinds))]
	c := s.cs[s.rng.IntN(len(s.cs))]
	verbs := []string{"get", "create", "update", "delete", ""}
	verb := verbs[s.rng.IntN(len(verbs))]
	times := 1 + s.rng.IntN(3)
	switch kind {
	case "latency":
		s.srv.InjectFault(leasetest.Fault{Verb: verb, Times: times, Latency: time.Duration(s.rng.IntN(3)) * time.Millisecond})
	case "hang":
		c.pending = append(c.pending, netHang)
	case "late-apply":
		c.pending = append(c.pending, netLateApply)
	case "drop-answer":
		c.pending = append(c.pending, netDrop)
	case "reset":
		c.pending = append(c.pending, netReset)
	case "5xx":
		codes := []int{500, 502, 503, 504}
		s.srv.InjectFault(leasetest.Fault{Verb: verb, Times: times, Status: codes[s.rng.IntN(len(codes))]})
	case "5xx+retry-after":
		s.srv.InjectFault(leasetest.Fault{Verb: verb, Times: times, Status: 503, RetryAfter: fmt.Sprint(1 + s.rng.IntN(3))})
	case "429-plain":
		s.srv.InjectFault(leasetest.Fault{Verb: verb, Times: times, Status: 429, PlainText: true})
	case "429+retry-after":
		s.srv.InjectFault(leasetest.Fault{Verb: verb, Times: times, Status: 429, PlainText: true, RetryAfter: fmt.Sprint(1 + s.rng.IntN(3))})
	case "partition":
		c.partitioned = !c.partitioned
	case "server-pause":
		if s.paused {
			s.paused = false
			close(s.release)
			s.release = make(chan struct{})
		} else {
			s.paused = true
		}
	case "label-edit":
		_ = s.srv.Edit("default", "job", func(l *wire.Lease) {
			if l.Labels == nil {
				l.Labels = map[string]string{}
			}
			l.Labels["chaos"] = fmt.Sprint(s.rng.IntN(1000))
		})
	case "delete":
		if s.srv.Delete("default", "job") == nil {
			s.lastThirdParty, s.thirdParty = s.now, true
		}
	case "spec-edit":
		if s.srv.Edit("default", "job", func(l *wire.Lease) { l.Spec.HolderIdentity = nil }) == nil {
			s.lastThirdParty, s.thirdParty = s.now, true
		}
	case "suspend":
		if c.suspendTill == 0 {
			c.suspendTill = s.now + time.Duration(1+s.rng.IntN(int(2*s.cfg.ttl/time.Second)))*time.Second
		}
	case "wall-step":
		if !s.cfg.bigSteps {
			return
		}
		d := 2 * lease.DefaultMaxClockSkew * time.Duration(1+s.rng.IntN(5))
		if s.rng.IntN(2) == 0 {
			d = -d
		}
		lease.StepWall(c.l, d)
	}
	s.res.faults[kind]++
	s.tracef("fault %s (c%d, verb %q)", kind, c.id, verb)
}
