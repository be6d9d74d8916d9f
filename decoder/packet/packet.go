// Package packet parses the sampled packet headers that sFlow agents copy
// into their datagrams: Ethernet (with 802.1Q and QinQ tags), IPv4, IPv6
// and the ports or ICMP type of TCP, UDP, SCTP, UDP-Lite, DCCP, ICMP and
// ICMPv6, into the L2–L4 fields of a flow.Record.
//
// Sampled headers are usually cut short (128 bytes is the common default),
// so the parsers decode whatever is present and only fail when not even the
// network header is there. They never read past the slice they are given,
// never allocate and write only the fields they find: a field whose bytes
// are missing keeps the value it had.
package packet

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/netpulse/netpulse/flow"
)

// Errors returned by the parsers. Fields decoded before the error was found
// stay in the record.
var (
	// ErrTruncated means the header ends before the network header
	// (Ethernet header, VLAN tags, fixed IPv4 or IPv6 header) is complete.
	ErrTruncated = errors.New("packet: header truncated before the network header")
	// ErrVersion means the IP version nibble is not the one expected.
	ErrVersion = errors.New("packet: wrong IP version")
	// ErrHeader means an IPv4 header length below the 20-byte minimum.
	ErrHeader = errors.New("packet: malformed IPv4 header length")
)

// EtherTypes the parsers know.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeIPv6 = 0x86dd
	etherTypeVLAN = 0x8100 // 802.1Q customer tag
	etherTypeQinQ = 0x88a8 // 802.1ad service tag
	etherTypeOld  = 0x9100 // pre-standard QinQ tag
)

// IP protocol numbers the parsers look into.
const (
	protoICMP    = 1
	protoTCP     = 6
	protoUDP     = 17
	protoDCCP    = 33
	protoICMPv6  = 58
	protoSCTP    = 132
	protoUDPLite = 136

	// IPv6 extension headers walked over to reach the transport header.
	protoHopByHop = 0
	protoRouting  = 43
	protoFragment = 44
	protoAH       = 51
	protoDstOpts  = 60
)

// ParseEthernet parses an Ethernet II frame that starts at b[0] (destination
// MAC), possibly carrying 802.1Q, 802.1ad or 0x9100 VLAN tags, and then its
// IPv4 or IPv6 payload. It sets SrcMAC, DstMAC and EtherType (the type of
// the payload inside the tags), and fills the IP fields as ParseIPv4 and
// ParseIPv6 do.
//
// The VLAN ID of the outermost tag is written to SrcVLAN only when SrcVLAN
// is still 0: a VLAN the agent reports itself (sFlow's extended switch
// record) describes the switch's own view and is more reliable than a tag
// that happened to be on the wire, and leaving a set value alone makes the
// result independent of the order in which the two are decoded. A tag with
// VLAN ID 0 (priority tag only) sets nothing.
//
// 802.3 frames carrying LLC/SNAP are followed to their EtherType; other
// 802.3 frames and payloads that are neither IPv4 nor IPv6 are not errors:
// their L2 fields are set and the rest is left alone.
func ParseEthernet(b []byte, r *flow.Record) error {
	if len(b) < 14 {
		return ErrTruncated
	}
	r.DstMAC = flow.MAC(b[0:6])
	r.SrcMAC = flow.MAC(b[6:12])
	et := binary.BigEndian.Uint16(b[12:14])
	b = b[14:]
	outer := true
	// Each tag consumes four bytes, so the loop ends with the slice.
	for et == etherTypeVLAN || et == etherTypeQinQ || et == etherTypeOld {
		if len(b) < 4 {
			return ErrTruncated
		}
		if outer && r.SrcVLAN == 0 {
			r.SrcVLAN = binary.BigEndian.Uint16(b[0:2]) & 0x0fff
		}
		outer = false
		et = binary.BigEndian.Uint16(b[2:4])
		b = b[4:]
	}
	if et < 0x0600 {
		// An 802.3 length field: only LLC/SNAP with a zero OUI carries an
		// EtherType.
		if len(b) < 8 || b[0] != 0xaa || b[1] != 0xaa || b[2] != 0x03 || b[3] != 0 || b[4] != 0 || b[5] != 0 {
			return nil
		}
		et = binary.BigEndian.Uint16(b[6:8])
		b = b[8:]
	}
	r.EtherType = et
	switch et {
	case EtherTypeIPv4:
		return ParseIPv4(b, r)
	case EtherTypeIPv6:
		return ParseIPv6(b, r)
	}
	return nil
}

