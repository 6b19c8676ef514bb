// Package metrics publishes a running engine's counters: as a Prometheus
// collector (NewCollector) and through expvar (PublishExpvar), both read
// from engine.Stats and engine.EngineStats when scraped, so they cost
// nothing between scrapes.
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(metrics.NewCollector(e))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Every group's series carry a "group" label (its name); drops carry a
// "reason". With engine.Config.MeasureLatency, each group also has a
// delivery-latency histogram.
package metrics

import (
	"expvar"

	"github.com/cohort-vs/cohort/engine"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector is a prometheus.Collector over one engine.
type Collector struct {
	e *engine.Engine

	members, epoch, window, lag                     *prometheus.Desc
	sent, delivered, dgSent, dgReceived             *prometheus.Desc
	retransmits, retransmitBytes, naksSent, naksRcv *prometheus.Desc
	views, viewChanges, suspicions, evictions       *prometheus.Desc
	dropped, engineDropped, writeErrors, kernelDrop *prometheus.Desc
	groups, activeGroups                            *prometheus.Desc
	stalls, longestStall                            *prometheus.Desc
	latency                                         *prometheus.Desc
}

// NewCollector makes a collector of e's counters.
func NewCollector(e *engine.Engine) *Collector {
	group := []string{"group"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("cohort_"+name, help, labels, nil)
	}
	return &Collector{
		e:               e,
		members:         d("group_members", "Members of the group's current view.", group...),
		epoch:           d("group_epoch", "Number of the group's current view.", group...),
		window:          d("group_send_window_messages", "This member's messages in its send window: sent or queued, not yet stable at every member.", group...),
		lag:             d("group_slowest_member_lag", "How far the slowest member trails the one furthest ahead in consuming this member's messages, as a share of the send window (1: it holds the window full).", group...),
		sent:            d("group_messages_sent_total", "Messages this member multicast.", group...),
		delivered:       d("group_messages_delivered_total", "Messages delivered to the application.", group...),
		dgSent:          d("group_datagrams_sent_total", "Datagrams of group traffic sent.", group...),
		dgReceived:      d("group_datagrams_received_total", "Datagrams of group traffic taken in.", group...),
		retransmits:     d("group_retransmits_total", "Messages sent again after a NAK.", group...),
		retransmitBytes: d("group_retransmit_bytes_total", "Payload bytes sent again after a NAK.", group...),
		naksSent:        d("group_naks_sent_total", "Retransmission requests sent.", group...),
		naksRcv:         d("group_naks_received_total", "Retransmission requests received.", group...),
		views:           d("group_views_total", "Views installed.", group...),
		viewChanges:     d("group_view_changes_total", "View changes this member coordinated.", group...),
		suspicions:      d("group_suspicions_total", "Members this member suspected.", group...),
		evictions:       d("group_evictions_total", "Members this member found too slow (slow-member policy evict).", group...),
		dropped:         d("group_dropped_total", "Datagrams, messages and membership messages of a group dropped, by reason.", "group", "reason"),
		engineDropped:   d("engine_dropped_total", "Datagrams the engine dropped before any group saw them, by reason.", "reason"),
		writeErrors:     d("engine_write_errors_total", "Failed socket writes."),
		kernelDrop:      d("engine_kernel_drops_total", "Datagrams the kernel dropped for a full receive queue."),
		groups:          d("engine_groups", "Groups the engine holds."),
		activeGroups:    d("engine_active_groups", "Groups ticked every tick; the others are idle."),
		stalls:          d("engine_stalls_total", "Times the process was found not to have run for over a third of SuspectTimeout (starved or paused): what makes peers suspect a healthy process."),
		longestStall:    d("engine_longest_stall_seconds", "The longest of those stalls."),
		latency:         d("group_delivery_latency_seconds", "Time from Send to this member's own delivery of the message, one own message in 64 (engine.Config.MeasureLatency).", group...),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.members, c.epoch, c.window, c.lag, c.sent, c.delivered, c.dgSent, c.dgReceived,
		c.retransmits, c.retransmitBytes, c.naksSent, c.naksRcv, c.views, c.viewChanges, c.suspicions, c.evictions,
		c.dropped, c.engineDropped, c.writeErrors, c.kernelDrop, c.groups, c.activeGroups, c.stalls, c.longestStall, c.latency} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	count := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, g := range c.e.Groups() {
		name, s := g.Name(), g.Stats()
		gauge(c.members, float64(len(g.View().Members)), name)
		gauge(c.epoch, float64(s.Epoch), name)
		gauge(c.window, float64(s.SendWindow), name)
		gauge(c.lag, s.MaxLag, name)
		count(c.sent, s.MessagesSent, name)
		count(c.delivered, s.Delivered, name)
		count(c.dgSent, s.DatagramsSent, name)
		count(c.dgReceived, s.DatagramsReceived, name)
		count(c.retransmits, s.Retransmits, name)
		count(c.retransmitBytes, s.RetransmitBytes, name)
		count(c.naksSent, s.NAKsSent, name)
		count(c.naksRcv, s.NAKsReceived, name)
		count(c.views, s.Views, name)
		count(c.viewChanges, s.ViewChanges, name)
		count(c.suspicions, s.Suspicions, name)
		count(c.evictions, s.Evictions, name)
		for _, r := range groupDrops(s) {
			count(c.dropped, r.n, name, r.reason)
		}
		if s.Latency.Count > 0 {
			ch <- latencyHistogram(c.latency, s.Latency, name)
		}
	}
	es := c.e.Stats()
	for _, r := range engineDrops(es) {
		count(c.engineDropped, r.n, r.reason)
	}
	count(c.writeErrors, es.WriteErrors)
	count(c.kernelDrop, es.Socket.KernelDrops)
	gauge(c.groups, float64(es.Groups))
	gauge(c.activeGroups, float64(es.ActiveGroups))
	count(c.stalls, es.Stalls)
	gauge(c.longestStall, es.LongestStall.Seconds())
}

// latencyHistogram turns the engine's histogram (a count per bucket) into
// Prometheus's (cumulative counts by upper bound, in seconds).
func latencyHistogram(d *prometheus.Desc, l engine.Latency, group string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(engine.LatencyBuckets))
	var below uint64
	for i, bound := range engine.LatencyBuckets {
		below += l.Buckets[i]
		buckets[bound.Seconds()] = below
	}
	return prometheus.MustNewConstHistogram(d, l.Count, l.Sum.Seconds(), buckets, group)
}

