// Package prometheus exports kubelease events as Prometheus metrics. It is a
// separate module so that the lease package itself does not depend on
// Prometheus.
//
//	obs := prometheus.NewObserver(prometheus.DefaultRegisterer, "nightly-report")
//	l, err := lease.NewKubernetesLease(lease.Settings{..., Observer: obs})
//
// Metrics, each with a "lease" label:
//
//	kubelease_held                      1 while a tenure is held, else 0
//	kubelease_transitions_total         tenures started
//	kubelease_lost_total{reason}        tenures lost: conflict, deleted, deadline
//	kubelease_released_total            tenures ended by Release
//	kubelease_renew_failures_total      failed renewal attempts (retried)
//	kubelease_renew_latency_seconds     successful renewal latency (histogram)
//	kubelease_deadline_left_seconds     time left before the deadline after the last renewal
//
// For a shard set, NewShardCollector exports its member's status (shards
// assigned and running, moves, time unowned) with a "set" label. An
// Observer in the set's Lease template would see every Lease of the set
// under one name.
package prometheus

import (
	"time"

	"github.com/kubelease/lease"
	"github.com/prometheus/client_golang/prometheus"
)

// Observer implements lease.Observer with Prometheus metrics. It is safe
// for concurrent use; one Observer may serve several leases only if they
// have distinct names (use one per lease).
type Observer struct {
	held          prometheus.Gauge
	transitions   prometheus.Counter
	lost          *prometheus.CounterVec
	released      prometheus.Counter
	renewFailures prometheus.Counter
	renewLatency  prometheus.Observer
	deadlineLeft  prometheus.Gauge
}

var _ lease.Observer = (*Observer)(nil)

// metrics are shared by every Observer of a registerer; each Observer uses
// its lease's label values.
type metrics struct {
	held, deadlineLeft                   *prometheus.GaugeVec
	transitions, released, renewFailures *prometheus.CounterVec
	lost                                 *prometheus.CounterVec
	renewLatency                         *prometheus.HistogramVec
}

func newMetrics() *metrics {
	l := []string{"lease"}
	return &metrics{
		held:          prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kubelease_held", Help: "1 while this process holds the lease."}, l),
		deadlineLeft:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kubelease_deadline_left_seconds", Help: "Time left before the deadline after the last successful renewal."}, l),
		transitions:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubelease_transitions_total", Help: "Tenures started by this process."}, l),
		released:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubelease_released_total", Help: "Tenures ended by Release."}, l),
		renewFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubelease_renew_failures_total", Help: "Failed renewal attempts (each is retried while the deadline allows)."}, l),
		lost:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kubelease_lost_total", Help: "Tenures lost, by reason."}, []string{"lease", "reason"}),
		renewLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kubelease_renew_latency_seconds", Help: "Latency of successful renewals.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, l),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.held, m.deadlineLeft, m.transitions, m.released, m.renewFailures, m.lost, m.renewLatency}
}

// NewObserver registers the kubelease metrics with reg (once per
// registerer; later calls reuse them) and returns an Observer for the lease
// named name. It panics, as prometheus.MustRegister does, if reg holds
// different metrics of the same names.
func NewObserver(reg prometheus.Registerer, name string) *Observer {
	m := newMetrics()
	for i, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			are, ok := err.(prometheus.AlreadyRegisteredError)
			if !ok {
				panic(err)
			}
			switch i {
			case 0:
				m.held = are.ExistingCollector.(*prometheus.GaugeVec)
			case 1:
				m.deadlineLeft = are.ExistingCollector.(*prometheus.GaugeVec)
			case 2:
				m.transitions = are.ExistingCollector.(*prometheus.CounterVec)
			case 3:
				m.released = are.ExistingCollector.(*prometheus.CounterVec)
			case 4:
				m.renewFailures = are.ExistingCollector.(*prometheus.CounterVec)
			case 5:
				m.lost = are.ExistingCollector.(*prometheus.CounterVec)
			case 6:
				m.renewLatency = are.ExistingCollector.(*prometheus.HistogramVec)
			}
		}
	}
	o := &Observer{
		held:          m.held.WithLabelValues(name),
		transitions:   m.transitions.WithLabelValues(name),
		lost:          m.lost.MustCurryWith(prometheus.Labels{"lease": name}),
		released:      m.released.WithLabelValues(name),
		renewFailures: m.renewFailures.WithLabelValues(name),
		renewLatency:  m.renewLatency.WithLabelValues(name),
		deadlineLeft:  m.deadlineLeft.WithLabelValues(name),
	}
	for _, r := range []lease.LostReason{lease.LostConflict, lease.LostDeleted, lease.LostDeadline} {
		o.lost.WithLabelValues(string(r)) // export zeros
	}
	return o
}

// Acquired implements lease.Observer.
func (o *Observer) Acquired(lease.Token) {
	o.held.Set(1)
	o.transitions.Inc()
}

// Renewed implements lease.Observer.
func (o *Observer) Renewed(latency, left time.Duration) {
	o.renewLatency.Observe(latency.Seconds())
	o.deadlineLeft.Set(left.Seconds())
}

// RenewFailed implements lease.Observer.
func (o *Observer) RenewFailed(error) { o.renewFailures.Inc() }

// Lost implements lease.Observer.
func (o *Observer) Lost(reason lease.LostReason) {
	o.held.Set(0)
	o.deadlineLeft.Set(0)
	o.lost.WithLabelValues(string(reason)).Inc()
}

// Released implements lease.Observer.
func (o *Observer) Released() {
	o.held.Set(0)
	o.deadlineLeft.Set(0)
	o.released.Inc()
}
