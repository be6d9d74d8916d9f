package probe

import (
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netpulse/netpulse/probe/result"
)

// The metrics, built at scrape time. Labels are bounded: purpose,
// transport, family and outcome have a handful of values each, and
// target takes the configured names only.
var (
	descRuns        = prometheus.NewDesc("netpulse_probe_runs_total", "Runs done (a result file written or not).", nil, nil)
	descWriteErrors = prometheus.NewDesc("netpulse_probe_write_errors_total", "Runs whose result file could not be written.", nil, nil)
	descQueries     = prometheus.NewDesc("netpulse_probe_queries_total", "DNS queries sent, by outcome: noerror (answered, RCODE 0), rcode (answered with another RCODE), timeout (no answer), conn_error (a connection error, a timeout for RSSAC047), bad_response (an answer that does not parse or match).", []string{"purpose", "transport", "family", "outcome"}, nil)
	descTraces      = prometheus.NewDesc("netpulse_probe_traces_total", "Traceroutes run, by method and outcome (reached, not_reached, error).", []string{"method", "outcome"}, nil)
	descLastRun     = prometheus.NewDesc("netpulse_probe_last_run_timestamp_seconds", "When the last run ended, Unix time.", nil, nil)
	descLastSlot    = prometheus.NewDesc("netpulse_probe_last_run_slot_timestamp_seconds", "The 5-minute slot the last run measured, Unix time.", nil, nil)
	descLastDur     = prometheus.NewDesc("netpulse_probe_last_run_duration_seconds", "How long the last run took, from its start to its file written.", nil, nil)
	descSynced      = prometheus.NewDesc("netpulse_probe_clock_synced", "1 if the kernel reported the clock synchronised at the last run's start (adjtimex), else 0.", nil, nil)
	descSOAUp       = prometheus.NewDesc("netpulse_probe_soa_available", "1 if the target answered the last run's ./SOA query with RCODE 0 over this transport and family, else 0.", []string{"target", "transport", "family"}, nil)
	descSOARTT      = prometheus.NewDesc("netpulse_probe_soa_rtt_seconds", "The last run's ./SOA response time over this transport and family (absent after a timeout).", []string{"target", "transport", "family"}, nil)
	descPending     = prometheus.NewDesc("netpulse_probe_pending_uploads", "Result files waiting for the collector's acknowledgement.", nil, nil)
	descUploads     = prometheus.NewDesc("netpulse_probe_uploads_total", "Result files the collector acknowledged (ok) or refused for good (rejected, moved to rejected/).", []string{"result"}, nil)
	descUploadErrs  = prometheus.NewDesc("netpulse_probe_upload_errors_total", "Upload attempts that failed and will be retried.", nil, nil)
	descAlertActive = prometheus.NewDesc("netpulse_probe_alert_active", "1 while the watchdog alert of this kind is active.", []string{"kind"}, nil)
	descAlertsTotal = prometheus.NewDesc("netpulse_probe_alerts_total", "Watchdog alerts raised (and repeated), by kind.", []string{"kind"}, nil)
	descDiskUsed    = prometheus.NewDesc("netpulse_probe_disk_used_ratio", "Fraction of the output folder's file system in use, at the last watchdog check.", nil, nil)
)

type queryKey struct {
	purpose, transport string
	family             int
	outcome            string
}

type traceKey struct{ method, outcome string }

type soaKey struct {
	target, transport string
	family            int
}

type soaLast struct {
	available bool
	rtt       float64 // seconds; 0 without a response
}

// metrics are the probe's counters and last-run gauges.
type metrics struct {
	runs, writeErrors                       atomic.Uint64
	uploadsOK, uploadRejected, uploadErrors atomic.Uint64

	mu       sync.Mutex
	queries  map[queryKey]uint64
	traces   map[traceKey]uint64
	soa      map[soaKey]soaLast
	lastEnd  time.Time
	lastSlot time.Time
	lastDur  time.Duration
	synced   bool
}

func newMetrics() *metrics {
	return &metrics{queries: map[queryKey]uint64{}, traces: map[traceKey]uint64{}, soa: map[soaKey]soaLast{}}
}

// outcome classifies a query for the metrics.
func outcome(q *result.Query) string {
	switch {
	case q.Timeout && q.Error != "" && q.Response == nil:
		return "conn_error"
	case q.Timeout:
		return "timeout"
	case q.Error != "" || q.Response == nil:
		return "bad_response"
	case q.Response.RCode == 0:
		return "noerror"
	}
	return "rcode"
}

// observe counts a finished run.
func (m *metrics) observe(run *result.Run, took time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.soa = map[soaKey]soaLast{}
	for i := range run.Queries {
		q := &run.Queries[i]
		m.queries[queryKey{q.Purpose, q.Transport, q.Family, outcome(q)}]++
		if q.Purpose == result.PurposeSOA {
			l := soaLast{available: q.Available()}
			if q.Answered() {
				l.rtt = q.RTTMS / 1e3
			}
			m.soa[soaKey{q.Target, q.Transport, q.Family}] = l
		}
	}
	for _, t := range run.Traces {
		o := "not_reached"
		switch {
		case t.Error != "":
			o = "error"
		case t.Reached:
			o = "reached"
		}
		m.traces[traceKey{t.Method, o}]++
	}
	m.lastEnd, m.lastSlot, m.lastDur, m.synced = run.End, run.Slot, took, run.Clock.Synced
}

type collector struct{ p *Probe }

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	p := c.p
	m := p.m
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	counter(descRuns, m.runs.Load())
	counter(descWriteErrors, m.writeErrors.Load())
	counter(descUploads, m.uploadsOK.Load(), "ok")
	counter(descUploads, m.uploadRejected.Load(), "rejected")
	counter(descUploadErrs, m.uploadErrors.Load())

	m.mu.Lock()
	qk := make([]queryKey, 0, len(m.queries))
	for k := range m.queries {
		qk = append(qk, k)
	}
	sort.Slice(qk, func(i, j int) bool {
		a, b := qk[i], qk[j]
		if a.purpose != b.purpose {
			return a.purpose < b.purpose
		}
		if a.transport != b.transport {
			return a.transport < b.transport
		}
		if a.family != b.family {
			return a.family < b.family
		}
		return a.outcome < b.outcome
	})
	for _, k := range qk {
		counter(descQueries, m.queries[k], k.purpose, k.transport, strconv.Itoa(k.family), k.outcome)
	}
	for k, v := range m.traces {
		counter(descTraces, v, k.method, k.outcome)
	}
	for k, v := range m.soa {
		fam := strconv.Itoa(k.family)
		gauge(descSOAUp, b2f(v.available), k.target, k.transport, fam)
		if v.rtt > 0 {
			gauge(descSOARTT, v.rtt, k.target, k.transport, fam)
		}
	}
	if !m.lastEnd.IsZero() {
		gauge(descLastRun, float64(m.lastEnd.UnixNano())/1e9)
		gauge(descLastSlot, float64(m.lastSlot.Unix()))
		gauge(descLastDur, m.lastDur.Seconds())
		gauge(descSynced, b2f(m.synced))
	}
	m.mu.Unlock()

	if p.up != nil {
		if names, err := p.st.pending(); err == nil {
			gauge(descPending, float64(len(names)))
		}
	}
	active, raised, used := p.wd.snapshot()
	for _, k := range alertKinds {
		gauge(descAlertActive, b2f(active[k]), k)
		counter(descAlertsTotal, raised[k], k)
	}
	gauge(descDiskUsed, used)
}
