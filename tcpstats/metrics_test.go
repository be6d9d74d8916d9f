package tcpstats

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/netpulse/netpulse/internal/promtest"

	"github.com/prometheus/client_golang/prometheus"
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
