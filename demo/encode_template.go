package demo

import (
	"time"

	"github.com/netpulse/netpulse/flow"
)

// NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) share their shape: a header,
// then sets of templates, options templates and data. The differences this
// encoder makes:
//
//   - header: v9 has 20 bytes with the uptime and counts export packets in
//     its sequence; IPFIX has 16 with the message length, and counts the
//     data records (options data included) sent before the message;
//   - set IDs: templates 0 and options templates 1 in v9, 2 and 3 in
//     IPFIX; v9 sets are padded to four bytes;
//   - options templates: v9 gives scope and option lengths in bytes and a
//     scope of System; IPFIX gives field counts and a selectorId scope;
//   - flow times: v9 in uptime milliseconds, IPFIX in absolute
//     milliseconds; counters: 4 bytes in v9, 8 in IPFIX; TCP flags: 1
//     byte in v9, 2 in IPFIX (RFC 7125).
//
// Sampling is either a samplingInterval field (IE 34) in every flow, or
// options data for a sampler that every flow names: in v9 the sampler ID,
// mode and random interval (IEs 48, 49, 50), in IPFIX the selector ID,
// packet interval and packet space (IEs 302, 305, 306; one packet in
// interval+space).

// Template IDs.
const (
	templateIPv4    = 256
	templateIPv6    = 257
	templateOptions = 258
)

// samplerID is the sampler (v9) or selector (IPFIX) of devices that
// announce their sampling in options data.
const samplerID = 1

// Information elements the encoder writes (the v9 field types are the
// same numbers).
const (
	ieOctetDeltaCount      = 1
	iePacketDeltaCount     = 2
	ieProtocol             = 4
	ieIPClassOfService     = 5
	ieTCPControlBits       = 6
	ieSourceTransportPort  = 7
	ieSourceIPv4Address    = 8
	ieSourceIPv4PrefixLen  = 9
	ieIngressInterface     = 10
	ieDestTransportPort    = 11
	ieDestIPv4Address      = 12
	ieDestIPv4PrefixLen    = 13
	ieEgressInterface      = 14
	ieIPNextHopIPv4        = 15
	ieBGPSourceAS          = 16
	ieBGPDestAS            = 17
	ieFlowEndSysUpTime     = 21
	ieFlowStartSysUpTime   = 22
	ieSourceIPv6Address    = 27
	ieDestIPv6Address      = 28
	ieSourceIPv6PrefixLen  = 29
	ieDestIPv6PrefixLen    = 30
	ieSamplingInterval     = 34
	ieSamplerID            = 48
	ieSamplerMode          = 49
	ieSamplerRandomInterv  = 50
	ieFlowDirection        = 61
	ieIPNextHopIPv6        = 62
	ieFlowStartMillis      = 152
	ieFlowEndMillis        = 153
	ieSelectorID           = 302
	ieSamplingPacketInterv = 305
	ieSamplingPacketSpace  = 306
	// v9ScopeSystem is the v9 options scope type "System".
	v9ScopeSystem = 1
)

// field is one field specifier.
type field struct{ id, length uint16 }

func recordLen(fs []field) int {
	n := 0
	for _, f := range fs {
		n += int(f.length)
	}
	return n
}

// tmplEncoder encodes NetFlow v9 (version 9) or IPFIX (version 10).
type tmplEncoder struct {
	encBase
	version uint16
	// options announces the sampling in options data.
	options bool
	refresh time.Duration
	// nextTemplates is when templates are due again; the zero time sends
	// them with the first datagram.
	nextTemplates time.Time
	// seq counts export packets (v9) or data records (IPFIX).
	seq      uint32
	t4, t6   []field
	opts     []field
	optScope int
}

func newTemplateEncoder(b encBase, version uint16, options bool, refresh time.Duration) *tmplEncoder {
	e := &tmplEncoder{encBase: b, version: version, options: options, refresh: refresh}
	counter, flags := uint16(4), uint16(1)
	times := []field{{ieFlowStartSysUpTime, 4}, {ieFlowEndSysUpTime, 4}}
	sampling := field{ieSamplingInterval, 4}
	if options {
		sampling = field{ieSamplerID, 1}
	}
	if version == 10 {
		counter, flags = 8, 2
		times = []field{{ieFlowStartMillis, 8}, {ieFlowEndMillis, 8}}
		if options {
			sampling = field{ieSelectorID, 8}
		}
	}
	rest := []field{
		{ieSourceTransportPort, 2}, {ieDestTransportPort, 2}, {ieProtocol, 1}, {ieTCPControlBits, flags},
		{ieIPClassOfService, 1}, {ieIngressInterface, 4}, {ieEgressInterface, 4},
		{ieOctetDeltaCount, counter}, {iePacketDeltaCount, counter}, times[0], times[1],
		{ieBGPSourceAS, 4}, {ieBGPDestAS, 4}, {ieFlowDirection, 1}, sampling,
	}
	e.t4 = append([]field{{ieSourceIPv4Address, 4}, {ieDestIPv4Address, 4}, {ieIPNextHopIPv4, 4},
		{ieSourceIPv4PrefixLen, 1}, {ieDestIPv4PrefixLen, 1}}, rest...)
	e.t6 = append([]field{{ieSourceIPv6Address, 16}, {ieDestIPv6Address, 16}, {ieIPNextHopIPv6, 16},
		{ieSourceIPv6PrefixLen, 1}, {ieDestIPv6PrefixLen, 1}}, rest...)
	if version == 9 {
		e.opts, e.optScope = []field{{v9ScopeSystem, 4}, {ieSamplerID, 1}, {ieSamplerMode, 1}, {ieSamplerRandomInterv, 4}}, 1
	} else {
		e.opts, e.optScope = []field{{ieSelectorID, 8}, {ieSamplingPacketInterv, 4}, {ieSamplingPacketSpace, 4}}, 1
	}
	return e
}

