// Package proxy is `netpulse proxy`: kproxy's job. It receives NetFlow
// v5/v9, IPFIX and sFlow on UDP, identifies the sending device, limits each
// device's flow rate with unbiased resampling, enriches records, and hands
// them to sinks (the collector over HTTPS, Kafka, JSON lines), and reports
// its health on TCP port+1.
//
// The receive path never waits on anything downstream: each socket has a
// reader goroutine that copies datagrams into fixed-size batches and a
// bounded queue to its decode worker. When the queue is full, datagrams are
// dropped and counted per device, so memory stays flat under any overload.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netpulse/netpulse/decoder"
	"github.com/netpulse/netpulse/device"
	"github.com/netpulse/netpulse/enrich"
	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/sink"
)

// Config is the proxy's configuration. YAML keys and kproxy-style flags
// map onto it (see flags.go); defaults are in DefaultConfig.
type Config struct {
	// Name identifies this proxy to the collector. Default: the host name.
	Name string `yaml:"name"`
	// Host and Port are where flow is received (kproxy -host, -port).
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// Healthcheck is the address the health check binds to, on Port+1
	// (kproxy -healthcheck).
	Healthcheck string `yaml:"healthcheck"`
	// Sockets is the number of SO_REUSEPORT sockets, each with its own
	// reader and worker. Default: the number of CPUs.
	Sockets int `yaml:"sockets"`
	// RcvBufSize is each socket's receive buffer in bytes (kproxy
	// -rcvbuf_size). Default 16 MiB.
	RcvBufSize int `yaml:"rcvbuf_size"`
	// Queue is how many datagram batches (up to 256 KiB each) wait per
	// socket between reader and worker. Default 64.
	Queue int `yaml:"queue"`
	// Max is the per-device limit in flows/s (kproxy -max); 0 is no limit.
	Max int `yaml:"max"`
	// SampleInterval is the window over which resampling evens out
	// (kproxy -sampleInterval, in milliseconds on the command line).
	SampleInterval time.Duration `yaml:"sample_interval"`
	// Devices is a YAML device file (see package device).
	Devices string `yaml:"devices"`
	// AcceptUnregistered makes a device of every unknown source.
	AcceptUnregistered bool `yaml:"accept_unregistered"`
	// BootstrapDevices are listed in the health check from the start,
	// without waiting for flow (kproxy -bootstrap_devices).
	BootstrapDevices []uint64 `yaml:"bootstrap_devices"`
	// DataDir keeps state across restarts: templates, device cache, spool.
	DataDir string `yaml:"data_dir"`
	// Tee sends a copy of every datagram, as received, to each
	// "[src-ip:]dst-ip:dst-port".
	Tee []string `yaml:"tee"`
	// Enrich configures -my_network, -dns and GeoIP.
	Enrich enrich.Config `yaml:"enrich"`
	// Decoder bounds template and held-data memory; it is the file's
	// top-level decoder section.
	Decoder decoder.Config `yaml:"-"`
}

// DefaultConfig returns kproxy's defaults where it has them.
func DefaultConfig() Config {
	name, _ := os.Hostname()
	return Config{
		Name:           name,
		Host:           "127.0.0.1",
		Port:           9995,
		Healthcheck:    "127.0.0.1",
		Sockets:        runtime.NumCPU(),
		RcvBufSize:     16 << 20,
		Queue:          64,
		Max:            4000,
		SampleInterval: 15 * time.Second,
		Enrich:         enrich.DefaultConfig(),
		Decoder:        decoder.DefaultConfig(),
	}
}

