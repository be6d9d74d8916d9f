package proxy

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netpulse/netpulse/health"
)

// Status builds the health check's report. In1/Out1/In15/Out15 are flows
// per second received from / forwarded for the device, averaged over the
// last 1 and 15 minutes (completed 10-second slots). Channel highwater is
// the deepest the device's socket queue was when its datagrams were
// queued, then each sink's queue length now.
func (p *Proxy) Status() *health.Status {
	now := p.now()
	s := &health.Status{ProxyName: p.cfg.Name, Started: p.started}
	if a := p.Addr(); a.IsValid() {
		s.Listen = a.String()
	}
	var targets []string
	var sinkQueues []int
	var down []string
	for _, k := range p.sinks {
		st := k.Stats()
		targets = append(targets, k.Name())
		sinkQueues = append(sinkQueues, int(st.Queued))
		if !st.Up {
			down = append(down, fmt.Sprintf("%s (%d records spooled)", k.Name(), st.Spooled))
		}
	}
	if len(down) > 0 {
		s.Problem = "sink down: " + strings.Join(down, ", ")
	}
	set := p.registry.Current()
	for _, ds := range p.stats.all() {
		d := health.Device{ID: ds.id, Target: strings.Join(targets, ",")}
		if dev := set.ByID(ds.id); dev != nil {
			d.Name, d.FlowType = dev.Name, dev.FlowType
		} else if dev := p.autoByID(ds.id); dev != "" {
			d.Name = dev
		} else {
			continue // no longer registered
		}
		d.In1, d.In15 = ds.in.rate(now, time.Minute), ds.in.rate(now, 15*time.Minute)
		d.Out1, d.Out15 = ds.out.rate(now, time.Minute), ds.out.rate(now, 15*time.Minute)
		if ns := ds.lastSeen.Load(); ns > 0 {
			d.LastSeen = time.Unix(0, ns)
		}
		d.Sources = ds.sourceList()
		d.Highwater = append([]int{int(ds.highwater.Load())}, sinkQueues...)
		s.Devices = append(s.Devices, d)
	}
	for _, u := range p.registry.UnregisteredList(now) {
		s.Unregistered = append(s.Unregistered, health.Unregistered(u))
	}
	return s
}

// Ready is nil once the sockets are open.
func (p *Proxy) Ready() error {
	if len(p.conns) == 0 {
		return fmt.Errorf("not listening yet")
	}
	return nil
}

func (p *Proxy) autoByID(id uint64) string {
	p.autoMu.Lock()
	defer p.autoMu.Unlock()
	for _, d := range p.autos {
		if d.ID == id {
			return d.Name
		}
	}
	return ""
}

// Collector returns the proxy's Prometheus collector. Metrics are read at
// scrape time from the counters the packet path keeps anyway.
func (p *Proxy) Collector() prometheus.Collector { return (*proxyCollector)(p) }

type proxyCollector Proxy

var (
	descDatagrams = prometheus.NewDesc("netpulse_proxy_datagrams_received_total",
		"Export datagrams received, from any source.", nil, nil)
	descFlowsIn = prometheus.NewDesc("netpulse_proxy_flows_received_total",
		"Flow records decoded from registered devices.", nil, nil)
	descFlowsOut = prometheus.NewDesc("netpulse_proxy_flows_forwarded_total",
		"Flow records accepted by every sink.", nil, nil)
	descDropped = prometheus.NewDesc("netpulse_proxy_flows_dropped_total",
		"Flow records or datagrams not forwarded, by reason: queue_full and unregistered and decode_error count datagrams, rate_limit and sink_full count flows.", []string{"reason"}, nil)
	descDevIn = prometheus.NewDesc("netpulse_proxy_device_flows_received_total",
		"Flow records decoded, per registered device.", []string{"device"}, nil)
	descDevOut = prometheus.NewDesc("netpulse_proxy_device_flows_forwarded_total",
		"Flow records forwarded, per registered device.", []string{"device"}, nil)
	descDevSeen = prometheus.NewDesc("netpulse_proxy_device_last_seen_timestamp_seconds",
		"When the device last sent a datagram.", []string{"device"}, nil)
	descUnreg = prometheus.NewDesc("netpulse_proxy_unregistered_sources",
		"Sources not in the registry that sent in the last 30 minutes.", nil, nil)
	descSink = prometheus.NewDesc("netpulse_proxy_sink_records_total",
		"Records per sink and outcome: accepted, refused (queue full), delivered, dropped.", []string{"sink", "outcome"}, nil)
	descSinkUp = prometheus.NewDesc("netpulse_proxy_sink_up",
		"1 when the sink's last delivery succeeded.", []string{"sink"}, nil)
	descSinkSpool = prometheus.NewDesc("netpulse_proxy_sink_spooled_records",
		"Records waiting on disk for the sink's destination.", []string{"sink"}, nil)
	descLost = prometheus.NewDesc("netpulse_proxy_export_lost_flows_total",
		"Flows the exporters' sequence numbers say never arrived (NetFlow v5, IPFIX).", nil, nil)
	descLostDgrams = prometheus.NewDesc("netpulse_proxy_export_lost_datagrams_total",
		"Datagrams the exporters' sequence numbers say never arrived (NetFlow v9, sFlow).", nil, nil)
	descTemplates = prometheus.NewDesc("netpulse_proxy_templates",
		"NetFlow v9 and IPFIX templates known.", nil, nil)
	descHeld = prometheus.NewDesc("netpulse_proxy_held_sets",
		"Data sets waiting for their template.", nil, nil)
	descHeldExpired = prometheus.NewDesc("netpulse_proxy_held_sets_expired_total",
		"Data sets whose template never came within the hold time.", nil, nil)
	descRcvbuf = prometheus.NewDesc("netpulse_proxy_socket_receive_buffer_bytes",
		"Receive buffer of each UDP socket, as the kernel granted it.", nil, nil)
	descDNS = prometheus.NewDesc("netpulse_proxy_dns_lookups_total",
		"Reverse-DNS cache activity: hit, miss, queued, skipped (queue full), lookup, failure.", []string{"result"}, nil)
	descTeeErrors = prometheus.NewDesc("netpulse_proxy_tee_errors_total",
		"Datagrams the tee could not send.", nil, nil)
)