func (e *tmplEncoder) headerLen() int {
	if e.version == 9 {
		return 20
	}
	return 16
}

// setIDs returns the template and options template set IDs.
func (e *tmplEncoder) setIDs() (tmpl, opts uint16) {
	if e.version == 9 {
		return 0, 1
	}
	return 2, 3
}

// endSet fills in the length of the set that starts at b[at:] and pads v9
// sets to four bytes.
func (e *tmplEncoder) endSet(b []byte, at int) []byte {
	if e.version == 9 {
		b = pad4(b)
	}
	be.PutUint16(b[at+2:], uint16(len(b)-at))
	return b
}

// appendTemplates appends the template set, and the options template set
// and options data when sampling is announced that way. It returns the
// number of template records and of options data records.
func (e *tmplEncoder) appendTemplates(b []byte) ([]byte, int, int) {
	tmplSet, optsSet := e.setIDs()
	at := len(b)
	b = be.AppendUint16(b, tmplSet)
	b = be.AppendUint16(b, 0)
	for _, t := range []struct {
		id uint16
		fs []field
	}{{templateIPv4, e.t4}, {templateIPv6, e.t6}} {
		b = be.AppendUint16(b, t.id)
		b = be.AppendUint16(b, uint16(len(t.fs)))
		for _, f := range t.fs {
			b = be.AppendUint16(b, f.id)
			b = be.AppendUint16(b, f.length)
		}
	}
	b = e.endSet(b, at)
	if !e.options {
		return b, 2, 0
	}

	at = len(b)
	b = be.AppendUint16(b, optsSet)
	b = be.AppendUint16(b, 0)
	b = be.AppendUint16(b, templateOptions)
	if e.version == 9 {
		b = be.AppendUint16(b, uint16(4*e.optScope))
		b = be.AppendUint16(b, uint16(4*(len(e.opts)-e.optScope)))
	} else {
		b = be.AppendUint16(b, uint16(len(e.opts)))
		b = be.AppendUint16(b, uint16(e.optScope))
	}
	for _, f := range e.opts {
		b = be.AppendUint16(b, f.id)
		b = be.AppendUint16(b, f.length)
	}
	b = e.endSet(b, at)

	at = len(b)
	b = be.AppendUint16(b, templateOptions)
	b = be.AppendUint16(b, 0)
	if e.version == 9 {
		b = append4(b, e.src) // scope System: the exporter's address
		b = append(b, samplerID, 2)
		b = be.AppendUint32(b, e.rate) // mode 2: random 1-in-N
	} else {
		b = be.AppendUint64(b, samplerID)
		b = be.AppendUint32(b, 1)
		b = be.AppendUint32(b, e.rate-1)
	}
	b = e.endSet(b, at)
	return b, 3, 1
}

// appendRecord appends one data record of the template fs.
func (e *tmplEncoder) appendRecord(b []byte, fs []field, r *flow.Record) []byte {
	for _, f := range fs {
		n := int(f.length)
		switch f.id {
		case ieSourceIPv4Address:
			b = append4(b, r.SrcAddr)
		case ieDestIPv4Address:
			b = append4(b, r.DstAddr)
		case ieIPNextHopIPv4:
			b = append4(b, r.NextHop)
		case ieSourceIPv6Address:
			b = append16(b, r.SrcAddr)
		case ieDestIPv6Address:
			b = append16(b, r.DstAddr)
		case ieIPNextHopIPv6:
			b = append16(b, r.NextHop)
		case ieSourceIPv4PrefixLen, ieSourceIPv6PrefixLen:
			b = appendUint(b, uint64(r.SrcMask), n)
		case ieDestIPv4PrefixLen, ieDestIPv6PrefixLen:
			b = appendUint(b, uint64(r.DstMask), n)
		case ieSourceTransportPort:
			b = appendUint(b, uint64(r.SrcPort), n)
		case ieDestTransportPort:
			b = appendUint(b, uint64(r.DstPort), n)
		case ieProtocol:
			b = appendUint(b, uint64(r.Proto), n)
		case ieTCPControlBits:
			b = appendUint(b, uint64(r.TCPFlags), n)
		case ieIPClassOfService:
			b = appendUint(b, uint64(r.ToS), n)
		case ieIngressInterface:
			b = appendUint(b, uint64(r.InIf), n)
		case ieEgressInterface:
			b = appendUint(b, uint64(r.OutIf), n)
		case ieOctetDeltaCount:
			b = appendUint(b, r.Bytes, n)
		case iePacketDeltaCount:
			b = appendUint(b, r.Packets, n)
		case ieFlowStartSysUpTime:
			b = appendUint(b, uint64(e.uptime(r.FlowStart)), n)
		case ieFlowEndSysUpTime:
			b = appendUint(b, uint64(e.uptime(r.FlowEnd)), n)
		case ieFlowStartMillis:
			b = appendUint(b, uint64(r.FlowStart.UnixMilli()), n)
		case ieFlowEndMillis:
			b = appendUint(b, uint64(r.FlowEnd.UnixMilli()), n)
		case ieBGPSourceAS:
			b = appendUint(b, uint64(r.SrcAS), n)
		case ieBGPDestAS:
			b = appendUint(b, uint64(r.DstAS), n)
		case ieFlowDirection:
			dir := uint64(0) // ingress
			if r.Direction == flow.DirectionEgress {
				dir = 1
			}
			b = appendUint(b, dir, n)
		case ieSamplingInterval:
			b = appendUint(b, uint64(e.rate), n)
		case ieSamplerID, ieSelectorID:
			b = appendUint(b, samplerID, n)
		default:
			b = append(b, make([]byte, n)...)
		}
	}
	return b
}

