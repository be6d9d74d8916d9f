package sflow

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/decoder/seq"
	"github.com/netpulse/netpulse/flow"
)

// xdr builds XDR-encoded test data.
type xdr []byte

func (x xdr) u32(vs ...uint32) xdr {
	for _, v := range vs {
		x = binary.BigEndian.AppendUint32(x, v)
	}
	return x
}

func (x xdr) u64(v uint64) xdr { return binary.BigEndian.AppendUint64(x, v) }

func (x xdr) raw(b []byte) xdr { return append(x, b...) }

// opaque appends a length, b and XDR padding.
func (x xdr) opaque(b []byte) xdr {
	x = x.u32(uint32(len(b))).raw(b)
	for len(b)%4 != 0 {
		b = append(b, 0)
		x = append(x, 0)
	}
	return x
}

// addr appends an sFlow address.
func (x xdr) addr(a netip.Addr) xdr {
	if a.Is4() {
		return x.u32(1).raw(a.AsSlice())
	}
	return x.u32(2).raw(a.AsSlice())
}

func (x xdr) mac(m flow.MAC) xdr { return x.raw(m[:]).raw([]byte{0, 0}) }

// tlv appends a data_format (enterprise 0) and an opaque body: the framing
// of samples and records alike.
func (x xdr) tlv(format uint32, body xdr) xdr { return x.u32(format).opaque(body) }

var (
	exporter = netip.MustParseAddr("203.0.113.9")
	agent4   = netip.MustParseAddr("192.0.2.254")
	agent6   = netip.MustParseAddr("2001:db8::fe")
	when     = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	macSrc   = flow.MAC{0x02, 0, 0, 0, 0, 0x01}
	macDst   = flow.MAC{0x02, 0, 0, 0, 0, 0x02}
	ipSrc    = netip.MustParseAddr("10.0.0.1")
	ipDst    = netip.MustParseAddr("10.0.0.2")
	ip6Src   = netip.MustParseAddr("2001:db8:1::1")
	ip6Dst   = netip.MustParseAddr("2001:db8:2::2")
	nhRouter = netip.MustParseAddr("10.9.9.1")
	nhBGP    = netip.MustParseAddr("10.9.9.2")
)

// datagram builds an sFlow v5 datagram with the given samples (each a tlv).
func datagram(agent netip.Addr, subAgent, sequence uint32, samples ...xdr) []byte {
	x := xdr{}.u32(5).addr(agent).u32(subAgent, sequence, 123456, uint32(len(samples)))
	for _, s := range samples {
		x = x.raw(s)
	}
	return x
}

// flowSample builds a compact flow sample (0:1).
func flowSample(source, rate, in, out uint32, records ...xdr) xdr {
	b := xdr{}.u32(1, source, rate, 1000, 0, in, out, uint32(len(records)))
	for _, r := range records {
		b = b.raw(r)
	}
	return xdr{}.tlv(1, b)
}

// expandedFlowSample builds an expanded flow sample (0:3).
func expandedFlowSample(srcType, source, rate, inFmt, in, outFmt, out uint32, records ...xdr) xdr {
	b := xdr{}.u32(1, srcType, source, rate, 1000, 0, inFmt, in, outFmt, out, uint32(len(records)))
	for _, r := range records {
		b = b.raw(r)
	}
	return xdr{}.tlv(3, b)
}

// counterSample builds a compact (0:2) or expanded (0:4) counter sample.
func counterSample(expanded bool, srcType, source uint32, records ...xdr) xdr {
	var b xdr
	format := uint32(2)
	if expanded {
		b = b.u32(7, srcType, source)
		format = 4
	} else {
		b = b.u32(7, srcType<<24|source)
	}
	b = b.u32(uint32(len(records)))
	for _, r := range records {
		b = b.raw(r)
	}
	return xdr{}.tlv(format, b)
}

// Packet headers for raw packet header records.

