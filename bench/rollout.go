package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RolloutVariant is one way of electing the leader of
// examples/controller-runtime: the flags it is run with.
type RolloutVariant struct {
	Name string   `json:"name"`
	Args []string `json:"args"`
}

// RolloutVariants are the rollout phase's variants, in report order.
var RolloutVariants = []RolloutVariant{
	{"controller-runtime, default election", []string{"-leader-election", "controller-runtime"}},
	{"controller-runtime, LeaderElectionReleaseOnCancel", []string{"-leader-election", "controller-runtime", "-release-on-cancel"}},
	{"kubelease RunSingleton", []string{"-leader-election", "kubelease"}},
}

// RolloutParams size the rollout phase.
type RolloutParams struct {
	Replicas int // pods of the Deployment
	Rollouts int // rolling updates per variant, one after the other
	// StartDelay is how long a new pod takes to be started after the
	// step before it ended (the Deployment and ReplicaSet controllers,
	// the scheduler and the kubelet); without it a new process would
	// contend a few milliseconds after the old leader released.
	StartDelay time.Duration
	// ReadyDelay is how long after its "ready" line a new pod counts as
	// ready (a readiness probe's period): by then it contends as a
	// standby in its steady state.
	ReadyDelay time.Duration
}

// RolloutResult is one variant's rolling updates.
type RolloutResult struct {
	Backend  string        `json:"backend"`
	Variant  string        `json:"variant"`
	Replicas int           `json:"replicas"`
	Rollouts int           `json:"rollouts"`
	Steps    int           `json:"steps"`
	Took     time.Duration `json:"took"`
	// Gaps are the leaderless intervals, one per handoff: from the leader's
	// "stopped-leading" to the next "started-leading" of any replica, both
	// read by the parent (its monotonic clock).
	Gaps []time.Duration `json:"gaps"`
	// LeaseGaps are, for the handoffs where the new leader printed
	// "acquired" (kubelease), the part of the gap until the Lease was
	// held; the rest is the new manager starting (its caches syncing).
	LeaseGaps []time.Duration `json:"leaseGaps,omitempty"`
	// SyncGaps are, for the handoffs where the new leader printed
	// "synced", the time until then: until its controller's informer had
	// synced and it could reconcile.
	SyncGaps []time.Duration `json:"syncGaps,omitempty"`
	// StartDelay and ReadyDelay are RolloutParams'.
	StartDelay time.Duration `json:"startDelay"`
	ReadyDelay time.Duration `json:"readyDelay"`
	// LeaderSteps are the steps that terminated the leader.
	LeaderSteps int `json:"leaderSteps"`
	// Overlaps counts a replica starting to lead while another led.
	Overlaps int `json:"overlaps"`
	// Failures are what went wrong (a replica that did not get ready or
	// exit, no leader after a rollout).
	Failures []string `json:"failures,omitempty"`
}

// Leaderless is the sum of the gaps.
func (r RolloutResult) Leaderless() time.Duration {
	var s time.Duration
	for _, g := range r.Gaps {
		s += g
	}
	return s
}

// ExampleDir is examples/controller-runtime in this source tree.
func ExampleDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("bench: cannot locate the source tree")
	}
	dir := filepath.Join(filepath.Dir(file), "..", "examples", "controller-runtime")
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("bench: examples/controller-runtime: %w", err)
	}
	return dir, nil
}

// BuildRolloutExample builds examples/controller-runtime into dir and
// returns the binary's path.
func BuildRolloutExample(ctx context.Context, dir string) (string, error) {
	src, err := ExampleDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "controller-runtime-example")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("bench: go build examples/controller-runtime: %v\n%s", err, out)
	}
	return bin, nil
}

