package tcpstats

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// LiveConfig configures `netpulse tcpstats --interface`. FileConfig.Live
// builds one from the YAML section and the flags.
type LiveConfig struct {
	// Interfaces to capture on, through AF_PACKET. Required. "any" is
	// every interface, in Linux cooked mode.
	Interfaces []string
	// Filter is a capture filter in pcap-filter syntax (the subset in
	// docs/tcpstats.md), compiled in Go. Empty: DefaultFilterEthernet on
	// Ethernet-framed interfaces, DefaultFilterCooked on the others.
	// "all" keeps every frame.
	Filter string
	// FilterBPF is a precompiled program instead, as `tcpdump -ddd`
	// prints it (see ParseBPF). It excludes Filter.
	FilterBPF string
	// Listen is the address of /metrics, /healthz and /readyz. Default
	// ":9469".
	Listen string
	// TopInterval is how often the top-K IP pairs are refreshed. Default 1m.
	TopInterval time.Duration
	Table       Config
	Metrics     MetricsConfig
}

func (c LiveConfig) withDefaults() LiveConfig {
	if c.Listen == "" {
		c.Listen = ":9469"
	}
	if c.TopInterval <= 0 {
		c.TopInterval = time.Minute
	}
	c.Table = c.Table.withDefaults()
	c.Metrics = c.Metrics.withDefaults()
	return c
}

// filterSpec is the filter a LiveConfig asks for, before it is compiled
// for a socket's link type.
type filterSpec struct {
	expr        string
	all         bool
	precompiled []bpf.RawInstruction
}

func (c LiveConfig) filter() (filterSpec, error) {
	switch {
	case c.FilterBPF != "" && c.Filter != "":
		return filterSpec{}, errors.New("tcpstats: --filter and --filter-bpf exclude each other")
	case c.FilterBPF != "":
		prog, err := ParseBPF(c.FilterBPF)
		return filterSpec{precompiled: prog}, err
	case c.Filter == "all":
		return filterSpec{all: true}, nil
	}
	// Catch syntax errors before any socket is opened. What the subset
	// accepts on cooked links it accepts on Ethernet too; the reverse
	// ("vlan") fails when the cooked socket is opened.
	f := filterSpec{expr: c.Filter}
	_, err := socketFilter(f.expr, false)
	return f, err
}

// program compiles the filter for a socket. Precompiled programs are
// for Ethernet frames, or LINUX_SLL2 on cooked sockets; their accept
// length is cut to snapLen, as the compiled ones return.
func (f filterSpec) program(cooked bool) ([]bpf.RawInstruction, error) {
	switch {
	case f.all:
		return []bpf.RawInstruction{{Op: opRet, K: snapLen}}, nil
	case f.precompiled != nil:
		prog := slices.Clone(f.precompiled)
		for i, ri := range prog {
			if ri.Op == opRet && ri.K > snapLen {
				prog[i].K = snapLen
			}
		}
		if cooked {
			return cookedForSocket(prog, LinkLinuxSLL2)
		}
		return prog, nil
	}
	return socketFilter(f.expr, cooked)
}

// Live captures on interfaces and serves the metrics.
type Live struct {
	metrics  *Metrics
	registry *prometheus.Registry
	srv      *http.Server
	ln       net.Listener
	wg       sync.WaitGroup
	ready    atomic.Bool

	// mu guards cfg, filter, caps and rotStop: Start, Reload, Stop and
	// the health handlers.
	mu      sync.Mutex
	cfg     LiveConfig
	filter  filterSpec
	caps    map[string]*liveCapture
	rotStop chan struct{}
	stopped bool

	// pause is held for reading while a capture handles a block of
	// packets, and for writing while Reload changes the metrics'
	// service ports under them.
	pause sync.RWMutex
}

// liveCapture is one interface's socket and goroutine.
type liveCapture struct {
	name    string
	ring    *ring
	running atomic.Bool
	done    chan struct{}
}

