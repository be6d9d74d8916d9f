package packet

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/netpulse/netpulse/flow"
)

var (
	macA = flow.MAC{0x02, 0, 0, 0, 0, 0xaa}
	macB = flow.MAC{0x02, 0, 0, 0, 0, 0xbb}
	v4a  = netip.MustParseAddr("192.0.2.1")
	v4b  = netip.MustParseAddr("198.51.100.2")
	v6a  = netip.MustParseAddr("2001:db8::1")
	v6b  = netip.MustParseAddr("2001:db8::2")
)

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// eth builds an Ethernet header from dst to src, then the tags (TPID, TCI
// pairs), then the EtherType.
func eth(et uint16, tags ...uint16) []byte {
	b := cat(macB[:], macA[:])
	for _, t := range tags {
		b = append(b, u16(t)...)
	}
	return append(b, u16(et)...)
}

// ipv4 builds an IPv4 header (no options unless ihl > 5) whose total
// length covers payload.
func ipv4(tos, proto uint8, fragOff uint16, ihl int, payload []byte) []byte {
	h := make([]byte, ihl*4)
	h[0] = 0x40 | byte(ihl)
	h[1] = tos
	binary.BigEndian.PutUint16(h[2:], uint16(len(h)+len(payload)))
	binary.BigEndian.PutUint16(h[6:], fragOff)
	h[8] = 64
	h[9] = proto
	copy(h[12:], v4a.AsSlice())
	copy(h[16:], v4b.AsSlice())
	return cat(h, payload)
}

// ipv6 builds an IPv6 header with traffic class tc and the given first
// Next Header; rest holds extension headers and the transport header.
func ipv6(tc, next uint8, rest []byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60 | tc>>4
	h[1] = tc << 4
	binary.BigEndian.PutUint16(h[4:], uint16(len(rest)))
	h[6] = next
	h[7] = 64
	copy(h[8:], v6a.AsSlice())
	copy(h[24:], v6b.AsSlice())
	return cat(h, rest)
}

// ext builds an 8*(n+1)-byte extension header.
func ext(next uint8, n int) []byte {
	b := make([]byte, 8*(n+1))
	b[0] = next
	b[1] = byte(n)
	return b
}

func frag(next uint8, off uint16) []byte {
	b := make([]byte, 8)
	b[0] = next
	binary.BigEndian.PutUint16(b[2:], off<<3)
	return b
}

func tcp(sp, dp uint16, flags uint8) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], sp)
	binary.BigEndian.PutUint16(b[2:], dp)
	b[12] = 5 << 4
	b[13] = flags
	return b
}

func udp(sp, dp uint16) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint16(b[0:], sp)
	binary.BigEndian.PutUint16(b[2:], dp)
	return b
}