// WriteKubeconfig writes a kubeconfig for r (its admin token) to path.
func (r *Real) WriteKubeconfig(path string) error {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: bench
  user:
    token: %s
contexts:
- name: bench
  context:
    cluster: bench
    user: bench
    namespace: %s
current-context: bench
`, r.url, base64.StdEncoding.EncodeToString(r.caPEM), r.token, r.namespace)
	return os.WriteFile(path, []byte(cfg), 0o600)
}

// pod is one replica: a process of the example.
type pod struct {
	id     string
	cmd    *exec.Cmd
	ready  chan struct{}
	exited chan struct{}
	stderr *lockedWriter
}

// podEvent is a line a pod printed, timed when the parent read it.
type podEvent struct {
	pod   *pod
	event string
	at    time.Time
}

// rollout runs one variant's rolling updates.
type rollout struct {
	bin, kubeconfig, namespace, lease string
	v                                 RolloutVariant
	n                                 int
	events                            chan podEvent
	done                              chan struct{}

	mu      sync.Mutex
	leader  *pod
	since   time.Time // when the last leader stopped leading; zero when one leads or none has yet
	held    time.Time // when a replica last printed "acquired" while none led
	pending time.Time // start of the last handoff, until its leader prints "synced"
	started chan struct{}
	stopped bool // the rolling updates are over: record nothing more
	res     *RolloutResult
}

// RunRollout simulates p.Rollouts rolling updates of a Deployment of
// p.Replicas replicas of the example binary bin, run with variant v's flags
// against r: each step waits p.StartDelay, starts a new pod, waits until it prints "ready"
// and p.ReadyDelay more, then sends SIGTERM to an old pod (the leader if an old pod leads, else
// the oldest) and waits until it exits. It does not wait for a leader
// between steps (a Deployment waits only for readiness), only at the end
// of each rolling update.
func RunRollout(ctx context.Context, r *Real, bin, dir string, v RolloutVariant, p RolloutParams, leaseName string) (res RolloutResult) {
	res = RolloutResult{Backend: r.Name(), Variant: v.Name, Replicas: p.Replicas, Rollouts: p.Rollouts, StartDelay: p.StartDelay, ReadyDelay: p.ReadyDelay}
	start := time.Now()
	kc := filepath.Join(dir, "kubeconfig-"+leaseName)
	if err := r.WriteKubeconfig(kc); err != nil {
		res.Failures = append(res.Failures, err.Error())
		return res
	}
	ro := &rollout{bin: bin, kubeconfig: kc, namespace: r.namespace, lease: leaseName, v: v,
		events: make(chan podEvent, 64), done: make(chan struct{}), started: make(chan struct{}, 1), res: &res}
	go ro.track()
	defer close(ro.done)
	var pods []*pod
	defer func() {
		// The teardown's handoffs are not the rolling update's.
		ro.mu.Lock()
		ro.stopped = true
		ro.mu.Unlock()
		for _, pd := range pods {
			pd.terminate(10 * time.Second)
		}
		res.Took = time.Since(start)
	}()

	fail := func(format string, args ...any) {
		res.Failures = append(res.Failures, fmt.Sprintf(format, args...))
	}
	for range p.Replicas {
		pd, err := ro.startPod()
		if err != nil {
			fail("%v", err)
			return res
		}
		pods = append(pods, pd)
	}
	for _, pd := range pods {
		if !pd.awaitReady(ctx, 60*time.Second) {
			fail("%s not ready: %s", pd.id, tail(pd.stderr.String()))
			return res
		}
	}
	if !ro.awaitLeader(ctx, 60*time.Second) {
		fail("no first leader")
		return res
	}
	for range p.Rollouts {
		old := slices.Clone(pods)
		for range p.Replicas {
			select {
			case <-time.After(p.StartDelay):
			case <-ctx.Done():
				return res
			}
			pd, err := ro.startPod()
			if err != nil {
				fail("%v", err)
				return res
			}
			pods = append(pods, pd)
			if !pd.awaitReady(ctx, 60*time.Second) {
				fail("%s not ready: %s", pd.id, tail(pd.stderr.String()))
				return res
			}
			select {
			case <-time.After(p.ReadyDelay):
			case <-ctx.Done():
				return res
			}
			ro.mu.Lock()
			victim := old[0]
			if i := slices.Index(old, ro.leader); i >= 0 {
				victim = old[i]
				res.LeaderSteps++
			}
			ro.mu.Unlock()
			res.Steps++
			if !victim.terminate(30 * time.Second) {
				fail("%s did not exit within 30 s of SIGTERM (killed)", victim.id)
			}
			old = slices.DeleteFunc(old, func(q *pod) bool { return q == victim })
			pods = slices.DeleteFunc(pods, func(q *pod) bool { return q == victim })
		}
		if !ro.awaitLeader(ctx, 60*time.Second) {
			fail("no leader 60 s after a rolling update")
			return res
		}
	}
	// Let the last leader's informer sync be recorded before the teardown.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		ro.mu.Lock()
		pending := !ro.pending.IsZero()
		ro.mu.Unlock()
		if !pending {
			break
		}
	}
	return res
}

// startPod starts one replica.
func (ro *rollout) startPod() (*pod, error) {
	ro.n++
	pd := &pod{id: fmt.Sprintf("%s-%d", ro.lease, ro.n), ready: make(chan struct{}), exited: make(chan struct{}), stderr: &lockedWriter{}}
	args := append(slices.Clone(ro.v.Args), "-namespace", ro.namespace, "-name", ro.lease, "-id", pd.id, "-health-probe-bind-address", "0")
	pd.cmd = exec.Command(ro.bin, args...)
	env := slices.DeleteFunc(os.Environ(), func(s string) bool {
		return strings.HasPrefix(s, "KUBECONFIG=") || strings.HasPrefix(s, "POD_NAME=")
	})
	pd.cmd.Env = append(env, "KUBECONFIG="+ro.kubeconfig)
	pd.cmd.Stderr = pd.stderr
	out, err := pd.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := pd.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", pd.id, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			at := time.Now()
			f := strings.Fields(sc.Text())
			if len(f) != 3 {
				continue
			}
			if f[2] == "ready" {
				close(pd.ready)
				continue
			}
			select {
			case ro.events <- podEvent{pd, f[2], at}:
			case <-ro.done:
			}
		}
		_ = pd.cmd.Wait()
		close(pd.exited)
	}()
	return pd, nil
}

// track follows the leadership events until ro.done is closed.
func (ro *rollout) track() {
	for {
		select {
		case <-ro.done:
			return
		case e := <-ro.events:
			ro.mu.Lock()
			if ro.stopped {
				ro.mu.Unlock()
				continue
			}
			switch e.event {
			case "started-leading":
				if ro.leader != nil && ro.leader != e.pod {
					ro.res.Overlaps++
				} else if !ro.since.IsZero() {
					ro.res.Gaps = append(ro.res.Gaps, e.at.Sub(ro.since))
					if ro.held.After(ro.since) {
						ro.res.LeaseGaps = append(ro.res.LeaseGaps, ro.held.Sub(ro.since))
					}
				}
				ro.leader, ro.pending, ro.since = e.pod, ro.since, time.Time{}
				select {
				case ro.started <- struct{}{}:
				default:
				}
			case "synced":
				if ro.leader == e.pod && !ro.pending.IsZero() {
					ro.res.SyncGaps = append(ro.res.SyncGaps, e.at.Sub(ro.pending))
					ro.pending = time.Time{}
				}
			case "acquired":
				if ro.leader == nil {
					ro.held = e.at
				}
			case "stopped-leading":
				if ro.leader == e.pod {
					ro.leader, ro.since = nil, e.at
				}
			}
			ro.mu.Unlock()
		}
	}
}

// awaitLeader waits until some replica leads.
func (ro *rollout) awaitLeader(ctx context.Context, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		ro.mu.Lock()
		leads := ro.leader != nil
		ro.mu.Unlock()
		if leads {
			return true
		}
		select {
		case <-ro.started:
		case <-deadline:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (pd *pod) awaitReady(ctx context.Context, timeout time.Duration) bool {
	select {
	case <-pd.ready:
		return true
	case <-pd.exited:
		return false
	case <-time.After(timeout):
		return false
	case <-ctx.Done():
		return false
	}
}

// terminate sends SIGTERM and waits for the exit, then kills; it reports
// whether the pod exited by itself in time.
func (pd *pod) terminate(grace time.Duration) bool {
	select {
	case <-pd.exited:
		return true
	default:
	}
	_ = pd.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-pd.exited:
		return true
	case <-time.After(grace):
		_ = pd.cmd.Process.Kill()
		<-pd.exited
		return false
	}
}

type lockedWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func tail(s string) string {
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return strings.TrimSpace(s)
}
