package tcpstats

import (
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricsConfig bounds the Prometheus series.
type MetricsConfig struct {
	// ServicePorts are the server ports that get their own service label;
	// every other port is "other". Default: DefaultServicePorts.
	ServicePorts []uint16
	// TopK is how many IP pairs the top-K gauges show. Default 100.
	TopK int
	// MaxPairs bounds the pairs counted per interval; pairs seen once the
	// map is full are counted in netpulse_tcpstats_top_pairs_dropped_total.
	// Default 10000.
	MaxPairs int
}

// DefaultServicePorts are well-known server ports given their own label.
var DefaultServicePorts = []uint16{22, 25, 53, 80, 443, 853, 1883, 2379, 3306, 5432, 6379, 6443, 8080, 8443, 9092, 9090, 9200, 11211, 27017}

func (c MetricsConfig) withDefaults() MetricsConfig {
	if c.ServicePorts == nil {
		c.ServicePorts = DefaultServicePorts
	}
	if c.TopK <= 0 {
		c.TopK = 100
	}
	if c.MaxPairs <= 0 {
		c.MaxPairs = 10000
	}
	return c
}

// SeriesBound is the most series a registry with these interfaces can
// hold; docs/tcpstats.md derives it.
func (c MetricsConfig) SeriesBound(interfaces int) int {
	c = c.withDefaults()
	s := len(c.ServicePorts) + 1
	hb := len(rttBuckets) + 3 // buckets + +Inf + sum + count
	sb := len(SizeBuckets) + 3
	perIface := 2*s*(2+int(NumFlags)) + // packets, payload bytes, flags
		s + len(endNames) + 1 + // connections started, ended, tracked
		s*hb + 2*2*sb + // handshake RTT, packet and payload sizes
		3 + 2 + 1 + 1 // parse errors, DF packets, up, capture drops
	return interfaces*perIface + c.TopK + 1 // + top-K pairs, dropped pairs
}

var rttBuckets = []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5}

type pairKey struct{ a, b netip.Addr }

// Metrics turns analyzed packets into Prometheus metrics with bounded
// labels: interface, direction, service-port bucket, flag. Per-IP-pair
// detail is only in a top-K by retransmissions, refreshed by Rotate. It is
// a prometheus.Collector: series are built at scrape time.
type Metrics struct {
	cfg      MetricsConfig
	services []string // label per service index; last is "other"
	svcOf    [65536]uint8

	mu     sync.Mutex
	ifaces map[string]*ifaceMetrics
	order  []string
	pairs  map[pairKey]uint64
	// top is the last interval's top-K, published until the next Rotate.
	top     []pairCount
	dropped uint64
}

type pairCount struct {
	key pairKey
	n   uint64
}

type ifaceMetrics struct {
	up          bool
	packets     [2][]uint64
	payload     [2][]uint64
	flags       [2][][NumFlags]uint64
	started     []uint64
	ended       [len(endNames)]uint64
	tracked     int
	rtt         []histogram
	pktSize     [2]histogram
	paySize     [2]histogram
	parseErrors ParseErrors
	df          [2]uint64
	drops       uint64
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative; last is +Inf
	sum    float64
	n      uint64
}

func newHistogram(buckets int) histogram { return histogram{counts: make([]uint64, buckets+1)} }

func (h *histogram) observe(i int, v float64) {
	h.counts[i]++
	h.sum += v
	h.n++
}

// NewMetrics returns an empty Metrics.
func NewMetrics(cfg MetricsConfig) *Metrics {
	cfg = cfg.withDefaults()
	m := &Metrics{cfg: cfg, ifaces: map[string]*ifaceMetrics{}, pairs: map[pairKey]uint64{}}
	other := uint8(len(cfg.ServicePorts))
	for i := range m.svcOf {
		m.svcOf[i] = other
	}
	for i, p := range cfg.ServicePorts {
		m.svcOf[p] = uint8(i)
		m.services = append(m.services, strconv.Itoa(int(p)))
	}
	m.services = append(m.services, "other")
	return m
}

// Interface returns the recorder for one interface (or capture file).
func (m *Metrics) Interface(name string) *Recorder {
	m.mu.Lock()
	defer m.mu.Unlock()
	im := m.ifaces[name]
	if im == nil {
		s := len(m.services)
		im = &ifaceMetrics{started: make([]uint64, s), rtt: make([]histogram, s)}
		for d := 0; d < 2; d++ {
			im.packets[d] = make([]uint64, s)
			im.payload[d] = make([]uint64, s)
			im.flags[d] = make([][NumFlags]uint64, s)
			im.pktSize[d] = newHistogram(len(SizeBuckets))
			im.paySize[d] = newHistogram(len(SizeBuckets))
		}
		for i := range im.rtt {
			im.rtt[i] = newHistogram(len(rttBuckets))
		}
		m.ifaces[name] = im
		m.order = append(m.order, name)
	}
	return &Recorder{m: m, im: im}
}

