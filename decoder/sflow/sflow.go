// Package sflow decodes sFlow version 5 datagrams (sflow.org/sflow_version_5.txt)
// into flow records: one flow.Record of Kind KindFlow per flow sample and
// one of Kind KindCounters per counter sample that carries interface
// counters.
//
// The decoder does no I/O: the caller hands it a datagram and a callback.
// Everything it reads is checked against the bytes that remain in the
// enclosing structure, counts read off the wire never size an allocation,
// and samples and records it does not know are skipped by their length and
// counted, never guessed at.
//
// How sFlow fields map onto flow.Record:
//
//   - Exporter is the address the datagram came from; Agent is the agent
//     address written in it; ObservationDomain is the sub-agent ID and
//     Sequence the datagram sequence number.
//   - SamplingRate is the sample's sampling rate (0 stays 0: unknown).
//     SamplerID is the index part of the sample's source ID (for the usual
//     source type 0, the ifIndex of the sampling data source); the source
//     type is dropped so that compact and expanded samples of the same
//     source agree.
//   - InIf and OutIf are the ifIndex of the input and output interfaces when
//     the interface format is 0 (a single interface). The "no interface"
//     value (0x3FFFFFFF in compact form; 0xFFFFFFFF, and for robustness also
//     0x3FFFFFFF, in expanded form), which marks traffic originated or
//     terminated by the device, becomes 0. Output format 1 (discarded, the
//     value is a reason code) and format 2 (sent to several interfaces, the
//     value is their number) also become 0: neither value is an ifIndex.
//   - Bytes is the frame length the agent reports: the raw packet header
//     record's frame_length when there is one, else the Ethernet frame data
//     record's length, else the IPv4 or IPv6 data record's length. Packets
//     is 1. FlowStart, FlowEnd and TimeReceived are the time of receipt,
//     for counter records too: sFlow carries no per-sample timestamp.
//   - L2–L4 fields come from the raw packet header when it could be parsed
//     (decoder/packet); the Ethernet, IPv4 and IPv6 data records fill them
//     only when there is no such header.
//   - The extended switch record's VLANs (when 1–4095) override a VLAN
//     taken from a sampled header's 802.1Q tag: they are the switch's own
//     view of the frame.
//   - NextHop is the extended router record's next hop (the IGP next hop
//     the packet was forwarded to). The extended gateway record's next hop
//     (the BGP next hop) fills it only when there is no router next hop,
//     whatever the order of the two records.
//   - From the extended gateway record, DstAS is the last AS of the
//     destination AS path, the origin of the route; when the path is empty
//     the destination is within the router's own AS, so DstAS is the
//     router's AS. SrcAS is src_as, or the router's AS when src_as is 0
//     (a source inside the router's AS). This is what sflowtool-based and
//     Go collectors (goflow2, Akvorado) do; the specification says nothing
//     more than "AS path to the destination".
//   - Counter samples: the generic interface record fills Counters and the
//     Ethernet record Counters.Ethernet (HasEthernet). When only the
//     Ethernet record is present and the source type is 0, Counters.IfIndex
//     is the source index. A counter sample with neither record (processor,
//     host or vendor counters only) emits nothing and is counted in
//     Stats.CounterSamplesWithoutInterface.
//
// A malformed sample is dropped and decoding goes on with the next sample,
// since the sample's own length still frames it; a malformed datagram
// header or sample header ends decoding. Decode returns the first error.
package sflow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netpulse/netpulse/decoder/packet"
	"github.com/netpulse/netpulse/decoder/seq"
	"github.com/netpulse/netpulse/flow"
)

// SeqProto is the seq.Key Proto of sFlow sequence streams: the flow.Type
// value, so that protocols sharing an exporter and domain stay apart.
const SeqProto = uint8(flow.TypeSFlowV5)

// Sentinel errors, wrapped in *Error by Decode.
var (
	// ErrVersion means the datagram is not sFlow version 5.
	ErrVersion = errors.New("not an sFlow version 5 datagram")
	// ErrTruncated means a length or count runs past the end of the
	// structure that encloses it, or a fixed-size structure is short.
	ErrTruncated = errors.New("truncated")
	// ErrAddressType means an address type other than 1 (IPv4) or 2
	// (IPv6) where an address is required, or other than 0, 1 or 2 in a
	// next hop.
	ErrAddressType = errors.New("unknown address type")
)

