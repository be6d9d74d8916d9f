// Package flow defines the record every netpulse part passes around: one
// flow, or one interface-counter sample, decoded from NetFlow v5, NetFlow v9,
// IPFIX or sFlow v5. Its wire form is the protobuf schema in flowpb.
package flow

import (
	"fmt"
	"net/netip"
	"time"
)

// Kind tells a flow from an interface-counter sample.
type Kind uint8

// Kinds of record.
const (
	KindFlow     Kind = 1
	KindCounters Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindFlow:
		return "flow"
	case KindCounters:
		return "counters"
	}
	return "unknown"
}

// Type is the export protocol a record was decoded from.
type Type uint8

// Export protocols.
const (
	TypeUnknown Type = iota
	TypeNetFlowV5
	TypeNetFlowV9
	TypeIPFIX
	TypeSFlowV5
)

// String returns the name used in configuration and output.
func (t Type) String() string {
	switch t {
	case TypeNetFlowV5:
		return "netflow5"
	case TypeNetFlowV9:
		return "netflow9"
	case TypeIPFIX:
		return "ipfix"
	case TypeSFlowV5:
		return "sflow5"
	}
	return "unknown"
}

// Version is the protocol version as printed in the decode output: 5, 9
// and 10 for NetFlow v5, v9 and IPFIX, and "sflow5" so that sFlow v5 is
// not mistaken for NetFlow v5.
func (t Type) Version() string {
	switch t {
	case TypeNetFlowV5:
		return "5"
	case TypeNetFlowV9:
		return "9"
	case TypeIPFIX:
		return "10"
	case TypeSFlowV5:
		return "sflow5"
	}
	return "0"
}

// ParseType parses a name returned by Type.String.
func ParseType(s string) (Type, error) {
	for t := TypeNetFlowV5; t <= TypeSFlowV5; t++ {
		if t.String() == s {
			return t, nil
		}
	}
	return TypeUnknown, fmt.Errorf("flow: unknown flow type %q (want netflow5, netflow9, ipfix or sflow5)", s)
}

// Direction is the flow direction as the exporter reports it.
type Direction uint8

// Directions.
const (
	DirectionUnknown Direction = 0
	DirectionIngress Direction = 1
	DirectionEgress  Direction = 2
)

func (d Direction) String() string {
	switch d {
	case DirectionIngress:
		return "ingress"
	case DirectionEgress:
		return "egress"
	}
	return "unknown"
}

// MAC is a 48-bit Ethernet address. A fixed array keeps Record free of
// pointers that would cost an allocation per flow.
type MAC [6]byte

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// Uint64 returns m as a 48-bit integer.
func (m MAC) Uint64() uint64 {
	return uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 | uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])
}

// MACFromUint64 is the inverse of MAC.Uint64.
func MACFromUint64(v uint64) MAC {
	return MAC{byte(v >> 40), byte(v >> 32), byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

func (m MAC) String() string {
	const hex = "0123456789abcdef"
	var b [17]byte
	for i, c := range m {
		if i > 0 {
			b[i*3-1] = ':'
		}
		b[i*3] = hex[c>>4]
		b[i*3+1] = hex[c&0xf]
	}
	return string(b[:])
}

// Record is one flow or one interface-counter sample. Decoders fill a
// Record they own and hand it to a callback; a consumer that keeps it past
// the callback must copy it (a plain assignment does: Record holds no
// pointers that the decoder reuses).
type Record struct {
	Kind Kind
	Type Type
	// TimeReceived is when the export datagram arrived.
	TimeReceived time.Time
	// Exporter is the address the export datagram came from.
	Exporter netip.Addr
	// Agent is the sFlow agent address written in the datagram.
	Agent netip.Addr
	// ObservationDomain is the v9 source ID, the IPFIX observation domain
	// or the sFlow sub-agent ID.
	ObservationDomain uint32
	// Sequence is the export sequence from the datagram header (v5 flow
	// sequence, v9 packet sequence, IPFIX record sequence, sFlow datagram
	// sequence).
	Sequence uint32
	// SamplingRate means one packet in SamplingRate was sampled. Zero
	// means unknown: it is never silently taken as 1.
	SamplingRate uint32
	SamplerID    uint32
	FlowStart    time.Time
	FlowEnd      time.Time

	SrcAddr, DstAddr netip.Addr
	// SrcPort and DstPort are the transport ports. For ICMP and ICMPv6,
	// SrcPort is 0 and DstPort is type*256+code.
	SrcPort, DstPort uint16
	Proto            uint8
	TCPFlags         uint8
	ToS              uint8
	EtherType        uint16
	InIf, OutIf      uint32
	Bytes, Packets   uint64
	SrcAS, DstAS     uint32
	SrcMask, DstMask uint8
	NextHop          netip.Addr
	SrcVLAN, DstVLAN uint16
	SrcMAC, DstMAC   MAC
	Direction        Direction
	// Reverse marks the reverse half of an RFC 5103 biflow.
	Reverse bool

	// DeviceID is the registered device the exporter belongs to, set by
	// the proxy; 0 when unregistered.
	DeviceID uint64
	// ResampleFactor is set when the proxy kept one flow in
	// ResampleFactor of this device to stay under its rate limit. It is
	// already multiplied into SamplingRate when that is known.
	ResampleFactor uint32
	// Enrichment by the proxy. The strings come from caches and are
	// shared, so copying a Record does not copy them.
	SrcInternal, DstInternal bool
	SrcHostname, DstHostname string
	SrcCountry, DstCountry   string

	// Counters is set when Kind is KindCounters.
	Counters Counters
}

// DSCP returns the DiffServ code point, the top six bits of ToS.
func (r *Record) DSCP() uint8 { return r.ToS >> 2 }

// Counters is an interface-counter sample: sFlow's generic interface
// counters and, when HasEthernet is set, its Ethernet counters.
type Counters struct {
	IfIndex          uint32
	IfType           uint32
	IfSpeed          uint64
	IfDirection      uint32
	IfAdminUp        bool
	IfOperUp         bool
	InOctets         uint64
	InUcastPkts      uint64
	InMulticastPkts  uint64
	InBroadcastPkts  uint64
	InDiscards       uint64
	InErrors         uint64
	InUnknownProtos  uint64
	OutOctets        uint64
	OutUcastPkts     uint64
	OutMulticastPkts uint64
	OutBroadcastPkts uint64
	OutDiscards      uint64
	OutErrors        uint64
	Promiscuous      bool
	HasEthernet      bool
	Ethernet         EthernetCounters
}

// EthernetCounters are the dot3 statistics of an sFlow Ethernet counter
// record.
type EthernetCounters struct {
	AlignmentErrors           uint32
	FCSErrors                 uint32
	SingleCollisionFrames     uint32
	MultipleCollisionFrames   uint32
	SQETestErrors             uint32
	DeferredTransmissions     uint32
	LateCollisions            uint32
	ExcessiveCollisions       uint32
	InternalMacTransmitErrors uint32
	CarrierSenseErrors        uint32
	FrameTooLongs             uint32
	InternalMacReceiveErrors  uint32
	SymbolErrors              uint32
}