// Recorder records one interface's packets into its Metrics.
type Recorder struct {
	m  *Metrics
	im *ifaceMetrics
}

// SetUp says whether the interface's capture is running.
func (r *Recorder) SetUp(up bool) {
	r.m.mu.Lock()
	r.im.up = up
	r.m.mu.Unlock()
}

// Packet records one analyzed packet. tracked is the flow table size.
func (r *Recorder) Packet(c *Conn, dir Direction, p *Packet, f Flags, tracked int) {
	m, im := r.m, r.im
	svc := m.svcOf[c.Server.Port()]
	m.mu.Lock()
	defer m.mu.Unlock()
	im.tracked = tracked
	im.packets[dir][svc]++
	im.payload[dir][svc] += uint64(p.PayloadLen)
	if p.DF {
		im.df[dir]++
	}
	im.pktSize[dir].observe(bucket(p.IPLen), float64(p.IPLen))
	im.paySize[dir].observe(bucket(p.PayloadLen), float64(p.PayloadLen))
	if c.Dir[0].Packets+c.Dir[1].Packets == 1 {
		im.started[svc]++
	}
	// The handshake RTT is known from the packet that completes it on.
	if !c.rttSeen && !c.ACK.IsZero() {
		c.rttSeen = true
		if rtt := c.HandshakeRTT(); rtt > 0 {
			v := rtt.Seconds()
			im.rtt[svc].observe(sort.SearchFloat64s(rttBuckets, v), v)
		}
	}
	if f == 0 {
		return
	}
	for fl := Flag(0); fl < NumFlags; fl++ {
		if f.Has(fl) {
			im.flags[dir][svc][fl]++
		}
	}
	if f.Has(Retransmission) {
		k := pairKey{c.Client.Addr(), c.Server.Addr()}
		if _, ok := m.pairs[k]; ok || len(m.pairs) < m.cfg.MaxPairs {
			m.pairs[k]++
		} else {
			m.dropped++
		}
	}
}

// Ended records a connection leaving the table.
func (r *Recorder) Ended(c *Conn) {
	r.m.mu.Lock()
	r.im.ended[c.End]++
	r.m.mu.Unlock()
}

// ParseErrors records the parser's rejections so far (a running total).
func (r *Recorder) ParseErrors(e ParseErrors) {
	r.m.mu.Lock()
	r.im.parseErrors = e
	r.m.mu.Unlock()
}

// CaptureDrops adds packets the kernel dropped because the capture fell
// behind.
func (r *Recorder) CaptureDrops(n uint64) {
	r.m.mu.Lock()
	r.im.drops += n
	r.m.mu.Unlock()
}

// Rotate publishes the top-K IP pairs by retransmissions of the interval
// that ends now and starts a new one.
func (m *Metrics) Rotate() {
	m.mu.Lock()
	defer m.mu.Unlock()
	top := make([]pairCount, 0, len(m.pairs))
	for k, n := range m.pairs {
		top = append(top, pairCount{k, n})
	}
	sort.Slice(top, func(i, j int) bool {
		if top[i].n != top[j].n {
			return top[i].n > top[j].n
		}
		if c := top[i].key.a.Compare(top[j].key.a); c != 0 {
			return c < 0
		}
		return top[i].key.b.Less(top[j].key.b)
	})
	if len(top) > m.cfg.TopK {
		top = top[:m.cfg.TopK]
	}
	m.top = top
	clear(m.pairs)
}

// RunRotation calls Rotate every interval until stop is closed.
func (m *Metrics) RunRotation(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			m.Rotate()
		}
	}
}

const ns = "netpulse_tcpstats_"