// NewLive checks cfg and builds a Live; it opens nothing.
func NewLive(cfg LiveConfig) (*Live, error) {
	if len(cfg.Interfaces) == 0 {
		return nil, errors.New("tcpstats: no interface: set --interface NAME (repeatable)")
	}
	cfg = cfg.withDefaults()
	f, err := cfg.filter()
	if err != nil {
		return nil, err
	}
	l := &Live{cfg: cfg, filter: f, metrics: NewMetrics(cfg.Metrics), registry: prometheus.NewRegistry(), caps: map[string]*liveCapture{}}
	l.registry.MustRegister(l.metrics)
	return l, nil
}

// Metrics returns the metrics the captures feed.
func (l *Live) Metrics() *Metrics { return l.metrics }

// Addr is the address the HTTP server listens on, once started.
func (l *Live) Addr() string { return l.ln.Addr().String() }

// Handler serves /metrics, /healthz (every capture is running) and
// /readyz (every capture was opened).
func (l *Live) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(l.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if down := l.down(); down != "" {
			http.Error(w, "capture stopped on "+down, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !l.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// down names a configured interface whose capture is not running.
func (l *Live) down() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, name := range l.cfg.Interfaces {
		if c := l.caps[name]; c == nil || !c.running.Load() {
			return name
		}
	}
	return ""
}

// openAll opens a socket on each name, or none: on an error it closes
// what it opened.
func openAll(names []string, f filterSpec) (map[string]*ring, error) {
	out := map[string]*ring{}
	for _, name := range names {
		r, err := openRing(name, f)
		if err != nil {
			for _, r := range out {
				r.close()
			}
			return nil, err
		}
		out[name] = r
	}
	return out, nil
}

// Start opens every capture and the HTTP server. It fails, closing what
// it opened, if any of them cannot be opened.
func (l *Live) Start(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	rings, err := openAll(l.cfg.Interfaces, l.filter)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", l.cfg.Listen)
	if err != nil {
		for _, r := range rings {
			r.close()
		}
		return fmt.Errorf("tcpstats: listen %s: %w", l.cfg.Listen, err)
	}
	l.ln = ln
	l.srv = &http.Server{Handler: l.Handler(), ReadHeaderTimeout: 10 * time.Second}
	l.wg.Add(1)
	go func() { defer l.wg.Done(); l.srv.Serve(ln) }()
	l.startRotation(l.cfg.TopInterval)
	for _, name := range l.cfg.Interfaces {
		l.startCapture(name, rings[name])
	}
	l.ready.Store(true)
	return nil
}

func (l *Live) startRotation(every time.Duration) {
	stop := make(chan struct{})
	l.rotStop = stop
	l.wg.Add(1)
	go func() { defer l.wg.Done(); l.metrics.RunRotation(every, stop) }()
}

func (l *Live) startCapture(name string, r *ring) {
	c := &liveCapture{name: name, ring: r, done: make(chan struct{})}
	c.running.Store(true)
	l.caps[name] = c
	rec := l.metrics.Interface(name)
	table := l.cfg.Table
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer close(c.done)
		defer c.running.Store(false)
		l.capture(c, table, rec)
	}()
}

// stopCapture ends one capture and closes its socket.
func (c *liveCapture) stop() {
	c.ring.wake()
	<-c.done
	c.ring.close()
}

// Reload applies a new configuration to the running captures without
// losing their flow tables or counters. It changes the filter (attached
// again to the open sockets), the interfaces (new ones are opened, removed
// ones closed and their series dropped; a capture that had stopped is
// opened again), the service ports, top-K, its interval and pair bound.
// Listen and the flow-table bounds (Table) cannot change while running: a
// change there fails the reload. On any error nothing changes.
func (l *Live) Reload(cfg LiveConfig) error {
	if len(cfg.Interfaces) == 0 {
		return errors.New("tcpstats: reload: no interface")
	}
	cfg = cfg.withDefaults()
	f, err := cfg.filter()
	if err != nil {
		return fmt.Errorf("tcpstats: reload: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped || !l.ready.Load() {
		return errors.New("tcpstats: reload: not running")
	}
	old := l.cfg
	if cfg.Listen != old.Listen {
		return fmt.Errorf("tcpstats: reload: listen cannot change from %s to %s without a restart; nothing changed", old.Listen, cfg.Listen)
	}
	if cfg.Table != old.Table {
		return errors.New("tcpstats: reload: max_flows, idle_timeout and closed_timeout cannot change without a restart; nothing changed")
	}
	// Everything that can fail comes first: compile for the sockets kept,
	// open the new ones.
	progs := map[string][]bpf.RawInstruction{}
	var added []string
	for _, name := range cfg.Interfaces {
		c := l.caps[name]
		if c == nil || !c.running.Load() {
			added = append(added, name)
			continue
		}
		if progs[name], err = f.program(c.ring.cooked); err != nil {
			return fmt.Errorf("tcpstats: reload: %s: %w", name, err)
		}
	}
	opened, err := openAll(added, f)
	if err != nil {
		return fmt.Errorf("tcpstats: reload: %w", err)
	}
	for name, prog := range progs {
		if err := l.caps[name].ring.setFilter(prog); err != nil {
			for _, r := range opened {
				r.close()
			}
			return fmt.Errorf("tcpstats: reload: attach filter on %s: %w", name, err)
		}
	}
	l.pause.Lock()
	l.metrics.reconfigure(cfg.Metrics)
	l.pause.Unlock()
	if cfg.TopInterval != old.TopInterval {
		close(l.rotStop)
		l.startRotation(cfg.TopInterval)
	}
	for name, c := range l.caps {
		if _, reopen := opened[name]; reopen || !slices.Contains(cfg.Interfaces, name) {
			c.stop()
			delete(l.caps, name)
			if !reopen {
				l.metrics.removeInterface(name)
			}
		}
	}
	l.cfg, l.filter = cfg, f
	for _, name := range added {
		l.startCapture(name, opened[name])
	}
	return nil
}

// Stop ends the captures and the HTTP server and waits for them.
func (l *Live) Stop() {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return
	}
	l.stopped = true
	if l.rotStop != nil {
		close(l.rotStop)
	}
	for _, c := range l.caps {
		c.stop()
	}
	l.mu.Unlock()
	if l.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		l.srv.Shutdown(ctx)
		cancel()
	}
	l.wg.Wait()
}

