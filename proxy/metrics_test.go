package proxy

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netpulse/netpulse/internal/promtest"

	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/sink"
)

// TestMetricsLint runs promlint over every metric the proxy and its health
// server export, after some traffic so that labelled series exist.
func TestMetricsLint(t *testing.T) {
	set := serviceSettings(t)
	set.Sinks.Null = true
	set.Metrics = "stderr"
	s := startService(t, set)
	defer s.Stop(context.Background())
	dgs, _ := capture.ReadAllUDP(filepath.Join("..", "testdata", "captures", "pmacct-sflow.pcap"))
	replay(t, dgs, s.Proxy.Addr())
	waitFor(t, "flows", func() bool { return s.Proxy.flowsOut.Load() > 0 })
	// The Go and process collectors are registered too: no prefix check.
	promtest.Lint(t, s.reg, "", "netpulse_proxy_datagrams_received_total", "netpulse_proxy_flows_received_total",
		"netpulse_proxy_flows_forwarded_total", "netpulse_proxy_flows_dropped_total")
	if line := s.checkpointLine(); !strings.Contains(line, "flows_in=") || !strings.Contains(line, "devices=1") {
		t.Errorf("checkpoint line %q", line)
	}
}

// TestTee: every datagram is copied, as received, to the tee.
func TestTee(t *testing.T) {
	dst, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	dst.SetReadBuffer(4 << 20)
	cfg := testConfig()
	cfg.Tee = []string{dst.LocalAddr().String()}
	p, err := New(cfg, Deps{Registry: localDevice(t, 1), Sinks: []sink.Sink{&sink.Null{}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	dgs, _ := capture.ReadAllUDP(filepath.Join("..", "testdata", "captures", "softflowd-v9.pcap"))
	replay(t, dgs, p.Addr())
	buf := make([]byte, 65536)
	got := map[string]int{}
	for range dgs {
		dst.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := dst.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("tee: %v", err)
		}
		got[string(buf[:n])]++
	}
	for _, dg := range dgs {
		if got[string(dg.Payload)] == 0 {
			t.Fatal("a datagram was not teed unchanged")
		}
		got[string(dg.Payload)]--
	}
}
