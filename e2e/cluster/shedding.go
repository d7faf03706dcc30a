package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Shedding makes kube-apiserver shed load from the users "shed" and "load"
// with API Priority and Fairness, so that 429s with Retry-After come from
// the server itself:
//
//   - the server's concurrency limit is small: --max-requests-inflight
//     and --max-mutating-requests-inflight (APF's total is their sum);
//   - a PriorityLevelConfiguration "e2e-shed" gets the smallest share of it
//     (nominalConcurrencyShares 1: one seat), lends and borrows nothing,
//     and queues in one queue of QueueLength requests;
//   - a FlowSchema "e2e-shed" puts every request of "shed" and "load" in
//     that level as one flow (no distinguisher), so that they queue
//     together.
//
// Cluster.Overload then fills the seat and the queue: the server answers
// the shed user's requests with 429 (Retry-After) while it runs.
type Shedding struct {
	// MaxRequestsInflight and MaxMutatingRequestsInflight (0: 10 and 5).
	MaxRequestsInflight, MaxMutatingRequestsInflight int
	// QueueLength is the level's queue length limit (0: 4).
	QueueLength int
}

// Names of the APF objects Shedding creates.
const (
	ShedPriorityLevel = "e2e-shed"
	ShedFlowSchema    = "e2e-shed"
)

func (s *Shedding) args() []string {
	r, m := s.MaxRequestsInflight, s.MaxMutatingRequestsInflight
	if r == 0 {
		r = 10
	}
	if m == 0 {
		m = 5
	}
	return []string{
		"--enable-priority-and-fairness=true",
		"--max-requests-inflight=" + strconv.Itoa(r),
		"--max-mutating-requests-inflight=" + strconv.Itoa(m),
	}
}

func (s *Shedding) queueLength() int {
	if s.QueueLength > 0 {
		return s.QueueLength
	}
	return 4
}

// setupShedding creates the priority level and the flow schema, then waits
// until the server classifies the shed user's requests into them (every
// answer names its priority level in X-Kubernetes-PF-PriorityLevel-UID).
func (c *Cluster) setupShedding(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	const apf = "/apis/flowcontrol.apiserver.k8s.io/v1"
	pl := map[string]any{
		"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
		"metadata": map[string]any{"name": ShedPriorityLevel},
		"spec": map[string]any{
			"type": "Limited",
			"limited": map[string]any{
				"nominalConcurrencyShares": 1,
				"lendablePercent":          0,
				"borrowingLimitPercent":    0,
				"limitResponse": map[string]any{
					"type": "Queue",
					"queuing": map[string]any{
						"queues": 1, "handSize": 1, "queueLengthLimit": c.opts.Shedding.queueLength(),
					},
				},
			},
		},
	}
	user := func(name string) map[string]any {
		return map[string]any{"kind": "User", "user": map[string]any{"name": name}}
	}
	fs := map[string]any{
		"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
		"metadata": map[string]any{"name": ShedFlowSchema},
		"spec": map[string]any{
			"priorityLevelConfiguration": map[string]any{"name": ShedPriorityLevel},
			"matchingPrecedence":         500,
			"rules": []any{map[string]any{
				"subjects": []any{user("shed"), user("load")},
				"resourceRules": []any{map[string]any{
					"verbs": []string{"*"}, "apiGroups": []string{"*"}, "resources": []string{"*"},
					"namespaces": []string{"*"}, "clusterScope": true,
				}},
				"nonResourceRules": []any{map[string]any{"verbs": []string{"*"}, "nonResourceURLs": []string{"*"}}},
			}},
		},
	}
	var plUID string
	for _, o := range []struct {
		path string
		obj  map[string]any
	}{{apf + "/prioritylevelconfigurations", pl}, {apf + "/flowschemas", fs}} {
		code, body, err := c.Do(ctx, AdminToken, http.MethodPost, o.path, o.obj)
		if err != nil {
			return fmt.Errorf("cluster: POST %s: %w", o.path, err)
		}
		if code != http.StatusCreated {
			return fmt.Errorf("cluster: POST %s: %d %s", o.path, code, snippet(body))
		}
		if o.obj["kind"] == "PriorityLevelConfiguration" {
			var created struct {
				Metadata struct{ UID string } `json:"metadata"`
			}
			if err := json.Unmarshal(body, &created); err != nil {
				return err
			}
			plUID = created.Metadata.UID
		}
	}
	return c.poll(ctx, "the shed user in priority level "+ShedPriorityLevel, func() (bool, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/apis/coordination.k8s.io/v1/namespaces/"+Namespace+"/leases/rbac-probe", nil)
		req.Header.Set("Authorization", "Bearer "+ShedToken)
		resp, err := c.client.Do(req)
		if err != nil {
			return false, err.Error()
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got := resp.Header.Get("X-Kubernetes-PF-PriorityLevel-UID")
		return got == plUID, fmt.Sprintf("%d, priority level %q, want %q", resp.StatusCode, got, plUID)
	})
}

// LoadStats count the requests of an Overload.
type LoadStats struct {
	// Requests sent, and of them answered 429.
	Requests, Rejected int64
}

// Overload runs workers concurrent requests as the user "load" until stop
// is called: each a PUT of a Lease whose body takes hold to arrive (so it
// keeps its seat that long; the body is not a valid object, so nothing is
// written), sent again at once when it ends, or after 20 ms when it was
// rejected. With Options.Shedding and workers > 1 + QueueLength, the level
// of the shed user is full while it runs. stop waits for the workers and
// returns the counts. The load is bounded: at most workers requests in
// flight, and at most 50 a second per worker.
func (c *Cluster) Overload(workers int, hold time.Duration) (stop func() LoadStats) {
	ctx, cancel := context.WithCancel(context.Background())
	tr := c.NewTransport(30*time.Second, 15*time.Second)
	client := &http.Client{Transport: tr}
	var st struct{ req, rej atomic.Int64 }
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := c.URL + "/apis/coordination.k8s.io/v1/namespaces/" + Namespace + "/leases/e2e-load-" + strconv.Itoa(i)
			for ctx.Err() == nil {
				code := slowPut(ctx, client, url, hold)
				st.req.Add(1)
				if code == http.StatusTooManyRequests {
					st.rej.Add(1)
				}
				if code != http.StatusBadRequest { // 400: it held a seat
					select {
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
		}()
	}
	var once sync.Once
	var out LoadStats
	return func() LoadStats {
		once.Do(func() {
			cancel()
			wg.Wait()
			tr.CloseIdleConnections()
			out = LoadStats{Requests: st.req.Load(), Rejected: st.rej.Load()}
		})
		return out
	}
}

// slowPut PUTs to url a body that trickles in over hold and is not valid
// JSON in the end; it returns the status code (0 on error).
func slowPut(ctx context.Context, client *http.Client, url string, hold time.Duration) int {
	pr, pw := io.Pipe()
	go func() {
		const steps = 5
		_, _ = pw.Write([]byte(`{"apiVersion":"coordination.k8s.io/v1","kind":"Lease",`))
		t := time.NewTicker(hold / steps)
		defer t.Stop()
		for range steps {
			select {
			case <-ctx.Done():
				pw.CloseWithError(ctx.Err())
				return
			case <-t.C:
			}
			if _, err := pw.Write([]byte(" ")); err != nil {
				return
			}
		}
		_, _ = pw.Write([]byte(`"e2e-load": not json`))
		pw.Close()
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, pr)
	if err != nil {
		pr.Close()
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+LoadToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		pr.CloseWithError(err)
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	pr.Close()
	return resp.StatusCode
}
