package decoder_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/decoder"
	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/internal/integration"
)

// The cross-check against tshark: each real capture is decoded by tshark,
// Wireshark's independent decoder, and by us; record by record, in order,
// the TSV fields must be equal. tshark prints raw field values; the
// expected TSV values are derived from them with the rules of
// docs/decoding.md (times from uptime, sampling from options data, ICMP
// ports, biflow reverse records).

// kv is one member of a JSON object, in document order: tshark's JSON has
// repeated keys and its order is the record order.
type kv struct {
	k string
	v any // string, []kv or []any
}

func parseOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			var obj []kv
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := parseOrdered(dec)
				if err != nil {
					return nil, err
				}
				obj = append(obj, kv{kt.(string), v})
			}
			_, err := dec.Token()
			return obj, err
		case '[':
			var arr []any
			for dec.More() {
				v, err := parseOrdered(dec)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			_, err := dec.Token()
			return arr, err
		}
	case string:
		return t, nil
	}
	return fmt.Sprint(tok), nil
}

func obj(v any) []kv { o, _ := v.([]kv); return o }

func get(o []kv, k string) any {
	for _, m := range o {
		if m.k == k {
			return m.v
		}
	}
	return nil
}

// str returns a field's value; idx picks the element when tshark merged
// repeated fields (a biflow's forward and reverse counters) into an array.
func str(o []kv, k string, idx int) string {
	switch v := get(o, k).(type) {
	case string:
		if idx == 0 {
			return v
		}
	case []any:
		if idx < len(v) {
			s, _ := v[idx].(string)
			return s
		}
	}
	return ""
}

func first(o []kv, idx int, keys ...string) string {
	for _, k := range keys {
		if s := str(o, k, idx); s != "" {
			return s
		}
	}
	return ""
}

func num(s string) uint64 {
	if strings.HasPrefix(s, "0x") {
		v, _ := strconv.ParseUint(s[2:], 16, 64)
		return v
	}
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}

// seconds parses tshark's "123.456000000" into milliseconds.
func millis(s string) int64 {
	f, _ := strconv.ParseFloat(s, 64)
	return int64(f*1000 + 0.5)
}