// expected returns what a decoder reads from the record f.
func (e *tmplEncoder) expected(f *flow.Record, now time.Time, seq uint32) flow.Record {
	r := e.header(flow.KindFlow, now, seq)
	r.SamplingRate = e.rate
	if e.options {
		r.SamplerID = samplerID
	}
	r.SrcAddr, r.DstAddr, r.NextHop = f.SrcAddr, f.DstAddr, f.NextHop
	r.SrcMask, r.DstMask = f.SrcMask, f.DstMask
	r.SrcPort, r.DstPort = f.SrcPort, f.DstPort
	r.Proto, r.TCPFlags, r.ToS = f.Proto, f.TCPFlags, f.ToS
	r.InIf, r.OutIf = f.InIf, f.OutIf
	r.Bytes, r.Packets = f.Bytes, f.Packets
	r.FlowStart, r.FlowEnd = f.FlowStart, f.FlowEnd
	r.SrcAS, r.DstAS = f.SrcAS, f.DstAS
	r.Direction = flow.DirectionIngress
	if f.Direction == flow.DirectionEgress {
		r.Direction = flow.DirectionEgress
	}
	r.EtherType = etherType(f.SrcAddr)
	return r
}

func (e *tmplEncoder) encode(now time.Time, flows, _ []flow.Record) []Datagram {
	var v4, v6 []flow.Record
	for i := range flows {
		if flows[i].SrcAddr.Is6() {
			v6 = append(v6, flows[i])
		} else {
			v4 = append(v4, flows[i])
		}
	}
	templates := !now.Before(e.nextTemplates)
	if templates {
		e.nextTemplates = now.Add(e.refresh)
	}
	// The export time is in seconds; v9's uptime is taken at the same
	// second, so that uptime-based flow times come back exact.
	exportSec := now.Truncate(time.Second)
	var out []Datagram
	for templates || len(v4) > 0 || len(v6) > 0 {
		b := make([]byte, e.headerLen(), e.maxSize)
		var count, dataRecords int
		if templates {
			var t, o int
			b, t, o = e.appendTemplates(b)
			count += t + o
			dataRecords += o
			templates = false
		}
		var recs []flow.Record
		for _, fam := range []struct {
			id   uint16
			fs   []field
			list *[]flow.Record
		}{{templateIPv4, e.t4, &v4}, {templateIPv6, e.t6, &v6}} {
			l := recordLen(fam.fs)
			room := (e.maxSize - len(b) - 4 - 3) / l
			n := min(room, len(*fam.list))
			if n <= 0 {
				continue
			}
			at := len(b)
			b = be.AppendUint16(b, fam.id)
			b = be.AppendUint16(b, 0)
			for i := range (*fam.list)[:n] {
				f := &(*fam.list)[i]
				b = e.appendRecord(b, fam.fs, f)
				recs = append(recs, e.expected(f, now, e.seq))
			}
			b = e.endSet(b, at)
			*fam.list = (*fam.list)[n:]
			count += n
			dataRecords += n
		}
		if e.version == 9 {
			be.PutUint16(b[0:], 9)
			be.PutUint16(b[2:], uint16(count))
			be.PutUint32(b[4:], e.uptime(exportSec))
			be.PutUint32(b[8:], uint32(exportSec.Unix()))
			be.PutUint32(b[12:], e.seq)
			be.PutUint32(b[16:], e.domain)
			e.seq++
		} else {
			be.PutUint16(b[0:], 10)
			be.PutUint16(b[2:], uint16(len(b)))
			be.PutUint32(b[4:], uint32(exportSec.Unix()))
			be.PutUint32(b[8:], e.seq)
			be.PutUint32(b[12:], e.domain)
			e.seq += uint32(dataRecords)
		}
		out = append(out, e.datagram(now, b, recs))
	}
	return out
}
