package tcpstats

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// seg describes a TCP segment for the test builders.
type seg struct {
	src, dst      string
	sport, dport  uint16
	seq, ack      uint32
	flags         uint8
	win           uint16
	payload       int
	opts          []byte
	df            bool
	fragOff, ipID uint16
	mf            bool
	ext           []byte // IPv6 extension headers, first next-header in ext[0] chain
	extFirst      uint8
	snap          int // keep only this many bytes of the IP packet (0: all)
}

func tcpHeader(s seg) []byte {
	opts := s.opts
	for len(opts)%4 != 0 {
		opts = append(opts, 0)
	}
	h := make([]byte, 20+len(opts)+s.payload)
	binary.BigEndian.PutUint16(h[0:], s.sport)
	binary.BigEndian.PutUint16(h[2:], s.dport)
	binary.BigEndian.PutUint32(h[4:], s.seq)
	binary.BigEndian.PutUint32(h[8:], s.ack)
	h[12] = byte((20+len(opts))/4) << 4
	h[13] = s.flags
	binary.BigEndian.PutUint16(h[14:], s.win)
	copy(h[20:], opts)
	return h
}

// ipPacket builds an IPv4 or IPv6 packet holding s.
func ipPacket(s seg) []byte {
	src, dst := netip.MustParseAddr(s.src), netip.MustParseAddr(s.dst)
	t := tcpHeader(s)
	var b []byte
	if src.Is4() {
		b = make([]byte, 20+len(t))
		b[0] = 0x45
		binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
		binary.BigEndian.PutUint16(b[4:], s.ipID)
		frag := s.fragOff
		if s.df {
			frag |= 0x4000
		}
		if s.mf {
			frag |= 0x2000
		}
		binary.BigEndian.PutUint16(b[6:], frag)
		b[8], b[9] = 64, 6
		copy(b[12:], src.AsSlice())
		copy(b[16:], dst.AsSlice())
		copy(b[20:], t)
	} else {
		b = make([]byte, 40+len(s.ext)+len(t))
		b[0] = 0x60
		binary.BigEndian.PutUint16(b[4:], uint16(len(s.ext)+len(t)))
		b[6], b[7] = 6, 64
		if len(s.ext) > 0 {
			b[6] = s.extFirst
		}
		copy(b[8:], src.AsSlice())
		copy(b[24:], dst.AsSlice())
		copy(b[40:], s.ext)
		copy(b[40+len(s.ext):], t)
	}
	if s.snap > 0 && s.snap < len(b) {
		b = b[:s.snap]
	}
	return b
}

func ethertype(ip []byte) uint16 {
	if ip[0]>>4 == 6 {
		return 0x86dd
	}
	return 0x0800
}

func ethernet(ip []byte, tags ...uint16) []byte {
	b := make([]byte, 12)
	for _, tpid := range tags {
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, 100)
	}
	b = binary.BigEndian.AppendUint16(b, ethertype(ip))
	return append(b, ip...)
}

func sll(ip []byte) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint16(b[14:], ethertype(ip))
	return append(b, ip...)
}

func sll2(ip []byte) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], ethertype(ip))
	return append(b, ip...)
}

var synOpts = []byte{2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7}

