// Package metrics exposes a network's health in the Prometheus text format:
// what hubs take in and refuse, how long group commits, mints and block
// validations take, and, read from the live nodes at scrape time, chain
// heights, pool sizes, lags and device counts.
//
// Every metric is named cissan_*, and carries a node label ("master",
// "hub-1", ...) where several nodes share a process. Metrics never carry
// event contents, device ids or namespaces, so /metrics can be public like
// block headers.
//
// Nodes record through *HubMetrics and *MasterMetrics, whose methods do
// nothing on a nil receiver: a node built without metrics (unit tests)
// needs no registry. Gauges that mirror state the nodes already keep are
// registered by whoever wires the nodes together, with GaugeFunc,
// CounterFunc and GaugeMap, and are computed only when scraped.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Reasons a hub refuses an event at ingest, derived from the PUBACK
// reason code. The set is fixed so the label's cardinality stays small;
// Rejected counts any other value as ReasonOther.
const (
	ReasonNotAuthorized   = "not_authorized"    // 0x87: not logged in, wrong topic, device or namespace
	ReasonBadPayload      = "bad_payload"       // 0x99: the event does not parse
	ReasonUIDConflict     = "uid_conflict"      // 0x83: uid already used by another event of the device
	ReasonStoreError      = "store_error"       // 0x80: the pool could not be written or read
	ReasonShuttingDown    = "shutting_down"     // 0x80: the hub stopped while the event waited
	ReasonDiskLow         = "disk_low"          // 0x97: the hub's free disk space is below its threshold
	ReasonRateLimited     = "rate_limited"      // 0x96: the device sends more events a second than its limit
	ReasonByteRateLimited = "byte_rate_limited" // 0x97: the device sends more bytes a second than its limit
	ReasonOther           = "other"
)

var reasons = []string{ReasonNotAuthorized, ReasonBadPayload, ReasonUIDConflict, ReasonStoreError, ReasonShuttingDown, ReasonDiskLow, ReasonRateLimited, ReasonByteRateLimited}

// Verdicts of a hub's block validation, as chain.Verdict spells them.
const (
	VerdictAccept = "accept"
	VerdictReject = "reject"
)

// durationBuckets span an fsync on a fast SSD (~100µs) to a mint of a
// full 50,000-entry block on a slow disk (seconds).
var durationBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics is one process's registry and the collectors its nodes record
// into. It does not use Prometheus's global default registry, so several
// networks (tests) can run in one process.
type Metrics struct {
	reg *prometheus.Registry

	accepted    *prometheus.CounterVec   // node
	rejected    *prometheus.CounterVec   // node, reason
	commit      *prometheus.HistogramVec // node
	validated   *prometheus.CounterVec   // node, verdict
	validateDur *prometheus.HistogramVec // node
	mint        prometheus.Histogram
	refused     *prometheus.CounterVec // kind, reason
	versions    prometheus.Counter

	mu     sync.Mutex
	hubs   map[string]*HubMetrics
	master *MasterMetrics
}