func ethIPv4TCP(vlan uint16) []byte {
	b := xdr{}.raw(macDst[:]).raw(macSrc[:])
	if vlan != 0 {
		b = append(b, 0x81, 0x00, byte(vlan>>8), byte(vlan))
	}
	b = append(b, 0x08, 0x00)
	ip := make([]byte, 40)
	ip[0], ip[1] = 0x45, 0x28
	binary.BigEndian.PutUint16(ip[2:], 1500)
	ip[9] = 6
	copy(ip[12:], ipSrc.AsSlice())
	copy(ip[16:], ipDst.AsSlice())
	binary.BigEndian.PutUint16(ip[20:], 40000)
	binary.BigEndian.PutUint16(ip[22:], 443)
	ip[33] = 0x10 // ACK
	return append(b, ip...)
}

func ipv6UDP() []byte {
	ip := make([]byte, 48)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], 8)
	ip[6] = 17
	copy(ip[8:], ip6Src.AsSlice())
	copy(ip[24:], ip6Dst.AsSlice())
	binary.BigEndian.PutUint16(ip[40:], 53)
	binary.BigEndian.PutUint16(ip[42:], 33000)
	return ip
}

func rawHeader(proto, frameLength uint32, hdr []byte) xdr {
	return xdr{}.tlv(1, xdr{}.u32(proto, frameLength, 4).opaque(hdr))
}

func ethernetData(length uint32) xdr {
	return xdr{}.tlv(2, xdr{}.u32(length).mac(macSrc).mac(macDst).u32(0x0800))
}

func ipv4Data(length uint32) xdr {
	return xdr{}.tlv(3, xdr{}.u32(length, 17).raw(ipSrc.AsSlice()).raw(ipDst.AsSlice()).u32(5000, 53, 0, 0xb8))
}

func ipv6Data(length uint32) xdr {
	return xdr{}.tlv(4, xdr{}.u32(length, 6).raw(ip6Src.AsSlice()).raw(ip6Dst.AsSlice()).u32(80, 40001, 0x02, 0x20))
}

func extSwitch(src, dst uint32) xdr { return xdr{}.tlv(1001, xdr{}.u32(src, 0, dst, 0)) }

func extRouter(nh netip.Addr, srcMask, dstMask uint32) xdr {
	return xdr{}.tlv(1002, xdr{}.addr(nh).u32(srcMask, dstMask))
}

// extGateway builds an extended gateway record; each path is one segment.
func extGateway(nh netip.Addr, as, srcAS uint32, paths ...[]uint32) xdr {
	b := xdr{}.addr(nh).u32(as, srcAS, 64999, uint32(len(paths)))
	for _, p := range paths {
		b = b.u32(2, uint32(len(p))).u32(p...)
	}
	b = b.u32(2, 65000<<16|1, 65000<<16|2, 100) // communities, localpref
	return xdr{}.tlv(1003, b)
}

func genericIf(ifIndex uint32) xdr {
	b := xdr{}.u32(ifIndex, 6).u64(10_000_000_000).u32(1, 3).u64(1<<40).
		u32(11, 12, 13, 14, 15, 16).u64(1<<41).u32(21, 22, 23, 24, 25, 1)
	return xdr{}.tlv(1, b)
}

func ethernetCounters() xdr {
	return xdr{}.tlv(2, xdr{}.u32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13))
}

// flowWant is the record a flow sample of the test datagrams gives before
// its records are applied.
func flowWant(agent netip.Addr, f func(*flow.Record)) flow.Record {
	r := flow.Record{
		Kind: flow.KindFlow, Type: flow.TypeSFlowV5, TimeReceived: when, Exporter: exporter,
		Agent: agent, ObservationDomain: 3, Sequence: 1000, FlowStart: when, FlowEnd: when, Packets: 1,
	}
	if f != nil {
		f(&r)
	}
	return r
}

func counterWant(f func(*flow.Record)) flow.Record {
	r := flow.Record{
		Kind: flow.KindCounters, Type: flow.TypeSFlowV5, TimeReceived: when, Exporter: exporter,
		Agent: agent4, ObservationDomain: 3, Sequence: 1000, FlowStart: when, FlowEnd: when,
	}
	f(&r)
	return r
}

