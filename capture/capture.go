// Package capture reads packet captures, pcap and pcapng alike, and pulls
// out the UDP datagrams in them: the input of `netpulse decode` and of the
// tests and benchmarks that replay real exporters' traffic.
package capture

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Frame is one captured packet.
type Frame struct {
	// Number counts packets from 1, as Wireshark does.
	Number   int
	Time     time.Time
	LinkType layers.LinkType
	Data     []byte
}

// Datagram is one UDP datagram found in a capture.
type Datagram struct {
	// Number is the packet number of the frame that completed the datagram.
	Number   int
	Time     time.Time
	Src, Dst netip.AddrPort
	Payload  []byte
}

// Reader reads frames from a pcap or pcapng stream.
type Reader struct {
	next func() ([]byte, gopacket.CaptureInfo, error)
	link func(iface int) layers.LinkType
	n    int
}

var pcapngMagic = []byte{0x0a, 0x0d, 0x0d, 0x0a}

// NewReader recognises the format from the first bytes of r.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("capture: read header: %w", err)
	}
	if bytes.Equal(magic, pcapngMagic) {
		ng, err := pcapgo.NewNgReader(br, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, fmt.Errorf("capture: pcapng: %w", err)
		}
		return &Reader{
			next: ng.ReadPacketData,
			link: func(i int) layers.LinkType {
				if iface, err := ng.Interface(i); err == nil {
					return iface.LinkType
				}
				return ng.LinkType()
			},
		}, nil
	}
	pr, err := pcapgo.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("capture: not a pcap or pcapng file: %w", err)
	}
	lt := pr.LinkType()
	return &Reader{next: pr.ReadPacketData, link: func(int) layers.LinkType { return lt }}, nil
}

// Next returns the next frame, or io.EOF at the end.
func (r *Reader) Next() (Frame, error) {
	data, ci, err := r.next()
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Frame{}, fmt.Errorf("capture: truncated file after packet %d: %w", r.n, err)
		}
		return Frame{}, err
	}
	r.n++
	return Frame{Number: r.n, Time: ci.Timestamp, LinkType: r.link(ci.InterfaceIndex), Data: data}, nil
}

// ErrNotUDP is returned by Extractor.Add for frames that hold no UDP datagram.
var ErrNotUDP = errors.New("not a UDP datagram")

// errFragment marks a frame held for IPv4 reassembly.
var errFragment = errors.New("IPv4 fragment held for reassembly")

// Extractor finds UDP datagrams in frames, reassembling IPv4 fragments.
type Extractor struct {
	frags map[fragKey]*fragBuf
}

// NewExtractor returns an Extractor.
func NewExtractor() *Extractor { return &Extractor{frags: make(map[fragKey]*fragBuf)} }

// Add returns the UDP datagram in f. It returns ErrNotUDP for other
// traffic, ok=false for a fragment still waiting for the rest of its
// datagram, and another error for a malformed frame.
func (x *Extractor) Add(f Frame) (d Datagram, ok bool, err error) {
	ip, err := networkLayer(f.LinkType, f.Data)
	if err != nil {
		return Datagram{}, false, err
	}
	var src, dst netip.Addr
	var payload []byte
	switch {
	case len(ip) >= 1 && ip[0]>>4 == 4:
		src, dst, payload, err = x.ipv4(ip)
		if err == errFragment {
			return Datagram{}, false, nil
		}
	case len(ip) >= 1 && ip[0]>>4 == 6:
		src, dst, payload, err = ipv6UDP(ip)
	default:
		err = ErrNotUDP
	}
	if err != nil {
		return Datagram{}, false, err
	}
	if len(payload) < 8 {
		return Datagram{}, false, fmt.Errorf("UDP header truncated (%d bytes)", len(payload))
	}
	ulen := int(binary.BigEndian.Uint16(payload[4:6]))
	if ulen < 8 || ulen > len(payload) {
		// A capture cut short by its snap length, or a bad length field.
		return Datagram{}, false, fmt.Errorf("UDP length %d but %d bytes captured", ulen, len(payload))
	}
	return Datagram{
		Number:  f.Number,
		Time:    f.Time,
		Src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(payload[0:2])),
		Dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(payload[2:4])),
		Payload: payload[8:ulen],
	}, true, nil
}

// networkLayer strips the link layer.
func networkLayer(lt layers.LinkType, b []byte) ([]byte, error) {
	switch lt {
	case layers.LinkTypeEthernet:
		if len(b) < 14 {
			return nil, errors.New("truncated Ethernet header")
		}
		et := binary.BigEndian.Uint16(b[12:14])
		b = b[14:]
		for et == 0x8100 || et == 0x88a8 || et == 0x9100 {
			if len(b) < 4 {
				return nil, errors.New("802.1Q tag truncated")
			}
			et = binary.BigEndian.Uint16(b[2:4])
			b = b[4:]
		}
		if et != 0x0800 && et != 0x86dd {
			return nil, ErrNotUDP
		}
		return b, nil
	case layers.LinkTypeLinuxSLL:
		if len(b) < 16 {
			return nil, errors.New("SLL header truncated")
		}
		return b[16:], nil
	case layers.LinkType(276): // LINUX_SLL2
		if len(b) < 20 {
			return nil, errors.New("SLL2 header truncated")
		}
		return b[20:], nil
	case layers.LinkTypeNull, layers.LinkTypeLoop:
		if len(b) < 4 {
			return nil, errors.New("loopback header truncated")
		}
		return b[4:], nil
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6, 12, 14:
		return b, nil
	}
	return nil, fmt.Errorf("link type %v not supported", lt)
}

