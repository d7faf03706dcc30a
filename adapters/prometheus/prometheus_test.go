package prometheus_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kubelease/lease"
	kprom "github.com/kubelease/lease/adapters/prometheus"
	"github.com/kubelease/lease/leasetest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestObserverMetrics(t *testing.T) {
	srv := leasetest.NewServer()
	defer srv.Close()
	reg := prometheus.NewRegistry()
	obs := kprom.NewObserver(reg, "job")
	_ = kprom.NewObserver(reg, "other") // a second lease reuses the metrics
	l, err := lease.NewKubernetesLease(lease.Settings{Name: "job", Owner: "a", Config: srv.Config(), TTL: 2 * time.Second, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if ok, err := l.Acquire(ctx); err != nil || !ok {
		t.Fatalf("Acquire: got %v, %v, want true, nil", ok, err)
	}
	want := `
# HELP kubelease_held 1 while this process holds the lease.
# TYPE kubelease_held gauge
kubelease_held{lease="job"} 1
kubelease_held{lease="other"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kubelease_held"); err != nil {
		t.Error(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	want = `
# HELP kubelease_released_total Tenures ended by Release.
# TYPE kubelease_released_total counter
kubelease_released_total{lease="job"} 1
kubelease_released_total{lease="other"} 0
# HELP kubelease_transitions_total Tenures started by this process.
# TYPE kubelease_transitions_total counter
kubelease_transitions_total{lease="job"} 1
kubelease_transitions_total{lease="other"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kubelease_released_total", "kubelease_transitions_total"); err != nil {
		t.Error(err)
	}

	// A loss: a third party deletes the lease; the next renewal (within
	// the 2s TTL's 667ms interval) finds out.
	lost := make(chan error, 1)
	l.OnLost(func(err error) { lost <- err })
	if ok, err := l.Acquire(ctx); err != nil || !ok {
		t.Fatalf("Acquire: got %v, %v, want true, nil", ok, err)
	}
	if err := srv.Delete("default", "job"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("no loss within 10s")
	}
	if got := testutil.ToFloat64(reg2lost(t, reg)); got != 1 {
		t.Errorf("kubelease_lost_total{reason=deleted}: got %v, want 1", got)
	}
}

// reg2lost returns the lost counter for lease "job", reason "deleted".
func reg2lost(t *testing.T, reg *prometheus.Registry) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "kubelease_lost_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["lease"] == "job" && labels["reason"] == "deleted" {
				return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return m.GetCounter().GetValue() })
			}
		}
	}
	t.Fatal("kubelease_lost_total{lease=job,reason=deleted} not found")
	return nil
}
