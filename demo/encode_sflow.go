package demo

import (
	"net/netip"
	"time"

	"github.com/netpulse/netpulse/flow"
)

// sFlow v5 (sflow.org/sflow_version_5.txt) structures the encoder writes.
const (
	sflowFlowSample    = 1
	sflowCounterSample = 2
	sflowRawHeader     = 1
	sflowExtRouter     = 1002
	sflowExtGateway    = 1003
	sflowGenericIf     = 1
	sflowHeaderEther   = 1
	sflowASSequence    = 2
	// sflowHeaderMax is how much of a packet the agent copies, the usual
	// default.
	sflowHeaderMax = 128
	// sflowFCS is the frame check sequence, counted in the frame length
	// and stripped from the header copy.
	sflowFCS       = 4
	sflowLocalPref = 100
)

// sflowEncoder encodes sFlow v5: one flow sample per sampled packet
// (input-interface sampling: the data source is the input ifIndex), with a
// raw Ethernet header, an extended router and an extended gateway record;
// and generic interface counter samples.
type sflowEncoder struct {
	encBase
	// seq counts datagrams; flowSeq and counterSeq count samples per data
	// source, pool the packets each source saw.
	seq        uint32
	flowSeq    map[uint32]uint32
	counterSeq map[uint32]uint32
	pool       map[uint32]uint32
}

func newSFlowEncoder(b encBase) *sflowEncoder {
	return &sflowEncoder{encBase: b, flowSeq: map[uint32]uint32{}, counterSeq: map[uint32]uint32{}, pool: map[uint32]uint32{}}
}

// appendAddr appends an sFlow address: its type (0 unknown, 1 IPv4, 2
// IPv6), then its bytes.
func appendAddr(b []byte, a netip.Addr) []byte {
	switch {
	case a.Is4():
		return append4(be.AppendUint32(b, 1), a)
	case a.Is6():
		return append16(be.AppendUint32(b, 2), a)
	}
	return be.AppendUint32(b, 0)
}

// sample is one encoded sample and the record it decodes to.
type sample struct {
	b   []byte
	rec flow.Record
}

// appendPacket appends the first bytes of the sampled frame: Ethernet, IP
// and transport headers, then zero payload, up to n bytes in all.
func appendPacket(b []byte, r *flow.Record, frame, n int) []byte {
	start := len(b)
	b = append(b, r.DstMAC[:]...)
	b = append(b, r.SrcMAC[:]...)
	ipLen := frame - 14 - sflowFCS
	var l4Len int
	if r.SrcAddr.Is6() {
		b = be.AppendUint16(b, 0x86dd)
		b = be.AppendUint32(b, 6<<28|uint32(r.ToS)<<20|uint32(r.SrcPort^r.DstPort)&0xfffff)
		l4Len = ipLen - 40
		b = be.AppendUint16(b, uint16(l4Len))
		b = append(b, r.Proto, 64)
		b = append16(b, r.SrcAddr)
		b = append16(b, r.DstAddr)
	} else {
		b = be.AppendUint16(b, 0x0800)
		ip := len(b)
		b = append(b, 0x45, r.ToS)
		b = be.AppendUint16(b, uint16(ipLen))
		b = be.AppendUint16(b, uint16(r.Bytes*40503+uint64(r.SrcPort))) // identification
		b = be.AppendUint16(b, 0x4000)                                  // don't fragment
		b = append(b, 64, r.Proto, 0, 0)
		b = append4(b, r.SrcAddr)
		b = append4(b, r.DstAddr)
		be.PutUint16(b[ip+10:], ipChecksum(b[ip:ip+20]))
		l4Len = ipLen - 20
	}
	switch r.Proto {
	case protoTCP:
		b = be.AppendUint16(b, r.SrcPort)
		b = be.AppendUint16(b, r.DstPort)
		// Sequence numbers from each side's initial one, so that the
		// samples of a connection agree on its handshake.
		seq, ack := isn(r.SrcAddr, r.DstAddr, r.SrcPort, r.DstPort), uint32(0)
		if r.TCPFlags&tcpSYN == 0 {
			seq++
		}
		if r.TCPFlags&tcpACK != 0 {
			ack = isn(r.DstAddr, r.SrcAddr, r.DstPort, r.SrcPort) + 1
		}
		b = be.AppendUint32(b, seq)
		b = be.AppendUint32(b, ack)
		// A SYN carries the usual options (MSS, SACK permitted,
		// timestamps, window scale) and no data.
		syn := r.TCPFlags&tcpSYN != 0 && l4Len >= 40
		offset := byte(5)
		if syn {
			offset = 10
		}
		b = append(b, offset<<4, r.TCPFlags)
		b = be.AppendUint16(b, 64240) // window
		b = be.AppendUint16(b, uint16(r.Bytes*2654435761>>7))
		b = be.AppendUint16(b, 0) // urgent pointer
		if syn {
			b = append(b, 2, 4, 0x05, 0xb4, 4, 2, 8, 10)
			b = be.AppendUint32(b, uint32(r.Bytes*2654435761>>3))
			b = be.AppendUint32(b, 0)
			b = append(b, 1, 3, 3, 7)
		}
	case protoUDP:
		b = be.AppendUint16(b, r.SrcPort)
		b = be.AppendUint16(b, r.DstPort)
		b = be.AppendUint16(b, uint16(l4Len))
		b = be.AppendUint16(b, uint16(r.Bytes*2654435761>>7)|1)
	case protoICMP, protoICMPv6:
		b = be.AppendUint16(b, r.DstPort) // type and code
		b = be.AppendUint16(b, uint16(r.Bytes*2654435761>>7))
		b = be.AppendUint16(b, uint16(r.SrcAddr.As16()[15])<<8|uint16(r.DstAddr.As16()[15]))
		b = be.AppendUint16(b, uint16(r.Bytes))
	}
	for len(b)-start < n {
		b = append(b, 0)
	}
	return b[:start+n]
}