func TestParseEthernet(t *testing.T) {
	tcp4 := ipv4(0xb8, 6, 0, 5, tcp(12345, 443, 0x12))
	tests := []struct {
		name  string
		frame []byte
		pre   flow.Record // record before parsing
		want  flow.Record
		err   error
	}{{
		name:  "ipv4 tcp",
		frame: cat(eth(0x0800), tcp4),
		want: flow.Record{SrcMAC: macA, DstMAC: macB, EtherType: 0x0800, ToS: 0xb8, Proto: 6,
			SrcAddr: v4a, DstAddr: v4b, SrcPort: 12345, DstPort: 443, TCPFlags: 0x12},
	}, {
		name:  "802.1Q",
		frame: cat(eth(0x0800, 0x8100, 0x2064), ipv4(0, 17, 0, 5, udp(53, 5353))),
		want: flow.Record{SrcMAC: macA, DstMAC: macB, EtherType: 0x0800, Proto: 17, SrcVLAN: 100,
			SrcAddr: v4a, DstAddr: v4b, SrcPort: 53, DstPort: 5353},
	}, {
		name:  "QinQ 88a8 takes the outer tag",
		frame: cat(eth(0x86dd, 0x88a8, 0x00c8, 0x8100, 0x0064), ipv6(0, 17, udp(1, 2))),
		want: flow.Record{SrcMAC: macA, DstMAC: macB, EtherType: 0x86dd, Proto: 17, SrcVLAN: 200,
			SrcAddr: v6a, DstAddr: v6b, SrcPort: 1, DstPort: 2},
	}, {
		name:  "QinQ 9100",
		frame: cat(eth(0x0800, 0x9100, 0x0123, 0x8100, 0x0064), tcp4),
		want: flow.Record{SrcMAC: macA, DstMAC: macB, EtherType: 0x0800, ToS: 0xb8, Proto: 6, SrcVLAN: 0x123,
			SrcAddr: v4a, DstAddr: v4b, SrcPort: 12345, DstPort: 443, TCPFlags: 0x12},
	}, {
		name:  "VLAN already set is kept",
		frame: cat(eth(0x0806, 0x8100, 0x0064), make([]byte, 28)),
		pre:   flow.Record{SrcVLAN: 7},
		want:  flow.Record{SrcMAC: macA, DstMAC: macB, EtherType: 0x0806, SrcVLAN: 7},
	}, {
		name:  "ARP is not an error",
		frame: cat(eth(0x0806), make([]byte, 28)),
		want:  flow.Record{SrcMAC: macA, DstMAC: macB, EtherType: 0x0806},
	}, {
		name:  "LLC SNAP",
		frame: cat(eth(50), []byte{0xaa, 0xaa, 3, 0, 0, 0, 0x08, 0x00}, tcp4),
		want: flow.Record{SrcMAC: macA, DstMAC: macB, EtherType: 0x0800, ToS: 0xb8, Proto: 6,
			SrcAddr: v4a, DstAddr: v4b, SrcPort: 12345, DstPort: 443, TCPFlags: 0x12},
	}, {
		name:  "802.3 without SNAP",
		frame: cat(eth(38), []byte{0x42, 0x42, 3}, make([]byte, 35)),
		want:  flow.Record{SrcMAC: macA, DstMAC: macB},
	}, {
		name:  "ethernet truncated",
		frame: cat(macB[:], macA[:], []byte{8}),
		err:   ErrTruncated,
	}, {
		name:  "VLAN tag truncated",
		frame: cat(eth(0x0800, 0x8100), []byte{0}),
		want:  flow.Record{SrcMAC: macA, DstMAC: macB},
		err:   ErrTruncated,
	}, {
		name:  "IPv4 header truncated",
		frame: cat(eth(0x0800), tcp4[:19]),
		want:  flow.Record{SrcMAC: macA, DstMAC: macB, EtherType: 0x0800},
		err:   ErrTruncated,
	}, {
		name:  "TCP cut after the ports",
		frame: cat(eth(0x0800), tcp4[:24]),
		want: flow.Record{SrcMAC: macA, DstMAC: macB, EtherType: 0x0800, ToS: 0xb8, Proto: 6,
			SrcAddr: v4a, DstAddr: v4b, SrcPort: 12345, DstPort: 443},
	}, {
		name:  "wrong version behind IPv4 EtherType",
		frame: cat(eth(0x0800), ipv6(0, 17, udp(1, 2))),
		want:  flow.Record{SrcMAC: macA, DstMAC: macB, EtherType: 0x0800},
		err:   ErrVersion,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.pre
			err := ParseEthernet(tt.frame, &got)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseIPv4(t *testing.T) {
	base := flow.Record{EtherType: 0x0800, SrcAddr: v4a, DstAddr: v4b}
	with := func(f func(*flow.Record)) flow.Record { r := base; f(&r); return r }
	icmp := []byte{3, 4, 0, 0, 0, 0, 0, 0}
	tests := []struct {
		name string
		pkt  []byte
		want flow.Record
		err  error
	}{
		{"udp", ipv4(0x10, 17, 0, 5, udp(4000, 53)), with(func(r *flow.Record) {
			r.ToS, r.Proto, r.SrcPort, r.DstPort = 0x10, 17, 4000, 53
		}), nil},
		{"icmp", ipv4(0, 1, 0, 5, icmp), with(func(r *flow.Record) {
			r.Proto, r.DstPort = 1, 3*256+4
		}), nil},
		{"sctp", ipv4(0, 132, 0, 5, udp(7, 9)), with(func(r *flow.Record) {
			r.Proto, r.SrcPort, r.DstPort = 132, 7, 9
		}), nil},
		{"options", ipv4(0, 6, 0, 6, tcp(1, 2, 0x02)), with(func(r *flow.Record) {
			r.Proto, r.SrcPort, r.DstPort, r.TCPFlags = 6, 1, 2, 0x02
		}), nil},
		{"options cut off", ipv4(0, 6, 0, 15, tcp(1, 2, 0x02))[:40], with(func(r *flow.Record) {
			r.Proto = 6
		}), nil},
		{"first fragment has ports", ipv4(0, 17, 0x2000, 5, udp(1, 2)), with(func(r *flow.Record) {
			r.Proto, r.SrcPort, r.DstPort = 17, 1, 2
		}), nil},
		{"non-first fragment has none", ipv4(0, 17, 185, 5, udp(1, 2)), with(func(r *flow.Record) {
			r.Proto = 17
		}), nil},
		{"padding is not a header", cat(ipv4(0, 6, 0, 5, nil), []byte{0, 1, 0, 2}), with(func(r *flow.Record) {
			r.Proto = 6
		}), nil},
		{"truncated", ipv4(0, 6, 0, 5, nil)[:12], flow.Record{}, ErrTruncated},
		{"version", ipv6(0, 6, nil), flow.Record{}, ErrVersion},
		{"ihl", func() []byte { b := ipv4(0, 6, 0, 5, nil); b[0] = 0x44; return b }(), flow.Record{}, ErrHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got flow.Record
			err := ParseIPv4(tt.pkt, &got)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseIPv6(t *testing.T) {
	base := flow.Record{EtherType: 0x86dd, SrcAddr: v6a, DstAddr: v6b}
	with := func(f func(*flow.Record)) flow.Record { r := base; f(&r); return r }
	tests := []struct {
		name string
		pkt  []byte
		want flow.Record
		err  error
	}{
		{"tcp and traffic class", ipv6(0xb8, 6, tcp(443, 50000, 0x18)), with(func(r *flow.Record) {
			r.ToS, r.Proto, r.SrcPort, r.DstPort, r.TCPFlags = 0xb8, 6, 443, 50000, 0x18
		}), nil},
		{"icmpv6", ipv6(0, 58, []byte{128, 0, 0, 0}), with(func(r *flow.Record) {
			r.Proto, r.DstPort = 58, 128*256
		}), nil},
		{"extension chain", ipv6(0, 0, cat(ext(43, 1), ext(60, 0), frag(17, 0), udp(5, 6))), with(func(r *flow.Record) {
			r.Proto, r.SrcPort, r.DstPort = 17, 5, 6
		}), nil},
		{"authentication header", ipv6(0, 51, cat([]byte{6, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, tcp(1, 2, 1))), with(func(r *flow.Record) {
			r.Proto, r.SrcPort, r.DstPort, r.TCPFlags = 6, 1, 2, 1
		}), nil},
		{"non-first fragment", ipv6(0, 44, cat(frag(17, 100), udp(5, 6))), with(func(r *flow.Record) {
			r.Proto = 17
		}), nil},
		{"extension header cut off", ipv6(0, 0, ext(17, 3))[:50], with(func(r *flow.Record) {
			r.Proto = 0
		}), nil},
		{"udp cut off", ipv6(0, 17, udp(5, 6))[:42], with(func(r *flow.Record) {
			r.Proto = 17
		}), nil},
		{"truncated", ipv6(0, 6, nil)[:39], flow.Record{}, ErrTruncated},
		{"version", ipv4(0, 6, 0, 10, nil), flow.Record{}, ErrVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got flow.Record
			err := ParseIPv6(tt.pkt, &got)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestZeroAllocs(t *testing.T) {
	frames := [][]byte{
		cat(eth(0x0800, 0x8100, 0x0064), ipv4(0, 6, 0, 5, tcp(1, 2, 3))),
		cat(eth(0x86dd), ipv6(0, 0, cat(ext(17, 0), udp(1, 2)))),
	}
	var r flow.Record
	for _, f := range frames {
		if n := testing.AllocsPerRun(100, func() { _ = ParseEthernet(f, &r) }); n != 0 {
			t.Errorf("%d allocations per parse, want 0", int(n))
		}
	}
}

// FuzzParseEthernet checks that no input makes the parser panic or read
// past its slice (the race detector and bounds checks catch that), and that
// whatever it accepts is internally consistent.
func FuzzParseEthernet(f *testing.F) {
	f.Add(cat(eth(0x0800), ipv4(0, 6, 0, 5, tcp(1, 2, 3))))
	f.Add(cat(eth(0x0800, 0x8100, 0x0064, 0x88a8, 0x0001), ipv4(0, 17, 0, 5, udp(1, 2))))
	f.Add(cat(eth(0x86dd), ipv6(0, 0, cat(ext(43, 0), frag(58, 0), []byte{1, 2, 3, 4}))))
	f.Add(cat(eth(0x86dd), ipv6(0, 51, []byte{17, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})))
	f.Add(cat(eth(40), []byte{0xaa, 0xaa, 3, 0, 0, 0, 0x86, 0xdd}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r flow.Record
		err := ParseEthernet(b, &r)
		if err == nil && len(b) < 14 {
			t.Fatalf("accepted a %d-byte frame", len(b))
		}
		if r.SrcVLAN > 0x0fff {
			t.Fatalf("VLAN %d out of range", r.SrcVLAN)
		}
		if err == nil && r.SrcAddr.IsValid() && r.SrcAddr.Is4() != (r.EtherType == EtherTypeIPv4) {
			t.Fatalf("address %v with EtherType %#x", r.SrcAddr, r.EtherType)
		}
	})
}

func BenchmarkParseEthernet(b *testing.B) {
	pad := make([]byte, 128)
	frames := []struct {
		name  string
		frame []byte
	}{
		{"ipv4-tcp", cat(eth(0x0800, 0x8100, 0x0064), ipv4(0, 6, 0, 5, tcp(1, 2, 3)), pad)[:128]},
		{"ipv6-udp", cat(eth(0x86dd), ipv6(0, 17, cat(udp(1, 2), pad)))[:128]},
		{"ipv6-ext", cat(eth(0x86dd), ipv6(0, 0, cat(ext(60, 0), frag(6, 0), tcp(1, 2, 3), pad)))[:128]},
		{"truncated", cat(eth(0x0800), ipv4(0, 6, 0, 5, nil))[:20]},
	}
	for _, f := range frames {
		b.Run(f.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(f.frame)))
			var r flow.Record
			for b.Loop() {
				r = flow.Record{}
				_ = ParseEthernet(f.frame, &r)
			}
		})
	}
}
