package demo

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/decoder"
	"github.com/netpulse/netpulse/flow"
)

// t0 is the start of most tests: a fixed time, in the evening peak.
var t0 = time.Date(2026, 11, 2, 19, 30, 0, 0, time.UTC)

func testConfig() Config {
	c := DefaultConfig()
	c.Location = time.UTC
	return c
}

func newSim(t testing.TB, cfg Config) *Simulator {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// run steps s from start for d by step and returns every datagram.
func run(s *Simulator, start time.Time, d, step time.Duration) []Datagram {
	var out []Datagram
	for at := start; !at.After(start.Add(d)); at = at.Add(step) {
		out = append(out, s.Step(at)...)
	}
	return out
}

// normal makes a record comparable with ==: times in UTC without a
// monotonic reading.
func normal(r flow.Record) flow.Record {
	for _, t := range []*time.Time{&r.TimeReceived, &r.FlowStart, &r.FlowEnd} {
		if !t.IsZero() {
			*t = time.Unix(0, t.UnixNano()).UTC()
		}
	}
	return r
}

// describe prints what TSV leaves out too.
func describe(r *flow.Record) string {
	s := fmt.Sprintf("%s ether=%#x sampler=%d agent=%v mac=%v>%v", flow.AppendTSV(nil, r), r.EtherType, r.SamplerID, r.Agent, r.SrcMAC, r.DstMAC)
	if r.Kind == flow.KindCounters {
		s += fmt.Sprintf(" counters=%+v", r.Counters)
	}
	return s
}

// TestDecodeMatchesGroundTruth decodes everything five simulated minutes
// produce with our decoders and compares it record for record, every
// field, with the simulator's ground truth; then the Totals with sums of
// the decoded records. The five minutes cover template refreshes, counter
// samples and the first silence of the flapping interfaces.
func TestDecodeMatchesGroundTruth(t *testing.T) {
	s := newSim(t, testConfig())
	dgs := run(s, t0, 5*time.Minute, 100*time.Millisecond)
	dec := decoder.New(decoder.DefaultConfig())

	decoded := Totals{}
	for _, d := range s.Totals().Devices {
		d.Datagrams, d.CounterSamples, d.Flows = 0, 0, Count{}
		for i := range d.Interfaces {
			d.Interfaces[i].In, d.Interfaces[i].Out = Count{}, Count{}
		}
		decoded.Devices = append(decoded.Devices, d)
	}
	type seen struct{ v6, icmp, tcp, udp, counters, templates int }
	cover := map[uint64]*seen{}
	mismatches := 0
	for n, dg := range dgs {
		if got := decoder.Detect(dg.Payload); got != dg.Type {
			t.Fatalf("datagram %d from %v: detected %v, sent %v", n, dg.Src, got, dg.Type)
		}
		if len(dg.Payload) > s.cfg.MaxDatagram && dg.Type != flow.TypeNetFlowV5 {
			t.Errorf("datagram %d: %d bytes, over MaxDatagram", n, len(dg.Payload))
		}
		var recs []flow.Record
		if err := dec.Decode(dg.Src, dg.Time, dg.Payload, func(r *flow.Record) { recs = append(recs, *r) }); err != nil {
			t.Fatalf("datagram %d (%v from %v): %v", n, dg.Type, dg.Src, err)
		}
		if len(recs) != len(dg.Records) {
			t.Fatalf("datagram %d (%v): decoded %d records, sent %d", n, dg.Type, len(recs), len(dg.Records))
		}
		c := cover[dg.DeviceID]
		if c == nil {
			c = &seen{}
			cover[dg.DeviceID] = c
		}
		if hasTemplates(dg.Payload) {
			c.templates++
		}
		dt := decoded.Device(dg.DeviceID)
		dt.Datagrams++
		for i := range recs {
			got, want := normal(recs[i]), normal(dg.Records[i])
			if got != want {
				mismatches++
				if mismatches <= 5 {
					t.Errorf("datagram %d record %d:\n got  %s\n want %s", n, i, describe(&got), describe(&want))
				}
			}
			r := &recs[i]
			if r.Kind == flow.KindCounters {
				dt.CounterSamples++
				c.counters++
				continue
			}
			dt.Flows.Add(r)
			decoded.Flows.Add(r)
			if ifc := dt.Interface(r.InIf); ifc != nil {
				ifc.In.Add(r)
			} else {
				t.Errorf("device %d: flow on unknown input interface %d", dg.DeviceID, r.InIf)
			}
			if ifc := dt.Interface(r.OutIf); ifc != nil {
				ifc.Out.Add(r)
			} else {
				t.Errorf("device %d: flow on unknown output interface %d", dg.DeviceID, r.OutIf)
			}
			if r.SrcAddr.Is6() {
				c.v6++
			}
			switch r.Proto {
			case protoICMP, protoICMPv6:
				c.icmp++
			case protoTCP:
				c.tcp++
			case protoUDP:
				c.udp++
			}
		}
		decoded.Datagrams++
	}
	if mismatches > 0 {
		t.Fatalf("%d records differ from the ground truth", mismatches)
	}

	nf, sf := dec.NetFlow().Stats(), dec.SFlow().Stats()
	if nf.Errors != 0 || nf.HeldSets != 0 || nf.LostFlows != 0 || nf.LostDatagrams != 0 || nf.TemplatesChanged != 0 {
		t.Errorf("NetFlow/IPFIX decoder stats: %+v", nf)
	}
	if sf.Errors != 0 || sf.HeaderErrors != 0 || sf.SkippedRecords != 0 || sf.SkippedSamples != 0 || sf.LostDatagrams != 0 {
		t.Errorf("sFlow decoder stats: %+v", sf)
	}

	want := s.Totals()
	if want.Datagrams != uint64(len(dgs)) || decoded.Datagrams != want.Datagrams {
		t.Errorf("datagrams: Totals %d, stepped %d, decoded %d", want.Datagrams, len(dgs), decoded.Datagrams)
	}
	if decoded.Flows != want.Flows {
		t.Errorf("all flows:\n decoded %+v\n Totals  %+v", decoded.Flows, want.Flows)
	}
	for i, w := range want.Devices {
		g := decoded.Devices[i]
		if g.Datagrams != w.Datagrams || g.Flows != w.Flows || g.CounterSamples != w.CounterSamples {
			t.Errorf("device %s:\n decoded %d datagrams %d counters %+v\n Totals  %d datagrams %d counters %+v",
				w.Name, g.Datagrams, g.CounterSamples, g.Flows, w.Datagrams, w.CounterSamples, w.Flows)
		}
		for j, wi := range w.Interfaces {
			if gi := g.Interfaces[j]; gi != wi {
				t.Errorf("device %s interface %d:\n decoded %+v\n Totals  %+v", w.Name, wi.Index, gi, wi)
			}
		}
		// The scaled totals are the sampling rate times the sent ones.
		if w.Flows.ScaledBytes != w.Flows.Bytes*uint64(w.SampleRate) || w.Flows.ScaledPackets != w.Flows.Packets*uint64(w.SampleRate) {
			t.Errorf("device %s: scaled %d bytes %d packets, sent %d bytes %d packets at 1:%d",
				w.Name, w.Flows.ScaledBytes, w.Flows.ScaledPackets, w.Flows.Bytes, w.Flows.Packets, w.SampleRate)
		}
	}

	// Everything the simulator is meant to produce is there.
	for _, d := range s.Devices() {
		c, w := cover[d.ID], want.Device(d.ID)
		if c == nil || w.Flows.Flows < 1000 {
			t.Errorf("device %s: too few flows (%d)", d.Name, w.Flows.Flows)
			continue
		}
		if c.tcp == 0 || c.udp == 0 || c.icmp == 0 {
			t.Errorf("device %s: TCP %d, UDP %d, ICMP %d flows; want all", d.Name, c.tcp, c.udp, c.icmp)
		}
		switch d.FlowType {
		case "netflow5":
			if c.v6 != 0 {
				t.Errorf("device %s: %d IPv6 flows in NetFlow v5", d.Name, c.v6)
			}
		case "netflow9", "ipfix":
			if c.v6 == 0 {
				t.Errorf("device %s: no IPv6 flows", d.Name)
			}
			// Sent at the start, then every minute.
			if c.templates < 5 {
				t.Errorf("device %s: templates in %d datagrams, want one a minute", d.Name, c.templates)
			}
		case "sflow5":
			if c.v6 == 0 {
				t.Errorf("device %s: no IPv6 samples", d.Name)
			}
			// 4 interfaces every 20 s.
			if c.counters < 4*15 {
				t.Errorf("device %s: %d counter records, want %d", d.Name, c.counters, 4*15)
			}
		}
	}
	t.Logf("%d datagrams, %d flows, %d counter records decoded as sent", len(dgs), want.Flows.Flows, want.Device(9006).CounterSamples)
}

// hasTemplates reports whether a v9 or IPFIX datagram carries a template
// set.
func hasTemplates(b []byte) bool {
	v := decoder.Detect(b)
	off, tmpl := 20, uint16(0)
	switch v {
	case flow.TypeNetFlowV9:
	case flow.TypeIPFIX:
		off, tmpl = 16, 2
	default:
		return false
	}
	for off+4 <= len(b) {
		id, l := be.Uint16(b[off:]), int(be.Uint16(b[off+2:]))
		if id == tmpl {
			return true
		}
		if l < 4 {
			return false
		}
		off += l
	}
	return false
}

// TestPcap writes a capture and reads it back as `netpulse decode` does:
// every datagram is there, from its device's address and port, to the
// target, and decodes to the records Totals counts.
func TestPcap(t *testing.T) {
	s := newSim(t, testConfig())
	path := filepath.Join(t.TempDir(), "demo.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	target := netip.MustParseAddrPort("127.0.0.1:9995")
	if err := s.WritePcap(f, t0, 30*time.Second, target); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	dgs, err := capture.ReadAllUDP(path)
	if err != nil {
		t.Fatal(err)
	}
	tot := s.Totals()
	if uint64(len(dgs)) != tot.Datagrams || len(dgs) == 0 {
		t.Fatalf("%d datagrams in the capture, Totals %d", len(dgs), tot.Datagrams)
	}
	ports := map[netip.Addr]uint16{}
	for i, d := range s.Devices() {
		ports[d.IPs[0]] = uint16(PcapSourcePort + i)
	}
	dec := decoder.New(decoder.DefaultConfig())
	var got Count
	for _, dg := range dgs {
		if dg.Dst != target || ports[dg.Src.Addr()] != dg.Src.Port() || dg.Time.Before(t0) || dg.Time.After(t0.Add(30*time.Second)) {
			t.Fatalf("packet %d: %v > %v at %v", dg.Number, dg.Src, dg.Dst, dg.Time)
		}
		if err := dec.Decode(dg.Src.Addr(), dg.Time, dg.Payload, func(r *flow.Record) {
			if r.Kind == flow.KindFlow {
				got.Add(r)
			}
		}); err != nil {
			t.Fatalf("packet %d: %v", dg.Number, err)
		}
	}
	if got != tot.Flows {
		t.Errorf("decoded %+v\n Totals %+v", got, tot.Flows)
	}
}
