package flow

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestAppendTSV(t *testing.T) {
	ts := time.Date(2026, 11, 1, 10, 0, 1, 234_000_000, time.UTC)
	r := Record{Kind: KindFlow, Type: TypeIPFIX, Exporter: netip.MustParseAddr("127.0.0.1"), ObservationDomain: 1,
		SrcAddr: netip.MustParseAddr("192.0.2.1"), DstAddr: netip.MustParseAddr("2001:db8::1"),
		SrcPort: 1, DstPort: 2, Proto: 17, Packets: 3, Bytes: 4, InIf: 5, OutIf: 6, SamplingRate: 0,
		FlowStart: ts, FlowEnd: ts.Add(time.Second)}
	line := string(AppendTSV(nil, &r))
	cols := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
	if n := len(strings.Split(TSVHeader, "\t")); len(cols) != n {
		t.Fatalf("%d columns, header has %d", len(cols), n)
	}
	want := "127.0.0.1\t1\t10\t192.0.2.1\t2001:db8::1\t1\t2\t17\t3\t4\t5\t6\t0\t2026-11-01T10:00:01.234Z\t2026-11-01T10:00:02.234Z"
	if !strings.HasPrefix(line, want+"\t") {
		t.Errorf("got  %q\nwant %q...", line, want)
	}
	c := Record{Kind: KindCounters, Type: TypeSFlowV5, Counters: Counters{IfIndex: 7}}
	if n := len(strings.Split(strings.TrimSuffix(string(AppendTSV(nil, &c)), "\n"), "\t")); n != len(cols) {
		t.Errorf("counter line has %d columns, want %d", n, len(cols))
	}
}

func TestAppendJSONValid(t *testing.T) {
	for _, r := range []Record{
		{Kind: KindFlow, Type: TypeNetFlowV5, SrcMAC: MAC{1}, Reverse: true, Direction: DirectionIngress},
		{Kind: KindCounters, Type: TypeSFlowV5, Counters: Counters{HasEthernet: true}},
		{Kind: KindFlow, Type: TypeIPFIX, SrcHostname: "a\"b\\c\x01\x7f\xff.example", DstHostname: "ünï.example"},
	} {
		b := AppendJSON(nil, &r)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("invalid JSON %s: %v", b, err)
		}
		if m["kind"] != r.Kind.String() {
			t.Errorf("kind %v", m["kind"])
		}
		if r.DstHostname != "" && m["dst_hostname"] != r.DstHostname {
			t.Errorf("dst_hostname %q", m["dst_hostname"])
		}
	}
}
