package tcpstats

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// LiveConfig configures `netpulse tcpstats --interface`.
type LiveConfig struct {
	// Interfaces to capture on, through AF_PACKET. Required.
	Interfaces []string
	// Filter is "tcp" (default: IPv4 and IPv6 TCP, and every VLAN-tagged
	// frame, which the parser then sorts) or "all". A general BPF
	// compiler needs libpcap (cgo); these two are assembled in Go.
	Filter string
	// Listen is the address of /metrics, /healthz and /readyz. Default
	// ":9469".
	Listen string
	// TopInterval is how often the top-K IP pairs are refreshed. Default 1m.
	TopInterval time.Duration
	Table       Config
	Metrics     MetricsConfig
}

// Live captures on interfaces and serves the metrics.
type Live struct {
	cfg      LiveConfig
	metrics  *Metrics
	registry *prometheus.Registry
	srv      *http.Server
	ln       net.Listener
	stop     chan struct{}
	wg       sync.WaitGroup
	ready    atomic.Bool
	running  atomic.Int32
}

// NewLive checks cfg and builds a Live; it opens nothing.
func NewLive(cfg LiveConfig) (*Live, error) {
	if len(cfg.Interfaces) == 0 {
		return nil, errors.New("tcpstats: no interface: set --interface NAME (repeatable)")
	}
	if cfg.Filter == "" {
		cfg.Filter = "tcp"
	}
	if cfg.Filter != "tcp" && cfg.Filter != "all" {
		return nil, fmt.Errorf("tcpstats: filter %q: only \"tcp\" and \"all\" are supported without libpcap", cfg.Filter)
	}
	if cfg.Listen == "" {
		cfg.Listen = ":9469"
	}
	if cfg.TopInterval <= 0 {
		cfg.TopInterval = time.Minute
	}
	l := &Live{cfg: cfg, metrics: NewMetrics(cfg.Metrics), registry: prometheus.NewRegistry(), stop: make(chan struct{})}
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
		if int(l.running.Load()) != len(l.cfg.Interfaces) {
			http.Error(w, "a capture stopped", http.StatusServiceUnavailable)
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

// Start opens every capture and the HTTP server. It fails, closing what
// it opened, if any of them cannot be opened.
func (l *Live) Start(ctx context.Context) error {
	var socks []*packetSocket
	for _, name := range l.cfg.Interfaces {
		s, err := openPacketSocket(name, l.cfg.Filter)
		if err != nil {
			for _, s := range socks {
				s.close()
			}
			return err
		}
		socks = append(socks, s)
	}
	ln, err := net.Listen("tcp", l.cfg.Listen)
	if err != nil {
		for _, s := range socks {
			s.close()
		}
		return fmt.Errorf("tcpstats: listen %s: %w", l.cfg.Listen, err)
	}
	l.ln = ln
	l.srv = &http.Server{Handler: l.Handler(), ReadHeaderTimeout: 10 * time.Second}
	l.wg.Add(1)
	go func() { defer l.wg.Done(); l.srv.Serve(ln) }()
	l.wg.Add(1)
	go func() { defer l.wg.Done(); l.metrics.RunRotation(l.cfg.TopInterval, l.stop) }()
	for i, s := range socks {
		rec := l.metrics.Interface(l.cfg.Interfaces[i])
		l.running.Add(1)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer l.running.Add(-1)
			defer s.close()
			l.capture(s, rec)
		}()
	}
	l.ready.Store(true)
	return nil
}

// Stop ends the captures and the HTTP server and waits for them.
func (l *Live) Stop() {
	close(l.stop)
	if l.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		l.srv.Shutdown(ctx)
		cancel()
	}
	l.wg.Wait()
}

// capture reads one socket until Stop.
func (l *Live) capture(s *packetSocket, rec *Recorder) {
	rec.SetUp(true)
	defer rec.SetUp(false)
	a := New(l.cfg.Table, rec.Ended)
	var p Packet
	var perr ParseErrors
	buf := make([]byte, snapLen)
	lastStats := time.Now()
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		n, ok, err := s.read(buf)
		if err != nil {
			return
		}
		if now := time.Now(); now.Sub(lastStats) >= time.Second {
			lastStats = now
			rec.CaptureDrops(s.drops())
		}
		if !ok {
			continue // timeout, or a duplicate on loopback
		}
		if err := Parse(LinkEthernet, buf[:n], &p); err != nil {
			perr.count(err)
			rec.ParseErrors(perr)
			continue
		}
		c, dir, f := a.Add(time.Now(), &p)
		rec.Packet(c, dir, &p, f, a.Len())
	}
}

// snapLen is how much of each frame the kernel copies: enough for
// Ethernet, two VLAN tags, IPv6 with extension headers and a full TCP
// header.
const snapLen = 256

type packetSocket struct {
	fd       int
	loopback bool
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// tcpFilter keeps IPv4 and IPv6 TCP (IPv6 with the TCP header first, or
// a fragment header) and VLAN-tagged frames on an Ethernet-framed link.
func tcpFilter() ([]bpf.RawInstruction, error) {
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0800, SkipFalse: 3},
		bpf.LoadAbsolute{Off: 23, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipTrue: 8, SkipFalse: 9},
		bpf.RetConstant{Val: 0}, // unreachable: keeps the offsets simple
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x86dd, SkipFalse: 3},
		bpf.LoadAbsolute{Off: 20, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipTrue: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 44, SkipTrue: 3, SkipFalse: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x8100, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x88a8, SkipTrue: 1, SkipFalse: 2},
		bpf.RetConstant{Val: 0}, // unreachable
		bpf.RetConstant{Val: snapLen},
		bpf.RetConstant{Val: 0},
	})
}

func openPacketSocket(name, filter string) (*packetSocket, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("tcpstats: interface %s: %w", name, err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, fmt.Errorf("tcpstats: AF_PACKET socket (needs CAP_NET_RAW): %w", err)
	}
	s := &packetSocket{fd: fd, loopback: ifi.Flags&net.FlagLoopback != 0}
	prog := []bpf.RawInstruction{{Op: 0x06, K: snapLen}} // ret snapLen: all
	if filter == "tcp" {
		if prog, err = tcpFilter(); err != nil {
			s.close()
			return nil, fmt.Errorf("tcpstats: BPF: %w", err)
		}
	}
	filt := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		filt[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(filt)), Filter: &filt[0]}); err != nil {
		s.close()
		return nil, fmt.Errorf("tcpstats: attach BPF filter on %s: %w", name, err)
	}
	// A read timeout lets the loop notice Stop.
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200_000}); err != nil {
		s.close()
		return nil, fmt.Errorf("tcpstats: %s: %w", name, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		s.close()
		return nil, fmt.Errorf("tcpstats: bind to %s: %w", name, err)
	}
	return s, nil
}

// read returns the next frame; ok is false on a timeout and for the
// outgoing copy of a loopback packet (the kernel shows it twice).
func (s *packetSocket) read(buf []byte) (n int, ok bool, err error) {
	n, from, err := unix.Recvfrom(s.fd, buf, 0)
	if err != nil {
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			return 0, false, nil
		}
		return 0, false, err
	}
	if ll, isLL := from.(*unix.SockaddrLinklayer); isLL && s.loopback && ll.Pkttype == unix.PACKET_OUTGOING {
		return 0, false, nil
	}
	return min(n, len(buf)), true, nil
}

// drops returns the packets the kernel dropped since the last call.
func (s *packetSocket) drops() uint64 {
	st, err := unix.GetsockoptTpacketStats(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0
	}
	return uint64(st.Drops)
}

func (s *packetSocket) close() { unix.Close(s.fd) }