var wantGeneric = flow.Counters{
	IfIndex: 7, IfType: 6, IfSpeed: 10_000_000_000, IfDirection: 1, IfAdminUp: true, IfOperUp: true,
	InOctets: 1 << 40, InUcastPkts: 11, InMulticastPkts: 12, InBroadcastPkts: 13, InDiscards: 14,
	InErrors: 15, InUnknownProtos: 16, OutOctets: 1 << 41, OutUcastPkts: 21, OutMulticastPkts: 22,
	OutBroadcastPkts: 23, OutDiscards: 24, OutErrors: 25, Promiscuous: true,
}

var wantEthernet = flow.EthernetCounters{
	AlignmentErrors: 1, FCSErrors: 2, SingleCollisionFrames: 3, MultipleCollisionFrames: 4, SQETestErrors: 5,
	DeferredTransmissions: 6, LateCollisions: 7, ExcessiveCollisions: 8, InternalMacTransmitErrors: 9,
	CarrierSenseErrors: 10, FrameTooLongs: 11, InternalMacReceiveErrors: 12, SymbolErrors: 13,
}

func decodeAll(t testing.TB, d *Decoder, data []byte) ([]flow.Record, error) {
	t.Helper()
	var got []flow.Record
	err := d.Decode(exporter, when, data, func(r *flow.Record) { got = append(got, *r) })
	return got, err
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want []flow.Record
		err  string // substring of the error, "" for none
	}{{
		name: "raw Ethernet header with switch, router and gateway",
		data: datagram(agent4, 3, 1000, flowSample(0x00000005, 2048, 5, 9,
			rawHeader(1, 1522, ethIPv4TCP(100)),
			extSwitch(200, 300),
			extGateway(nhBGP, 64500, 64496, []uint32{64511, 64512}, []uint32{64513, 64514}),
			extRouter(nhRouter, 24, 16),
		)),
		want: []flow.Record{flowWant(agent4, func(r *flow.Record) {
			r.SamplingRate, r.SamplerID, r.InIf, r.OutIf, r.Bytes = 2048, 5, 5, 9, 1522
			r.SrcMAC, r.DstMAC, r.EtherType, r.SrcVLAN, r.DstVLAN = macSrc, macDst, 0x0800, 200, 300
			r.SrcAddr, r.DstAddr, r.Proto, r.ToS, r.SrcPort, r.DstPort, r.TCPFlags = ipSrc, ipDst, 6, 0x28, 40000, 443, 0x10
			r.NextHop, r.SrcMask, r.DstMask = nhRouter, 24, 16
			r.SrcAS, r.DstAS = 64496, 64514
		})},
	}, {
		name: "IPv6 agent, raw IPv6 header, expanded sample",
		data: datagram(agent6, 3, 1000, expandedFlowSample(0, 1<<25, 100, 0, 1<<26, 0, 0xffffffff,
			rawHeader(12, 62, ipv6UDP()),
		)),
		want: []flow.Record{flowWant(agent6, func(r *flow.Record) {
			r.SamplingRate, r.SamplerID, r.InIf, r.OutIf, r.Bytes = 100, 1<<25, 1<<26, 0, 62
			r.EtherType, r.SrcAddr, r.DstAddr, r.Proto, r.SrcPort, r.DstPort = 0x86dd, ip6Src, ip6Dst, 17, 53, 33000
		})},
	}, {
		name: "raw IPv4 header",
		data: datagram(agent4, 3, 1000, flowSample(1, 1, 1, 2, rawHeader(11, 1500, ethIPv4TCP(0)[14:]))),
		want: []flow.Record{flowWant(agent4, func(r *flow.Record) {
			r.SamplingRate, r.SamplerID, r.InIf, r.OutIf, r.Bytes = 1, 1, 1, 2, 1500
			r.EtherType, r.SrcAddr, r.DstAddr, r.Proto, r.ToS, r.SrcPort, r.DstPort, r.TCPFlags = 0x0800, ipSrc, ipDst, 6, 0x28, 40000, 443, 0x10
		})},
	}, {
		name: "Ethernet and IPv4 data records without a header",
		data: datagram(agent4, 3, 1000, flowSample(1, 0, 0x3fffffff, 0x40000001, ipv4Data(1480), ethernetData(1518))),
		want: []flow.Record{flowWant(agent4, func(r *flow.Record) {
			r.SamplerID, r.Bytes = 1, 1518
			r.SrcMAC, r.DstMAC, r.EtherType = macSrc, macDst, 0x0800
			r.SrcAddr, r.DstAddr, r.Proto, r.SrcPort, r.DstPort, r.ToS = ipSrc, ipDst, 17, 5000, 53, 0xb8
		})},
	}, {
		name: "IPv6 data record alone gives the length",
		data: datagram(agent4, 3, 1000, flowSample(1, 10, 4, 0x80000003, ipv6Data(1280))),
		want: []flow.Record{flowWant(agent4, func(r *flow.Record) {
			r.SamplingRate, r.SamplerID, r.InIf, r.Bytes = 10, 1, 4, 1280
			r.EtherType, r.SrcAddr, r.DstAddr, r.Proto, r.SrcPort, r.DstPort, r.TCPFlags, r.ToS = 0x86dd, ip6Src, ip6Dst, 6, 80, 40001, 0x02, 0x20
		})},
	}, {
		name: "header wins over data records in any order",
		data: datagram(agent4, 3, 1000, flowSample(1, 1, 1, 2, ipv6Data(99), rawHeader(1, 1522, ethIPv4TCP(0)), ethernetData(77))),
		want: []flow.Record{flowWant(agent4, func(r *flow.Record) {
			r.SamplingRate, r.SamplerID, r.InIf, r.OutIf, r.Bytes = 1, 1, 1, 2, 1522
			r.SrcMAC, r.DstMAC, r.EtherType = macSrc, macDst, 0x0800
			r.SrcAddr, r.DstAddr, r.Proto, r.ToS, r.SrcPort, r.DstPort, r.TCPFlags = ipSrc, ipDst, 6, 0x28, 40000, 443, 0x10
		})},
	}, {
		name: "header VLAN kept without extended switch VLAN; gateway next hop without router; empty path",
		data: datagram(agent4, 3, 1000, flowSample(1, 1, 1, 2,
			extSwitch(0, 0), rawHeader(1, 1522, ethIPv4TCP(42)), extGateway(nhBGP, 64500, 0))),
		want: []flow.Record{flowWant(agent4, func(r *flow.Record) {
			r.SamplingRate, r.SamplerID, r.InIf, r.OutIf, r.Bytes = 1, 1, 1, 2, 1522
			r.SrcMAC, r.DstMAC, r.EtherType, r.SrcVLAN = macSrc, macDst, 0x0800, 42
			r.SrcAddr, r.DstAddr, r.Proto, r.ToS, r.SrcPort, r.DstPort, r.TCPFlags = ipSrc, ipDst, 6, 0x28, 40000, 443, 0x10
			r.NextHop, r.SrcAS, r.DstAS = nhBGP, 64500, 64500
		})},
	}, {
		name: "router next hop wins over gateway in either order",
		data: datagram(agent4, 3, 1000, flowSample(1, 1, 1, 2, extRouter(nhRouter, 33, 200), extGateway(nhBGP, 1, 2, []uint32{3}))),
		want: []flow.Record{flowWant(agent4, func(r *flow.Record) {
			r.SamplingRate, r.SamplerID, r.InIf, r.OutIf = 1, 1, 1, 2
			r.NextHop, r.SrcMask, r.SrcAS, r.DstAS = nhRouter, 33, 2, 3
		})},
	}, {
		name: "unknown header protocol and unknown records are skipped",
		data: datagram(agent4, 3, 1000, flowSample(1, 1, 1, 2,
			rawHeader(7, 300, []byte{1, 2, 3}),
			xdr{}.tlv(4096<<12|1, xdr{}.u32(1, 2, 3)),
			xdr{}.tlv(1005, nil),
		)),
		want: []flow.Record{flowWant(agent4, func(r *flow.Record) {
			r.SamplingRate, r.SamplerID, r.InIf, r.OutIf, r.Bytes = 1, 1, 1, 2, 300
		})},
	}, {
		name: "counter samples, compact and expanded",
		data: datagram(agent4, 3, 1000,
			counterSample(false, 0, 7, genericIf(7), ethernetCounters(), xdr{}.tlv(1001, xdr{}.u32(1, 2, 3))),
			counterSample(true, 0, 9, ethernetCounters()),
			counterSample(false, 0, 9, xdr{}.tlv(1001, xdr{}.u32(1, 2, 3))), // processor only: nothing
			counterSample(true, 0, 1<<30, genericIf(1<<30)),
		),
		want: []flow.Record{
			counterWant(func(r *flow.Record) {
				r.SamplerID = 7
				r.Counters = wantGeneric
				r.Counters.HasEthernet, r.Counters.Ethernet = true, wantEthernet
			}),
			counterWant(func(r *flow.Record) {
				r.SamplerID = 9
				r.Counters = flow.Counters{IfIndex: 9, HasEthernet: true, Ethernet: wantEthernet}
			}),
			counterWant(func(r *flow.Record) {
				r.SamplerID = 1 << 30
				r.Counters = wantGeneric
				r.Counters.IfIndex = 1 << 30
			}),
		},
	}, {
		name: "unknown sample format is skipped, next sample decoded",
		data: datagram(agent4, 3, 1000, xdr{}.tlv(4413<<12|5, xdr{}.u32(1, 2, 3, 4)), flowSample(1, 1, 1, 2)),
		want: []flow.Record{flowWant(agent4, func(r *flow.Record) {
			r.SamplingRate, r.SamplerID, r.InIf, r.OutIf = 1, 1, 1, 2
		})},
	}, {
		name: "flows before a truncated sample are emitted",
		data: func() []byte {
			d := datagram(agent4, 3, 1000, flowSample(1, 1, 1, 2), flowSample(1, 1, 1, 2, ipv4Data(100)))
			return d[:len(d)-8]
		}(),
		want: []flow.Record{flowWant(agent4, func(r *flow.Record) {
			r.SamplingRate, r.SamplerID, r.InIf, r.OutIf = 1, 1, 1, 2
		})},
		err: "sample 2 of 2 at byte 72: truncated",
	}, {
		name: "malformed sample is dropped, next sample decoded",
		data: datagram(agent4, 3, 1000,
			flowSample(1, 1, 1, 2, xdr{}.tlv(3, xdr{}.u32(1, 2, 3))), // IPv4 data record too short
			flowSample(1, 1, 1, 2)),
		want: []flow.Record{flowWant(agent4, func(r *flow.Record) {
			r.SamplingRate, r.SamplerID, r.InIf, r.OutIf = 1, 1, 1, 2
		})},
		err: "sample 1 (flow sample) record 1 (IPv4 data) at byte 76: truncated",
	}, {
		name: "record count beyond the sample",
		data: datagram(agent4, 3, 1000, xdr{}.tlv(1, xdr{}.u32(1, 1, 1, 1000, 0, 1, 2, 0xffffffff))),
		err:  "sample 1 (flow sample) record 1 of 4294967295 at byte 68: truncated",
	}, {
		name: "sample count beyond the datagram",
		data: xdr{}.u32(5).addr(agent4).u32(3, 1000, 1, 0xffffffff),
		err:  "sample 1 of 4294967295 at byte 28: truncated",
	}, {
		name: "raw header length beyond the record",
		data: datagram(agent4, 3, 1000, flowSample(1, 1, 1, 2, xdr{}.tlv(1, xdr{}.u32(1, 100, 0, 64).u32(0)))),
		err:  "sample 1 (flow sample) record 1 (raw packet header) at byte 88: truncated",
	}, {
		name: "AS path count beyond the record",
		data: datagram(agent4, 3, 1000, flowSample(1, 1, 1, 2, xdr{}.tlv(1003, xdr{}.addr(nhBGP).u32(1, 2, 3, 1, 2, 0x40000000)))),
		err:  "sample 1 (flow sample) record 1 (extended gateway) at byte 104: truncated",
	}, {
		name: "AS path segment count beyond the record",
		data: datagram(agent4, 3, 1000, flowSample(1, 1, 1, 2, xdr{}.tlv(1003, xdr{}.addr(nhBGP).u32(1, 2, 3, 0xffffffff)))),
		err:  "sample 1 (flow sample) record 1 (extended gateway) at byte 100: truncated",
	}, {
		name: "bad next-hop address type",
		data: datagram(agent4, 3, 1000, flowSample(1, 1, 1, 2, xdr{}.tlv(1002, xdr{}.u32(3, 0, 0, 0, 0)))),
		err:  "record 1 (extended router) at byte 76: unknown address type",
	}, {
		name: "next hop of unknown type is no next hop",
		data: datagram(agent4, 3, 1000, flowSample(1, 1, 1, 2, xdr{}.tlv(1002, xdr{}.u32(0, 8, 9)))),
		want: []flow.Record{flowWant(agent4, func(r *flow.Record) {
			r.SamplingRate, r.SamplerID, r.InIf, r.OutIf, r.SrcMask, r.DstMask = 1, 1, 1, 2, 8, 9
		})},
	}, {
		name: "short generic interface record",
		data: datagram(agent4, 3, 1000, counterSample(false, 0, 1, xdr{}.tlv(1, xdr{}.u32(1, 2, 3)))),
		err:  "sample 1 (counter sample) record 1 (generic interface) at byte 56: truncated",
	}, {
		name: "bad agent address type",
		data: xdr{}.u32(5, 0, 3, 1000, 1, 0),
		err:  "datagram header (agent address) at byte 4: unknown address type",
	}, {
		name: "agent address truncated",
		data: xdr{}.u32(5, 2, 1, 2),
		err:  "datagram header (agent address) at byte 8: truncated",
	}, {
		name: "version 4",
		data: xdr{}.u32(4, 1, 0, 0, 0, 0, 0),
		err:  "datagram header at byte 0: not an sFlow version 5",
	}, {
		name: "empty",
		err:  "datagram header at byte 0: truncated",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeAll(t, New(nil), tt.data)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("error %v, want one containing %q", err, tt.err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %d records, want %d", len(got), len(tt.want))
				for i := range max(len(got), len(tt.want)) {
					var g, w flow.Record
					if i < len(got) {
						g = got[i]
					}
					if i < len(tt.want) {
						w = tt.want[i]
					}
					if g != w {
						t.Errorf("record %d:\ngot  %+v\nwant %+v", i, g, w)
					}
				}
			}
		})
	}
}

