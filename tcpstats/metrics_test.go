package tcpstats

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netpulse/netpulse/internal/promtest"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/bpf"

	"github.com/netpulse/netpulse/internal/integration"
)

// feedCaptures runs every regression capture through m as interface "file".
func feedCaptures(t *testing.T, m *Metrics) {
	t.Helper()
	rec := m.Interface("file")
	for _, name := range []string{"wireloss4.pcap", "zerowin6.pcap", "keepalive6.pcap", "rst4.pcap"} {
		fh, err := os.Open("../testdata/tcp/" + name)
		if err != nil {
			t.Fatal(err)
		}
		a := New(Config{}, rec.Ended)
		perr, err := ReadCapture(fh, a, func(f *Frame) { rec.Packet(f.Conn, f.Dir, f.Packet, f.Flags, a.Len()) })
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		rec.ParseErrors(perr)
		a.Flush()
	}
	m.Rotate()
}

func TestPromlint(t *testing.T) {
	m := NewMetrics(MetricsConfig{})
	feedCaptures(t, m)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	promtest.Lint(t, reg, "netpulse_tcpstats_", "netpulse_tcpstats_analysis_flags_total",
		"netpulse_tcpstats_handshake_rtt_seconds", "netpulse_tcpstats_top_pair_retransmissions")
}

func countSeries(t *testing.T, m *Metrics) int {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			if h := mt.GetHistogram(); h != nil {
				n += len(h.GetBucket()) + 3 // buckets, +Inf, _sum, _count
			} else {
				n++
			}
		}
	}
	return n
}

// TestCardinality feeds 100,000 distinct connections, every one with a
// retransmission, from random addresses and ports, and checks the series
// stay under MetricsConfig.SeriesBound.
func TestCardinality(t *testing.T) {
	cfg := MetricsConfig{}
	m := NewMetrics(cfg)
	rec := m.Interface("eth0")
	a := New(Config{MaxFlows: 1000}, rec.Ended)
	t0 := time.Unix(1_700_000_000, 0)
	var p Packet
	for i := 0; i < 100_000; i++ {
		s := seg{src: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), dst: fmt.Sprintf("fd00::%x", i),
			sport: uint16(1024 + i%60000), dport: uint16(i*7919) | 1, seq: 1, ack: 1, flags: FlagACK, win: 100, payload: 100}
		s.dst = "192.0.2." + fmt.Sprint(i%250)
		for k, seq := range []uint32{1, 1} { // the second is a retransmission
			s.seq = seq
			if err := Parse(LinkRaw, ipPacket(s), &p); err != nil {
				t.Fatal(err)
			}
			c, dir, f := a.Add(t0.Add(time.Duration(i*2+k)*time.Millisecond), &p)
			rec.Packet(c, dir, &p, f, a.Len())
		}
	}
	m.Rotate()
	got, bound := countSeries(t, m), cfg.SeriesBound(1)
	t.Logf("100000 connections: %d series, bound %d", got, bound)
	if got > bound {
		t.Errorf("%d series, over the bound %d", got, bound)
	}
	if n := len(m.top); n != 100 {
		t.Errorf("top-K holds %d pairs, want 100", n)
	}
	if m.dropped == 0 {
		t.Error("the pair table never filled: the test does not exercise MaxPairs")
	}
}

// TestTCPFilter runs the BPF program on frames it must keep and drop.
func TestTCPFilter(t *testing.T) {
	prog, err := tcpFilter()
	if err != nil {
		t.Fatal(err)
	}
	var ins []bpf.Instruction
	for _, r := range prog {
		ins = append(ins, r.Disassemble())
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	v4 := seg{src: "10.0.0.1", dst: "10.0.0.2", flags: FlagACK}
	v6 := seg{src: "fd77::1", dst: "fd77::2", flags: FlagACK}
	udp := ethernet(ipPacket(v4))
	udp[14+9] = 17
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
		{"qinq", ethernet(ipPacket(v4), 0x88a8, 0x8100), true},
		{"ipv4 udp", udp, false},
		{"ipv6 udp", udp6, false},
		{"arp", append(make([]byte, 12), 0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1), false},
	}
	for _, tc := range cases {
		n, err := vm.Run(tc.frame)
		if err != nil {
			t.Fatal(err)
		}
		if (n > 0) != tc.keep {
			t.Errorf("%s: filter returned %d, keep=%v", tc.name, n, tc.keep)
		}
	}
}

// TestLiveLoopback captures on lo while this test makes a TCP connection,
// and checks the metrics move. It needs root (CAP_NET_RAW).
func TestLiveLoopback(t *testing.T) {
	if os.Geteuid() != 0 {
		integration.Missing(t, "live capture needs root (CAP_NET_RAW)")
	}
	// Traffic: a listener on :0, given its own service label so other
	// loopback traffic (this test's HTTP polls) does not count.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	l, err := NewLive(LiveConfig{Interfaces: []string{"lo"}, Listen: "127.0.0.1:0", Metrics: MetricsConfig{ServicePorts: []uint16{port}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + l.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _ := get(p); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c)
		c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write(make([]byte, 100_000))
	c.Close()
	svc := fmt.Sprintf(`interface="lo",service="%d"}`, port)
	want := []string{
		"netpulse_tcpstats_connections_total{" + svc + " 1\n",
		"netpulse_tcpstats_handshake_rtt_seconds_count{" + svc + " 1\n",
		`netpulse_tcpstats_payload_bytes_total{direction="to_server",` + svc + " 100000\n",
	}
	start := time.Now()
	for {
		_, body := get("/metrics")
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
			}
		}
		if missing == "" {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("metrics did not move in 10 s: no %q in\n%s", missing, grepLines(body, svc))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("metrics moved after %v", time.Since(start))
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
