// Package tcpstats measures TCP health passively from captured packets: it
// parses link, IP and TCP headers without allocating, follows every
// connection in both directions with Wireshark's tcp.analysis rules, and
// sums up what happened per connection and in total.
//
// The rules, their order of precedence and where this package departs from
// Wireshark are documented in docs/tcpstats.md.
package tcpstats

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// LinkType is a pcap link-layer header type (LINKTYPE_* in the tcpdump
// registry).
type LinkType uint32

// The link types Parse understands.
const (
	LinkNull      LinkType = 0   // BSD loopback, host-order family
	LinkEthernet  LinkType = 1   // Ethernet II, optionally 802.1Q/802.1ad tagged
	LinkRaw       LinkType = 101 // raw IPv4 or IPv6
	LinkLoop      LinkType = 108 // OpenBSD loopback, network-order family
	LinkLinuxSLL  LinkType = 113 // Linux "cooked" capture v1 (the any device)
	LinkIPv4      LinkType = 228
	LinkIPv6      LinkType = 229
	LinkLinuxSLL2 LinkType = 276 // Linux "cooked" capture v2
	linkRawAlt12  LinkType = 12  // LINKTYPE_RAW on some BSDs
	linkRawAlt14  LinkType = 14
)

// TCP header flags.
const (
	FlagFIN = 1 << iota
	FlagSYN
	FlagRST
	FlagPSH
	FlagACK
	FlagURG
	FlagECE
	FlagCWR
)

// Errors returned by Parse. They are values, so a failed parse allocates
// nothing and callers can count each kind.
var (
	ErrTruncated   = errors.New("tcpstats: packet truncated")
	ErrLinkType    = errors.New("tcpstats: unsupported link type")
	ErrNotIP       = errors.New("tcpstats: not IPv4 or IPv6")
	ErrNotTCP      = errors.New("tcpstats: not TCP")
	ErrFragment    = errors.New("tcpstats: non-first IP fragment")
	ErrBadHeader   = errors.New("tcpstats: malformed header")
	ErrTooManyTags = errors.New("tcpstats: too many VLAN tags")
)

// Packet is one parsed TCP segment. Parse fills it in place, so a caller
// reuses one Packet for a whole capture.
type Packet struct {
	Src, Dst netip.Addr
	IPv6     bool
	// IPLen is the IP packet's length from its header (total length for
	// IPv4, 40 + payload length for IPv6), not the captured length, so
	// payload sizes stay right under a short snap length.
	IPLen int
	// DF is the IPv4 Don't Fragment bit. IPv6 never fragments in transit,
	// so DF is true for IPv6.
	DF bool
	// MoreFragments is set on the first fragment of a fragmented IPv4
	// datagram or an IPv6 datagram with a Fragment header.
	MoreFragments bool
	VLANs         int // 802.1Q/802.1ad tags stripped
	TTL           uint8

	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint8
	Window           uint16 // unscaled, as on the wire
	HeaderLen        int    // TCP header length in bytes
	PayloadLen       int    // TCP payload length from the IP length

	// Options. WScale is -1 when absent.
	MSS        uint16
	HasMSS     bool
	WScale     int8
	SACKPerm   bool
	SACKBlocks int
	HasTS      bool
	TSVal      uint32
	TSEcr      uint32

	ipHdrLen int // IPv4 header or IPv6 header plus extension headers
}

// Parse decodes the TCP segment in data, a frame of link type lt. It does
// no I/O and allocates nothing.
func Parse(lt LinkType, data []byte, p *Packet) error {
	*p = Packet{WScale: -1}
	ip, err := network(lt, data, p)
	if err != nil {
		return err
	}
	if len(ip) < 1 {
		return ErrTruncated
	}
	var tcp []byte
	switch ip[0] >> 4 {
	case 4:
		tcp, err = parseIPv4(ip, p)
	case 6:
		tcp, err = parseIPv6(ip, p)
	default:
		return ErrNotIP
	}
	if err != nil {
		return err
	}
	return parseTCP(tcp, p)
}

const (
	etherIPv4  = 0x0800
	etherIPv6  = 0x86dd
	etherVLAN  = 0x8100
	etherQinQ  = 0x88a8
	etherQinQ2 = 0x9100
	maxVLANs   = 4
)

// network strips the link layer and returns the IP packet.
func network(lt LinkType, b []byte, p *Packet) ([]byte, error) {
	var et uint16
	switch lt {
	case LinkEthernet:
		if len(b) < 14 {
			return nil, ErrTruncated
		}
		et, b = binary.BigEndian.Uint16(b[12:14]), b[14:]
	case LinkLinuxSLL:
		if len(b) < 16 {
			return nil, ErrTruncated
		}
		et, b = binary.BigEndian.Uint16(b[14:16]), b[16:]
	case LinkLinuxSLL2:
		if len(b) < 20 {
			return nil, ErrTruncated
		}
		et, b = binary.BigEndian.Uint16(b[0:2]), b[20:]
	case LinkRaw, linkRawAlt12, linkRawAlt14, LinkIPv4, LinkIPv6:
		return b, nil
	case LinkNull, LinkLoop:
		if len(b) < 4 {
			return nil, ErrTruncated
		}
		return b[4:], nil // the family is checked by the IP version
	default:
		return nil, ErrLinkType
	}
	for et == etherVLAN || et == etherQinQ || et == etherQinQ2 {
		if p.VLANs == maxVLANs {
			return nil, ErrTooManyTags
		}
		if len(b) < 4 {
			return nil, ErrTruncated
		}
		p.VLANs++
		et, b = binary.BigEndian.Uint16(b[2:4]), b[4:]
	}
	if et != etherIPv4 && et != etherIPv6 {
		return nil, ErrNotIP
	}
	return b, nil
}

