package flow

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestProtoRoundTrip(t *testing.T) {
	ts := time.Date(2026, 11, 22, 10, 0, 0, 123_000_000, time.UTC)
	recs := []Record{
		{
			Kind: KindFlow, Type: TypeIPFIX, TimeReceived: ts,
			Exporter: netip.MustParseAddr("192.0.2.1"), ObservationDomain: 7, Sequence: 42,
			SamplingRate: 100, SamplerID: 3, FlowStart: ts.Add(-time.Minute), FlowEnd: ts,
			SrcAddr: netip.MustParseAddr("2001:db8::1"), DstAddr: netip.MustParseAddr("2001:db8::2"),
			SrcPort: 443, DstPort: 51234, Proto: 6, TCPFlags: 0x1b, ToS: 0xb8, EtherType: 0x86dd,
			InIf: 10, OutIf: 20, Bytes: 1 << 40, Packets: 1 << 33, SrcAS: 64500, DstAS: 4200000000,
			SrcMask: 48, DstMask: 64, NextHop: netip.MustParseAddr("2001:db8::fe"),
			SrcVLAN: 100, DstVLAN: 200, SrcMAC: MAC{0, 1, 2, 3, 4, 5}, DstMAC: MAC{0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa},
			Direction: DirectionEgress, Reverse: true,
			DeviceID: 29118, ResampleFactor: 3, SrcInternal: true, SrcHostname: "a.example", DstCountry: "NZ",
		},
		{
			Kind: KindCounters, Type: TypeSFlowV5, TimeReceived: ts,
			Exporter: netip.MustParseAddr("127.0.0.1"), Agent: netip.MustParseAddr("10.0.0.1"),
			Counters: Counters{IfIndex: 3, IfSpeed: 1e10, IfOperUp: true, InOctets: 99, OutErrors: 1,
				HasEthernet: true, Ethernet: EthernetCounters{FCSErrors: 5, SymbolErrors: 9}},
		},
		{Kind: KindFlow, Type: TypeNetFlowV5},
	}
	for i, want := range recs {
		b, err := want.MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalProto(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("record %d: round trip\n got %+v\nwant %+v", i, got, want)
		}
	}
}

func TestMACString(t *testing.T) {
	m := MAC{0, 0x1b, 0x21, 0xaa, 0xbb, 0xff}
	if got, want := m.String(), "00:1b:21:aa:bb:ff"; got != want {
		t.Errorf("got %q want %q", got, want)
	}
	if MACFromUint64(m.Uint64()) != m {
		t.Error("uint64 round trip")
	}
}
