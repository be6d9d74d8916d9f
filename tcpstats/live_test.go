package tcpstats

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/netpulse/netpulse/internal/integration"
)

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		integration.Missing(t, "live capture needs root (CAP_NET_RAW)")
	}
}

// TestDefaultFilter runs the default Ethernet filter, as compiled for a
// capture file and for a socket, on frames it must keep and drop. On a
// socket it also sees tagged frames with the tag in the kernel's metadata.
func TestDefaultFilter(t *testing.T) {
	file, err := CompileFilter(DefaultFilterEthernet, LinkEthernet, snapLen)
	if err != nil {
		t.Fatal(err)
	}
	sock, err := socketFilter("", false)
	if err != nil {
		t.Fatal(err)
	}
	v4 := seg{src: "10.0.0.1", dst: "10.0.0.2", flags: FlagACK}
	v6 := seg{src: "fd77::1", dst: "fd77::2", flags: FlagACK}
	udpIP := ipPacket(v4)
	udpIP[9] = 17
	udp := ethernet(udpIP)
	udp6 := ethernet(ipPacket(v6))
	udp6[14+6] = 17
	cases := []struct {
		name  string
		frame []byte
		keep  bool
	}{
		{"ipv4 tcp", ethernet(ipPacket(v4)), true},
		{"ipv6 tcp", ethernet(ipPacket(v6)), true},
		{"ipv6 fragment", ethernet(ipPacket(seg{src: "fd77::1", dst: "fd77::2", ext: []byte{6, 0, 0, 0, 0, 0, 0, 1}, extFirst: 44})), true},
		{"vlan", ethernet(ipPacket(v4), 0x8100), true},
		{"qinq", ethernet(ipPacket(v6), 0x88a8, 0x8100), true},
		{"ipv4 udp", udp, false},
		{"ipv6 udp", udp6, false},
		{"vlan udp", ethernet(udpIP, 0x8100), false},
		{"arp", append(make([]byte, 12), 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1), false},
	}
	for _, tc := range cases {
		for what, prog := range map[string][]bpf.RawInstruction{"file": file, "socket": sock} {
			got := verdicts(t, prog, []filterFrame{{name: tc.name, data: tc.frame}})[0]
			if got != tc.keep {
				t.Errorf("%s, %s: keep=%v, want %v", what, tc.name, got, tc.keep)
			}
		}
		// The kernel took the outer tag out of the frame.
		if tc.frame[12] == 0x81 || tc.frame[12] == 0x88 {
			stripped := append(append([]byte(nil), tc.frame[:12]...), tc.frame[16:]...)
			f := filterFrame{name: tc.name, data: stripped, vlan: true, tci: 100}
			if got := verdicts(t, sock, []filterFrame{f})[0]; got != tc.keep {
				t.Errorf("socket, %s with the tag in metadata: keep=%v, want %v", tc.name, got, tc.keep)
			}
		}
	}
}

// server accepts connections on a loopback port and reads them to the
// end.
func server(t *testing.T) (net.Listener, uint16) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	return ln, uint16(ln.Addr().(*net.TCPAddr).Port)
}