// capture reads one socket until it is woken to stop.
func (l *Live) capture(c *liveCapture, table Config, rec *Recorder) {
	rec.SetUp(true)
	defer rec.SetUp(false)
	a := New(table, rec.Ended)
	var p Packet
	var perr ParseErrors
	r := c.ring
	lastStats := time.Now()
	for {
		blk, ok, err := r.next()
		if err != nil || !ok {
			return // stopped, or the socket failed
		}
		l.pause.RLock()
		before := perr
		r.packets(blk, func(f *ringFrame) {
			lt := LinkEthernet
			if r.cooked {
				if f.proto != etherIPv4 && f.proto != etherIPv6 {
					perr.NotTCP++
					return
				}
				lt = LinkRaw
			}
			if err := Parse(lt, f.data, &p); err != nil {
				perr.count(err)
				return
			}
			c, dir, fl := a.Add(f.time, &p)
			rec.Packet(c, dir, &p, fl, a.Len())
		})
		l.pause.RUnlock()
		r.release(blk)
		if perr != before {
			rec.ParseErrors(perr)
		}
		if now := time.Now(); now.Sub(lastStats) >= time.Second {
			lastStats = now
			rec.CaptureDrops(r.drops())
		}
	}
}

// snapLen is how much of each frame the kernel copies: enough for
// Ethernet, two VLAN tags, IPv6 with extension headers and a full TCP
// header.
const snapLen = 256