func TestErrorType(t *testing.T) {
	_, err := decodeAll(t, New(nil), xdr{}.u32(5, 9))
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrAddressType) || e.Offset != 4 {
		t.Fatalf("error %#v, want *Error at 4 wrapping ErrAddressType", err)
	}
}

func TestStats(t *testing.T) {
	d := New(nil)
	data := datagram(agent4, 3, 1000,
		flowSample(1, 1, 1, 2, rawHeader(1, 64, make([]byte, 10)), xdr{}.tlv(1010, nil)),
		flowSample(1, 1, 1, 2, rawHeader(2, 64, make([]byte, 10))),
		xdr{}.tlv(9, nil),
		counterSample(false, 0, 1, genericIf(1)),
		counterSample(false, 0, 1, xdr{}.tlv(2000, nil)),
	)
	if _, err := decodeAll(t, d, data); err != nil {
		t.Fatal(err)
	}
	if _, err := decodeAll(t, d, data[:30]); err == nil {
		t.Fatal("no error on a truncated datagram")
	}
	want := Stats{
		Datagrams: 2, Samples: 5, Flows: 2, Counters: 1, Errors: 1, SkippedSamples: 1, SkippedRecords: 2,
		HeaderErrors: 1, UnknownHeaderProtocols: 1, CounterSamplesWithoutInterface: 1,
	}
	if got := d.Stats(); got != want {
		t.Errorf("stats\ngot  %+v\nwant %+v", got, want)
	}
}