// Validate checks the configuration; errors name the setting.
func (c *Config) Validate() error {
	if net.ParseIP(c.Host) == nil {
		return fmt.Errorf("host %q: want an IP address (0.0.0.0 or :: for all)", c.Host)
	}
	if c.Port < 0 || c.Port > 65534 {
		return fmt.Errorf("port %d: want 0..65534 (the health check uses port+1)", c.Port)
	}
	if net.ParseIP(c.Healthcheck) == nil {
		return fmt.Errorf("healthcheck %q: want an IP address", c.Healthcheck)
	}
	if c.Sockets < 1 || c.Sockets > 256 {
		return fmt.Errorf("sockets %d: want 1..256", c.Sockets)
	}
	if c.Queue < 1 {
		return fmt.Errorf("queue %d: want at least 1", c.Queue)
	}
	if c.Max < 0 {
		return fmt.Errorf("max %d: want 0 (no limit) or more", c.Max)
	}
	if c.SampleInterval < time.Second {
		return fmt.Errorf("sampleInterval %v: want at least 1000 ms", c.SampleInterval)
	}
	for _, t := range c.Tee {
		if _, _, err := parseTee(t); err != nil {
			return err
		}
	}
	return nil
}

// Limiter decides, per device, whether a flow is kept and by what factor
// its sampling rate grows (package ratelimit).
type Limiter interface {
	Admit(device uint64, now time.Time) (keep bool, factor uint32)
}

// Deps are what the proxy is given rather than builds.
type Deps struct {
	Log *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Registry holds the devices; New loads Config.Devices into a new
	// one when nil.
	Registry *device.Registry
	// Limiter limits flow rates; nil means no limit.
	Limiter Limiter
	// Sinks receive the records; at least one.
	Sinks []sink.Sink
}

// Proxy is one running proxy.
type Proxy struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	registry *device.Registry
	dec      *decoder.Decoder
	enr      *enrich.Enricher
	limiter  Limiter
	sinks    []sink.Sink
	stats    *statsTable
	tees     []*tee

	autoMu sync.Mutex
	autos  map[netip.Addr]*device.Device

	conns   []*socket
	readers []*reader
	wg      sync.WaitGroup
	cancel  context.CancelFunc
	started time.Time
	rcvbuf  int

	datagrams, flowsIn, flowsOut atomic.Uint64
	countersOut                  atomic.Uint64
	dropped                      [5]atomic.Uint64
	droppedDatagrams             atomic.Uint64
	teeErrors                    atomic.Uint64
}

// maxAutoDevices bounds the devices made from unregistered sources.
const maxAutoDevices = 4096

// New builds a proxy; it opens nothing.
func New(cfg Config, deps Deps) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	if len(deps.Sinks) == 0 {
		return nil, errors.New("proxy: no sink: forward to a collector, Kafka, a JSON lines file, or null")
	}
	p := &Proxy{cfg: cfg, log: deps.Log, now: deps.Now, registry: deps.Registry, limiter: deps.Limiter,
		sinks: deps.Sinks, stats: newStatsTable(), autos: make(map[netip.Addr]*device.Device)}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.registry == nil {
		var set *device.Set
		if cfg.Devices != "" {
			var err error
			if set, err = device.LoadFile(cfg.Devices); err != nil {
				return nil, fmt.Errorf("proxy: %w", err)
			}
		}
		p.registry = device.NewRegistry(set)
	}
	var err error
	if p.enr, err = enrich.New(cfg.Enrich, p.log); err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	for _, t := range cfg.Tee {
		src, dst, _ := parseTee(t)
		p.tees = append(p.tees, &tee{src: src, dst: dst})
	}
	p.dec = decoder.New(cfg.Decoder)
	for _, id := range cfg.BootstrapDevices {
		p.stats.get(id)
	}
	return p, nil
}

// Registry returns the device registry, to reload or inspect it.
func (p *Proxy) Registry() *device.Registry { return p.registry }