// isn is the initial sequence number of one side of a TCP connection.
func isn(src, dst netip.Addr, sport, dport uint16) uint32 {
	h := uint32(2166136261)
	a, b := src.As16(), dst.As16()
	for _, c := range append(append(a[:], b[:]...), byte(sport>>8), byte(sport), byte(dport>>8), byte(dport)) {
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

// ipChecksum is the Internet checksum (RFC 1071) of h, whose checksum
// field is 0; an odd last byte counts as padded with a zero.
func ipChecksum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(h[i])<<8 | uint32(h[i+1])
	}
	if len(h)%2 == 1 {
		s += uint32(h[len(h)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// opaque appends an XDR opaque: its length, the bytes, padding.
func opaque(b, body []byte) []byte {
	b = be.AppendUint32(b, uint32(len(body)))
	return pad4(append(b, body...))
}

// record appends a flow or counter record: data format, then opaque body.
func record(b []byte, format uint32, body []byte) []byte {
	b = be.AppendUint32(b, format)
	return opaque(b, body)
}

func (e *sflowEncoder) flowSample(f *flow.Record, now time.Time) sample {
	src := f.InIf
	e.flowSeq[src]++
	e.pool[src] += e.rate

	frame := int(f.Bytes)
	n := min(frame-sflowFCS, sflowHeaderMax)
	hdr := be.AppendUint32(nil, sflowHeaderEther)
	hdr = be.AppendUint32(hdr, uint32(frame))
	hdr = be.AppendUint32(hdr, sflowFCS) // stripped
	hdr = be.AppendUint32(hdr, uint32(n))
	hdr = pad4(appendPacket(hdr, f, frame, n))

	router := appendAddr(nil, f.NextHop)
	router = be.AppendUint32(router, uint32(f.SrcMask))
	router = be.AppendUint32(router, uint32(f.DstMask))

	// The gateway record gives the source AS (0 for the router's own) and
	// the path to the destination, empty when it is in the router's AS.
	gw := appendAddr(nil, f.NextHop)
	srcAS := f.SrcAS
	if srcAS == localAS {
		srcAS = 0
	}
	gw = be.AppendUint32(gw, localAS)
	gw = be.AppendUint32(gw, srcAS)
	gw = be.AppendUint32(gw, srcAS) // source peer AS
	if f.DstAS == localAS {
		gw = be.AppendUint32(gw, 0)
	} else {
		gw = be.AppendUint32(gw, 1)
		gw = be.AppendUint32(gw, sflowASSequence)
		gw = be.AppendUint32(gw, 1)
		gw = be.AppendUint32(gw, f.DstAS)
	}
	gw = be.AppendUint32(gw, 0) // communities
	gw = be.AppendUint32(gw, sflowLocalPref)

	b := be.AppendUint32(nil, e.flowSeq[src])
	b = be.AppendUint32(b, src) // source ID: type 0, ifIndex
	b = be.AppendUint32(b, e.rate)
	b = be.AppendUint32(b, e.pool[src])
	b = be.AppendUint32(b, 0) // drops
	b = be.AppendUint32(b, f.InIf)
	b = be.AppendUint32(b, f.OutIf)
	b = be.AppendUint32(b, 3)
	b = record(b, sflowRawHeader, hdr)
	b = record(b, sflowExtRouter, router)
	b = record(b, sflowExtGateway, gw)

	r := e.header(flow.KindFlow, now, 0)
	r.Agent = e.src
	r.FlowStart, r.FlowEnd = now, now
	r.SamplingRate, r.SamplerID = e.rate, src
	r.InIf, r.OutIf = f.InIf, f.OutIf
	r.Packets, r.Bytes = 1, f.Bytes
	r.SrcMAC, r.DstMAC = f.SrcMAC, f.DstMAC
	r.EtherType = etherType(f.SrcAddr)
	r.ToS, r.Proto = f.ToS, f.Proto
	r.SrcAddr, r.DstAddr = f.SrcAddr, f.DstAddr
	r.SrcPort, r.DstPort = f.SrcPort, f.DstPort
	if f.Proto == protoTCP {
		r.TCPFlags = f.TCPFlags
	}
	if f.NextHop.IsValid() && !f.NextHop.IsUnspecified() {
		r.NextHop = f.NextHop
	}
	r.SrcMask, r.DstMask = f.SrcMask, f.DstMask
	r.SrcAS, r.DstAS = f.SrcAS, f.DstAS
	return sample{b: record(nil, sflowFlowSample, b), rec: r}
}

func (e *sflowEncoder) counterSample(c *flow.Record, now time.Time) sample {
	k := &c.Counters
	e.counterSeq[k.IfIndex]++
	status := uint32(0)
	if k.IfAdminUp {
		status |= 1
	}
	if k.IfOperUp {
		status |= 2
	}
	g := be.AppendUint32(nil, k.IfIndex)
	g = be.AppendUint32(g, k.IfType)
	g = be.AppendUint64(g, k.IfSpeed)
	g = be.AppendUint32(g, k.IfDirection)
	g = be.AppendUint32(g, status)
	g = be.AppendUint64(g, k.InOctets)
	g = be.AppendUint32(g, uint32(k.InUcastPkts))
	g = be.AppendUint32(g, uint32(k.InMulticastPkts))
	g = be.AppendUint32(g, uint32(k.InBroadcastPkts))
	g = be.AppendUint32(g, uint32(k.InDiscards))
	g = be.AppendUint32(g, uint32(k.InErrors))
	g = be.AppendUint32(g, uint32(k.InUnknownProtos))
	g = be.AppendUint64(g, k.OutOctets)
	g = be.AppendUint32(g, uint32(k.OutUcastPkts))
	g = be.AppendUint32(g, uint32(k.OutMulticastPkts))
	g = be.AppendUint32(g, uint32(k.OutBroadcastPkts))
	g = be.AppendUint32(g, uint32(k.OutDiscards))
	g = be.AppendUint32(g, uint32(k.OutErrors))
	g = be.AppendUint32(g, 0) // not promiscuous

	b := be.AppendUint32(nil, e.counterSeq[k.IfIndex])
	b = be.AppendUint32(b, k.IfIndex) // source ID: type 0, ifIndex
	b = be.AppendUint32(b, 1)
	b = record(b, sflowGenericIf, g)

	r := e.header(flow.KindCounters, now, 0)
	r.Agent = e.src
	r.FlowStart, r.FlowEnd = now, now
	r.SamplerID = k.IfIndex
	r.Counters = flow.Counters{
		IfIndex: k.IfIndex, IfType: k.IfType, IfSpeed: k.IfSpeed, IfDirection: k.IfDirection,
		IfAdminUp: k.IfAdminUp, IfOperUp: k.IfOperUp,
		InOctets: k.InOctets, InUcastPkts: uint64(uint32(k.InUcastPkts)),
		InMulticastPkts: uint64(uint32(k.InMulticastPkts)), InBroadcastPkts: uint64(uint32(k.InBroadcastPkts)),
		InDiscards: uint64(uint32(k.InDiscards)), InErrors: uint64(uint32(k.InErrors)),
		InUnknownProtos: uint64(uint32(k.InUnknownProtos)),
		OutOctets:       k.OutOctets, OutUcastPkts: uint64(uint32(k.OutUcastPkts)),
		OutMulticastPkts: uint64(uint32(k.OutMulticastPkts)), OutBroadcastPkts: uint64(uint32(k.OutBroadcastPkts)),
		OutDiscards: uint64(uint32(k.OutDiscards)), OutErrors: uint64(uint32(k.OutErrors)),
	}
	return sample{b: record(nil, sflowCounterSample, b), rec: r}
}

func (e *sflowEncoder) encode(now time.Time, flows, counters []flow.Record) []Datagram {
	samples := make([]sample, 0, len(flows)+len(counters))
	for i := range counters {
		samples = append(samples, e.counterSample(&counters[i], now))
	}
	for i := range flows {
		samples = append(samples, e.flowSample(&flows[i], now))
	}
	uptime := e.uptime(now)
	var out []Datagram
	for len(samples) > 0 {
		b := be.AppendUint32(make([]byte, 0, e.maxSize), 5)
		b = appendAddr(b, e.src)
		b = be.AppendUint32(b, e.domain)
		e.seq++
		b = be.AppendUint32(b, e.seq)
		b = be.AppendUint32(b, uptime)
		at := len(b)
		b = be.AppendUint32(b, 0)
		var recs []flow.Record
		n := 0
		// A sample goes in if it fits, or if the datagram would be empty.
		for n < len(samples) && (n == 0 || len(b)+len(samples[n].b) <= e.maxSize) {
			b = append(b, samples[n].b...)
			r := samples[n].rec
			r.Sequence = e.seq
			recs = append(recs, r)
			n++
		}
		be.PutUint32(b[at:], uint32(n))
		samples = samples[n:]
		out = append(out, e.datagram(now, b, recs))
	}
	return out
}