// New returns a registry with the event, commit, validation and mint
// collectors, plus the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cissan_events_accepted_total",
			Help: "Events a hub made durable in its pool and acknowledged (retransmits not included).",
		}, []string{"node"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cissan_events_rejected_total",
			Help: "Events a hub refused at ingest, by reason (from the PUBACK reason code).",
		}, []string{"node", "reason"}),
		commit: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cissan_pool_commit_seconds",
			Help:    "Duration of a hub's group commit of new events to its pool, including the fsync.",
			Buckets: durationBuckets,
		}, []string{"node"}),
		validated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cissan_blocks_validated_total",
			Help: "Blocks a hub validated, by verdict (accept or reject).",
		}, []string{"node", "verdict"}),
		validateDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cissan_block_validate_seconds",
			Help:    "Duration of a hub's validation of one block, including storing an accepted block.",
			Buckets: durationBuckets,
		}, []string{"node"}),
		mint: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cissan_mint_seconds",
			Help:    "Duration of the master's minting of one block, including storing it (synced).",
			Buckets: durationBuckets,
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cissan_bus_messages_refused_total",
			Help: "Messages the master refused, by kind (batch, validation) and reason (unknown_hub, bad_signature, malformed, wrong_block).",
		}, []string{"kind", "reason"}),
		versions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cissan_event_versions_total",
			Help: "Events the master took in as another version of an event it already holds: a device sent other content under one uid through two hubs, and both are logged.",
		}),
		hubs: map[string]*HubMetrics{},
	}
	m.reg.MustRegister(m.accepted, m.rejected, m.commit, m.validated, m.validateDur, m.mint, m.refused, m.versions,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry, for collectors this package does not
// know.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats. A
// collector that fails (a device count the registry could not read) is
// reported in the log of the scrape and left out; the rest is served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Hub returns the recorder for hub id, the same one on every call. Its
// series start at zero, so dashboards show every hub and every reason from
// the start. On a nil *Metrics it returns nil, which records nothing.
func (m *Metrics) Hub(id string) *HubMetrics {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.hubs[id]; ok {
		return h
	}
	h := &HubMetrics{
		accepted:  m.accepted.WithLabelValues(id),
		rejected:  map[string]prometheus.Counter{},
		commit:    m.commit.WithLabelValues(id),
		validated: map[string]prometheus.Counter{},
		validate:  m.validateDur.WithLabelValues(id),
		node:      id,
		vec:       m.rejected,
	}
	for _, r := range reasons {
		h.rejected[r] = m.rejected.WithLabelValues(id, r)
	}
	for _, v := range []string{VerdictAccept, VerdictReject} {
		h.validated[v] = m.validated.WithLabelValues(id, v)
	}
	m.hubs[id] = h
	return h
}

// Master returns the master's recorder (nil on a nil *Metrics).
func (m *Metrics) Master() *MasterMetrics {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.master == nil {
		m.master = &MasterMetrics{mint: m.mint, refused: m.refused, versions: m.versions}
	}
	return m.master
}

// HubMetrics records one hub's ingest and validation. A nil *HubMetrics
// records nothing.
type HubMetrics struct {
	accepted  prometheus.Counter
	rejected  map[string]prometheus.Counter // fixed at creation; read only
	commit    prometheus.Observer
	validated map[string]prometheus.Counter
	validate  prometheus.Observer
	node      string
	vec       *prometheus.CounterVec // rejected, for ReasonOther made on first use
}

// Accepted counts n events made durable and acknowledged.
func (h *HubMetrics) Accepted(n int) {
	if h == nil || n <= 0 {
		return
	}
	h.accepted.Add(float64(n))
}

// Rejected counts one event refused at ingest; reason is one of the
// Reason constants.
func (h *HubMetrics) Rejected(reason string) {
	if h == nil {
		return
	}
	if c, ok := h.rejected[reason]; ok {
		c.Inc()
		return
	}
	h.vec.WithLabelValues(h.node, ReasonOther).Inc()
}

// CommitDuration records one group commit to the pool, fsync included.
func (h *HubMetrics) CommitDuration(d time.Duration) {
	if h == nil {
		return
	}
	h.commit.Observe(d.Seconds())
}

// Validated counts one block validated with verdict VerdictAccept or
// VerdictReject (chain.Verdict's String).
func (h *HubMetrics) Validated(verdict string) {
	if h == nil {
		return
	}
	if c, ok := h.validated[verdict]; ok {
		c.Inc()
	}
}

// ValidateDuration records the validation of one block.
func (h *HubMetrics) ValidateDuration(d time.Duration) {
	if h == nil {
		return
	}
	h.validate.Observe(d.Seconds())
}

// MasterMetrics records the master's minting. A nil *MasterMetrics
// records nothing.
type MasterMetrics struct {
	mint     prometheus.Observer
	refused  *prometheus.CounterVec
	versions prometheus.Counter
}

// Version counts an event taken in as another version of one the master
// already holds.
func (m *MasterMetrics) Version() {
	if m == nil {
		return
	}
	m.versions.Inc()
}

// Refused counts a bus message the master refused: kind is "batch" or
// "validation", reason one of unknown_hub, bad_signature, malformed,
// wrong_block.
func (m *MasterMetrics) Refused(kind, reason string) {
	if m == nil {
		return
	}
	m.refused.WithLabelValues(kind, reason).Inc()
}

// MintDuration records the minting of one block, store included.
func (m *MasterMetrics) MintDuration(d time.Duration) {
	if m == nil {
		return
	}
	m.mint.Observe(d.Seconds())
}

// GaugeFunc registers a gauge whose value f returns at every scrape.
// Gauges of one name may be registered once per distinct set of label
// values (node="hub-1", node="hub-2"), with the same label names and help.
// f runs on the scrape's goroutine and must be safe for concurrent use.
func (m *Metrics) GaugeFunc(name, help string, labels map[string]string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, f))
}

// CounterFunc is GaugeFunc for a value that only grows (it may restart
// from zero when the process does), such as a node's existing counters.
func (m *Metrics) CounterFunc(name, help string, labels map[string]string, f func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels}, f))
}

// GaugeMap registers a gauge with one variable label, label, whose series
// f returns at every scrape as label value -> value: one query gives every
// series (devices by status). An error from f fails this gauge's part of
// the scrape only.
func (m *Metrics) GaugeMap(name, help, label string, f func() (map[string]float64, error)) {
	m.reg.MustRegister(&mapCollector{desc: prometheus.NewDesc(name, help, []string{label}, nil), f: f})
}

type mapCollector struct {
	desc *prometheus.Desc
	f    func() (map[string]float64, error)
}

var _ prometheus.Collector = (*mapCollector)(nil)

func (c *mapCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *mapCollector) Collect(ch chan<- prometheus.Metric) {
	vals, err := c.f()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for k, v := range vals {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, k)
	}
}