// Start opens the sockets and starts every goroutine.
func (p *Proxy) Start(ctx context.Context) error {
	ctx, p.cancel = context.WithCancel(ctx)
	p.started = p.now()
	p.loadTemplates()
	if err := p.enr.Start(ctx); err != nil {
		return err
	}
	for _, s := range p.sinks {
		if err := s.Start(ctx); err != nil {
			return fmt.Errorf("proxy: sink %s: %w", s.Name(), err)
		}
	}
	for _, t := range p.tees {
		if err := t.open(); err != nil {
			return fmt.Errorf("proxy: tee: %w", err)
		}
	}
	host, err := netip.ParseAddr(p.cfg.Host)
	if err != nil {
		return fmt.Errorf("proxy: host %q: %w", p.cfg.Host, err)
	}
	conns, got, err := sockets(netip.AddrPortFrom(host, uint16(p.cfg.Port)), p.cfg.Sockets, p.cfg.RcvBufSize)
	if err != nil {
		return err
	}
	p.conns, p.rcvbuf = conns, got
	if p.cfg.RcvBufSize > 0 && got < p.cfg.RcvBufSize {
		p.log.Warn("receive buffer smaller than asked (raise net.core.rmem_max or run as root)", "asked", p.cfg.RcvBufSize, "got", got)
	}
	for _, c := range conns {
		r := newReader(c, p.cfg.Queue)
		r.now = p.now
		r.lookup = p.onLookup
		r.count = p.onCount
		r.rcvbuf = got
		r.dropped = p.onDropped
		r.highwater = p.onHighwater
		if len(p.tees) > 0 {
			r.tee = p.onTee
		}
		p.readers = append(p.readers, r)
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			if err := r.run(); err != nil {
				p.log.Error("receive stopped", "err", err)
			}
		}()
		w := &worker{p: p, r: r}
		go func() {
			defer p.wg.Done()
			w.run()
		}()
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.housekeeping(ctx)
	}()
	p.log.Info("proxy listening", "addr", conns[0].addr.String(), "sockets", len(conns), "rcvbuf", got)
	return nil
}

// Addr returns the address flow is received on, once started.
func (p *Proxy) Addr() netip.AddrPort {
	if len(p.conns) == 0 {
		return netip.AddrPort{}
	}
	return p.conns[0].addr
}

// Stop closes the sockets, decodes what is queued, flushes the sinks
// until ctx is done, and saves the templates.
func (p *Proxy) Stop(ctx context.Context) error {
	for _, c := range p.conns {
		c.shutdown() // its reader closes it
	}
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	var errs []error
	for _, s := range p.sinks {
		if err := s.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("sink %s: %w", s.Name(), err))
		}
	}
	for _, t := range p.tees {
		t.close()
	}
	p.saveTemplates()
	errs = append(errs, p.enr.Stop(ctx))
	return errors.Join(errs...)
}

// housekeeping expires held data and saves templates every minute.
func (p *Proxy) housekeeping(ctx context.Context) {
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			p.dec.Expire(p.now())
			p.saveTemplates()
		}
	}
}

func (p *Proxy) templatesPath() string {
	if p.cfg.DataDir == "" {
		return ""
	}
	return filepath.Join(p.cfg.DataDir, "templates.jsonl")
}

func (p *Proxy) loadTemplates() {
	path := p.templatesPath()
	if path == "" {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			p.log.Warn("templates not loaded", "err", err)
		}
		return
	}
	defer f.Close()
	if _, err := p.dec.NetFlow().Templates().ReadFrom(f); err != nil {
		p.log.Warn("templates partly loaded", "path", path, "err", err)
	}
}

func (p *Proxy) saveTemplates() {
	path := p.templatesPath()
	if path == "" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.log.Warn("templates not saved", "err", err)
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".templates-*")
	if err != nil {
		p.log.Warn("templates not saved", "err", err)
		return
	}
	_, werr := p.dec.NetFlow().Templates().WriteTo(tmp)
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		p.log.Warn("templates not saved", "err", errors.Join(werr, cerr))
		return
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		p.log.Warn("templates not saved", "err", err)
	}
}

// device returns the device a source belongs to, making one when
// unregistered sources are accepted; nil otherwise.
func (p *Proxy) device(src netip.Addr) *device.Device {
	if d := p.registry.Lookup(src); d != nil {
		return d
	}
	if !p.cfg.AcceptUnregistered {
		return nil
	}
	p.autoMu.Lock()
	defer p.autoMu.Unlock()
	if d := p.autos[src]; d != nil {
		return d
	}
	if len(p.autos) >= maxAutoDevices {
		return nil
	}
	d := &device.Device{ID: autoID(src), Name: "auto-" + src.String(), IPs: []netip.Addr{src}}
	p.autos[src] = d
	return d
}

// autoID gives an accepted unregistered source a stable ID with the top
// bit set, so it never collides with a registered device's ID below 2^63.
func autoID(a netip.Addr) uint64 {
	h := fnv.New64a()
	b := a.As16()
	h.Write(b[:])
	return h.Sum64() | 1<<63
}

