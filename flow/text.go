package flow

import (
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"
)

// TSVHeader is the header line of the tab-separated form: the columns
// `netpulse decode --format tsv` promises, in order, then extra columns.
// Counter records use the same columns: in_if is the counter's ifIndex and
// the flow columns are "-".
const TSVHeader = "exporter\tdomain\tversion\tsrc_addr\tdst_addr\tsrc_port\tdst_port\tproto\tpackets\tbytes\tin_if\tout_if\tsampling_rate\tstart\tend" +
	"\tkind\tsequence\ttcp_flags\ttos\tsrc_as\tdst_as\tsrc_mask\tdst_mask\tnext_hop\tsrc_vlan\tdst_vlan\tsrc_mac\tdst_mac\tdirection\treverse\tagent" +
	"\tif_speed\tif_oper_up\tin_octets\tin_ucast_pkts\tout_octets\tout_ucast_pkts\tin_errors\tout_errors\tin_discards\tout_discards"

// TimeLayout is RFC 3339 in UTC with milliseconds, as both text forms
// print times.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, '-')
	}
	return t.UTC().AppendFormat(b, TimeLayout)
}

func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, '-')
	}
	return a.AppendTo(b)
}

func appendMAC(b []byte, m MAC) []byte {
	if m.IsZero() {
		return append(b, '-')
	}
	return append(b, m.String()...)
}

func tab(b []byte) []byte { return append(b, '\t') }

func u(b []byte, v uint64) []byte { return strconv.AppendUint(b, v, 10) }

// AppendTSV appends r as one line of TSVHeader's columns, with a newline.
func AppendTSV(b []byte, r *Record) []byte {
	b = appendAddr(b, r.Exporter)
	b = u(tab(b), uint64(r.ObservationDomain))
	b = append(tab(b), r.Type.Version()...)
	c := &r.Counters
	if r.Kind == KindCounters {
		b = append(b, "\t-\t-\t-\t-\t-\t-\t-\t"...)
		b = u(b, uint64(c.IfIndex))
		b = append(b, "\t-\t"...)
		b = u(b, uint64(r.SamplingRate))
		b = appendTime(tab(b), r.TimeReceived)
		b = appendTime(tab(b), r.TimeReceived)
	} else {
		b = appendAddr(tab(b), r.SrcAddr)
		b = appendAddr(tab(b), r.DstAddr)
		b = u(tab(b), uint64(r.SrcPort))
		b = u(tab(b), uint64(r.DstPort))
		b = u(tab(b), uint64(r.Proto))
		b = u(tab(b), r.Packets)
		b = u(tab(b), r.Bytes)
		b = u(tab(b), uint64(r.InIf))
		b = u(tab(b), uint64(r.OutIf))
		b = u(tab(b), uint64(r.SamplingRate))
		b = appendTime(tab(b), r.FlowStart)
		b = appendTime(tab(b), r.FlowEnd)
	}
	b = append(tab(b), r.Kind.String()...)
	b = u(tab(b), uint64(r.Sequence))
	b = u(tab(b), uint64(r.TCPFlags))
	b = u(tab(b), uint64(r.ToS))
	b = u(tab(b), uint64(r.SrcAS))
	b = u(tab(b), uint64(r.DstAS))
	b = u(tab(b), uint64(r.SrcMask))
	b = u(tab(b), uint64(r.DstMask))
	b = appendAddr(tab(b), r.NextHop)
	b = u(tab(b), uint64(r.SrcVLAN))
	b = u(tab(b), uint64(r.DstVLAN))
	b = appendMAC(tab(b), r.SrcMAC)
	b = appendMAC(tab(b), r.DstMAC)
	b = append(tab(b), r.Direction.String()...)
	b = strconv.AppendBool(tab(b), r.Reverse)
	b = appendAddr(tab(b), r.Agent)
	if r.Kind == KindCounters {
		b = u(tab(b), c.IfSpeed)
		b = strconv.AppendBool(tab(b), c.IfOperUp)
		for _, v := range []uint64{c.InOctets, c.InUcastPkts, c.OutOctets, c.OutUcastPkts, c.InErrors, c.OutErrors, c.InDiscards, c.OutDiscards} {
			b = u(tab(b), v)
		}
	} else {
		b = append(b, "\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-"...)
	}
	return append(b, '\n')
}

// jsonWriter appends one JSON object; keys and values here never need
// escaping beyond what strconv.AppendQuote does.
type jsonWriter struct {
	b     []byte
	first bool
}