// Error says what was malformed and where.
type Error struct {
	// Offset is the byte offset in the datagram where the bad field starts.
	Offset int
	// Part names the structure being decoded, e.g.
	// "sample 2 (flow sample) record 1 (raw packet header)".
	Part string
	Err  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("sflow: %s at byte %d: %v", e.Part, e.Offset, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Stats are the decoder's counters since New.
type Stats struct {
	// Datagrams is the number of datagrams whose header was decoded.
	Datagrams uint64
	// Samples is the number of samples read, of any format.
	Samples uint64
	// Flows is the number of flow records emitted.
	Flows uint64
	// Counters is the number of counter records emitted.
	Counters uint64
	// Errors is the number of Decode calls that returned an error.
	Errors uint64
	// SkippedSamples counts samples of an unknown enterprise or format.
	SkippedSamples uint64
	// SkippedRecords counts flow and counter records of an unknown
	// enterprise or format.
	SkippedRecords uint64
	// LostDatagrams is the number of datagrams missing from the sequence
	// streams (0 without a seq.Tracker).
	LostDatagrams uint64
	// HeaderErrors counts raw packet headers too short or malformed to
	// reach the network header; their flows are still emitted.
	HeaderErrors uint64
	// UnknownHeaderProtocols counts raw packet headers of a protocol other
	// than Ethernet, IPv4 or IPv6; their flows are still emitted.
	UnknownHeaderProtocols uint64
	// CounterSamplesWithoutInterface counts counter samples that carried
	// neither generic interface nor Ethernet counters.
	CounterSamplesWithoutInterface uint64
}

// Decoder decodes sFlow v5 datagrams. Decode may be called by several
// goroutines at once.
type Decoder struct {
	seqs *seq.Tracker
	// records keeps the per-call flow.Record off the allocator in steady
	// state: emit receives a pointer, which would make a local escape.
	records sync.Pool

	datagrams, samples, flows, counters, errors       atomic.Uint64
	skippedSamples, skippedRecords, lost              atomic.Uint64
	headerErrors, unknownHeaders, counterWithoutIface atomic.Uint64
}

// New returns a Decoder that tracks datagram sequence numbers in seqs, or
// does not track them when seqs is nil.
func New(seqs *seq.Tracker) *Decoder {
	d := &Decoder{seqs: seqs}
	d.records.New = func() any { return new(flow.Record) }
	return d
}

// Stats returns the decoder's counters.
func (d *Decoder) Stats() Stats {
	return Stats{
		Datagrams:                      d.datagrams.Load(),
		Samples:                        d.samples.Load(),
		Flows:                          d.flows.Load(),
		Counters:                       d.counters.Load(),
		Errors:                         d.errors.Load(),
		SkippedSamples:                 d.skippedSamples.Load(),
		SkippedRecords:                 d.skippedRecords.Load(),
		LostDatagrams:                  d.lost.Load(),
		HeaderErrors:                   d.headerErrors.Load(),
		UnknownHeaderProtocols:         d.unknownHeaders.Load(),
		CounterSamplesWithoutInterface: d.counterWithoutIface.Load(),
	}
}

// Sample formats (enterprise 0).
const (
	formatFlowSample            = 1
	formatCounterSample         = 2
	formatExpandedFlowSample    = 3
	formatExpandedCounterSample = 4
)

// Flow record formats (enterprise 0).
const (
	formatRawHeader       = 1
	formatEthernetData    = 2
	formatIPv4Data        = 3
	formatIPv6Data        = 4
	formatExtendedSwitch  = 1001
	formatExtendedRouter  = 1002
	formatExtendedGateway = 1003
)

// Counter record formats (enterprise 0).
const (
	formatGenericInterface = 1
	formatEthernetCounters = 2
)

// Header protocols of the raw packet header record.
const (
	headerEthernet = 1
	headerIPv4     = 11
	headerIPv6     = 12
)

// Sizes of the fixed-size records.
const (
	sizeEthernetData     = 24
	sizeIPv4Data         = 32
	sizeIPv6Data         = 56
	sizeExtendedSwitch   = 16
	sizeGenericInterface = 88
	sizeEthernetCounters = 52
)

// Decode decodes one sFlow v5 datagram received from exporter at time received,
// calling emit for each flow record and each counter record, in datagram order.
// emit's *flow.Record is reused after emit returns. Records decoded before a
// malformed part are still emitted; the error names what was wrong and where (byte offset).
func (d *Decoder) Decode(exporter netip.Addr, received time.Time, data []byte, emit func(*flow.Record)) error {
	err := d.decode(exporter, received, data, emit)
	if err != nil {
		d.errors.Add(1)
	}
	return err
}

func (d *Decoder) decode(exporter netip.Addr, received time.Time, data []byte, emit func(*flow.Record)) error {
	c := cursor{data: data, end: len(data)}
	if v := c.u32(); c.bad {
		return c.err("datagram header")
	} else if v != 5 {
		return &Error{Offset: 0, Part: "datagram header", Err: ErrVersion}
	}
	agent, ok := c.addr(false)
	if !ok {
		return c.err("datagram header (agent address)")
	}
	subAgent := c.u32()
	sequence := c.u32()
	c.u32() // uptime
	n := c.u32()
	if c.bad {
		return c.err("datagram header")
	}
	d.datagrams.Add(1)
	if d.seqs != nil {
		k := seq.Key{Exporter: agent, Domain: subAgent, Proto: SeqProto}
		d.lost.Add(d.seqs.Observe(k, sequence, 1, received))
	}

	r := d.records.Get().(*flow.Record)
	defer d.records.Put(r)
	base := flow.Record{
		Type:              flow.TypeSFlowV5,
		TimeReceived:      received,
		Exporter:          exporter,
		Agent:             agent,
		ObservationDomain: subAgent,
		Sequence:          sequence,
		FlowStart:         received,
		FlowEnd:           received,
	}
	var first error
	// Each sample takes at least 8 bytes, so the loop ends with the data
	// whatever n says.
	for i := 1; uint64(i) <= uint64(n); i++ {
		body, format, ok := c.opaque()
		if !ok {
			err := c.err(fmt.Sprintf("sample %d of %d", i, n))
			if first == nil {
				first = err
			}
			return first
		}
		d.samples.Add(1)
		var err error
		switch format {
		case formatFlowSample, formatExpandedFlowSample:
			err = d.flowSample(&body, format == formatExpandedFlowSample, &base, r, emit)
		case formatCounterSample, formatExpandedCounterSample:
			err = d.counterSample(&body, format == formatExpandedCounterSample, &base, r, emit)
		default:
			d.skippedSamples.Add(1)
		}
		if err != nil && first == nil {
			var e *Error
			if errors.As(err, &e) {
				e.Part = fmt.Sprintf("sample %d (%s) %s", i, sampleName(format), e.Part)
			}
			first = err
		}
	}
	return first
}

// flowSample decodes a flow sample (expanded or compact) and emits its
// record.
func (d *Decoder) flowSample(c *cursor, expanded bool, base, r *flow.Record, emit func(*flow.Record)) error {
	c.u32() // sample sequence number
	var source uint32
	if expanded {
		c.u32() // source type
		source = c.u32()
	} else {
		source = c.u32() & 0x00ffffff
	}
	rate := c.u32()
	c.u32() // sample pool
	c.u32() // drops
	var in, out uint32
	if expanded {
		in = expandedInterface(c.u32(), c.u32())
		out = expandedInterface(c.u32(), c.u32())
	} else {
		in = compactInterface(c.u32())
		out = compactInterface(c.u32())
	}
	n := c.u32()
	if c.bad {
		return c.err("header")
	}

	*r = *base
	r.Kind = flow.KindFlow
	r.SamplingRate = rate
	r.SamplerID = source
	r.InIf = in
	r.OutIf = out
	r.Packets = 1
	var st flowState
	for j := 1; uint64(j) <= uint64(n); j++ {
		body, format, ok := c.opaque()
		if !ok {
			return c.err(fmt.Sprintf("record %d of %d", j, n))
		}
		if err := d.flowRecord(&body, format, r, &st); err != nil {
			var e *Error
			if errors.As(err, &e) {
				e.Part = fmt.Sprintf("record %d (%s)", j, flowRecordName(format))
			}
			return err
		}
	}
	switch {
	case st.hasFrame:
		r.Bytes = uint64(st.frameLength)
	case st.hasEth:
		r.Bytes = uint64(st.ethLength)
	case st.hasIP:
		r.Bytes = uint64(st.ipLength)
	}
	emit(r)
	d.flows.Add(1)
	return nil
}

// flowState remembers, within one flow sample, which records supplied
// what, so that precedence does not depend on record order.
type flowState struct {
	// header is set when a raw packet header was parsed: it then wins
	// over the Ethernet, IPv4 and IPv6 data records.
	header bool
	// routerNextHop is set when the extended router record gave a next
	// hop: it then wins over the extended gateway's.
	routerNextHop bool
	// The frame lengths each record reported, in order of precedence,
	// and whether it was there.
	frameLength, ethLength, ipLength uint32
	hasFrame, hasEth, hasIP          bool
}

func (d *Decoder) flowRecord(c *cursor, format uint32, r *flow.Record, st *flowState) error {
	switch format {
	case formatRawHeader:
		proto := c.u32()
		frameLength := c.u32()
		c.u32() // stripped
		hdr, ok := c.bytesOpaque()
		if !ok {
			return c.err("")
		}
		st.frameLength, st.hasFrame = frameLength, true
		var err error
		switch proto {
		case headerEthernet:
			err = packet.ParseEthernet(hdr, r)
		case headerIPv4:
			err = packet.ParseIPv4(hdr, r)
		case headerIPv6:
			err = packet.ParseIPv6(hdr, r)
		default:
			d.unknownHeaders.Add(1)
			return nil
		}
		if err != nil {
			d.headerErrors.Add(1)
			return nil
		}
		st.header = true

	case formatEthernetData:
		if c.remaining() < sizeEthernetData {
			return c.short("")
		}
		st.ethLength, st.hasEth = c.u32(), true
		src, dst := c.mac(), c.mac()
		et := c.u32()
		if !st.header {
			r.SrcMAC, r.DstMAC = src, dst
			r.EtherType = uint16(et)
		}

	case formatIPv4Data, formatIPv6Data:
		size, alen := sizeIPv4Data, 4
		if format == formatIPv6Data {
			size, alen = sizeIPv6Data, 16
		}
		if c.remaining() < size {
			return c.short("")
		}
		st.ipLength, st.hasIP = c.u32(), true
		proto := c.u32()
		src, dst := c.ip(alen), c.ip(alen)
		sport, dport := c.u32(), c.u32()
		flags, tos := c.u32(), c.u32()
		if st.header {
			return nil
		}
		r.EtherType = packet.EtherTypeIPv4
		if format == formatIPv6Data {
			r.EtherType = packet.EtherTypeIPv6
		}
		r.Proto = uint8(proto)
		r.SrcAddr, r.DstAddr = src, dst
		r.SrcPort, r.DstPort = uint16(sport), uint16(dport)
		r.TCPFlags = uint8(flags)
		r.ToS = uint8(tos)

	case formatExtendedSwitch:
		if c.remaining() < sizeExtendedSwitch {
			return c.short("")
		}
		srcVLAN := c.u32()
		c.u32() // source 802.1p priority
		dstVLAN := c.u32()
		if srcVLAN >= 1 && srcVLAN <= 4095 {
			r.SrcVLAN = uint16(srcVLAN)
		}
		if dstVLAN >= 1 && dstVLAN <= 4095 {
			r.DstVLAN = uint16(dstVLAN)
		}

	case formatExtendedRouter:
		nh, ok := c.addr(true)
		srcMask, dstMask := c.u32(), c.u32()
		if !ok || c.bad {
			return c.err("")
		}
		if nh.IsValid() && !nh.IsUnspecified() {
			r.NextHop = nh
			st.routerNextHop = true
		}
		if srcMask <= 128 {
			r.SrcMask = uint8(srcMask)
		}
		if dstMask <= 128 {
			r.DstMask = uint8(dstMask)
		}

	case formatExtendedGateway:
		nh, ok := c.addr(true)
		if !ok {
			return c.err("")
		}
		routerAS := c.u32()
		srcAS := c.u32()
		c.u32() // source peer AS
		segments := c.u32()
		if c.bad {
			return c.err("")
		}
		dstAS := routerAS
		// A segment takes at least 8 bytes, so the loop ends with the
		// record whatever segments says.
		for k := uint64(0); k < uint64(segments); k++ {
			c.u32() // segment type: AS_SET or AS_SEQUENCE
			at := c.pos
			count := c.u32()
			if c.bad {
				return c.err("")
			}
			if uint64(count)*4 > uint64(c.remaining()) {
				return &Error{Offset: at, Err: ErrTruncated}
			}
			if count > 0 {
				c.skip(int(count-1) * 4)
				dstAS = c.u32()
			}
		}
		// Communities and local preference follow; nothing in Record
		// holds them.
		if !st.routerNextHop && nh.IsValid() && !nh.IsUnspecified() {
			r.NextHop = nh
		}
		r.DstAS = dstAS
		r.SrcAS = srcAS
		if srcAS == 0 {
			r.SrcAS = routerAS
		}

	default:
		d.skippedRecords.Add(1)
	}
	return nil
}

// counterSample decodes a counter sample (expanded or compact) and emits
// its record when it carries interface counters.
func (d *Decoder) counterSample(c *cursor, expanded bool, base, r *flow.Record, emit func(*flow.Record)) error {
	c.u32() // sample sequence number
	var srcType, source uint32
	if expanded {
		srcType, source = c.u32(), c.u32()
	} else {
		v := c.u32()
		srcType, source = v>>24, v&0x00ffffff
	}
	n := c.u32()
	if c.bad {
		return c.err("header")
	}
	*r = *base
	r.Kind = flow.KindCounters
	r.SamplerID = source
	ctr := &r.Counters
	var generic bool
	for j := 1; uint64(j) <= uint64(n); j++ {
		body, format, ok := c.opaque()
		if !ok {
			return c.err(fmt.Sprintf("record %d of %d", j, n))
		}
		switch format {
		case formatGenericInterface:
			if body.remaining() < sizeGenericInterface {
				return body.short(fmt.Sprintf("record %d (generic interface)", j))
			}
			generic = true
			ctr.IfIndex = body.u32()
			ctr.IfType = body.u32()
			ctr.IfSpeed = body.u64()
			ctr.IfDirection = body.u32()
			status := body.u32()
			ctr.IfAdminUp = status&1 != 0
			ctr.IfOperUp = status&2 != 0
			ctr.InOctets = body.u64()
			ctr.InUcastPkts = uint64(body.u32())
			ctr.InMulticastPkts = uint64(body.u32())
			ctr.InBroadcastPkts = uint64(body.u32())
			ctr.InDiscards = uint64(body.u32())
			ctr.InErrors = uint64(body.u32())
			ctr.InUnknownProtos = uint64(body.u32())
			ctr.OutOctets = body.u64()
			ctr.OutUcastPkts = uint64(body.u32())
			ctr.OutMulticastPkts = uint64(body.u32())
			ctr.OutBroadcastPkts = uint64(body.u32())
			ctr.OutDiscards = uint64(body.u32())
			ctr.OutErrors = uint64(body.u32())
			ctr.Promiscuous = body.u32() == 1
		case formatEthernetCounters:
			if body.remaining() < sizeEthernetCounters {
				return body.short(fmt.Sprintf("record %d (Ethernet interface)", j))
			}
			ctr.HasEthernet = true
			e := &ctr.Ethernet
			e.AlignmentErrors = body.u32()
			e.FCSErrors = body.u32()
			e.SingleCollisionFrames = body.u32()
			e.MultipleCollisionFrames = body.u32()
			e.SQETestErrors = body.u32()
			e.DeferredTransmissions = body.u32()
			e.LateCollisions = body.u32()
			e.ExcessiveCollisions = body.u32()
			e.InternalMacTransmitErrors = body.u32()
			e.CarrierSenseErrors = body.u32()
			e.FrameTooLongs = body.u32()
			e.InternalMacReceiveErrors = body.u32()
			e.SymbolErrors = body.u32()
		default:
			d.skippedRecords.Add(1)
		}
	}
	if !generic && !ctr.HasEthernet {
		d.counterWithoutIface.Add(1)
		return nil
	}
	if !generic && srcType == 0 {
		ctr.IfIndex = source
	}
	emit(r)
	d.counters.Add(1)
	return nil
}

// compactInterface returns the ifIndex of a compact interface field, or 0
// when it names no single interface.
func compactInterface(v uint32) uint32 {
	if v>>30 != 0 || v == 0x3fffffff {
		return 0
	}
	return v
}

// expandedInterface returns the ifIndex of an expanded interface field, or
// 0 when it names no single interface.
func expandedInterface(format, value uint32) uint32 {
	if format != 0 || value == 0xffffffff || value == 0x3fffffff {
		return 0
	}
	return value
}

func sampleName(format uint32) string {
	switch format {
	case formatFlowSample:
		return "flow sample"
	case formatCounterSample:
		return "counter sample"
	case formatExpandedFlowSample:
		return "expanded flow sample"
	case formatExpandedCounterSample:
		return "expanded counter sample"
	}
	return "unknown"
}

func flowRecordName(format uint32) string {
	switch format {
	case formatRawHeader:
		return "raw packet header"
	case formatEthernetData:
		return "Ethernet frame data"
	case formatIPv4Data:
		return "IPv4 data"
	case formatIPv6Data:
		return "IPv6 data"
	case formatExtendedSwitch:
		return "extended switch"
	case formatExtendedRouter:
		return "extended router"
	case formatExtendedGateway:
		return "extended gateway"
	}
	return "unknown"
}

// cursor reads big-endian XDR values from data[pos:end]. A read past end
// marks it bad, records where, and returns zero values from then on, so
// that a run of reads needs one check at its end.
type cursor struct {
	data     []byte
	pos, end int
	bad      bool
	badAt    int
	// badErr is why c went bad when it is not ErrTruncated.
	badErr error
}

func (c *cursor) remaining() int { return c.end - c.pos }

func (c *cursor) fail() {
	if !c.bad {
		c.bad, c.badAt = true, c.pos
	}
}

// take returns the next n bytes, or nil and marks c bad.
func (c *cursor) take(n int) []byte {
	if c.bad || n < 0 || n > c.end-c.pos {
		c.fail()
		return nil
	}
	b := c.data[c.pos : c.pos+n]
	c.pos += n
	return b
}

func (c *cursor) skip(n int) { c.take(n) }

func (c *cursor) u32() uint32 {
	if b := c.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (c *cursor) u64() uint64 {
	if b := c.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// mac reads an XDR mac: six bytes padded to eight.
func (c *cursor) mac() flow.MAC {
	if b := c.take(8); b != nil {
		return flow.MAC(b[:6])
	}
	return flow.MAC{}
}

// ip reads a bare IPv4 (n=4) or IPv6 (n=16) address.
func (c *cursor) ip(n int) netip.Addr {
	b := c.take(n)
	switch {
	case b == nil:
		return netip.Addr{}
	case n == 4:
		return netip.AddrFrom4([4]byte(b))
	default:
		return netip.AddrFrom16([16]byte(b))
	}
}

// addr reads an sFlow address: a type, then 4 or 16 bytes. Type 0
// (unknown, no bytes) is accepted only when allowUnknown is set, and gives
// the zero Addr. ok is false, and c bad, on any other type or short data.
func (c *cursor) addr(allowUnknown bool) (a netip.Addr, ok bool) {
	at := c.pos
	t := c.u32()
	switch {
	case c.bad:
		return a, false
	case t == 1:
		a = c.ip(4)
	case t == 2:
		a = c.ip(16)
	case t == 0 && allowUnknown:
		return a, true
	default:
		c.bad, c.badAt = true, at
		c.badErr = ErrAddressType
		return a, false
	}
	return a, !c.bad
}

// opaque reads a data_format word and an opaque<> length, and returns a
// cursor over the opaque body; c moves past the body and its XDR padding
// (as much of the padding as is there).
func (c *cursor) opaque() (body cursor, format uint32, ok bool) {
	format = c.u32()
	n := c.u32()
	if c.bad {
		return body, format, false
	}
	if uint64(n) > uint64(c.remaining()) {
		c.bad, c.badAt = true, c.pos-4
		return body, format, false
	}
	body = cursor{data: c.data, pos: c.pos, end: c.pos + int(n)}
	c.pos += int(n)
	c.pos += min(pad4(int(n)), c.remaining())
	return body, format, true
}

// bytesOpaque reads an opaque<> length and returns the bytes, moving past
// them and their padding.
func (c *cursor) bytesOpaque() ([]byte, bool) {
	n := c.u32()
	if c.bad {
		return nil, false
	}
	if uint64(n) > uint64(c.remaining()) {
		c.bad, c.badAt = true, c.pos-4
		return nil, false
	}
	b := c.take(int(n))
	c.pos += min(pad4(int(n)), c.remaining())
	return b, true
}

func pad4(n int) int { return (4 - n&3) & 3 }

// err returns the error for c's failure, for the structure named part.
func (c *cursor) err(part string) error {
	e := c.badErr
	if e == nil {
		e = ErrTruncated
	}
	return &Error{Offset: c.badAt, Part: part, Err: e}
}

// short returns a truncation error at the current position: a fixed-size
// structure is shorter than its format requires.
func (c *cursor) short(part string) error {
	return &Error{Offset: c.pos, Part: part, Err: ErrTruncated}
}
