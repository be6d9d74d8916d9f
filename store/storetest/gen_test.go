package storetest

import (
	"net/netip"
	"testing"
	"time"

	"github.com/netpulse/netpulse/flow"
)

func TestCaptureRecords(t *testing.T) {
	recs, err := CaptureRecords(CapturesDir(t))
	if err != nil {
		t.Fatal(err)
	}
	var flows, counters, v6, sampled int
	for i := range recs {
		r := &recs[i]
		switch r.Kind {
		case flow.KindFlow:
			flows++
		case flow.KindCounters:
			counters++
		}
		if r.SrcAddr.Is6() {
			v6++
		}
		if r.SamplingRate > 1 {
			sampled++
		}
	}
	// The captures' README counts about 4,700 records, from every exporter.
	if flows < 4000 || counters == 0 || v6 < 500 || sampled < 500 {
		t.Errorf("%d flows, %d counter samples, %d IPv6, %d sampled: fewer than the captures hold", flows, counters, v6, sampled)
	}
}

func TestGenerator(t *testing.T) {
	base, err := CaptureRecords(CapturesDir(t))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	n := 3 * len(base)
	a, b := make([]flow.Record, n), make([]flow.Record, n)
	NewGenerator(base, start, 1000, "g").Fill(a)
	NewGenerator(base, start, 1000, "g").Fill(b)
	srcs := map[netip.Addr]bool{}
	devices := map[uint64]bool{}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("record %d differs between two runs", i)
		}
		if want := start.Add(time.Duration(i) * time.Millisecond); !a[i].TimeReceived.Equal(want) {
			t.Fatalf("record %d received at %v, want %v", i, a[i].TimeReceived, want)
		}
		srcs[a[i].SrcAddr] = true
		devices[a[i].DeviceID] = true
		if a[i].Kind == flow.KindFlow && (a[i].SrcAS == 0 && a[i].DstAS == 0 || a[i].Direction == flow.DirectionUnknown) {
			t.Fatalf("record %d not enriched: %+v", i, a[i])
		}
	}
	if len(devices) < 10 || len(devices) > 16 {
		t.Errorf("%d devices, want up to 16 and most of them", len(devices))
	}
	// Each pass varies the addresses.
	distinct := map[netip.Addr]bool{}
	for i := range base {
		distinct[base[i].SrcAddr] = true
	}
	if len(srcs) < 2*len(distinct) {
		t.Errorf("%d source addresses over three passes, %d in one pass of the captures", len(srcs), len(distinct))
	}
	g := NewGenerator(base, start, 1000, "g")
	b1, b2 := g.Batch(make([]flow.Record, 10)), g.Batch(make([]flow.Record, 10))
	if b1.ID == b2.ID || !b2.Received.After(b2.Records[9].TimeReceived) {
		t.Errorf("batches %q and %q, second received %v", b1.ID, b2.ID, b2.Received)
	}
}