func parseIPv4(b []byte, p *Packet) ([]byte, error) {
	if len(b) < 20 {
		return nil, ErrTruncated
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < 20 || total < ihl {
		return nil, ErrBadHeader
	}
	if len(b) < ihl {
		return nil, ErrTruncated
	}
	frag := binary.BigEndian.Uint16(b[6:8])
	p.DF = frag&0x4000 != 0
	p.MoreFragments = frag&0x2000 != 0
	if frag&0x1fff != 0 {
		return nil, ErrFragment
	}
	if b[9] != 6 {
		return nil, ErrNotTCP
	}
	p.TTL = b[8]
	p.IPLen = total
	p.ipHdrLen = ihl
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	end := total
	if end > len(b) {
		end = len(b) // snapped; lengths still come from the header
	}
	return b[ihl:end], nil
}

func parseIPv6(b []byte, p *Packet) ([]byte, error) {
	if len(b) < 40 {
		return nil, ErrTruncated
	}
	p.IPv6 = true
	p.DF = true
	p.TTL = b[7]
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	p.IPLen = 40 + plen
	p.Src = netip.AddrFrom16([16]byte(b[8:24]))
	p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	next := b[6]
	end := 40 + plen
	if end > len(b) {
		end = len(b)
	}
	b = b[40:end]
	for hops := 0; ; hops++ {
		if hops == 8 {
			return nil, ErrBadHeader
		}
		switch next {
		case 6:
			p.ipHdrLen = end - len(b) // 40 + extension headers
			return b, nil
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(b) < 8 {
				return nil, ErrTruncated
			}
			n := (int(b[1]) + 1) * 8
			if len(b) < n {
				return nil, ErrTruncated
			}
			next, b = b[0], b[n:]
		case 51: // authentication header: length in 4-byte units, minus 2
			if len(b) < 8 {
				return nil, ErrTruncated
			}
			n := (int(b[1]) + 2) * 4
			if len(b) < n {
				return nil, ErrTruncated
			}
			next, b = b[0], b[n:]
		case 44: // fragment
			if len(b) < 8 {
				return nil, ErrTruncated
			}
			off := binary.BigEndian.Uint16(b[2:4])
			if off&0xfff8 != 0 {
				return nil, ErrFragment
			}
			p.MoreFragments = off&1 != 0
			next, b = b[0], b[8:]
		default:
			return nil, ErrNotTCP
		}
	}
}

func parseTCP(b []byte, p *Packet) error {
	if len(b) < 20 {
		return ErrTruncated
	}
	hl := int(b[12]>>4) * 4
	if hl < 20 {
		return ErrBadHeader
	}
	if len(b) < hl {
		return ErrTruncated
	}
	p.SrcPort = binary.BigEndian.Uint16(b[0:2])
	p.DstPort = binary.BigEndian.Uint16(b[2:4])
	p.Seq = binary.BigEndian.Uint32(b[4:8])
	p.Ack = binary.BigEndian.Uint32(b[8:12])
	p.Flags = b[13]
	p.Window = binary.BigEndian.Uint16(b[14:16])
	p.HeaderLen = hl
	// The segment length comes from the IP header, so a frame cut short by
	// the snap length still counts its whole payload.
	p.PayloadLen = p.IPLen - p.ipHdrLen - hl
	if p.PayloadLen < 0 {
		return ErrBadHeader
	}
	parseOptions(b[20:hl], p)
	return nil
}

func parseOptions(o []byte, p *Packet) {
	for len(o) > 0 {
		kind := o[0]
		if kind == 0 {
			return
		}
		if kind == 1 {
			o = o[1:]
			continue
		}
		if len(o) < 2 {
			return
		}
		n := int(o[1])
		if n < 2 || n > len(o) {
			return
		}
		switch {
		case kind == 2 && n == 4:
			p.MSS, p.HasMSS = binary.BigEndian.Uint16(o[2:4]), true
		case kind == 3 && n == 3:
			ws := o[2]
			if ws > 14 {
				ws = 14 // RFC 7323 2.3: treat larger values as 14
			}
			p.WScale = int8(ws)
		case kind == 4 && n == 2:
			p.SACKPerm = true
		case kind == 5:
			p.SACKBlocks = (n - 2) / 8
		case kind == 8 && n == 10:
			p.HasTS = true
			p.TSVal = binary.BigEndian.Uint32(o[2:6])
			p.TSEcr = binary.BigEndian.Uint32(o[6:10])
		}
		o = o[n:]
	}
}