func TestSequenceLoss(t *testing.T) {
	tr := seq.NewTracker(0)
	d := New(tr)
	for _, s := range []uint32{10, 11, 14, 15} { // 12 and 13 lost
		if _, err := decodeAll(t, d, datagram(agent4, 3, s)); err != nil {
			t.Fatal(err)
		}
	}
	// Another sub-agent of the same agent is its own stream.
	if _, err := decodeAll(t, d, datagram(agent4, 4, 500)); err != nil {
		t.Fatal(err)
	}
	if got := d.Stats().LostDatagrams; got != 2 {
		t.Errorf("lost %d datagrams, want 2", got)
	}
	st, ok := tr.Stream(seq.Key{Exporter: agent4, Domain: 3, Proto: SeqProto})
	if !ok || st.Datagrams != 4 || st.Lost != 2 {
		t.Errorf("stream %+v (found %v), want 4 datagrams, 2 lost", st, ok)
	}
}

func TestConcurrentDecode(t *testing.T) {
	d := New(seq.NewTracker(0))
	data := datagram(agent4, 3, 1000, flowSample(1, 1, 1, 2, rawHeader(1, 1522, ethIPv4TCP(100))))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				_ = d.Decode(exporter, when, data, func(r *flow.Record) {
					if r.SrcPort != 40000 {
						t.Errorf("SrcPort %d", r.SrcPort)
					}
				})
			}
		})
	}
	wg.Wait()
	if got := d.Stats().Flows; got != 1600 {
		t.Errorf("%d flows, want 1600", got)
	}
}