// ParseIPv4 parses an IPv4 header at b[0] and the transport header after
// it. It sets EtherType to IPv4, SrcAddr, DstAddr, Proto, ToS and, when the
// packet is not a non-first fragment and the bytes are there, the ports and
// TCP flags (see parseTransport). The transport header is looked for within
// the IPv4 total length, so Ethernet padding is never taken for it.
func ParseIPv4(b []byte, r *flow.Record) error {
	if len(b) < 20 {
		return ErrTruncated
	}
	if b[0]>>4 != 4 {
		return ErrVersion
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 {
		return ErrHeader
	}
	r.EtherType = EtherTypeIPv4
	r.ToS = b[1]
	r.Proto = b[9]
	r.SrcAddr = netip.AddrFrom4([4]byte(b[12:16]))
	r.DstAddr = netip.AddrFrom4([4]byte(b[16:20]))
	if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
		// A non-first fragment: what follows the header is the middle
		// of the payload, not a transport header.
		return nil
	}
	end := len(b)
	if tot := int(binary.BigEndian.Uint16(b[2:4])); tot >= ihl && tot < end {
		end = tot
	}
	if ihl > end {
		// Options cut off by the sampling: no transport header.
		return nil
	}
	parseTransport(b[ihl:end], r.Proto, r)
	return nil
}

// ParseIPv6 parses an IPv6 header at b[0], walks the hop-by-hop, routing,
// destination options, authentication and fragment extension headers, and
// parses the transport header after them. It sets EtherType to IPv6,
// SrcAddr, DstAddr, ToS (the traffic class) and Proto (the upper-layer
// protocol), and the ports and TCP flags when present.
//
// Proto is the Next Header value where the walk stopped: the upper-layer
// protocol when the chain is complete, or the number of the extension
// header that was cut off by the sampling. A non-first fragment has no
// transport header; its Proto is the fragment header's Next Header.
func ParseIPv6(b []byte, r *flow.Record) error {
	if len(b) < 40 {
		return ErrTruncated
	}
	if b[0]>>4 != 6 {
		return ErrVersion
	}
	r.EtherType = EtherTypeIPv6
	r.ToS = b[0]<<4 | b[1]>>4
	r.SrcAddr = netip.AddrFrom16([16]byte(b[8:24]))
	r.DstAddr = netip.AddrFrom16([16]byte(b[24:40]))
	next := b[6]
	rest := b[40:]
	// A payload length of 0 is a jumbogram; otherwise it bounds the search
	// so that Ethernet padding is never read as a header.
	if plen := int(binary.BigEndian.Uint16(b[4:6])); plen > 0 && plen < len(rest) {
		rest = rest[:plen]
	}
	// Every extension header is at least 8 bytes, so the walk ends with
	// the slice.
	for {
		r.Proto = next
		switch next {
		case protoHopByHop, protoRouting, protoDstOpts, protoAH:
			if len(rest) < 2 {
				return nil
			}
			n := (int(rest[1]) + 1) * 8
			if next == protoAH {
				n = (int(rest[1]) + 2) * 4
			}
			if n > len(rest) {
				return nil
			}
			next, rest = rest[0], rest[n:]
		case protoFragment:
			if len(rest) < 8 {
				return nil
			}
			next = rest[0]
			if binary.BigEndian.Uint16(rest[2:4])>>3 != 0 {
				r.Proto = next
				return nil
			}
			rest = rest[8:]
		default:
			parseTransport(rest, next, r)
			return nil
		}
	}
}

// parseTransport sets the ports (and TCP flags) of the transport header at
// b[0], or for ICMP and ICMPv6 SrcPort 0 and DstPort type*256+code, as far
// as the bytes are there.
func parseTransport(b []byte, proto uint8, r *flow.Record) {
	switch proto {
	case protoTCP, protoUDP, protoSCTP, protoUDPLite, protoDCCP:
		if len(b) < 4 {
			return
		}
		r.SrcPort = binary.BigEndian.Uint16(b[0:2])
		r.DstPort = binary.BigEndian.Uint16(b[2:4])
		// Byte 13 holds CWR, ECE, URG, ACK, PSH, RST, SYN and FIN.
		if proto == protoTCP && len(b) >= 14 {
			r.TCPFlags = b[13]
		}
	case protoICMP, protoICMPv6:
		if len(b) < 2 {
			return
		}
		r.SrcPort = 0
		r.DstPort = uint16(b[0])<<8 | uint16(b[1])
	}
}
