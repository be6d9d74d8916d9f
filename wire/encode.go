package wire

import (
	"fmt"
	"net/netip"
	"time"
	"unicode/utf8"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/flow/flowpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// EncodeRecords returns the request body of a batch of recs:
// zstd(protobuf(netpulse.flow.v1.Batch)), the same bytes as EncodeBatch
// of a flowpb.Batch holding each record's ToProto. It writes the protobuf
// encoding directly from the records, without building a message per
// record (reflection-driven marshalling and a dozen allocations per
// record were half of a proxy's cost of sending).
func (c *Codec) EncodeRecords(id, proxy string, createdNs int64, recs []flow.Record) ([]byte, error) {
	bp, _ := c.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer c.bufs.Put(bp)
	raw, err := AppendBatch((*bp)[:0], id, proxy, createdNs, recs)
	*bp = raw
	if err != nil {
		return nil, err
	}
	return c.compress(raw)
}

// Field numbers of netpulse.flow.v1.Batch.
const (
	fieldBatchID   = 1
	fieldProxy     = 2
	fieldCreatedNs = 3
	fieldRecords   = 4
)

// AppendBatch appends the protobuf encoding of a netpulse.flow.v1.Batch
// to b: what proto.Marshal gives for the flowpb.Batch with recs as
// ToProto makes them, byte for byte (fields in number order, zero values
// left out), and fails where proto.Marshal fails: on a string that is not
// valid UTF-8.
func AppendBatch(b []byte, id, proxy string, createdNs int64, recs []flow.Record) ([]byte, error) {
	if !utf8.ValidString(id) || !utf8.ValidString(proxy) {
		return b, fmt.Errorf("wire: marshal batch: batch id or proxy name is not valid UTF-8")
	}
	b = appendString(b, fieldBatchID, id)
	b = appendString(b, fieldProxy, proxy)
	b = appendVarint(b, fieldCreatedNs, uint64(createdNs))
	var scratch [512]byte
	for i := range recs {
		r := &recs[i]
		var body []byte
		if r.Kind == flow.KindCounters {
			// Counter records are rare (sFlow): take the general path.
			var err error
			if body, err = proto.Marshal(r.ToProto()); err != nil {
				return b, fmt.Errorf("wire: marshal record: %w", err)
			}
		} else {
			var err error
			if body, err = AppendRecord(scratch[:0], r); err != nil {
				return b, err
			}
		}
		b = protowire.AppendTag(b, fieldRecords, protowire.BytesType)
		b = protowire.AppendBytes(b, body)
	}
	return b, nil
}

// MarshalRecord returns the protobuf encoding of one record, the bytes of
// proto.Marshal(r.ToProto()) (what a Kafka message holds).
func MarshalRecord(r *flow.Record) ([]byte, error) {
	if r.Kind == flow.KindCounters {
		return proto.Marshal(r.ToProto())
	}
	return AppendRecord(make([]byte, 0, 160), r)
}

// AppendRecord appends the protobuf encoding of a netpulse.flow.v1.Record
// to b, as proto.Marshal(r.ToProto()) would give it, for a record without
// counters (any Kind but flow.KindCounters). Like proto.Marshal it refuses
// a string that is not valid UTF-8.
func AppendRecord(b []byte, r *flow.Record) ([]byte, error) {
	for _, s := range [...]string{r.SrcHostname, r.DstHostname, r.SrcCountry, r.DstCountry} {
		if !utf8.ValidString(s) {
			return b, fmt.Errorf("wire: marshal record: string %q is not valid UTF-8", s)
		}
	}
	b = appendVarint(b, 1, uint64(flowpb.Kind(r.Kind)))
	b = appendVarint(b, 2, uint64(flowpb.FlowType(r.Type)))
	b = appendVarint(b, 3, uint64(unixNano(r.TimeReceived)))
	b = appendAddr(b, 4, r.Exporter)
	b = appendAddr(b, 5, r.Agent)
	b = appendVarint(b, 6, uint64(r.ObservationDomain))
	b = appendVarint(b, 7, uint64(r.Sequence))
	b = appendVarint(b, 8, uint64(r.SamplingRate))
	b = appendVarint(b, 9, uint64(r.SamplerID))
	b = appendVarint(b, 10, uint64(unixNano(r.FlowStart)))
	b = appendVarint(b, 11, uint64(unixNano(r.FlowEnd)))
	b = appendAddr(b, 12, r.SrcAddr)
	b = appendAddr(b, 13, r.DstAddr)
	b = appendVarint(b, 14, uint64(r.SrcPort))
	b = appendVarint(b, 15, uint64(r.DstPort))
	b = appendVarint(b, 16, uint64(r.Proto))
	b = appendVarint(b, 17, uint64(r.TCPFlags))
	b = appendVarint(b, 18, uint64(r.ToS))
	b = appendVarint(b, 19, uint64(r.EtherType))
	b = appendVarint(b, 20, uint64(r.InIf))
	b = appendVarint(b, 21, uint64(r.OutIf))
	b = appendVarint(b, 22, r.Bytes)
	b = appendVarint(b, 23, r.Packets)
	b = appendVarint(b, 24, uint64(r.SrcAS))
	b = appendVarint(b, 25, uint64(r.DstAS))
	b = appendVarint(b, 26, uint64(r.SrcMask))
	b = appendVarint(b, 27, uint64(r.DstMask))
	b = appendAddr(b, 28, r.NextHop)
	b = appendVarint(b, 29, uint64(r.SrcVLAN))
	b = appendVarint(b, 30, uint64(r.DstVLAN))
	b = appendVarint(b, 31, r.SrcMAC.Uint64())
	b = appendVarint(b, 32, r.DstMAC.Uint64())
	b = appendVarint(b, 33, uint64(flowpb.Direction(r.Direction)))
	b = appendBool(b, 34, r.Reverse)
	b = appendVarint(b, 35, r.DeviceID)
	b = appendVarint(b, 36, uint64(r.ResampleFactor))
	b = appendBool(b, 37, r.SrcInternal)
	b = appendBool(b, 38, r.DstInternal)
	b = appendString(b, 39, r.SrcHostname)
	b = appendString(b, 40, r.DstHostname)
	b = appendString(b, 41, r.SrcCountry)
	b = appendString(b, 42, r.DstCountry)
	return b, nil
}

// The append helpers leave out zero values, as proto3 does for fields
// without explicit presence.

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	return append(protowire.AppendTag(b, num, protowire.VarintType), 1)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendAddr writes an address as ToProto does: 4 bytes for IPv4, 16 for
// IPv6 (IPv4-mapped ones included), nothing for the zero Addr.
func appendAddr(b []byte, num protowire.Number, a netip.Addr) []byte {
	switch {
	case !a.IsValid():
		return b
	case a.Is4():
		v := a.As4()
		return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v[:])
	default:
		v := a.As16()
		return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v[:])
	}
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