// benchDatagram is a typical switch datagram: seven flow samples with a
// 128-byte Ethernet header and the extended switch record, and a counter
// sample. It returns the datagram and its number of flows.
func benchDatagram() ([]byte, int) {
	hdr := append(ethIPv4TCP(100), make([]byte, 128)...)[:128]
	var samples []xdr
	for range 7 {
		samples = append(samples, flowSample(5, 1024, 5, 9, rawHeader(1, 1522, hdr), extSwitch(100, 100)))
	}
	samples = append(samples, counterSample(false, 0, 5, genericIf(5), ethernetCounters()))
	return datagram(agent4, 3, 1000, samples...), 7
}

func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	d := New(seq.NewTracker(0))
	data, _ := benchDatagram()
	emit := func(*flow.Record) {}
	if n := testing.AllocsPerRun(100, func() { _ = d.Decode(exporter, when, data, emit) }); n != 0 {
		t.Errorf("%v allocations per datagram, want 0", n)
	}
}

func BenchmarkDecode(b *testing.B) {
	d := New(seq.NewTracker(0))
	data, n := benchDatagram()
	emit := func(*flow.Record) {}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := d.Decode(exporter, when, data, emit); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "flows/s")
}

// pmacctCapture is the capture of the pmacct sfprobe exporter, at the
// repository root.
var pmacctCapture = filepath.Join("..", "..", "testdata", "captures", "pmacct-sflow.pcap")

