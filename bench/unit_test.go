package bench

import (
	"bytes"
	"image/png"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubelease/lease/leasetest"
)

func TestQuantile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i))
	}
	d := Summarise(s)
	if d.P50 != 50 || d.P99 != 99 || d.Max != 100 || d.Min != 1 || d.N != 100 {
		t.Fatalf("Summarise(1..100) = %+v", d)
	}
	if got := Quantile([]time.Duration{7}, 0.99); got != 7 {
		t.Fatalf("Quantile of one = %v", got)
	}
}

func TestVerb(t *testing.T) {
	for _, c := range []struct{ method, url, want string }{
		{"GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases/x", "get"},
		{"GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases", "list"},
		{"GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases?watch=true&fieldSelector=x", "watch"},
		{"POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases", "create"},
		{"PUT", "/apis/coordination.k8s.io/v1/namespaces/default/leases/x", "update"},
		{"DELETE", "/apis/coordination.k8s.io/v1/namespaces/default/leases/x", "delete"},
	} {
		if got := Verb(httptest.NewRequest(c.method, c.url, nil)); got != c.want {
			t.Errorf("Verb(%s %s) = %q, want %q", c.method, c.url, got, c.want)
		}
	}
}

func TestCutTap(t *testing.T) {
	ctr := NewCounter()
	tap := &Tap{Inner: nil, Counter: ctr}
	tap.Cut()
	if _, err := tap.RoundTrip(httptest.NewRequest("GET", "/x", nil)); err != ErrPartitioned {
		t.Fatalf("cut tap: %v", err)
	}
	if n := ctr.Snapshot().Total(); n != 0 {
		t.Fatalf("a cut tap counted %d requests", n)
	}
}

func TestChart(t *testing.T) {
	var buf bytes.Buffer
	rows := []ChartRow{
		{Label: "a", Lib: Kubelease, Samples: []time.Duration{time.Millisecond, 2 * time.Millisecond}},
		{Label: "b", Lib: ClientGo, Samples: []time.Duration{time.Second, 3 * time.Second}},
		{Label: "c", Lib: ClientGo},
	}
	panels := []ChartPanel{
		{Title: "log", Log: true, Min: time.Millisecond, Max: 10 * time.Second, Rows: rows[:1]},
		{Title: "linear", Max: 20 * time.Second, Step: 5 * time.Second, Rows: rows[1:], Marks: []ChartMark{{Label: "x", At: 15 * time.Second}}},
	}
	if err := WriteChart(&buf, "t", panels); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != chartW || b.Dy() != chartHeight(panels) {
		t.Fatalf("chart is %v", b)
	}
}

func TestSimHolders(t *testing.T) {
	srv := leasetest.NewServer()
	defer srv.Close()
	if err := startSimHolders(srv, SimHolders{Prefix: "sim-", N: 3, Namespace: "default", Labels: ScaleLabels}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		name := "sim-" + strconv.Itoa(i)
		l, ok := srv.Get("default", name)
		if !ok {
			t.Fatalf("%s was not created", name)
		}
		if h := l.Spec.Holder(); h != name || l.Labels["kubelease-bench"] != "scale" || *l.Spec.LeaseDurationSeconds != 15 {
			t.Fatalf("%s: holder %q, labels %v, duration %d", name, h, l.Labels, *l.Spec.LeaseDurationSeconds)
		}
	}
}

func TestAssignDiff(t *testing.T) {
	var shards []string
	for i := range 100 {
		shards = append(shards, "s"+strconv.Itoa(i))
	}
	five := []string{"a", "b", "c", "d", "e"}
	if n := assignDiff(shards, five, five); n != 0 {
		t.Fatalf("assignDiff with no change = %d", n)
	}
	// A join moves at least the newcomer's ⌊N/M⌋ shards.
	if n := assignDiff(shards, five, append(slices.Clone(five), "f")); n < 16 {
		t.Fatalf("assignDiff for a join = %d, want ≥ 16", n)
	}
}

func TestShardReport(t *testing.T) {
	res := &Results{Command: "make bench", Shards: []ShardResult{{
		ShardParams: ShardParams{Shards: 100, Members: 5, Window: time.Minute, Changes: true},
		Backend:     "kube-apiserver", TTL: LeaseDuration,
		ColdSettled: time.Second, ColdStarts: 100, ColdStartTimes: []time.Duration{time.Millisecond, time.Second},
		PerMember: []Counts{{Verbs: map[string]int{"update": 252}}},
		Moves: []ShardMove{
			{Kind: ShardJoin, Before: 5, After: 6, Settled: 50 * time.Millisecond, Starts: 21, AssignDiff: 21, Ideal: 16.7, Unowned: []time.Duration{40 * time.Millisecond, 60 * time.Millisecond}},
			{Kind: ShardCrash, Before: 5, After: 4, Settled: 14 * time.Second, Starts: 20, AssignDiff: 20, Ideal: 20, Orphans: 2, Reowned: []time.Duration{12 * time.Second, 14 * time.Second}},
		},
	}}}
	out := Report(res, "")
	for _, want := range []string{
		"## 7. Shard sets",
		"unowned ≤ 50 ms (kube-apiserver) | p50 40.0 ms, p99 60.0 ms, max 60.0 ms over 2 moves | **no**: max 60.0 ms |",
		"re-owned within lease duration + 2 s = 17 s (kube-apiserver) | 2 shards: p50 12.00 s, last 14.00 s after the cut | yes |",
		"a join moved 21.0 shards (mean of 1; ideal 16.7, `AssignShards` itself 21.0)",
		"| kube-apiserver | 100 × 5 | 1.00 s | 1.0 ms / 1.0 ms / 1.00 s | 100 | 1m0s | 252.0 (update 252.0)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}
