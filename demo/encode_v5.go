package demo

import (
	"time"

	"github.com/netpulse/netpulse/flow"
)

// NetFlow v5 layout.
const (
	v5HeaderLen = 24
	v5RecordLen = 48
	v5MaxCount  = 30
)

// v5Encoder encodes NetFlow v5: IPv4 flows only, 16-bit interfaces and AS
// numbers, the sampling interval in the header, and a sequence that counts
// flows.
type v5Encoder struct {
	encBase
	seq uint32
}

// as16 is how NetFlow v5 carries an AS number: a 32-bit one becomes
// AS_TRANS.
func as16(as uint32) uint32 {
	if as > 0xffff {
		return asTrans
	}
	return as
}

func (e *v5Encoder) encode(now time.Time, flows, _ []flow.Record) []Datagram {
	var out []Datagram
	// v5 carries the export time to the nanosecond and the uptime to the
	// millisecond: both from the same millisecond, so that flow times
	// come back exact.
	export := msTime(now)
	sampling := uint16(e.rate & maxV5Rate)
	if e.rate > 1 {
		sampling |= 1 << 14 // mode 1: deterministic 1-in-N
	}
	for len(flows) > 0 {
		n := min(len(flows), v5MaxCount)
		b := make([]byte, 0, v5HeaderLen+v5RecordLen*n)
		b = be.AppendUint16(b, 5)
		b = be.AppendUint16(b, uint16(n))
		b = be.AppendUint32(b, e.uptime(export))
		b = be.AppendUint32(b, uint32(export.Unix()))
		b = be.AppendUint32(b, uint32(export.Nanosecond()))
		b = be.AppendUint32(b, e.seq)
		b = append(b, byte(e.domain>>8), byte(e.domain))
		b = be.AppendUint16(b, sampling)
		recs := make([]flow.Record, n)
		for i := range flows[:n] {
			f := &flows[i]
			b = append4(b, f.SrcAddr)
			b = append4(b, f.DstAddr)
			b = append4(b, f.NextHop)
			b = be.AppendUint16(b, uint16(f.InIf))
			b = be.AppendUint16(b, uint16(f.OutIf))
			b = be.AppendUint32(b, uint32(f.Packets))
			b = be.AppendUint32(b, uint32(f.Bytes))
			b = be.AppendUint32(b, e.uptime(f.FlowStart))
			b = be.AppendUint32(b, e.uptime(f.FlowEnd))
			b = be.AppendUint16(b, f.SrcPort)
			b = be.AppendUint16(b, f.DstPort)
			b = append(b, 0, f.TCPFlags, f.Proto, f.ToS)
			b = be.AppendUint16(b, uint16(as16(f.SrcAS)))
			b = be.AppendUint16(b, uint16(as16(f.DstAS)))
			b = append(b, f.SrcMask, f.DstMask, 0, 0)

			r := e.header(flow.KindFlow, now, e.seq)
			r.SamplingRate = uint32(sampling & maxV5Rate)
			r.SrcAddr, r.DstAddr, r.NextHop = f.SrcAddr, f.DstAddr, f.NextHop
			r.InIf, r.OutIf = f.InIf, f.OutIf
			r.Packets, r.Bytes = f.Packets, f.Bytes
			r.FlowStart, r.FlowEnd = f.FlowStart, f.FlowEnd
			r.SrcPort, r.DstPort = f.SrcPort, f.DstPort
			r.TCPFlags, r.Proto, r.ToS = f.TCPFlags, f.Proto, f.ToS
			r.SrcAS, r.DstAS = as16(f.SrcAS), as16(f.DstAS)
			r.SrcMask, r.DstMask = f.SrcMask, f.DstMask
			r.EtherType = 0x0800
			recs[i] = r
		}
		e.seq += uint32(n)
		flows = flows[n:]
		out = append(out, e.datagram(now, b, recs))
	}
	return out
}