type drop struct {
	reason string
	n      uint64
}

func groupDrops(s engine.Stats) []drop {
	return []drop{
		{"malformed", s.Malformed}, {"foreign", s.Foreign}, {"other_epoch", s.OtherEpoch},
		{"other_instance", s.OtherInstance}, {"duplicate", s.Duplicates}, {"beyond_window", s.BeyondWindow},
		{"no_room", s.NoRoom}, {"control_dropped", s.ControlDropped}, {"control_refused", s.ControlRefused},
	}
}

func engineDrops(s engine.EngineStats) []drop {
	return []drop{
		{"unknown_group", s.UnknownGroup}, {"malformed", s.Malformed}, {"other_instance", s.OtherInstance},
		{"unauthenticated", s.Unauthenticated}, {"auth_failed", s.AuthFailed}, {"replayed", s.Replayed},
	}
}

// Snapshot is what PublishExpvar publishes: the engine's counters and
// every group's, by name.
type Snapshot struct {
	Engine engine.EngineStats
	Groups map[string]engine.Stats
}

// Take reads e's counters now.
func Take(e *engine.Engine) Snapshot {
	s := Snapshot{Engine: e.Stats(), Groups: map[string]engine.Stats{}}
	for _, g := range e.Groups() {
		s.Groups[g.Name()] = g.Stats()
	}
	return s
}

// PublishExpvar publishes e's counters as the expvar variable name (read
// at each request of /debug/vars). Like expvar.Publish, it panics if name
// is taken.
func PublishExpvar(name string, e *engine.Engine) {
	expvar.Publish(name, expvar.Func(func() any { return Take(e) }))
}