// onLookup identifies a source's device, once for the whole path.
func (p *Proxy) onLookup(src netip.AddrPort, now time.Time) (*device.Device, *deviceStats) {
	d := p.device(src.Addr())
	if d == nil {
		p.registry.Unregistered(src.Addr(), now)
		return nil, nil
	}
	ds := p.stats.get(d.ID)
	ds.seen(src.Addr(), now)
	return d, ds
}

// onCount counts datagrams read, from any source (ds is nil for one that
// is not a device).
func (p *Proxy) onCount(ds *deviceStats, datagrams, bytes uint64) {
	p.datagrams.Add(datagrams)
	if ds != nil {
		ds.datagrams.Add(datagrams)
		ds.bytes.Add(bytes)
	}
}

func (p *Proxy) onDropped(ds *deviceStats) {
	p.droppedDatagrams.Add(1)
	if ds != nil {
		ds.droppedDatagrams.Add(1)
	}
}

func (p *Proxy) onHighwater(ds *deviceStats, depth int) {
	if ds != nil {
		ds.markHighwater(depth)
	}
}

func (p *Proxy) onTee(src netip.AddrPort, payload []byte) {
	for _, t := range p.tees {
		if err := t.send(payload); err != nil {
			p.teeErrors.Add(1)
		}
	}
}

func (p *Proxy) drop(ds *deviceStats, reason string, n uint64) {
	for i, r := range reasons {
		if r == reason {
			p.dropped[i].Add(n)
		}
	}
	if ds != nil {
		ds.drop(reason, n)
	}
}

// worker decodes one reader's batches and feeds the sinks.
type worker struct {
	p   *Proxy
	r   *reader
	out []flow.Record
	// The datagram being decoded.
	dev     *device.Device
	ds      *deviceStats
	at      time.Time
	in, not uint64 // flows in, flows not kept (rate limit)
	// Flows in are counted once per run of datagrams of one device
	// rather than per datagram: the counters are shared with the reader
	// and the other workers.
	runDS *deviceStats
	runIn uint64
	runAt time.Time
}

// flushAt is how many records a worker gathers before writing to sinks.
const flushAt = 512

func (w *worker) run() {
	w.out = make([]flow.Record, 0, flushAt)
	for b := range w.r.queue {
		for i := range b.dgs {
			w.datagram(b, i)
		}
		w.flush()
		w.runDS = nil
		w.r.release(b)
	}
	w.flush()
}

func (w *worker) datagram(b *batch, i int) {
	p := w.p
	dg := &b.dgs[i]
	src := dg.src.Addr()
	w.dev, w.ds = dg.dev, dg.ds
	if w.dev == nil {
		p.drop(nil, reasonUnregistered, 1)
		return
	}
	w.at = dg.received
	w.in, w.not = 0, 0
	if err := p.dec.Decode(src, dg.received, b.payload(i), w.emit); err != nil {
		p.drop(w.ds, reasonDecode, 1)
		p.log.Debug("bad datagram", "src", dg.src, "device", w.dev.ID, "err", err)
	}
	if w.in > 0 {
		if w.ds != w.runDS {
			w.countIn(w.ds)
		}
		w.runIn += w.in
		w.runAt = dg.received
	}
	if w.not > 0 {
		p.drop(w.ds, reasonRateLimit, w.not)
	}
}

// countIn adds the flows of the current run to the counters and starts a
// run for next.
func (w *worker) countIn(next *deviceStats) {
	if w.runIn > 0 {
		w.p.flowsIn.Add(w.runIn)
		w.runDS.flowsIn.Add(w.runIn)
		w.runDS.in.add(w.runAt, w.runIn)
	}
	w.runDS, w.runIn = next, 0
}

