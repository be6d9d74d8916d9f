package ingest

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// maxTrackedVPs bounds the vantage points the per-VP gauges follow: names
// come from result documents (of a drop folder open to any VP), so the
// label set must have a bound.
const maxTrackedVPs = 1000

// metrics are the Ingester's counters, exported at scrape time.
type metrics struct {
	results       [2][len(outcomes)]atomic.Uint64 // [source][outcome]
	observations  atomic.Uint64
	verdicts      [3]atomic.Uint64 // by rssac.Verdict
	checkerPanics atomic.Uint64

	mu       sync.Mutex
	lastSeen map[string]vpSeen
	untraced atomic.Uint64 // VPs beyond maxTrackedVPs
}

type vpSeen struct{ received, slot time.Time }

func (m *metrics) init() { m.lastSeen = map[string]vpSeen{} }

func sourceIndex(source string) int {
	if source == SourceDir {
		return 1
	}
	return 0
}

func (m *metrics) count(source string, o Outcome) {
	for i, x := range outcomes {
		if x == o {
			m.results[sourceIndex(source)][i].Add(1)
			return
		}
	}
}

// seen records a stored run of vp.
func (m *metrics) seen(vp string, received, slot time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.lastSeen[vp]
	if !ok && len(m.lastSeen) >= maxTrackedVPs {
		m.untraced.Add(1)
		return
	}
	if received.After(s.received) {
		s.received = received
	}
	if slot.After(s.slot) {
		s.slot = slot
	}
	m.lastSeen[vp] = s
}

var (
	descResults = prometheus.NewDesc("netpulse_rssac_ingest_results_total",
		"Result documents received, by source (http, dir) and outcome (stored, duplicate, or why refused).", []string{"source", "outcome"}, nil)
	descObservations = prometheus.NewDesc("netpulse_rssac_ingest_observations_total",
		"Observations (one per DNS query) stored.", nil, nil)
	descVerdicts = prometheus.NewDesc("netpulse_rssac_ingest_correctness_verdicts_total",
		"Correctness queries stored, by verdict (unchecked, correct, incorrect).", []string{"verdict"}, nil)
	descPanics = prometheus.NewDesc("netpulse_rssac_ingest_checker_panics_total",
		"Correctness checks that panicked; their queries were stored unchecked.", nil, nil)
	descLastResult = prometheus.NewDesc("netpulse_rssac_ingest_last_result_timestamp_seconds",
		"When the newest result of a vantage point was stored, Unix time.", []string{"vp"}, nil)
	descLastSlot = prometheus.NewDesc("netpulse_rssac_ingest_last_slot_timestamp_seconds",
		"Start of the latest 5-minute slot stored for a vantage point, Unix time.", []string{"vp"}, nil)
	descUntracked = prometheus.NewDesc("netpulse_rssac_ingest_untracked_vp_results_total",
		"Stored results of vantage points beyond the 1000 the per-VP gauges follow.", nil, nil)
)

var verdictNames = [3]string{"unchecked", "correct", "incorrect"}

// Describe implements prometheus.Collector.
func (in *Ingester) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descResults, descObservations, descVerdicts, descPanics, descLastResult, descLastSlot, descUntracked} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (in *Ingester) Collect(ch chan<- prometheus.Metric) {
	m := &in.m
	for s, source := range []string{SourceHTTP, SourceDir} {
		for i, o := range outcomes {
			ch <- prometheus.MustNewConstMetric(descResults, prometheus.CounterValue, float64(m.results[s][i].Load()), source, string(o))
		}
	}
	ch <- prometheus.MustNewConstMetric(descObservations, prometheus.CounterValue, float64(m.observations.Load()))
	for i, name := range verdictNames {
		ch <- prometheus.MustNewConstMetric(descVerdicts, prometheus.CounterValue, float64(m.verdicts[i].Load()), name)
	}
	ch <- prometheus.MustNewConstMetric(descPanics, prometheus.CounterValue, float64(m.checkerPanics.Load()))
	ch <- prometheus.MustNewConstMetric(descUntracked, prometheus.CounterValue, float64(m.untraced.Load()))
	m.mu.Lock()
	defer m.mu.Unlock()
	for vp, s := range m.lastSeen {
		ch <- prometheus.MustNewConstMetric(descLastResult, prometheus.GaugeValue, float64(s.received.UnixNano())/1e9, vp)
		ch <- prometheus.MustNewConstMetric(descLastSlot, prometheus.GaugeValue, float64(s.slot.Unix()), vp)
	}
}

// Results returns how many documents ended in outcome, from source.
func (in *Ingester) Results(source string, o Outcome) uint64 {
	for i, x := range outcomes {
		if x == o {
			return in.m.results[sourceIndex(source)][i].Load()
		}
	}
	return 0
}
