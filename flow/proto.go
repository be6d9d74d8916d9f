package flow

import (
	"net/netip"
	"time"

	"github.com/netpulse/netpulse/flow/flowpb"
	"google.golang.org/protobuf/proto"
)

// ToProto converts r to its protobuf form.
func (r *Record) ToProto() *flowpb.Record {
	p := &flowpb.Record{
		Kind:              flowpb.Kind(r.Kind),
		FlowType:          flowpb.FlowType(r.Type),
		TimeReceivedNs:    unixNano(r.TimeReceived),
		Exporter:          addrBytes(r.Exporter),
		Agent:             addrBytes(r.Agent),
		ObservationDomain: r.ObservationDomain,
		Sequence:          r.Sequence,
		SamplingRate:      r.SamplingRate,
		SamplerId:         r.SamplerID,
		FlowStartNs:       unixNano(r.FlowStart),
		FlowEndNs:         unixNano(r.FlowEnd),
		SrcAddr:           addrBytes(r.SrcAddr),
		DstAddr:           addrBytes(r.DstAddr),
		SrcPort:           uint32(r.SrcPort),
		DstPort:           uint32(r.DstPort),
		Proto:             uint32(r.Proto),
		TcpFlags:          uint32(r.TCPFlags),
		Tos:               uint32(r.ToS),
		EtherType:         uint32(r.EtherType),
		InIf:              r.InIf,
		OutIf:             r.OutIf,
		Bytes:             r.Bytes,
		Packets:           r.Packets,
		SrcAs:             r.SrcAS,
		DstAs:             r.DstAS,
		SrcMask:           uint32(r.SrcMask),
		DstMask:           uint32(r.DstMask),
		NextHop:           addrBytes(r.NextHop),
		SrcVlan:           uint32(r.SrcVLAN),
		DstVlan:           uint32(r.DstVLAN),
		SrcMac:            r.SrcMAC.Uint64(),
		DstMac:            r.DstMAC.Uint64(),
		Direction:         flowpb.Direction(r.Direction),
		Reverse:           r.Reverse,
		DeviceId:          r.DeviceID,
		ResampleFactor:    r.ResampleFactor,
		SrcInternal:       r.SrcInternal,
		DstInternal:       r.DstInternal,
		SrcHostname:       r.SrcHostname,
		DstHostname:       r.DstHostname,
		SrcCountry:        r.SrcCountry,
		DstCountry:        r.DstCountry,
	}
	if r.Kind == KindCounters {
		c := &r.Counters
		p.Counters = &flowpb.InterfaceCounters{
			IfIndex: c.IfIndex, IfType: c.IfType, IfSpeed: c.IfSpeed, IfDirection: c.IfDirection,
			IfAdminUp: c.IfAdminUp, IfOperUp: c.IfOperUp,
			InOctets: c.InOctets, InUcastPkts: c.InUcastPkts, InMulticastPkts: c.InMulticastPkts,
			InBroadcastPkts: c.InBroadcastPkts, InDiscards: c.InDiscards, InErrors: c.InErrors,
			InUnknownProtos: c.InUnknownProtos, OutOctets: c.OutOctets, OutUcastPkts: c.OutUcastPkts,
			OutMulticastPkts: c.OutMulticastPkts, OutBroadcastPkts: c.OutBroadcastPkts,
			OutDiscards: c.OutDiscards, OutErrors: c.OutErrors, Promiscuous: c.Promiscuous,
			HasEthernet: c.HasEthernet,
		}
		if c.HasEthernet {
			e := &c.Ethernet
			p.Counters.Ethernet = &flowpb.EthernetCounters{
				AlignmentErrors: e.AlignmentErrors, FcsErrors: e.FCSErrors,
				SingleCollisionFrames: e.SingleCollisionFrames, MultipleCollisionFrames: e.MultipleCollisionFrames,
				SqeTestErrors: e.SQETestErrors, DeferredTransmissions: e.DeferredTransmissions,
				LateCollisions: e.LateCollisions, ExcessiveCollisions: e.ExcessiveCollisions,
				InternalMacTransmitErrors: e.InternalMacTransmitErrors, CarrierSenseErrors: e.CarrierSenseErrors,
				FrameTooLongs: e.FrameTooLongs, InternalMacReceiveErrors: e.InternalMacReceiveErrors,
				SymbolErrors: e.SymbolErrors,
			}
		}
	}
	return p
}

