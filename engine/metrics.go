package engine

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descIn = prometheus.NewDesc("tbflow_node_messages_in_total",
		"Messages delivered to the node's input.", []string{"node_id", "node_type"}, nil)
	descOut = prometheus.NewDesc("tbflow_node_messages_out_total",
		"Messages the node sent on its outputs.", []string{"node_id", "node_type"}, nil)
	descErrors = prometheus.NewDesc("tbflow_node_errors_total",
		"Errors the node reported.", []string{"node_id", "node_type"}, nil)
	descDropped = prometheus.NewDesc("tbflow_node_messages_dropped_total",
		"Messages dropped at the node: queued when it was removed or its stop deadline passed, or undeliverable error and status messages.",
		[]string{"node_id", "node_type"}, nil)
	descQueue = prometheus.NewDesc("tbflow_node_queue_depth",
		"Messages waiting in the node's inbox.", []string{"node_id", "node_type"}, nil)
	descQueueCap = prometheus.NewDesc("tbflow_node_queue_capacity",
		"Capacity of the node's inbox.", []string{"node_id", "node_type"}, nil)
	descEventsDropped = prometheus.NewDesc("tbflow_events_dropped_total",
		"Events dropped because a subscriber was too slow.", nil, nil)
)

// Describe implements prometheus.Collector.
func (e *Engine) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descIn, descOut, descErrors, descDropped, descQueue, descQueueCap, descEventsDropped} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: per-node counters (in, out,
// errors, dropped) and queue depth, labelled node_id and node_type.
func (e *Engine) Collect(ch chan<- prometheus.Metric) {
	e.slotsMu.Lock()
	type row struct {
		id, typ string
		c       NodeCounters
	}
	rows := make([]row, 0, len(e.slots))
	for id, s := range e.slots {
		rows = append(rows, row{id, *s.typ.Load(), s.counters()})
	}
	e.slotsMu.Unlock()
	for _, r := range rows {
		ch <- prometheus.MustNewConstMetric(descIn, prometheus.CounterValue, float64(r.c.In), r.id, r.typ)
		ch <- prometheus.MustNewConstMetric(descOut, prometheus.CounterValue, float64(r.c.Out), r.id, r.typ)
		ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(r.c.Errors), r.id, r.typ)
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(r.c.Dropped), r.id, r.typ)
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(r.c.QueueDepth), r.id, r.typ)
		ch <- prometheus.MustNewConstMetric(descQueueCap, prometheus.GaugeValue, float64(r.c.QueueCap), r.id, r.typ)
	}
	ch <- prometheus.MustNewConstMetric(descEventsDropped, prometheus.CounterValue, float64(e.bus.dropped.Load()))
}

var _ prometheus.Collector = (*Engine)(nil)