func (w *jsonWriter) key(k string) {
	if !w.first {
		w.b = append(w.b, ',')
	}
	w.first = false
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

func (w *jsonWriter) str(k, v string) {
	w.key(k)
	w.b = appendJSONString(w.b, v)
}

// appendJSONString quotes s as a JSON string. Hostnames come from the
// network, so control characters and invalid UTF-8 are escaped or
// replaced rather than trusted (strconv.Quote's \x escapes are not JSON).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, "\\ufffd"...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}

func (w *jsonWriter) num(k string, v uint64) {
	w.key(k)
	w.b = strconv.AppendUint(w.b, v, 10)
}

func (w *jsonWriter) numNZ(k string, v uint64) {
	if v != 0 {
		w.num(k, v)
	}
}

func (w *jsonWriter) boolean(k string, v bool) {
	w.key(k)
	w.b = strconv.AppendBool(w.b, v)
}

func (w *jsonWriter) addr(k string, a netip.Addr) {
	if a.IsValid() {
		w.key(k)
		w.b = append(w.b, '"')
		w.b = a.AppendTo(w.b)
		w.b = append(w.b, '"')
	}
}

func (w *jsonWriter) time(k string, t time.Time) {
	if !t.IsZero() {
		w.key(k)
		w.b = append(w.b, '"')
		w.b = t.UTC().AppendFormat(w.b, TimeLayout)
		w.b = append(w.b, '"')
	}
}

// AppendJSON appends r as one JSON object and a newline. Field names are
// those of the protobuf schema; zero-valued optional fields are left out.
func AppendJSON(b []byte, r *Record) []byte {
	w := jsonWriter{b: append(b, '{'), first: true}
	w.str("kind", r.Kind.String())
	w.str("type", r.Type.String())
	w.time("time_received", r.TimeReceived)
	w.addr("exporter", r.Exporter)
	w.addr("agent", r.Agent)
	w.num("observation_domain", uint64(r.ObservationDomain))
	w.num("sequence", uint64(r.Sequence))
	w.num("sampling_rate", uint64(r.SamplingRate))
	w.numNZ("sampler_id", uint64(r.SamplerID))
	if r.Kind == KindCounters {
		c := &r.Counters
		w.key("counters")
		w.b = append(w.b, '{')
		cw := jsonWriter{b: w.b, first: true}
		cw.num("if_index", uint64(c.IfIndex))
		cw.num("if_type", uint64(c.IfType))
		cw.num("if_speed", c.IfSpeed)
		cw.num("if_direction", uint64(c.IfDirection))
		cw.boolean("if_admin_up", c.IfAdminUp)
		cw.boolean("if_oper_up", c.IfOperUp)
		cw.num("in_octets", c.InOctets)
		cw.num("in_ucast_pkts", c.InUcastPkts)
		cw.num("in_multicast_pkts", c.InMulticastPkts)
		cw.num("in_broadcast_pkts", c.InBroadcastPkts)
		cw.num("in_discards", c.InDiscards)
		cw.num("in_errors", c.InErrors)
		cw.num("in_unknown_protos", c.InUnknownProtos)
		cw.num("out_octets", c.OutOctets)
		cw.num("out_ucast_pkts", c.OutUcastPkts)
		cw.num("out_multicast_pkts", c.OutMulticastPkts)
		cw.num("out_broadcast_pkts", c.OutBroadcastPkts)
		cw.num("out_discards", c.OutDiscards)
		cw.num("out_errors", c.OutErrors)
		cw.boolean("promiscuous", c.Promiscuous)
		if c.HasEthernet {
			e := &c.Ethernet
			cw.key("ethernet")
			cw.b = append(cw.b, '{')
			ew := jsonWriter{b: cw.b, first: true}
			ew.num("alignment_errors", uint64(e.AlignmentErrors))
			ew.num("fcs_errors", uint64(e.FCSErrors))
			ew.num("single_collision_frames", uint64(e.SingleCollisionFrames))
			ew.num("multiple_collision_frames", uint64(e.MultipleCollisionFrames))
			ew.num("sqe_test_errors", uint64(e.SQETestErrors))
			ew.num("deferred_transmissions", uint64(e.DeferredTransmissions))
			ew.num("late_collisions", uint64(e.LateCollisions))
			ew.num("excessive_collisions", uint64(e.ExcessiveCollisions))
			ew.num("internal_mac_transmit_errors", uint64(e.InternalMacTransmitErrors))
			ew.num("carrier_sense_errors", uint64(e.CarrierSenseErrors))
			ew.num("frame_too_longs", uint64(e.FrameTooLongs))
			ew.num("internal_mac_receive_errors", uint64(e.InternalMacReceiveErrors))
			ew.num("symbol_errors", uint64(e.SymbolErrors))
			cw.b = append(ew.b, '}')
		}
		w.b = append(cw.b, '}')
		return append(w.b, '}', '\n')
	}
	w.time("flow_start", r.FlowStart)
	w.time("flow_end", r.FlowEnd)
	w.addr("src_addr", r.SrcAddr)
	w.addr("dst_addr", r.DstAddr)
	w.num("src_port", uint64(r.SrcPort))
	w.num("dst_port", uint64(r.DstPort))
	w.num("proto", uint64(r.Proto))
	w.num("tcp_flags", uint64(r.TCPFlags))
	w.num("tos", uint64(r.ToS))
	w.numNZ("ether_type", uint64(r.EtherType))
	w.num("in_if", uint64(r.InIf))
	w.num("out_if", uint64(r.OutIf))
	w.num("bytes", r.Bytes)
	w.num("packets", r.Packets)
	w.numNZ("src_as", uint64(r.SrcAS))
	w.numNZ("dst_as", uint64(r.DstAS))
	w.numNZ("src_mask", uint64(r.SrcMask))
	w.numNZ("dst_mask", uint64(r.DstMask))
	w.addr("next_hop", r.NextHop)
	w.numNZ("src_vlan", uint64(r.SrcVLAN))
	w.numNZ("dst_vlan", uint64(r.DstVLAN))
	if !r.SrcMAC.IsZero() {
		w.str("src_mac", r.SrcMAC.String())
	}
	if !r.DstMAC.IsZero() {
		w.str("dst_mac", r.DstMAC.String())
	}
	if r.Direction != DirectionUnknown {
		w.str("direction", r.Direction.String())
	}
	if r.Reverse {
		w.boolean("reverse", true)
	}
	w.numNZ("device_id", r.DeviceID)
	w.numNZ("resample_factor", uint64(r.ResampleFactor))
	if r.SrcInternal {
		w.boolean("src_internal", true)
	}
	if r.DstInternal {
		w.boolean("dst_internal", true)
	}
	for _, f := range [...]struct{ k, v string }{
		{"src_hostname", r.SrcHostname}, {"dst_hostname", r.DstHostname},
		{"src_country", r.SrcCountry}, {"dst_country", r.DstCountry},
	} {
		if f.v != "" {
			w.str(f.k, f.v)
		}
	}
	return append(w.b, '}', '\n')
}