func loadCapture(tb testing.TB) []capture.Datagram {
	tb.Helper()
	if _, err := os.Stat(pmacctCapture); errors.Is(err, os.ErrNotExist) {
		tb.Skipf("%s not there yet", pmacctCapture)
	}
	dgs, err := capture.ReadAllUDP(pmacctCapture)
	if err != nil {
		tb.Fatal(err)
	}
	if len(dgs) == 0 {
		tb.Fatalf("%s: no UDP datagrams", pmacctCapture)
	}
	return dgs
}

// TestPmacctCapture decodes every datagram of the pmacct capture: all must
// decode without error and give flows.
func TestPmacctCapture(t *testing.T) {
	dgs := loadCapture(t)
	d := New(seq.NewTracker(0))
	var flows int
	for _, dg := range dgs {
		err := d.Decode(dg.Src.Addr(), dg.Time, dg.Payload, func(r *flow.Record) {
			if r.Kind == flow.KindFlow {
				flows++
				ip := r.EtherType == 0x0800 || r.EtherType == 0x86dd
				if r.Bytes == 0 || (ip && (!r.SrcAddr.IsValid() || !r.DstAddr.IsValid())) {
					t.Errorf("packet %d: incomplete flow %+v", dg.Number, r)
				}
			}
		})
		if err != nil {
			t.Errorf("packet %d: %v", dg.Number, err)
		}
	}
	st := d.Stats()
	t.Logf("%d datagrams, %d flows; stats %+v", len(dgs), flows, st)
	if flows == 0 {
		t.Error("no flows decoded")
	}
}

