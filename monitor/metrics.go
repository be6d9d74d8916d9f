package monitor

import (
	"sort"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// The metrics, built at scrape time from the last round. Labels are the
// proxy's configured name and, per device, its ID and name: all bounded
// by the configuration and the caps.
var (
	descStatus       = prometheus.NewDesc("netpulse_monitor_proxy_status", "Status of the proxy as the seed numbers it: 1 Up, 0 Down (connection refused), 2 Error (no route, timeout, other), 3 Not good.", []string{"proxy"}, nil)
	descState        = prometheus.NewDesc("netpulse_monitor_proxy_state_info", "Always 1; the state label is the proxy's current state (only the current one is exported).", []string{"proxy", "state"}, nil)
	descUp           = prometheus.NewDesc("netpulse_monitor_proxy_up", "1 if the health check answered with a parsable text (status Up or Not good), else 0.", []string{"proxy"}, nil)
	descConnected    = prometheus.NewDesc("netpulse_monitor_proxy_connected_devices", "Connected (registered, sending) devices the proxy lists.", []string{"proxy"}, nil)
	descUnregistered = prometheus.NewDesc("netpulse_monitor_proxy_unregistered_devices", "Unregistered sources the proxy lists.", []string{"proxy"}, nil)
	descPollDuration = prometheus.NewDesc("netpulse_monitor_proxy_poll_duration_seconds", "How long the last poll of the proxy took.", []string{"proxy"}, nil)
	descPollTime     = prometheus.NewDesc("netpulse_monitor_proxy_last_poll_timestamp_seconds", "When the proxy was last polled, Unix time.", []string{"proxy"}, nil)
	descRule         = prometheus.NewDesc("netpulse_monitor_proxy_not_good_rule", "1 for each Not good rule that fired at the last poll.", []string{"proxy", "rule"}, nil)
	descDevicesCut   = prometheus.NewDesc("netpulse_monitor_proxy_devices_not_exported", "Devices and unregistered sources not exported: past the per-proxy caps, duplicate IDs or addresses, or sources without a first-seen time.", []string{"proxy"}, nil)

	deviceLabels  = []string{"proxy", "device_id", "device_name"}
	descIn        = prometheus.NewDesc("netpulse_monitor_device_received_flows_per_second", "Flows per second the proxy received from the device, averaged over window (In1 and In15).", append(deviceLabels, "window"), nil)
	descOut       = prometheus.NewDesc("netpulse_monitor_device_forwarded_flows_per_second", "Flows per second the proxy forwarded for the device, averaged over window (Out1 and Out15).", append(deviceLabels, "window"), nil)
	descLastSeen  = prometheus.NewDesc("netpulse_monitor_device_last_seen_age_seconds", "Seconds since the device last sent a datagram, at the last poll.", deviceLabels, nil)
	descFirstSeen = prometheus.NewDesc("netpulse_monitor_unregistered_first_seen_timestamp_seconds", "When the proxy first saw the unregistered source, Unix time (capped per proxy).", []string{"proxy", "addr"}, nil)

	descRounds     = prometheus.NewDesc("netpulse_monitor_poll_rounds_total", "Poll rounds completed.", nil, nil)
	descPushes     = prometheus.NewDesc("netpulse_monitor_pushes_total", "Influx line protocol pushes, by result.", []string{"result"}, nil)
	descAlerts     = prometheus.NewDesc("netpulse_monitor_alerts_total", "Alerts raised on confirmed state transitions.", nil, nil)
	descAlertFails = prometheus.NewDesc("netpulse_monitor_alert_delivery_errors_total", "Alerts a webhook or syslog server did not take.", nil, nil)
)

type collector struct{ m *Monitor }

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	counter(descRounds, m.rounds.Load())
	counter(descPushes, m.pushOK.Load(), "ok")
	counter(descPushes, m.pushErrors.Load(), "error")
	counter(descAlerts, m.alertsSent.Load())
	counter(descAlertFails, m.alertErrors.Load())

	results := m.Results()
	names := make([]string, 0, len(results))
	for n := range results {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		r := results[name]
		gauge(descStatus, float64(r.Status), name)
		gauge(descState, 1, name, r.State)
		gauge(descPollDuration, r.Duration.Seconds(), name)
		gauge(descPollTime, float64(r.Time.UnixNano())/1e9, name)
		for _, rule := range r.Rules {
			gauge(descRule, 1, name, rule)
		}
		h := r.Health
		if h == nil {
			gauge(descUp, 0, name)
			continue
		}
		gauge(descUp, 1, name)
		gauge(descConnected, float64(len(h.Devices)), name)
		gauge(descUnregistered, float64(len(h.Unregistered)), name)
		cut := 0
		seen := map[string]bool{}
		for i, d := range h.Devices {
			id := strconv.FormatUint(d.ID, 10)
			if i >= m.cfg.MaxDevicesPerProxy || seen[id] {
				cut++ // past the cap, or a duplicate ID that would clash
				continue
			}
			seen[id] = true
			gauge(descIn, d.In1, name, id, d.Name, "1m")
			gauge(descIn, d.In15, name, id, d.Name, "15m")
			gauge(descOut, d.Out1, name, id, d.Name, "1m")
			gauge(descOut, d.Out15, name, id, d.Name, "15m")
			if !d.LastSeen.IsZero() {
				gauge(descLastSeen, r.Time.Sub(d.LastSeen).Seconds(), name, id, d.Name)
			}
		}
		useen := map[string]bool{}
		for i, u := range h.Unregistered {
			a := u.Addr.String()
			if i >= m.cfg.MaxUnregisteredPerProxy || useen[a] || u.FirstSeen.IsZero() {
				cut++
				continue
			}
			useen[a] = true
			gauge(descFirstSeen, float64(u.FirstSeen.UnixNano())/1e9, name, a)
		}
		gauge(descDevicesCut, float64(cut), name)
	}
}