func (c *proxyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDatagrams, descFlowsIn, descFlowsOut, descDropped, descDevIn, descDevOut,
		descDevSeen, descUnreg, descSink, descSinkUp, descSinkSpool, descLost, descLostDgrams, descTemplates, descHeld,
		descHeldExpired, descRcvbuf, descDNS, descTeeErrors} {
		ch <- d
	}
}

func (c *proxyCollector) Collect(ch chan<- prometheus.Metric) {
	p := (*Proxy)(c)
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(descDatagrams, p.datagrams.Load())
	counter(descFlowsIn, p.flowsIn.Load())
	counter(descFlowsOut, p.flowsOut.Load())
	counter(descDropped, p.droppedDatagrams.Load(), reasonQueueFull)
	for i, r := range reasons {
		if r != reasonQueueFull {
			counter(descDropped, p.dropped[i].Load(), r)
		}
	}
	// The device label is bounded by the registry, which the operator
	// controls, plus at most maxAutoDevices accepted sources.
	for _, ds := range p.stats.all() {
		id := fmt.Sprint(ds.id)
		counter(descDevIn, ds.flowsIn.Load(), id)
		counter(descDevOut, ds.flowsOut.Load(), id)
		if ns := ds.lastSeen.Load(); ns > 0 {
			gauge(descDevSeen, float64(ns)/1e9, id)
		}
	}
	gauge(descUnreg, float64(len(p.registry.UnregisteredList(p.now()))))
	for _, k := range p.sinks {
		st := k.Stats()
		counter(descSink, st.Accepted, k.Name(), "accepted")
		counter(descSink, st.Refused, k.Name(), "refused")
		counter(descSink, st.Delivered, k.Name(), "delivered")
		counter(descSink, st.Dropped, k.Name(), "dropped")
		up := 0.0
		if st.Up {
			up = 1
		}
		gauge(descSinkUp, up, k.Name())
		gauge(descSinkSpool, float64(st.Spooled), k.Name())
	}
	nf := p.dec.NetFlow().Stats()
	sf := p.dec.SFlow().Stats()
	counter(descLost, nf.LostFlows)
	counter(descLostDgrams, nf.LostDatagrams+sf.LostDatagrams)
	gauge(descTemplates, float64(p.dec.NetFlow().Templates().Len()))
	gauge(descHeld, float64(nf.HeldNow))
	counter(descHeldExpired, nf.HeldExpired)
	gauge(descRcvbuf, float64(p.rcvbuf))
	es := p.enr.Stats()
	for _, kv := range []struct {
		k string
		v uint64
	}{{"hit", es.DNSHits}, {"miss", es.DNSMisses}, {"queued", es.DNSQueued}, {"skipped", es.DNSSkipped},
		{"lookup", es.DNSLookups}, {"failure", es.DNSFailures}} {
		counter(descDNS, kv.v, kv.k)
	}
	counter(descTeeErrors, p.teeErrors.Load())
}
