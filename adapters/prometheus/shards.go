package prometheus

import (
	"github.com/kubelease/lease"
	"github.com/prometheus/client_golang/prometheus"
)

// ShardCollector exports what a member of a shard set knows and has done
// (lease.ShardSet.Status), read at each scrape. Metrics, each with a "set"
// label:
//
//	kubelease_shard_announced             1 while the member holds its member Lease
//	kubelease_shard_members               live members it sees, itself included
//	kubelease_shards_assigned             shards the assignment gives it
//	kubelease_shards_running              shards whose work runs now
//	kubelease_shard_moves_in_total        shard tenures it started
//	kubelease_shard_moves_out_total       shards it gave up to another member
//	kubelease_shard_unowned_seconds_total time shards it took were seen without a holder first
type ShardCollector struct {
	set   *lease.ShardSet
	descs []*prometheus.Desc
	name  string
}

var _ prometheus.Collector = (*ShardCollector)(nil)

// NewShardCollector returns a collector for set, labelled with its name;
// register it with a prometheus.Registerer.
func NewShardCollector(set *lease.ShardSet, name string) *ShardCollector {
	d := func(metric, help string) *prometheus.Desc {
		return prometheus.NewDesc(metric, help, nil, prometheus.Labels{"set": name})
	}
	return &ShardCollector{set: set, name: name, descs: []*prometheus.Desc{
		d("kubelease_shard_announced", "1 while this member holds its member Lease."),
		d("kubelease_shard_members", "Live members of the shard set as this member sees them, itself included."),
		d("kubelease_shards_assigned", "Shards the assignment gives this member."),
		d("kubelease_shards_running", "Shards whose work runs on this member now."),
		d("kubelease_shard_moves_in_total", "Shard tenures this member started."),
		d("kubelease_shard_moves_out_total", "Shards this member gave up because they were assigned to another member."),
		d("kubelease_shard_unowned_seconds_total", "Total time the shards this member took were seen without a holder before it took them."),
	}}
}

// Describe implements prometheus.Collector.
func (c *ShardCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *ShardCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.set.Status()
	announced := 0.0
	if st.Announced {
		announced = 1
	}
	vals := []struct {
		t prometheus.ValueType
		v float64
	}{
		{prometheus.GaugeValue, announced},
		{prometheus.GaugeValue, float64(len(st.Members))},
		{prometheus.GaugeValue, float64(len(st.Assigned))},
		{prometheus.GaugeValue, float64(len(st.Running))},
		{prometheus.CounterValue, float64(st.MovedIn)},
		{prometheus.CounterValue, float64(st.MovedOut)},
		{prometheus.CounterValue, st.Unowned.Seconds()},
	}
	for i, v := range vals {
		ch <- prometheus.MustNewConstMetric(c.descs[i], v.t, v.v)
	}
}