type fragKey struct {
	src, dst [4]byte
	id       uint16
}

type fragBuf struct {
	data  []byte
	have  []bool // per 8-byte block
	total int    // payload length, known once the last fragment arrives
}

// maxFragBufs bounds how many datagrams may wait for their fragments.
const maxFragBufs = 1024

func (x *Extractor) ipv4(b []byte) (src, dst netip.Addr, payload []byte, err error) {
	if len(b) < 20 {
		return src, dst, nil, errors.New("IPv4 header truncated")
	}
	ihl := int(b[0]&0xf) * 4
	tot := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < 20 || tot < ihl || len(b) < ihl {
		return src, dst, nil, fmt.Errorf("bad IPv4 header (ihl %d, total length %d)", ihl, tot)
	}
	if tot > len(b) {
		return src, dst, nil, fmt.Errorf("IPv4 total length %d but %d bytes captured", tot, len(b))
	}
	if b[9] != 17 {
		return src, dst, nil, ErrNotUDP
	}
	src = netip.AddrFrom4([4]byte(b[12:16]))
	dst = netip.AddrFrom4([4]byte(b[16:20]))
	ff := binary.BigEndian.Uint16(b[6:8])
	more, off := ff&0x2000 != 0, int(ff&0x1fff)*8
	if !more && off == 0 {
		return src, dst, b[ihl:tot], nil
	}
	// Large IPFIX and v9 datagrams from routers arrive as fragments.
	k := fragKey{src: src.As4(), dst: dst.As4(), id: binary.BigEndian.Uint16(b[4:6])}
	fb := x.frags[k]
	if fb == nil {
		if len(x.frags) >= maxFragBufs {
			for kk := range x.frags {
				delete(x.frags, kk)
				break
			}
		}
		fb = &fragBuf{}
		x.frags[k] = fb
	}
	part := b[ihl:tot]
	end := off + len(part)
	if end > 65535 {
		delete(x.frags, k)
		return src, dst, nil, errors.New("IPv4 fragment beyond 64 KiB")
	}
	if end > len(fb.data) {
		fb.data = append(fb.data, make([]byte, end-len(fb.data))...)
	}
	copy(fb.data[off:], part)
	for len(fb.have) < (end+7)/8 {
		fb.have = append(fb.have, false)
	}
	for i := off / 8; i < (end+7)/8; i++ {
		fb.have[i] = true
	}
	if !more {
		fb.total = end
	}
	if fb.total == 0 {
		return src, dst, nil, errFragment
	}
	for i := 0; i < (fb.total+7)/8; i++ {
		if !fb.have[i] {
			return src, dst, nil, errFragment
		}
	}
	delete(x.frags, k)
	return src, dst, fb.data[:fb.total], nil
}

func ipv6UDP(b []byte) (src, dst netip.Addr, payload []byte, err error) {
	if len(b) < 40 {
		return src, dst, nil, errors.New("IPv6 header truncated")
	}
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	if 40+plen > len(b) {
		return src, dst, nil, fmt.Errorf("IPv6 payload length %d but %d bytes captured", plen, len(b)-40)
	}
	src = netip.AddrFrom16([16]byte(b[8:24]))
	dst = netip.AddrFrom16([16]byte(b[24:40]))
	next := b[6]
	rest := b[40 : 40+plen]
	for {
		switch next {
		case 17:
			return src, dst, rest, nil
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(rest) < 8 {
				return src, dst, nil, errors.New("IPv6 extension header truncated")
			}
			n := (int(rest[1]) + 1) * 8
			if n > len(rest) {
				return src, dst, nil, errors.New("IPv6 extension header truncated")
			}
			next, rest = rest[0], rest[n:]
		case 44:
			return src, dst, nil, errors.New("IPv6 fragment (not reassembled)")
		default:
			return src, dst, nil, ErrNotUDP
		}
	}
}

// ReadUDP calls fn for each UDP datagram in the capture file at path, in
// capture order. Frames that are not UDP are skipped; malformed frames are
// passed to bad, when it is not nil, with their packet number. An error is
// returned only when the file cannot be read, or when fn returns one.
func ReadUDP(path string, fn func(Datagram) error, bad func(number int, err error)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	x := NewExtractor()
	for {
		fr, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		d, ok, err := x.Add(fr)
		switch {
		case errors.Is(err, ErrNotUDP):
		case err != nil:
			if bad != nil {
				bad(fr.Number, err)
			}
		case ok:
			if err := fn(d); err != nil {
				return err
			}
		}
	}
}

// ReadAllUDP returns every UDP datagram of the capture at path; malformed
// frames are skipped. Tests and benchmarks use it.
func ReadAllUDP(path string) ([]Datagram, error) {
	var out []Datagram
	err := ReadUDP(path, func(d Datagram) error {
		d.Payload = bytes.Clone(d.Payload)
		out = append(out, d)
		return nil
	}, nil)
	return out, err
}