func BenchmarkDecodePmacct(b *testing.B) {
	dgs := loadCapture(b)
	d := New(nil)
	var flows int
	emit := func(r *flow.Record) {
		if r.Kind == flow.KindFlow {
			flows++
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, dg := range dgs {
			_ = d.Decode(dg.Src.Addr(), dg.Time, dg.Payload, emit)
		}
	}
	b.ReportMetric(float64(flows)/b.Elapsed().Seconds(), "flows/s")
}

// FuzzDecode checks that no datagram makes Decode panic, read out of
// bounds or emit a record that is not an sFlow record.
func FuzzDecode(f *testing.F) {
	data, _ := benchDatagram()
	f.Add(data)
	f.Add(datagram(agent6, 3, 1000, expandedFlowSample(0, 1, 100, 0, 1, 2, 3,
		rawHeader(12, 62, ipv6UDP()), ethernetData(64), ipv4Data(20), ipv6Data(40))))
	f.Add(datagram(agent4, 3, 1000, flowSample(1, 1, 1, 2, extSwitch(1, 2), extRouter(nhRouter, 1, 2),
		extGateway(nhBGP, 1, 2, []uint32{3, 4}, nil)), xdr{}.tlv(77, xdr{}.u32(1))))
	f.Add(datagram(agent4, 3, 1000, counterSample(true, 0, 1, genericIf(1), ethernetCounters()),
		counterSample(false, 0, 1, xdr{}.tlv(5, nil))))
	f.Add(datagram(agent4, 3, 1000, flowSample(1, 1, 1, 2, rawHeader(11, 1500, ethIPv4TCP(0)[14:]))))
	if dgs, err := capture.ReadAllUDP(pmacctCapture); err == nil {
		for _, dg := range dgs[:min(len(dgs), 8)] {
			f.Add(dg.Payload)
		}
	}
	d := New(seq.NewTracker(16))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = d.Decode(exporter, when, data, func(r *flow.Record) {
			if r.Type != flow.TypeSFlowV5 || (r.Kind != flow.KindFlow && r.Kind != flow.KindCounters) {
				t.Fatalf("bad record %+v", r)
			}
			if r.Kind == flow.KindFlow && r.Packets != 1 {
				t.Fatalf("flow with %d packets", r.Packets)
			}
		})
	})
}

func TestInterfaces(t *testing.T) {
	compact := []struct{ in, want uint32 }{
		{0, 0},
		{5, 5},
		{0x3ffffffe, 0x3ffffffe},
		{0x3fffffff, 0}, // originated or terminated by the device
		{1<<30 | 7, 0},  // discarded, reason code 7
		{2<<30 | 3, 0},  // sent to 3 interfaces
		{3<<30 | 5, 0},  // undefined format
	}
	for _, c := range compact {
		if got := compactInterface(c.in); got != c.want {
			t.Errorf("compactInterface(%#x) = %d, want %d", c.in, got, c.want)
		}
	}
	expanded := []struct{ format, value, want uint32 }{
		{0, 1 << 31, 1 << 31},
		{0, 0xffffffff, 0},
		{0, 0x3fffffff, 0},
		{1, 7, 0},
		{2, 3, 0},
	}
	for _, c := range expanded {
		if got := expandedInterface(c.format, c.value); got != c.want {
			t.Errorf("expandedInterface(%d, %#x) = %d, want %d", c.format, c.value, got, c.want)
		}
	}
}
