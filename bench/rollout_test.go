package bench

import (
	"strings"
	"testing"
	"time"
)

// TestRolloutTrack feeds the tracker a story: a first leader, a handoff, an
// overlap, and events after the end, which are not counted.
func TestRolloutTrack(t *testing.T) {
	var res RolloutResult
	ro := &rollout{events: make(chan podEvent), done: make(chan struct{}), started: make(chan struct{}, 1), res: &res}
	go ro.track()
	defer close(ro.done)
	a, b, c := &pod{id: "a"}, &pod{id: "b"}, &pod{id: "c"}
	t0 := time.Now()
	for _, e := range []podEvent{
		{a, "started-leading", t0},
		{b, "stopped-leading", t0.Add(time.Second)}, // not the leader: ignored
		{a, "stopped-leading", t0.Add(2 * time.Second)},
		{b, "acquired", t0.Add(2*time.Second + 10*time.Millisecond)},
		{b, "started-leading", t0.Add(2*time.Second + 30*time.Millisecond)},
		{b, "synced", t0.Add(2*time.Second + 130*time.Millisecond)},
		{c, "started-leading", t0.Add(3 * time.Second)}, // b still leads
		{a, "sync", t0}, // received once the previous one is processed
	} {
		ro.events <- e
	}
	ro.mu.Lock()
	ro.stopped = true
	ro.mu.Unlock()
	ro.events <- podEvent{c, "stopped-leading", t0.Add(4 * time.Second)}
	ro.events <- podEvent{a, "started-leading", t0.Add(5 * time.Second)}
	ro.events <- podEvent{a, "sync", t0}
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if len(res.Gaps) != 1 || res.Gaps[0] != 30*time.Millisecond || res.Overlaps != 1 || len(res.LeaseGaps) != 1 || res.LeaseGaps[0] != 10*time.Millisecond || len(res.SyncGaps) != 1 || res.SyncGaps[0] != 130*time.Millisecond {
		t.Fatalf("gaps %v, lease gaps %v, overlaps %d: want [30ms], [10ms], 1", res.Gaps, res.LeaseGaps, res.Overlaps)
	}
}

func TestRolloutReport(t *testing.T) {
	res := &Results{Rollout: []RolloutResult{
		{Backend: "kube-apiserver", Variant: RolloutVariants[0].Name, Replicas: 3, Rollouts: 3, Steps: 9, LeaderSteps: 3, Gaps: []time.Duration{15 * time.Second, 14 * time.Second}},
		{Backend: "kube-apiserver", Variant: RolloutVariants[2].Name, Replicas: 3, Rollouts: 3, Steps: 9, LeaderSteps: 5, Gaps: []time.Duration{20 * time.Millisecond, 60 * time.Millisecond}},
	}}
	var b strings.Builder
	rolloutSection(&b, res)
	rolloutGoals(&b, res)
	out := b.String()
	for _, want := range []string{"## 8. Rolling update", "| controller-runtime, default election | 9 (3) | 2 |", "29.00 s", "**no**: max 60"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestExampleDir(t *testing.T) {
	if _, err := ExampleDir(); err != nil {
		t.Fatal(err)
	}
}