// The PACKET_MMAP ring (TPACKET_V3): the kernel fills blocks of frames,
// each with its timestamp, and hands a block over when it is full or
// ringTimeout after its first frame. One poll and no copy per block,
// instead of a recvfrom per frame.
const (
	ringBlockSize = 1 << 17 // bytes per block, a multiple of the page size
	ringBlocks    = 32      // 4 MiB per interface
	ringFrameSize = 1 << 11 // only sizes the kernel's bookkeeping in V3
	ringTimeout   = 50      // ms: how stale a partly filled block may get
	ringHdrLen    = 48      // sizeof(struct tpacket3_hdr), TPACKET_ALIGNed
)

// ring is one AF_PACKET socket with its mapped receive ring.
type ring struct {
	fd     int
	wakeFd int // an eventfd: a write ends the poll in next
	mem    []byte
	cur    int // the next block to read
	// cooked sockets (SOCK_DGRAM) show packets from the network header
	// on: the any device, and interfaces without an Ethernet header.
	cooked bool
	// loopback holds the interface indexes whose outgoing copies are
	// skipped: loopback shows each packet twice.
	loopback map[int32]bool
}

// ringFrame is one captured frame; data points into the ring.
type ringFrame struct {
	time    time.Time
	data    []byte
	proto   uint16 // EtherType, from the socket address
	pkttype uint8
	ifindex int32
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openRing opens a capture on an interface ("any": all of them).
func openRing(name string, f filterSpec) (*ring, error) {
	ifindex, cooked, loops, err := linkOf(name)
	if err != nil {
		return nil, err
	}
	prog, err := f.program(cooked)
	if err != nil {
		return nil, fmt.Errorf("tcpstats: %s: %w", name, err)
	}
	typ := unix.SOCK_RAW
	if cooked {
		typ = unix.SOCK_DGRAM
	}
	// Protocol 0: nothing is queued until bind, after the filter is on.
	fd, err := unix.Socket(unix.AF_PACKET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tcpstats: AF_PACKET socket (needs CAP_NET_RAW): %w", err)
	}
	r := &ring{fd: fd, wakeFd: -1, cooked: cooked, loopback: loops}
	fail := func(what string, err error) (*ring, error) {
		r.close()
		return nil, fmt.Errorf("tcpstats: %s on %s: %w", what, name, err)
	}
	if err := r.setFilter(prog); err != nil {
		return fail("attach BPF filter", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return fail("TPACKET_V3", err)
	}
	req := unix.TpacketReq3{
		Block_size: ringBlockSize, Block_nr: ringBlocks,
		Frame_size: ringFrameSize, Frame_nr: ringBlockSize / ringFrameSize * ringBlocks,
		Retire_blk_tov: ringTimeout,
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fail("PACKET_RX_RING", err)
	}
	if r.mem, err = unix.Mmap(fd, 0, ringBlockSize*ringBlocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return fail("mmap ring", err)
	}
	if r.wakeFd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fail("eventfd", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		return fail("bind", err)
	}
	return r, nil
}

// linkOf finds an interface's index and whether it needs a cooked socket
// (no Ethernet header), and the loopback interfaces.
func linkOf(name string) (ifindex int, cooked bool, loops map[int32]bool, err error) {
	loops = map[int32]bool{}
	ifs, err := net.Interfaces()
	if err != nil {
		return 0, false, nil, fmt.Errorf("tcpstats: list interfaces: %w", err)
	}
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagLoopback != 0 {
			loops[int32(ifi.Index)] = true
		}
	}
	if name == "any" {
		return 0, true, loops, nil
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, false, nil, fmt.Errorf("tcpstats: interface %s: %w", name, err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, false, nil, fmt.Errorf("tcpstats: interface %s: %w", name, err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, false, nil, fmt.Errorf("tcpstats: interface %s: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err != nil {
		return 0, false, nil, fmt.Errorf("tcpstats: interface %s: hardware type: %w", name, err)
	}
	// The hardware address's family is the ARPHRD type.
	switch ifr.Uint16() {
	case unix.ARPHRD_ETHER, unix.ARPHRD_LOOPBACK:
		return ifi.Index, false, loops, nil
	}
	return ifi.Index, true, loops, nil
}

func (r *ring) setFilter(prog []bpf.RawInstruction) error {
	filt := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		filt[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return unix.SetsockoptSockFprog(r.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(filt)), Filter: &filt[0]})
}

// status is the block's block_status word, shared with the kernel.
func (r *ring) status(blk int) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[blk*ringBlockSize+8]))
}