// FromProto converts a protobuf record back. Addresses of a length other
// than 4 or 16 bytes become the zero netip.Addr.
func FromProto(p *flowpb.Record) Record {
	r := Record{
		Kind:              Kind(p.GetKind()),
		Type:              Type(p.GetFlowType()),
		TimeReceived:      fromNano(p.GetTimeReceivedNs()),
		Exporter:          bytesAddr(p.GetExporter()),
		Agent:             bytesAddr(p.GetAgent()),
		ObservationDomain: p.GetObservationDomain(),
		Sequence:          p.GetSequence(),
		SamplingRate:      p.GetSamplingRate(),
		SamplerID:         p.GetSamplerId(),
		FlowStart:         fromNano(p.GetFlowStartNs()),
		FlowEnd:           fromNano(p.GetFlowEndNs()),
		SrcAddr:           bytesAddr(p.GetSrcAddr()),
		DstAddr:           bytesAddr(p.GetDstAddr()),
		SrcPort:           uint16(p.GetSrcPort()),
		DstPort:           uint16(p.GetDstPort()),
		Proto:             uint8(p.GetProto()),
		TCPFlags:          uint8(p.GetTcpFlags()),
		ToS:               uint8(p.GetTos()),
		EtherType:         uint16(p.GetEtherType()),
		InIf:              p.GetInIf(),
		OutIf:             p.GetOutIf(),
		Bytes:             p.GetBytes(),
		Packets:           p.GetPackets(),
		SrcAS:             p.GetSrcAs(),
		DstAS:             p.GetDstAs(),
		SrcMask:           uint8(p.GetSrcMask()),
		DstMask:           uint8(p.GetDstMask()),
		NextHop:           bytesAddr(p.GetNextHop()),
		SrcVLAN:           uint16(p.GetSrcVlan()),
		DstVLAN:           uint16(p.GetDstVlan()),
		SrcMAC:            MACFromUint64(p.GetSrcMac()),
		DstMAC:            MACFromUint64(p.GetDstMac()),
		Direction:         Direction(p.GetDirection()),
		Reverse:           p.GetReverse(),
		DeviceID:          p.GetDeviceId(),
		ResampleFactor:    p.GetResampleFactor(),
		SrcInternal:       p.GetSrcInternal(),
		DstInternal:       p.GetDstInternal(),
		SrcHostname:       p.GetSrcHostname(),
		DstHostname:       p.GetDstHostname(),
		SrcCountry:        p.GetSrcCountry(),
		DstCountry:        p.GetDstCountry(),
	}
	if c := p.GetCounters(); c != nil {
		r.Counters = Counters{
			IfIndex: c.IfIndex, IfType: c.IfType, IfSpeed: c.IfSpeed, IfDirection: c.IfDirection,
			IfAdminUp: c.IfAdminUp, IfOperUp: c.IfOperUp,
			InOctets: c.InOctets, InUcastPkts: c.InUcastPkts, InMulticastPkts: c.InMulticastPkts,
			InBroadcastPkts: c.InBroadcastPkts, InDiscards: c.InDiscards, InErrors: c.InErrors,
			InUnknownProtos: c.InUnknownProtos, OutOctets: c.OutOctets, OutUcastPkts: c.OutUcastPkts,
			OutMulticastPkts: c.OutMulticastPkts, OutBroadcastPkts: c.OutBroadcastPkts,
			OutDiscards: c.OutDiscards, OutErrors: c.OutErrors, Promiscuous: c.Promiscuous,
			HasEthernet: c.HasEthernet,
		}
		if e := c.GetEthernet(); e != nil {
			r.Counters.Ethernet = EthernetCounters{
				AlignmentErrors: e.AlignmentErrors, FCSErrors: e.FcsErrors,
				SingleCollisionFrames: e.SingleCollisionFrames, MultipleCollisionFrames: e.MultipleCollisionFrames,
				SQETestErrors: e.SqeTestErrors, DeferredTransmissions: e.DeferredTransmissions,
				LateCollisions: e.LateCollisions, ExcessiveCollisions: e.ExcessiveCollisions,
				InternalMacTransmitErrors: e.InternalMacTransmitErrors, CarrierSenseErrors: e.CarrierSenseErrors,
				FrameTooLongs: e.FrameTooLongs, InternalMacReceiveErrors: e.InternalMacReceiveErrors,
				SymbolErrors: e.SymbolErrors,
			}
		}
	}
	return r
}

// MarshalProto returns the protobuf encoding of r.
func (r *Record) MarshalProto() ([]byte, error) { return proto.Marshal(r.ToProto()) }

// UnmarshalProto decodes a protobuf-encoded record.
func UnmarshalProto(b []byte) (Record, error) {
	var p flowpb.Record
	if err := proto.Unmarshal(b, &p); err != nil {
		return Record{}, err
	}
	return FromProto(&p), nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func addrBytes(a netip.Addr) []byte {
	if !a.IsValid() {
		return nil
	}
	return a.AsSlice()
}

func bytesAddr(b []byte) netip.Addr {
	a, _ := netip.AddrFromSlice(b)
	return a
}