func absTime(s string) time.Time {
	t, err := time.Parse("Jan _2, 2006 15:04:05.000000000 MST", s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// tsvPrefix is the promised part of a TSV line: up to the end column.
func tsvPrefix(r *flow.Record) string {
	cols := strings.Split(string(flow.AppendTSV(nil, r)), "\t")
	return strings.Join(cols[:15], "\t")
}

type samplerKey struct {
	exporter string
	domain   uint64
	sampler  uint64
}

// tsharkCflow derives expected records from tshark's cflow decode.
type tsharkCflow struct {
	rates map[samplerKey]uint64
	init  map[samplerKey]time.Time
}

func (x *tsharkCflow) frame(layers []kv) ([]flow.Record, error) {
	cf := obj(get(layers, "cflow"))
	if cf == nil {
		return nil, nil
	}
	exporter := first(obj(get(layers, "ip")), 0, "ip.src")
	if exporter == "" {
		exporter = first(obj(get(layers, "ipv6")), 0, "ipv6.src")
	}
	exp, err := netip.ParseAddr(exporter)
	if err != nil {
		return nil, fmt.Errorf("exporter address %q", exporter)
	}
	version := num(str(cf, "cflow.version", 0))
	var typ flow.Type
	var domain uint64
	switch version {
	case 5:
		typ, domain = flow.TypeNetFlowV5, num(str(cf, "cflow.engine_type", 0))<<8|num(str(cf, "cflow.engine_id", 0))
	case 9:
		typ, domain = flow.TypeNetFlowV9, num(str(cf, "cflow.source_id", 0))
	case 10:
		typ, domain = flow.TypeIPFIX, num(str(cf, "cflow.od_id", 0))
	default:
		return nil, fmt.Errorf("cflow version %d", version)
	}
	ts := obj(get(cf, "cflow.timestamp_tree"))
	export := time.Unix(int64(num(str(ts, "cflow.unix_secs", 0))), int64(num(str(ts, "cflow.unix_nsecs", 0))))
	if version == 10 {
		export = time.Unix(int64(num(str(ts, "cflow.exporttime", 0))), 0)
	}
	uptime := millis(str(cf, "cflow.sysuptime", 0))

	var flows [][]kv
	if version == 5 {
		for _, m := range cf {
			if strings.HasPrefix(m.k, "pdu ") {
				flows = append(flows, obj(m.v))
			}
		}
	} else {
		for _, m := range cf {
			if strings.HasPrefix(m.k, "FlowSet ") || strings.HasPrefix(m.k, "Set ") {
				for _, f := range obj(m.v) {
					if strings.HasPrefix(f.k, "Flow ") {
						flows = append(flows, obj(f.v))
					}
				}
			}
		}
	}
	var out []flow.Record
	for _, f := range flows {
		src := first(f, 0, "cflow.srcaddr", "cflow.srcaddrv6")
		if src == "" {
			x.options(exporter, domain, f)
			continue
		}
		r := flow.Record{Kind: flow.KindFlow, Type: typ, Exporter: exp, ObservationDomain: uint32(domain)}
		r.SrcAddr, _ = netip.ParseAddr(src)
		r.DstAddr, _ = netip.ParseAddr(first(f, 0, "cflow.dstaddr", "cflow.dstaddrv6"))
		r.SrcPort = uint16(num(str(f, "cflow.srcport", 0)))
		r.DstPort = uint16(num(str(f, "cflow.dstport", 0)))
		r.Proto = uint8(num(str(f, "cflow.protocol", 0)))
		if r.Proto == 1 || r.Proto == 58 {
			if tc := first(f, 0, "cflow.icmp_type_code_ipv4", "cflow.icmp_type_code_ipv6"); tc != "" {
				r.SrcPort, r.DstPort = 0, uint16(num(tc))
			} else if ty := first(f, 0, "cflow.icmp_ipv4_type", "cflow.icmp_ipv6_type"); ty != "" {
				r.SrcPort, r.DstPort = 0, uint16(num(ty)<<8|num(first(f, 0, "cflow.icmp_ipv4_code", "cflow.icmp_ipv6_code")))
			}
		}
		r.Packets = num(first(f, 0, "cflow.packets", "cflow.packets64"))
		r.Bytes = num(first(f, 0, "cflow.octets", "cflow.octets64"))
		r.InIf = uint32(num(str(f, "cflow.inputint", 0)))
		r.OutIf = uint32(num(str(f, "cflow.outputint", 0)))
		switch version {
		case 5:
			r.SamplingRate = uint32(num(str(cf, "cflow.samplerate", 0)))
		default:
			r.SamplingRate = x.rate(exporter, domain, f)
		}
		start, end := x.times(exporter, domain, version, export, uptime, f, 0)
		r.FlowStart, r.FlowEnd = start, end
		out = append(out, r)
		// RFC 5103 biflow: tshark merges the reverse counters with the
		// forward ones.
		rp, rb := num(first(f, 1, "cflow.packets", "cflow.packets64")), num(first(f, 1, "cflow.octets", "cflow.octets64"))
		if rp > 0 || rb > 0 {
			rev := r
			rev.SrcAddr, rev.DstAddr = r.DstAddr, r.SrcAddr
			if r.Proto != 1 && r.Proto != 58 {
				rev.SrcPort, rev.DstPort = r.DstPort, r.SrcPort
			}
			rev.InIf, rev.OutIf = r.OutIf, r.InIf
			rev.Packets, rev.Bytes = rp, rb
			if s, e := x.times(exporter, domain, version, export, uptime, f, 1); !s.IsZero() || !e.IsZero() {
				rev.FlowStart, rev.FlowEnd = s, e
			}
			out = append(out, rev)
		}
	}
	return out, nil
}

func (x *tsharkCflow) options(exporter string, domain uint64, f []kv) {
	sampler := num(first(f, 0, "cflow.sampler_id", "cflow.selector_id"))
	if rate := ownRate(f); rate > 0 {
		x.rates[samplerKey{exporter, domain, sampler}] = rate
	}
	if it := str(f, "cflow.sys_init_time", 0); it != "" {
		x.init[samplerKey{exporter: exporter, domain: domain}] = absTime(it)
	}
}

func ownRate(f []kv) uint64 {
	if iv := num(str(f, "cflow.sampling_packet_interval", 0)); iv > 0 {
		return (iv + num(str(f, "cflow.sampling_packet_space", 0))) / iv
	}
	return num(first(f, 0, "cflow.sampling_interval", "cflow.sampler_random_interval"))
}

func (x *tsharkCflow) rate(exporter string, domain uint64, f []kv) uint32 {
	if r := ownRate(f); r > 0 {
		return uint32(r)
	}
	if s := first(f, 0, "cflow.sampler_id", "cflow.selector_id"); s != "" {
		if r, ok := x.rates[samplerKey{exporter, domain, num(s)}]; ok {
			return uint32(r)
		}
	}
	return uint32(x.rates[samplerKey{exporter, domain, 0}])
}

func (x *tsharkCflow) times(exporter string, domain, version uint64, export time.Time, uptime int64, f []kv, idx int) (start, end time.Time) {
	if s := str(f, "cflow.abstimestart", idx); s != "" {
		start = absTime(s)
	}
	if s := str(f, "cflow.abstimeend", idx); s != "" {
		end = absTime(s)
	}
	td := obj(get(f, "cflow.timedelta_tree"))
	if arr, ok := get(f, "cflow.timedelta_tree").([]any); ok && idx < len(arr) {
		td = obj(arr[idx])
	} else if idx > 0 {
		td = nil
	}
	conv := func(s string) time.Time {
		if s == "" {
			return time.Time{}
		}
		ms := millis(s)
		if version == 10 {
			init, ok := x.init[samplerKey{exporter: exporter, domain: domain}]
			if !ok {
				return time.Time{}
			}
			return init.Add(time.Duration(ms) * time.Millisecond)
		}
		// Uptime difference modulo 2^32 ms, as docs/decoding.md says.
		ago := int32(uint32(uptime) - uint32(ms))
		return export.Add(-time.Duration(ago) * time.Millisecond)
	}
	// tshark shows an uptime of exactly 0 as an absolute time at the
	// epoch inside the delta tree; it means uptime 0.
	rel := func(k, abs string) string {
		if s := str(td, abs, 0); s != "" && absTime(s).Equal(time.Unix(0, 0)) {
			return "0"
		}
		return str(td, k, 0)
	}
	if s := str(td, "cflow.abstimestart", 0); start.IsZero() && s != "" && !absTime(s).Equal(time.Unix(0, 0)) {
		start = absTime(s)
	}
	if s := str(td, "cflow.abstimeend", 0); end.IsZero() && s != "" && !absTime(s).Equal(time.Unix(0, 0)) {
		end = absTime(s)
	}
	if start.IsZero() {
		start = conv(rel("cflow.timestart", "cflow.abstimestart"))
	}
	if end.IsZero() {
		end = conv(rel("cflow.timeend", "cflow.abstimeend"))
	}
	return start, end
}

// tsharkDecode runs tshark on a capture with the dissector forced on the
// capture's port and returns the layers of every frame.
func tsharkDecode(t *testing.T, bin, path, dissector string, port uint16) [][]kv {
	t.Helper()
	cmd := exec.Command(bin, "-r", path, "-d", fmt.Sprintf("udp.port==%d,%s", port, dissector), "-T", "json", "--no-duplicate-keys")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	v, err := parseOrdered(json.NewDecoder(bytes.NewReader(out)))
	if err != nil && err != io.EOF {
		t.Fatalf("tshark JSON: %v", err)
	}
	var frames [][]kv
	for _, p := range v.([]any) {
		frames = append(frames, obj(get(obj(get(obj(p), "_source")), "layers")))
	}
	return frames
}

func TestTsharkCrossCheck(t *testing.T) {
	bin := integration.Tool(t, "tshark")
	for _, path := range captures(t) {
		t.Run(name(path), func(t *testing.T) {
			dgs, err := capture.ReadAllUDP(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(dgs) == 0 {
				t.Fatal("no UDP datagrams in the capture")
			}
			ours := map[int][]flow.Record{}
			d := decoder.New(decoder.DefaultConfig())
			isSFlow := false
			for _, dg := range dgs {
				isSFlow = isSFlow || decoder.Detect(dg.Payload) == flow.TypeSFlowV5
				if err := d.Decode(dg.Src.Addr(), dg.Time, dg.Payload, func(r *flow.Record) {
					ours[dg.Number] = append(ours[dg.Number], *r)
				}); err != nil {
					t.Errorf("packet %d: %v", dg.Number, err)
				}
			}
			dissector := "cflow"
			if isSFlow {
				dissector = "sflow"
			}
			frames := tsharkDecode(t, bin, path, dissector, dgs[0].Dst.Port())
			x := &tsharkCflow{rates: map[samplerKey]uint64{}, init: map[samplerKey]time.Time{}}
			sf := &tsharkSFlow{}
			compared, mismatches := 0, 0
			for _, layers := range frames {
				number := int(num(str(obj(get(layers, "frame")), "frame.number", 0)))
				var want []flow.Record
				var err error
				if isSFlow {
					want, err = sf.frame(layers)
				} else {
					want, err = x.frame(layers)
				}
				if err != nil {
					t.Fatalf("frame %d: tshark: %v", number, err)
				}
				got := ours[number]
				if len(got) != len(want) {
					t.Errorf("frame %d: %d records, tshark %d", number, len(got), len(want))
					mismatches++
					continue
				}
				for i := range want {
					compared++
					g, w := tsvPrefix(&got[i]), tsvPrefix(&want[i])
					if want[i].Kind == flow.KindCounters {
						g, w = counterLine(&got[i]), counterLine(&want[i])
					}
					if g != w {
						mismatches++
						if mismatches <= 5 {
							t.Errorf("frame %d record %d:\n ours   %s\n tshark %s", number, i+1, g, w)
						}
					}
				}
			}
			if mismatches > 0 {
				t.Errorf("%d of %d records differ", mismatches, compared)
			}
			if compared == 0 {
				t.Error("no records compared")
			}
			t.Logf("%d records equal to tshark's decode", compared)
		})
	}
}

// counterLine is the whole TSV line of a counter record, the counter
// columns included.
func counterLine(r *flow.Record) string {
	c := r.Counters
	r2 := flow.Record{Kind: r.Kind, Type: r.Type, Exporter: r.Exporter, ObservationDomain: r.ObservationDomain, TimeReceived: r.TimeReceived,
		SamplingRate: r.SamplingRate, Counters: flow.Counters{IfIndex: c.IfIndex, IfSpeed: c.IfSpeed, IfOperUp: c.IfOperUp,
			InOctets: c.InOctets, InUcastPkts: c.InUcastPkts, OutOctets: c.OutOctets, OutUcastPkts: c.OutUcastPkts,
			InErrors: c.InErrors, OutErrors: c.OutErrors, InDiscards: c.InDiscards, OutDiscards: c.OutDiscards}}
	return string(flow.AppendTSV(nil, &r2))
}

// tsharkSFlow derives expected records from tshark's sFlow decode: one
// flow record per flow sample, from the sampled header tshark dissects,
// and one counter record per counter sample.
type tsharkSFlow struct{}

// sflowIf applies the interface rules of decoder/sflow: format 0 is an
// ifIndex, 0x3FFFFFFF (internal or unknown) and other formats are 0.
func sflowIf(v, format string) uint32 {
	if format != "" && format != "0" {
		return 0
	}
	n := num(v)
	if n == 0x3fffffff {
		return 0
	}
	return uint32(n & 0x3fffffff)
}

func (s *tsharkSFlow) frame(layers []kv) ([]flow.Record, error) {
	sf := obj(get(layers, "sflow"))
	if sf == nil {
		return nil, nil
	}
	exp, err := netip.ParseAddr(first(obj(get(layers, "ip")), 0, "ip.src"))
	if err != nil {
		exp, err = netip.ParseAddr(first(obj(get(layers, "ipv6")), 0, "ipv6.src"))
		if err != nil {
			return nil, fmt.Errorf("exporter address")
		}
	}
	epoch := str(obj(get(layers, "frame")), "frame.time_epoch", 0)
	sec, frac, _ := strings.Cut(epoch, ".")
	frac = (frac + "000000000")[:9]
	received := time.Unix(int64(num(sec)), int64(num(strings.TrimLeft(frac, "0"))))
	domain := uint32(num(str(sf, "sflow_245.sub_agent_id", 0)))
	var out []flow.Record
	for _, m := range sf {
		sample := obj(m.v)
		base := flow.Record{Type: flow.TypeSFlowV5, Exporter: exp, ObservationDomain: domain, TimeReceived: received}
		switch {
		case strings.HasPrefix(m.k, "Flow sample") || strings.HasPrefix(m.k, "Expanded flow sample"):
			r := base
			r.Kind = flow.KindFlow
			r.FlowStart, r.FlowEnd = received, received
			r.Packets = 1
			r.SamplingRate = uint32(num(first(sample, 0, "sflow.flow_sample.sampling_rate", "sflow_5.flow_sample.sampling_rate")))
			in := first(sample, 0, "sflow.flow_sample.input_interface", "sflow.flow_sample.input_interface_value")
			r.InIf = sflowIf(in, str(sample, "sflow.flow_sample.input_interface_format", 0))
			ot := obj(get(sample, "sflow.flow_sample.output_interface_tree"))
			r.OutIf = sflowIf(str(ot, "sflow.flow_sample.output_interface_value", 0), str(ot, "sflow.flow_sample.output_interface_format", 0))
			raw := obj(get(sample, "Raw packet header"))
			if raw == nil {
				return nil, fmt.Errorf("%s: no raw packet header (not covered by this test)", m.k)
			}
			r.Bytes = num(str(raw, "sflow_245.header.frame_length", 0))
			h := obj(get(raw, "sflow_245.header_tree"))
			if ip := obj(get(h, "ip")); ip != nil {
				r.SrcAddr, _ = netip.ParseAddr(str(ip, "ip.src", 0))
				r.DstAddr, _ = netip.ParseAddr(str(ip, "ip.dst", 0))
				r.Proto = uint8(num(str(ip, "ip.proto", 0)))
			} else if ip6 := obj(get(h, "ipv6")); ip6 != nil {
				r.SrcAddr, _ = netip.ParseAddr(str(ip6, "ipv6.src", 0))
				r.DstAddr, _ = netip.ParseAddr(str(ip6, "ipv6.dst", 0))
				r.Proto = uint8(num(str(ip6, "ipv6.nxt", 0)))
			}
			if l4 := obj(get(h, "tcp")); l4 != nil {
				r.SrcPort, r.DstPort = uint16(num(str(l4, "tcp.srcport", 0))), uint16(num(str(l4, "tcp.dstport", 0)))
			} else if l4 := obj(get(h, "udp")); l4 != nil {
				r.SrcPort, r.DstPort = uint16(num(str(l4, "udp.srcport", 0))), uint16(num(str(l4, "udp.dstport", 0)))
			} else if ic := obj(get(h, "icmp")); ic != nil {
				r.DstPort = uint16(num(str(ic, "icmp.type", 0))<<8 | num(str(ic, "icmp.code", 0)))
			} else if ic := obj(get(h, "icmpv6")); ic != nil {
				r.DstPort = uint16(num(str(ic, "icmpv6.type", 0))<<8 | num(str(ic, "icmpv6.code", 0)))
			}
			out = append(out, r)
		case strings.HasPrefix(m.k, "Counters sample") || strings.HasPrefix(m.k, "Expanded counters sample"):
			g := obj(get(sample, "Generic interface counters"))
			if g == nil {
				continue
			}
			r := base
			r.Kind = flow.KindCounters
			c := &r.Counters
			c.IfIndex = uint32(num(str(g, "sflow_245.ifindex", 0)))
			c.IfSpeed = num(str(g, "sflow_245.ifspeed", 0))
			c.IfOperUp = num(str(g, "sflow_245.ifoper_status", 0)) == 1
			c.InOctets = num(str(g, "sflow_245.ifinoct", 0))
			c.InUcastPkts = num(str(g, "sflow_245.ifinpkt", 0))
			c.OutOctets = num(str(g, "sflow_245.ifoutoct", 0))
			c.OutUcastPkts = num(str(g, "sflow_245.ifoutpkt", 0))
			c.InErrors = num(str(g, "sflow_245.ifinerr", 0))
			c.OutErrors = num(str(g, "sflow_245.ifouterr", 0))
			c.InDiscards = num(str(g, "sflow_245.ifindisc", 0))
			c.OutDiscards = num(str(g, "sflow_245.ifoutdisc", 0))
			out = append(out, r)
		}
	}
	return out, nil
}