// next waits for the next block the kernel has handed over and returns
// its index; ok is false after wake.
func (r *ring) next() (blk int, ok bool, err error) {
	fds := []unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN}, {Fd: int32(r.wakeFd), Events: unix.POLLIN}}
	for {
		if atomic.LoadUint32(r.status(r.cur))&unix.TP_STATUS_USER != 0 {
			return r.cur, true, nil
		}
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, 1000); err != nil && !errors.Is(err, unix.EINTR) {
			return 0, false, err
		}
		if fds[1].Revents != 0 {
			return 0, false, nil
		}
		if fds[0].Revents&(unix.POLLERR|unix.POLLNVAL) != 0 && atomic.LoadUint32(r.status(r.cur))&unix.TP_STATUS_USER == 0 {
			return 0, false, errors.New("tcpstats: capture socket failed")
		}
	}
}

// packets calls fn for each frame of a block the kernel handed over.
// Offsets come from the kernel; they are checked all the same, so a bad
// one ends the block instead of the process.
func (r *ring) packets(blk int, fn func(*ringFrame)) {
	b := r.mem[blk*ringBlockSize : (blk+1)*ringBlockSize]
	ne := binary.NativeEndian
	n := ne.Uint32(b[12:])
	off := int(ne.Uint32(b[16:]))
	var f ringFrame
	for i := uint32(0); i < n; i++ {
		if off < 0 || off+ringHdrLen+20 > len(b) {
			return
		}
		h := b[off:]
		next := int(ne.Uint32(h[0:]))
		snap, mac := int(ne.Uint32(h[12:])), int(ne.Uint16(h[24:]))
		if mac+snap > len(h) {
			return
		}
		sll := h[ringHdrLen:]
		f = ringFrame{
			time:    time.Unix(int64(ne.Uint32(h[4:])), int64(ne.Uint32(h[8:]))),
			data:    h[mac : mac+snap],
			proto:   binary.BigEndian.Uint16(sll[2:]),
			ifindex: int32(ne.Uint32(sll[4:])),
			pkttype: sll[10],
		}
		if f.pkttype != unix.PACKET_OUTGOING || !r.loopback[f.ifindex] {
			fn(&f)
		}
		if next <= 0 {
			return
		}
		off += next
	}
}

// release hands a block back to the kernel and moves to the next.
func (r *ring) release(blk int) {
	atomic.StoreUint32(r.status(blk), unix.TP_STATUS_KERNEL)
	r.cur = (blk + 1) % ringBlocks
}

// wake ends the current or next wait in next.
func (r *ring) wake() {
	var one [8]byte
	ne := binary.NativeEndian
	ne.PutUint64(one[:], 1)
	unix.Write(r.wakeFd, one[:])
}

// drops returns the packets the kernel dropped since the last call (a
// full ring).
func (r *ring) drops() uint64 {
	st, err := unix.GetsockoptTpacketStatsV3(r.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0
	}
	return uint64(st.Drops)
}

func (r *ring) close() {
	if r.mem != nil {
		unix.Munmap(r.mem)
		r.mem = nil
	}
	if r.wakeFd >= 0 {
		unix.Close(r.wakeFd)
		r.wakeFd = -1
	}
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}
