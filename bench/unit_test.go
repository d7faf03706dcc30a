package bench

import (
	"bytes"
	"image/png"
	"net/http/httptest"
	"strconv"
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
