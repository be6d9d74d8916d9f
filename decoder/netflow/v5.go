package netflow

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/netpulse/netpulse/decoder/seq"
	"github.com/netpulse/netpulse/flow"
)

const (
	v5HeaderLen = 24
	v5RecordLen = 48
	v5MaxCount  = 30 // the most records a v5 datagram carries
)

// decodeV5 decodes a NetFlow v5 datagram. The observation domain is
// engine_type<<8 | engine_id, so two engines of one router are two streams.
func (d *Decoder) decodeV5(exporter netip.Addr, received time.Time, b []byte, r *flow.Record, emit func(*flow.Record)) error {
	if len(b) < v5HeaderLen {
		return fmt.Errorf("netflow v5: header truncated (%d bytes)", len(b))
	}
	count := int(binary.BigEndian.Uint16(b[2:4]))
	uptime := binary.BigEndian.Uint32(b[4:8])
	export := time.Unix(int64(binary.BigEndian.Uint32(b[8:12])), int64(binary.BigEndian.Uint32(b[12:16])))
	sequence := binary.BigEndian.Uint32(b[16:20])
	domain := uint32(b[20])<<8 | uint32(b[21])
	// The top two bits are the sampling mode, the other 14 the interval.
	// An interval of 0 says nothing: the rate stays unknown.
	rate := uint32(binary.BigEndian.Uint16(b[22:24]) & 0x3fff)

	var err error
	switch avail := (len(b) - v5HeaderLen) / v5RecordLen; {
	case count > v5MaxCount:
		err = fmt.Errorf("netflow v5: count %d exceeds %d", count, v5MaxCount)
		count = min(avail, v5MaxCount)
	case count > avail:
		err = fmt.Errorf("netflow v5: count %d but room for %d records", count, avail)
		count = avail
	}
	if d.seqs != nil {
		lost := d.seqs.Observe(seq.Key{Exporter: exporter, Domain: domain, Proto: seqV5}, sequence, uint32(count), received)
		d.lostFlows.Add(lost)
	}
	for i := 0; i < count; i++ {
		p := b[v5HeaderLen+i*v5RecordLen:]
		*r = flow.Record{
			Kind:              flow.KindFlow,
			Type:              flow.TypeNetFlowV5,
			TimeReceived:      received,
			Exporter:          exporter,
			ObservationDomain: domain,
			Sequence:          sequence,
			SamplingRate:      rate,
			SrcAddr:           netip.AddrFrom4([4]byte(p[0:4])),
			DstAddr:           netip.AddrFrom4([4]byte(p[4:8])),
			NextHop:           netip.AddrFrom4([4]byte(p[8:12])),
			InIf:              uint32(binary.BigEndian.Uint16(p[12:14])),
			OutIf:             uint32(binary.BigEndian.Uint16(p[14:16])),
			Packets:           uint64(binary.BigEndian.Uint32(p[16:20])),
			Bytes:             uint64(binary.BigEndian.Uint32(p[20:24])),
			FlowStart:         uptimeTime(export, uptime, binary.BigEndian.Uint32(p[24:28])),
			FlowEnd:           uptimeTime(export, uptime, binary.BigEndian.Uint32(p[28:32])),
			SrcPort:           binary.BigEndian.Uint16(p[32:34]),
			DstPort:           binary.BigEndian.Uint16(p[34:36]),
			TCPFlags:          p[37],
			Proto:             p[38],
			ToS:               p[39],
			SrcAS:             uint32(binary.BigEndian.Uint16(p[40:42])),
			DstAS:             uint32(binary.BigEndian.Uint16(p[42:44])),
			SrcMask:           p[44],
			DstMask:           p[45],
			EtherType:         0x0800,
		}
		d.flows.Add(1)
		emit(r)
	}
	return err
}

// uptimeTime turns a switched time, in milliseconds of the exporter's
// uptime, into wall time, given the datagram's export time and uptime.
// The difference is taken modulo 2^32, so a flow that started before the
// 49.7-day uptime counter wrapped still gets the right time; a switched
// time up to 2^31 ms after the header's uptime (a quirk of some exporters,
// whose header uptime lags the records) is taken as in the future rather
// than 49 days in the past.
func uptimeTime(export time.Time, uptime, switched uint32) time.Time {
	ago := int32(uptime - switched)
	return export.Add(-time.Duration(ago) * time.Millisecond).UTC()
}