// emit handles one decoded record: device, default sampling rate, rate
// limit, enrichment.
func (w *worker) emit(r *flow.Record) {
	p := w.p
	if r.Kind == flow.KindFlow {
		w.in++
		if p.limiter != nil {
			keep, factor := p.limiter.Admit(w.dev.ID, w.at)
			if !keep {
				w.not++
				return
			}
			if factor > 1 {
				r.ResampleFactor = factor
				r.SamplingRate = mulSat(r.SamplingRate, factor)
			}
		}
	}
	r.DeviceID = w.dev.ID
	if r.SamplingRate == 0 && w.dev.SampleRate > 0 {
		r.SamplingRate = mulSat(w.dev.SampleRate, max(r.ResampleFactor, 1))
	}
	p.enr.Apply(r)
	w.out = append(w.out, *r)
	if len(w.out) >= flushAt {
		w.flush()
	}
}

// flush writes the gathered records to every sink. A record counts as
// forwarded when every sink took it.
func (w *worker) flush() {
	w.countIn(w.runDS) // flows in are counted before they are out
	if len(w.out) == 0 {
		return
	}
	p := w.p
	forwarded := len(w.out)
	for _, s := range p.sinks {
		n := s.Write(w.out)
		if n < len(w.out) {
			w.countRuns(w.out[n:], func(ds *deviceStats, k uint64) { p.drop(ds, reasonSinkFull, k) })
		}
		forwarded = min(forwarded, n)
	}
	now := p.now()
	for i := range w.out[:forwarded] {
		if w.out[i].Kind == flow.KindCounters {
			p.countersOut.Add(1)
		}
	}
	w.countRuns(w.out[:forwarded], func(ds *deviceStats, k uint64) {
		p.flowsOut.Add(k)
		ds.flowsOut.Add(k)
		ds.out.add(now, k)
	})
	w.out = w.out[:0]
}

// countRuns calls fn once per run of consecutive flow records of one
// device.
func (w *worker) countRuns(recs []flow.Record, fn func(*deviceStats, uint64)) {
	var id uint64
	var n uint64
	for i := range recs {
		if recs[i].Kind != flow.KindFlow {
			continue
		}
		if n > 0 && recs[i].DeviceID != id {
			fn(w.p.stats.get(id), n)
			n = 0
		}
		id = recs[i].DeviceID
		n++
	}
	if n > 0 {
		fn(w.p.stats.get(id), n)
	}
}

// tee forwards datagrams as received to another receiver.
type tee struct {
	src  netip.Addr
	dst  netip.AddrPort
	conn *net.UDPConn
}

// parseTee parses "[src-ip:]dst-ip:dst-port" (IPv6 addresses in brackets).
func parseTee(s string) (netip.Addr, netip.AddrPort, error) {
	if dst, err := netip.ParseAddrPort(s); err == nil {
		return netip.Addr{}, dst, nil
	}
	// src:dst:port, with src either IPv4 or [IPv6].
	for i := 0; i < len(s); i++ {
		if s[i] != ':' {
			continue
		}
		src, err1 := netip.ParseAddr(trimBrackets(s[:i]))
		dst, err2 := netip.ParseAddrPort(s[i+1:])
		if err1 == nil && err2 == nil {
			return src, dst, nil
		}
	}
	return netip.Addr{}, netip.AddrPort{}, fmt.Errorf("tee %q: want [src-ip:]dst-ip:dst-port", s)
}

func trimBrackets(s string) string {
	if len(s) > 1 && s[0] == '[' && s[len(s)-1] == ']' {
		return s[1 : len(s)-1]
	}
	return s
}

func (t *tee) open() error {
	var laddr *net.UDPAddr
	if t.src.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(t.src, 0))
	}
	c, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(t.dst))
	if err != nil {
		return err
	}
	c.SetWriteBuffer(4 << 20)
	t.conn = c
	return nil
}

func (t *tee) send(b []byte) error {
	_, err := t.conn.Write(b)
	return err
}

func (t *tee) close() {
	if t.conn != nil {
		t.conn.Close()
	}
}

func loadDevices(path string) (*device.Set, error) { return device.LoadFile(path) }

// mulSat multiplies sampling rates, saturating at the largest uint32: a
// rate of four billion already means "almost nothing kept".
func mulSat(a, b uint32) uint32 {
	if p := uint64(a) * uint64(b); p <= math.MaxUint32 {
		return uint32(p)
	}
	return math.MaxUint32
}