// send makes one connection to ln, writes n bytes and closes it.
func send(t *testing.T, ln net.Listener, n int) {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitMetrics polls /metrics until every wanted line is there.
func waitMetrics(t *testing.T, l *Live, want ...string) string {
	t.Helper()
	start := time.Now()
	for {
		_, body := get(t, l.Addr(), "/metrics")
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w+"\n") {
				missing = w
			}
		}
		if missing == "" {
			return body
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("metrics did not move in 10 s: no %q in\n%s", missing, grepLines(body, "tcpstats_packets_total\\|connections_total\\|payload_bytes_total"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func grepLines(s, pattern string) string {
	re := regexp.MustCompile(strings.ReplaceAll(pattern, `\|`, "|"))
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if re.MatchString(l) && !strings.HasSuffix(l, " 0") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// metricValue returns the value of the series named by prefix (the name
// and labels up to the closing brace), or -1 when it is absent.
func metricValue(body, series string) float64 {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// TestLiveLoopback captures on lo while this test makes a TCP connection,
// and checks the metrics move and the handshake RTT, measured from kernel
// timestamps, is that of loopback.
func TestLiveLoopback(t *testing.T) {
	needRoot(t)
	// Traffic: a listener on :0, given its own service label so other
	// loopback traffic (this test's HTTP polls) does not count.
	ln, port := server(t)
	l, err := NewLive(LiveConfig{Interfaces: []string{"lo"}, Listen: "127.0.0.1:0", Metrics: MetricsConfig{ServicePorts: []uint16{port}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _ := get(t, l.Addr(), p); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
	send(t, ln, 100_000)
	svc := fmt.Sprintf(`interface="lo",service="%d"}`, port)
	body := waitMetrics(t, l,
		"netpulse_tcpstats_connections_total{"+svc+" 1",
		"netpulse_tcpstats_handshake_rtt_seconds_count{"+svc+" 1",
		`netpulse_tcpstats_payload_bytes_total{direction="to_server",`+svc+" 100000")
	rtt := metricValue(body, "netpulse_tcpstats_handshake_rtt_seconds_sum{"+svc)
	if rtt <= 0 || rtt > 0.1 {
		t.Errorf("loopback handshake RTT %v s: want a positive fraction of a millisecond or so", rtt)
	}
	t.Logf("loopback handshake RTT %.1f µs", rtt*1e6)
}

// TestRingTimestamps reads the ring directly: every frame of a loopback
// connection carries a kernel timestamp inside the test's wall-clock
// window, in order, and earlier than the moment the frames were read,
// which a time.Now() after the read could not be.
func TestRingTimestamps(t *testing.T) {
	needRoot(t)
	ln, port := server(t)
	r, err := openRing("lo", filterSpec{expr: fmt.Sprintf("tcp port %d", port)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	start := time.Now()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		c.Write(make([]byte, 1000))
	}
	c.Close()
	end := time.Now()
	deadline := time.AfterFunc(5*time.Second, r.wake)
	defer deadline.Stop()
	var times []time.Time
	var p Packet
	fins := 0
	for fins < 2 {
		blk, ok, err := r.next()
		if err != nil || !ok {
			t.Fatalf("ring: %v after %d frames (%d FINs)", err, len(times), fins)
		}
		read := time.Now()
		r.packets(blk, func(f *ringFrame) {
			if err := Parse(LinkEthernet, f.data, &p); err != nil {
				t.Errorf("frame %d: %v", len(times), err)
				return
			}
			if f.time.After(read) {
				t.Errorf("frame %d: timestamp %v after it was read (%v)", len(times), f.time, read)
			}
			if p.Flags&FlagFIN != 0 {
				fins++
			}
			times = append(times, f.time)
		})
		r.release(blk)
	}
	const slack = time.Millisecond
	for i, ts := range times {
		if ts.Before(start.Add(-slack)) || ts.After(end.Add(slack)) {
			t.Errorf("frame %d: %v outside the test's window [%v, %v]", i, ts.Format(time.RFC3339Nano), start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano))
		}
		if i > 0 && ts.Before(times[i-1].Add(-slack)) {
			t.Errorf("frame %d: %v, more than %v before frame %d", i, ts, slack, i-1)
		}
	}
	if len(times) < 6 {
		t.Errorf("only %d frames", len(times))
	}
	t.Logf("%d frames over %v, first %v after the dial", len(times), times[len(times)-1].Sub(times[0]), times[0].Sub(start))
}

// TestLiveReload changes the filter, service ports and interfaces of a
// running capture, and checks a connection open across the reload stays
// one flow, the new filter and ports apply, an added interface ("any",
// cooked) captures and a removed one disappears, and a reload that asks
// for the impossible changes nothing.
func TestLiveReload(t *testing.T) {
	needRoot(t)
	lnA, pA := server(t)
	lnB, pB := server(t)
	_, pC := server(t)
	cfg := LiveConfig{Interfaces: []string{"lo"}, Listen: "127.0.0.1:0", Filter: fmt.Sprintf("tcp port %d", pA),
		Metrics: MetricsConfig{ServicePorts: []uint16{pA, pB}}}
	l, err := NewLive(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	lbl := func(iface string, port any) string { return fmt.Sprintf(`interface="%s",service="%v"}`, iface, port) }

	// Before: only port A passes the filter.
	send(t, lnB, 1000)
	cA, err := net.Dial("tcp", lnA.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cA.Close()
	cA.Write(make([]byte, 1000))
	body := waitMetrics(t, l,
		"netpulse_tcpstats_connections_total{"+lbl("lo", pA)+" 1",
		`netpulse_tcpstats_payload_bytes_total{direction="to_server",`+lbl("lo", pA)+" 1000")
	if v := metricValue(body, `netpulse_tcpstats_packets_total{direction="to_server",`+lbl("lo", pB)); v != 0 {
		t.Errorf("port %d passed the filter %q: %v packets", pB, cfg.Filter, v)
	}

	// Reload: both ports, service B out and C in, and the any device.
	cfg2 := cfg
	cfg2.Filter = fmt.Sprintf("port %d or port %d", pA, pB)
	cfg2.Interfaces = []string{"lo", "any"}
	cfg2.Metrics = MetricsConfig{ServicePorts: []uint16{pA, pC}, TopK: 5}
	cfg2.TopInterval = time.Hour
	if err := l.Reload(cfg2); err != nil {
		t.Fatal(err)
	}
	cA.Write(make([]byte, 500))
	send(t, lnB, 2000)
	body = waitMetrics(t, l,
		`netpulse_tcpstats_payload_bytes_total{direction="to_server",`+lbl("lo", pA)+" 1500",
		`netpulse_tcpstats_payload_bytes_total{direction="to_server",`+lbl("any", pA)+" 500",
		`netpulse_tcpstats_payload_bytes_total{direction="to_server",`+lbl("lo", "other")+" 2000",
		`netpulse_tcpstats_payload_bytes_total{direction="to_server",`+lbl("any", "other")+" 2000",
		"netpulse_tcpstats_connections_total{"+lbl("lo", pC)+" 0",
		`netpulse_tcpstats_up{interface="any"} 1`)
	// The connection to A is still the one flow on lo: no new one.
	if v := metricValue(body, "netpulse_tcpstats_connections_total{"+lbl("lo", pA)); v != 1 {
		t.Errorf("lo: %v connections to port %d after the reload, want the 1 from before", v, pA)
	}
	if strings.Contains(body, fmt.Sprintf(`service="%d"`, pB)) {
		t.Errorf("port %d left the service list but its series stay", pB)
	}
	if l.metrics.cfg.TopK != 5 {
		t.Errorf("top-K %d after the reload, want 5", l.metrics.cfg.TopK)
	}

	// What cannot change fails the reload and changes nothing.
	bad := cfg2
	bad.Listen = "127.0.0.1:1"
	bad.Interfaces = []string{"any"}
	if err := l.Reload(bad); err == nil || !strings.Contains(err.Error(), "listen cannot change") {
		t.Errorf("listen change: %v", err)
	}
	bad = cfg2
	bad.Interfaces = []string{"any", "no-such-if0"}
	if err := l.Reload(bad); err == nil || !strings.Contains(err.Error(), "no-such-if0") {
		t.Errorf("unknown interface: %v", err)
	}
	bad = cfg2
	bad.Filter = "tcp prot 80"
	if err := l.Reload(bad); err == nil || !strings.Contains(err.Error(), "col 5") {
		t.Errorf("bad filter: %v", err)
	}
	if _, body := get(t, l.Addr(), "/metrics"); !strings.Contains(body, `netpulse_tcpstats_up{interface="lo"} 1`) {
		t.Error("a failed reload stopped lo")
	}

	// Drop lo.
	cfg3 := cfg2
	cfg3.Interfaces = []string{"any"}
	if err := l.Reload(cfg3); err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, l.Addr(), "/metrics"); strings.Contains(body, `interface="lo"`) {
		t.Errorf("lo removed, its series stay:\n%s", grepLines(body, `interface="lo"`))
	}
	if code, body := get(t, l.Addr(), "/healthz"); code != 200 {
		t.Errorf("/healthz after the reload: %d %s", code, body)
	}
	send(t, lnA, 300)
	waitMetrics(t, l, `netpulse_tcpstats_payload_bytes_total{direction="to_server",`+lbl("any", pA)+" 800")
}

// TestMetricsReconfigure changes the service ports of metrics with
// counts in them: a kept port keeps its counts, a new one starts at zero,
// a removed one's series go, and the series stay under the bound.
func TestMetricsReconfigure(t *testing.T) {
	m := NewMetrics(MetricsConfig{ServicePorts: []uint16{5001, 22}})
	feedCaptures(t, m)
	before := countByService(t, m)
	if before["5001"] == 0 {
		t.Fatalf("no traffic on 5001: %v", before)
	}
	m.reconfigure(MetricsConfig{ServicePorts: []uint16{80, 5001}, TopK: 3})
	after := countByService(t, m)
	if after["5001"] != before["5001"] || after["other"] != before["other"] {
		t.Errorf("kept services changed: before %v, after %v", before, after)
	}
	if _, ok := after["22"]; ok {
		t.Errorf("service 22 removed, still exported: %v", after)
	}
	if v, ok := after["80"]; !ok || v != 0 {
		t.Errorf("service 80 added: %v", after)
	}
	if got, bound := countSeries(t, m), m.cfg.SeriesBound(1); got > bound {
		t.Errorf("%d series, bound %d", got, bound)
	}
	// Packets on 5001 still count there.
	var p Packet
	if err := Parse(LinkRaw, ipPacket(seg{src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 5001, flags: FlagSYN}), &p); err != nil {
		t.Fatal(err)
	}
	a := New(Config{}, nil)
	c, dir, f := a.Add(time.Unix(1, 0), &p)
	m.Interface("file").Packet(c, dir, &p, f, 1)
	if got := countByService(t, m)["5001"]; got != before["5001"]+1 {
		t.Errorf("5001 after one more packet: %v, want %v", got, before["5001"]+1)
	}
}

// countByService sums netpulse_tcpstats_packets_total per service.
func countByService(t *testing.T, m *Metrics) map[string]uint64 {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]uint64{}
	for _, im := range m.ifaces {
		for d := 0; d < 2; d++ {
			for s, svc := range m.services {
				out[svc] += im.packets[d][s]
			}
		}
	}
	return out
}

// BenchmarkCaptureLoopback compares the PACKET_MMAP ring with the
// recvfrom path it replaced: a UDP sender floods 127.0.0.1 with 64-byte
// datagrams while one locked goroutine reads b.N frames. It reports the
// reader thread's CPU per frame and the kernel's drops per frame.
//
//	go test ./tcpstats -run '^$' -bench CaptureLoopback -benchtime 2000000x
func BenchmarkCaptureLoopback(b *testing.B) {
	needRoot(b)
	for _, path := range []string{"ring", "recvfrom"} {
		b.Run(path, func(b *testing.B) {
			dst, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				b.Fatal(err)
			}
			defer dst.Close()
			port := dst.LocalAddr().(*net.UDPAddr).Port
			f := filterSpec{expr: fmt.Sprintf("udp dst port %d", port)}
			var read func() int
			var drops func() uint64
			var closeFn func()
			if path == "ring" {
				r, err := openRing("lo", f)
				if err != nil {
					b.Fatal(err)
				}
				closeFn, drops = r.close, r.drops
				read = func() int {
					blk, ok, err := r.next()
					if err != nil || !ok {
						b.Fatal("ring stopped", err)
					}
					n := 0
					r.packets(blk, func(*ringFrame) { n++ })
					r.release(blk)
					return n
				}
			} else {
				s := openRecvfrom(b, f)
				closeFn, drops = func() { unix.Close(s) }, func() uint64 {
					st, _ := unix.GetsockoptTpacketStats(s, unix.SOL_PACKET, unix.PACKET_STATISTICS)
					return uint64(st.Drops)
				}
				buf := make([]byte, snapLen)
				read = func() int {
					n, from, err := unix.Recvfrom(s, buf, 0)
					if err != nil || n == 0 {
						return 0
					}
					if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
						return 0
					}
					return 1
				}
			}
			defer closeFn()
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.DialUDP("udp", nil, dst.LocalAddr().(*net.UDPAddr))
				if err != nil {
					return
				}
				defer c.Close()
				msg := make([]byte, 64)
				for {
					select {
					case <-stop:
						return
					default:
					}
					c.Write(msg)
				}
			}()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			drops()
			b.ReportAllocs()
			var ru0, ru1 unix.Rusage
			unix.Getrusage(unix.RUSAGE_THREAD, &ru0)
			b.ResetTimer()
			n := 0
			for n < b.N {
				n += read()
			}
			b.StopTimer()
			unix.Getrusage(unix.RUSAGE_THREAD, &ru1)
			close(stop)
			wg.Wait()
			cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/frame")
			b.ReportMetric(float64(drops())/float64(n), "drops/frame")
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// openRecvfrom opens the capture socket as tcpstats did before the ring:
// a raw AF_PACKET socket read one frame per recvfrom.
func openRecvfrom(b *testing.B, f filterSpec) int {
	prog, err := f.program(false)
	if err != nil {
		b.Fatal(err)
	}
	ifi, err := net.InterfaceByName("lo")
	if err != nil {
		b.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	r := &ring{fd: fd}
	if err := r.setFilter(prog); err != nil {
		b.Fatal(err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200_000}); err != nil {
		b.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		b.Fatal(err)
	}
	return fd
}