func TestParse(t *testing.T) {
	v4 := seg{src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 443, seq: 100, ack: 0, flags: FlagSYN, win: 64240, opts: synOpts, df: true}
	v6 := seg{src: "fd77::1", dst: "fd77::2", sport: 40000, dport: 443, seq: 7, ack: 9, flags: FlagACK | FlagPSH, win: 500, payload: 100}
	hbh := append([]byte{60, 0}, make([]byte, 6)...)  // hop-by-hop, next: destination options
	dsto := append([]byte{44, 0}, make([]byte, 6)...) // destination options, next: fragment
	frag := []byte{6, 0, 0, 1, 0, 0, 0, 42}           // fragment offset 0, M=1, next: TCP
	v6ext := v6
	v6ext.ext, v6ext.extFirst = append(append(append([]byte{}, hbh...), dsto...), frag...), 0

	cases := []struct {
		name  string
		lt    LinkType
		data  []byte
		err   error
		check func(*testing.T, *Packet)
	}{
		{"ethernet ipv4 syn options", LinkEthernet, ethernet(ipPacket(v4)), nil, func(t *testing.T, p *Packet) {
			if !p.HasMSS || p.MSS != 1460 || p.WScale != 7 || !p.SACKPerm || !p.HasTS || p.TSVal != 1 {
				t.Errorf("options: %+v", p)
			}
			if !p.DF || p.Flags != FlagSYN || p.Window != 64240 || p.PayloadLen != 0 || p.HeaderLen != 40 {
				t.Errorf("header: %+v", p)
			}
			if p.Src != netip.MustParseAddr("10.0.0.1") || p.DstPort != 443 || p.Seq != 100 {
				t.Errorf("addresses: %+v", p)
			}
		}},
		{"802.1Q", LinkEthernet, ethernet(ipPacket(v6), 0x8100), nil, func(t *testing.T, p *Packet) {
			if p.VLANs != 1 || !p.IPv6 || p.PayloadLen != 100 {
				t.Errorf("%+v", p)
			}
		}},
		{"QinQ", LinkEthernet, ethernet(ipPacket(v4), 0x88a8, 0x8100), nil, func(t *testing.T, p *Packet) {
			if p.VLANs != 2 {
				t.Errorf("VLANs %d", p.VLANs)
			}
		}},
		{"too many tags", LinkEthernet, ethernet(ipPacket(v4), 0x8100, 0x8100, 0x8100, 0x8100, 0x8100), ErrTooManyTags, nil},
		{"sll", LinkLinuxSLL, sll(ipPacket(v6)), nil, func(t *testing.T, p *Packet) {
			if p.Ack != 9 || p.Window != 500 {
				t.Errorf("%+v", p)
			}
		}},
		{"sll2", LinkLinuxSLL2, sll2(ipPacket(v4)), nil, nil},
		{"raw", LinkRaw, ipPacket(v6), nil, nil},
		{"ipv6 extension headers", LinkRaw, ipPacket(v6ext), nil, func(t *testing.T, p *Packet) {
			if p.PayloadLen != 100 || !p.MoreFragments {
				t.Errorf("%+v", p)
			}
		}},
		{"snapped keeps lengths", LinkRaw, ipPacket(seg{src: "10.0.0.1", dst: "10.0.0.2", flags: FlagACK, payload: 1400, snap: 60}), nil, func(t *testing.T, p *Packet) {
			if p.PayloadLen != 1400 || p.IPLen != 1440 {
				t.Errorf("%+v", p)
			}
		}},
		{"snapped ipv6 ext", LinkRaw, func() []byte { s := v6ext; s.payload, s.snap = 1000, 100; return ipPacket(s) }(), nil, func(t *testing.T, p *Packet) {
			if p.PayloadLen != 1000 {
				t.Errorf("%+v", p)
			}
		}},
		{"ipv4 later fragment", LinkRaw, ipPacket(seg{src: "10.0.0.1", dst: "10.0.0.2", fragOff: 185}), ErrFragment, nil},
		{"ipv4 first fragment", LinkRaw, ipPacket(seg{src: "10.0.0.1", dst: "10.0.0.2", mf: true}), nil, func(t *testing.T, p *Packet) {
			if !p.MoreFragments {
				t.Error("MF not seen")
			}
		}},
		{"truncated tcp", LinkRaw, ipPacket(seg{src: "10.0.0.1", dst: "10.0.0.2"})[:30], ErrTruncated, nil},
		{"arp", LinkEthernet, append(make([]byte, 12), 0x08, 0x06, 0, 0), ErrNotIP, nil},
		{"udp", LinkRaw, func() []byte { b := ipPacket(seg{src: "10.0.0.1", dst: "10.0.0.2"}); b[9] = 17; return b }(), ErrNotTCP, nil},
		{"unknown link", LinkType(999), []byte{1}, ErrLinkType, nil},
		{"bad data offset", LinkRaw, func() []byte { b := ipPacket(seg{src: "10.0.0.1", dst: "10.0.0.2"}); b[32] = 0x10; return b }(), ErrBadHeader, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			err := Parse(tc.lt, tc.data, &p)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && tc.check != nil {
				tc.check(t, &p)
			}
		})
	}
}

func TestParseAllocs(t *testing.T) {
	frame := ethernet(ipPacket(seg{src: "fd77::1", dst: "fd77::2", flags: FlagSYN, opts: synOpts}), 0x8100)
	var p Packet
	if n := testing.AllocsPerRun(100, func() { Parse(LinkEthernet, frame, &p) }); n != 0 {
		t.Errorf("Parse allocates %v times per packet", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(uint32(LinkEthernet), ethernet(ipPacket(seg{src: "10.0.0.1", dst: "10.0.0.2", flags: FlagSYN, opts: synOpts}), 0x8100))
	f.Add(uint32(LinkLinuxSLL2), sll2(ipPacket(seg{src: "fd77::1", dst: "fd77::2", payload: 3})))
	f.Add(uint32(LinkRaw), ipPacket(seg{src: "fd77::1", dst: "fd77::2", ext: []byte{6, 0, 0, 1, 0, 0, 0, 1}, extFirst: 44}))
	f.Add(uint32(LinkLinuxSLL), sll(ipPacket(seg{src: "10.0.0.1", dst: "10.0.0.2", flags: FlagACK, payload: 10, snap: 45})))
	f.Fuzz(func(t *testing.T, lt uint32, data []byte) {
		var p Packet
		if err := Parse(LinkType(lt), data, &p); err != nil {
			return
		}
		if p.PayloadLen < 0 || p.HeaderLen < 20 || p.HeaderLen > 60 {
			t.Fatalf("impossible lengths: %+v", p)
		}
		if !p.Src.IsValid() || !p.Dst.IsValid() {
			t.Fatalf("invalid addresses: %+v", p)
		}
		// The analyzer must take whatever the parser accepts, twice (the
		// second time as a known connection).
		a := New(Config{MaxFlows: 1}, nil)
		var tm timeSeq
		a.Add(tm.next(), &p)
		a.Add(tm.next(), &p)
		a.Flush()
	})
}