var (
	descPackets  = prometheus.NewDesc(ns+"packets_total", "TCP packets analyzed.", []string{"interface", "direction", "service"}, nil)
	descPayload  = prometheus.NewDesc(ns+"payload_bytes_total", "TCP payload bytes, from the IP length.", []string{"interface", "direction", "service"}, nil)
	descFlags    = prometheus.NewDesc(ns+"analysis_flags_total", "Segments with each Wireshark tcp.analysis finding (docs/tcpstats.md).", []string{"interface", "direction", "service", "flag"}, nil)
	descStarted  = prometheus.NewDesc(ns+"connections_total", "Connections that entered the flow table.", []string{"interface", "service"}, nil)
	descEnded    = prometheus.NewDesc(ns+"connections_ended_total", "Connections that left the flow table, by reason (evicted means the table was full).", []string{"interface", "reason"}, nil)
	descTracked  = prometheus.NewDesc(ns+"connections_tracked", "Connections in the flow table.", []string{"interface"}, nil)
	descRTT      = prometheus.NewDesc(ns+"handshake_rtt_seconds", "Time from the last SYN to the ACK of the SYN-ACK.", []string{"interface", "service"}, nil)
	descPktSize  = prometheus.NewDesc(ns+"packet_size_bytes", "IP length of TCP packets.", []string{"interface", "direction"}, nil)
	descPaySize  = prometheus.NewDesc(ns+"payload_size_bytes", "TCP payload length of packets.", []string{"interface", "direction"}, nil)
	descParseErr = prometheus.NewDesc(ns+"parse_errors_total", "Captured frames not analyzed, by reason.", []string{"interface", "reason"}, nil)
	descDF       = prometheus.NewDesc(ns+"df_packets_total", "Packets with IPv4 Don't Fragment set (all IPv6 packets count).", []string{"interface", "direction"}, nil)
	descDrops    = prometheus.NewDesc(ns+"capture_drops_total", "Packets the kernel dropped because the capture fell behind (PACKET_STATISTICS).", []string{"interface"}, nil)
	descUp       = prometheus.NewDesc(ns+"up", "1 if the interface's capture is running.", []string{"interface"}, nil)
	descTop      = prometheus.NewDesc(ns+"top_pair_retransmissions", "Retransmissions in the last interval of the top-K client/server IP pairs.", []string{"client", "server"}, nil)
	descDropped  = prometheus.NewDesc(ns+"top_pairs_dropped_total", "Retransmissions not counted in the top-K because the pair table was full.", nil, nil)
)

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPackets, descPayload, descFlags, descStarted, descEnded, descTracked, descRTT, descPktSize, descPaySize, descParseErr, descDF, descUp, descDrops, descTop, descDropped} {
		ch <- d
	}
}

func constHist(d *prometheus.Desc, h *histogram, bounds []float64, labels ...string) prometheus.Metric {
	b := make(map[float64]uint64, len(bounds))
	var cum uint64
	for i, ub := range bounds {
		cum += h.counts[i]
		b[ub] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.n, h.sum, b, labels...)
}

var sizeBounds = func() []float64 {
	b := make([]float64, len(SizeBuckets))
	for i, s := range SizeBuckets {
		b[i] = float64(s)
	}
	return b
}()

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	for _, name := range m.order {
		im := m.ifaces[name]
		up := 0.0
		if im.up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, name)
		ch <- prometheus.MustNewConstMetric(descTracked, prometheus.GaugeValue, float64(im.tracked), name)
		for d := Direction(0); d < 2; d++ {
			for s, svc := range m.services {
				counter(descPackets, im.packets[d][s], name, d.String(), svc)
				counter(descPayload, im.payload[d][s], name, d.String(), svc)
				for f := Flag(0); f < NumFlags; f++ {
					counter(descFlags, im.flags[d][s][f], name, d.String(), svc, f.String())
				}
			}
			counter(descDF, im.df[d], name, d.String())
			ch <- constHist(descPktSize, &im.pktSize[d], sizeBounds, name, d.String())
			ch <- constHist(descPaySize, &im.paySize[d], sizeBounds, name, d.String())
		}
		for s, svc := range m.services {
			counter(descStarted, im.started[s], name, svc)
			ch <- constHist(descRTT, &im.rtt[s], rttBuckets, name, svc)
		}
		for r := range im.ended {
			counter(descEnded, im.ended[r], name, EndReason(r).String())
		}
		counter(descDrops, im.drops, name)
		counter(descParseErr, im.parseErrors.NotTCP, name, "not_tcp")
		counter(descParseErr, im.parseErrors.Fragments, name, "fragment")
		counter(descParseErr, im.parseErrors.Malformed, name, "malformed")
	}
	for _, p := range m.top {
		ch <- prometheus.MustNewConstMetric(descTop, prometheus.GaugeValue, float64(p.n), p.key.a.String(), p.key.b.String())
	}
	counter(descDropped, m.dropped)
}
