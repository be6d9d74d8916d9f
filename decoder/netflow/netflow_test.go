package netflow

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netpulse/netpulse/decoder/seq"
	"github.com/netpulse/netpulse/flow"
)

var (
	exp = netip.MustParseAddr("192.0.2.10")
	t0  = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
)

// msg builds NetFlow v9 and IPFIX messages for tests.
type msg struct {
	version uint16
	seq     uint32
	domain  uint32
	export  uint32
	uptime  uint32
	sets    [][]byte
}

func (m msg) bytes() []byte {
	var body []byte
	for _, s := range m.sets {
		body = append(body, s...)
	}
	var h []byte
	if m.version == 9 {
		h = binary.BigEndian.AppendUint16(h, 9)
		h = binary.BigEndian.AppendUint16(h, uint16(len(m.sets)))
		h = binary.BigEndian.AppendUint32(h, m.uptime)
		h = binary.BigEndian.AppendUint32(h, m.export)
		h = binary.BigEndian.AppendUint32(h, m.seq)
		h = binary.BigEndian.AppendUint32(h, m.domain)
	} else {
		h = binary.BigEndian.AppendUint16(h, 10)
		h = binary.BigEndian.AppendUint16(h, uint16(16+len(body)))
		h = binary.BigEndian.AppendUint32(h, m.export)
		h = binary.BigEndian.AppendUint32(h, m.seq)
		h = binary.BigEndian.AppendUint32(h, m.domain)
	}
	return append(h, body...)
}

func set(id uint16, body ...[]byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	n := 4
	for _, x := range body {
		n += len(x)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	for _, x := range body {
		b = append(b, x...)
	}
	return b
}

// tmpl encodes a template record; each field is {id, len} or
// {id, len, pen} (IPFIX only).
func tmpl(id uint16, fields ...[]uint32) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = binary.BigEndian.AppendUint16(b, uint16(len(fields)))
	return appendFields(b, fields)
}

func appendFields(b []byte, fields [][]uint32) []byte {
	for _, f := range fields {
		if len(f) == 3 {
			b = binary.BigEndian.AppendUint16(b, uint16(f[0])|0x8000)
			b = binary.BigEndian.AppendUint16(b, uint16(f[1]))
			b = binary.BigEndian.AppendUint32(b, f[2])
		} else {
			b = binary.BigEndian.AppendUint16(b, uint16(f[0]))
			b = binary.BigEndian.AppendUint16(b, uint16(f[1]))
		}
	}
	return b
}

func u8(v uint8) []byte   { return []byte{v} }
func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
func ip(s string) []byte  { return netip.MustParseAddr(s).AsSlice() }
func cat(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

type collect struct{ recs []flow.Record }

func (c *collect) emit(r *flow.Record) { c.recs = append(c.recs, *r) }

func decodeAll(t *testing.T, d *Decoder, msgs ...[]byte) []flow.Record {
	t.Helper()
	var c collect
	for i, m := range msgs {
		if err := d.Decode(exp, t0.Add(time.Duration(i)*time.Second), m, c.emit); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	return c.recs
}

func TestV5(t *testing.T) {
	hdr := cat(u16(5), u16(2), u32(100_000), u32(uint32(t0.Unix())), u32(0), u32(1000), u8(1), u8(2), u16(0x4000|64))
	rec := func(src string, first, last uint32) []byte {
		return cat(ip(src), ip("198.51.100.1"), ip("203.0.113.254"), u16(3), u16(4), u32(10), u32(1500),
			u32(first), u32(last), u16(1234), u16(80), u8(0), u8(0x12), u8(6), u8(0x28), u16(64500), u16(64501), u8(24), u8(16), u16(0))
	}
	data := cat(hdr, rec("192.0.2.1", 90_000, 99_000), rec("192.0.2.2", 99_500, 100_000))
	recs := decodeAll(t, New(Config{}, seq.NewTracker(0)), data)
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	r := recs[0]
	want := flow.Record{
		Kind: flow.KindFlow, Type: flow.TypeNetFlowV5, TimeReceived: t0, Exporter: exp,
		ObservationDomain: 0x0102, Sequence: 1000, SamplingRate: 64,
		FlowStart: t0.Add(-10 * time.Second), FlowEnd: t0.Add(-time.Second),
		SrcAddr: netip.MustParseAddr("192.0.2.1"), DstAddr: netip.MustParseAddr("198.51.100.1"),
		NextHop: netip.MustParseAddr("203.0.113.254"), InIf: 3, OutIf: 4, Packets: 10, Bytes: 1500,
		SrcPort: 1234, DstPort: 80, TCPFlags: 0x12, Proto: 6, ToS: 0x28, SrcAS: 64500, DstAS: 64501,
		SrcMask: 24, DstMask: 16, EtherType: 0x0800,
	}
	if r != want {
		t.Errorf("got  %+v\nwant %+v", r, want)
	}
}

func TestV5UptimeWrap(t *testing.T) {
	// The flow started 2 s before the 32-bit uptime wrapped; the export
	// is 1 s after it.
	start := uptimeTime(t0, 1000, 0xffffffff-999)
	if want := t0.Add(-2 * time.Second); !start.Equal(want) {
		t.Errorf("start %v, want %v", start, want)
	}
}

func TestV5Truncated(t *testing.T) {
	hdr := cat(u16(5), u16(3), u32(0), u32(0), u32(0), u32(0), u16(0), u16(0))
	data := append(hdr, make([]byte, 48*2)...)
	var c collect
	err := New(Config{}, nil).Decode(exp, t0, data, c.emit)
	if err == nil || !strings.Contains(err.Error(), "room for 2") {
		t.Errorf("error %v", err)
	}
	if len(c.recs) != 2 {
		t.Errorf("%d records decoded before the error, want 2", len(c.recs))
	}
}

// v9 template 256: src, dst (v4), ports, proto, bytes, packets, first, last, in, out.
var v9Tmpl = set(0, tmpl(256, []uint32{8, 4}, []uint32{12, 4}, []uint32{7, 2}, []uint32{11, 2}, []uint32{4, 1},
	[]uint32{1, 4}, []uint32{2, 4}, []uint32{22, 4}, []uint32{21, 4}, []uint32{10, 2}, []uint32{14, 2}))

func v9Rec(src string, sport uint16) []byte {
	return cat(ip(src), ip("198.51.100.7"), u16(sport), u16(53), u8(17), u32(300), u32(3), u32(50_000), u32(59_000), u16(1), u16(2))
}

func TestV9(t *testing.T) {
	m := msg{version: 9, seq: 7, domain: 3, export: uint32(t0.Unix()), uptime: 60_000,
		sets: [][]byte{v9Tmpl, set(256, v9Rec("192.0.2.1", 1000), v9Rec("192.0.2.2", 1001), []byte{0, 0})}}
	d := New(Config{}, seq.NewTracker(0))
	recs := decodeAll(t, d, m.bytes())
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	r := recs[1]
	if r.SrcAddr != netip.MustParseAddr("192.0.2.2") || r.SrcPort != 1001 || r.DstPort != 53 || r.Proto != 17 ||
		r.Bytes != 300 || r.Packets != 3 || r.InIf != 1 || r.OutIf != 2 || r.ObservationDomain != 3 ||
		r.Type != flow.TypeNetFlowV9 || r.SamplingRate != 0 || r.EtherType != 0x0800 {
		t.Errorf("record %+v", r)
	}
	if !r.FlowStart.Equal(t0.Add(-10*time.Second)) || !r.FlowEnd.Equal(t0.Add(-time.Second)) {
		t.Errorf("times %v %v", r.FlowStart, r.FlowEnd)
	}
	// Sequence: next datagram skips 2 packets.
	m2 := msg{version: 9, seq: 10, domain: 3, export: uint32(t0.Unix()), uptime: 61_000, sets: [][]byte{set(256, v9Rec("192.0.2.3", 1))}}
	decodeAll(t, d, m2.bytes())
	if s := d.Stats(); s.LostDatagrams != 2 {
		t.Errorf("lost datagrams %d, want 2", s.LostDatagrams)
	}
}

// TestV9OptionsSampling checks that a v9 options record (scope: system;
// options: sampler ID, mode, interval) sets the rate of the data records
// that name that sampler, and that other samplers stay unknown.
func TestV9OptionsSampling(t *testing.T) {
	optTmpl := set(1, cat(u16(257), u16(4), u16(12), appendFields(nil, [][]uint32{{1, 4}, {48, 1}, {49, 1}, {50, 4}})))
	optData := set(257, cat(u32(0), u8(5), u8(2), u32(512)), []byte{0, 0})
	tmplS := set(0, tmpl(258, []uint32{8, 4}, []uint32{12, 4}, []uint32{48, 1}, []uint32{1, 4}))
	data := set(258, cat(ip("192.0.2.1"), ip("192.0.2.2"), u8(5), u32(100)), cat(ip("192.0.2.1"), ip("192.0.2.2"), u8(6), u32(100)))
	m := msg{version: 9, sets: [][]byte{optTmpl, optData, tmplS, data}}
	recs := decodeAll(t, New(Config{}, nil), m.bytes())
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	if recs[0].SamplingRate != 512 || recs[0].SamplerID != 5 {
		t.Errorf("sampler 5: rate %d id %d, want 512", recs[0].SamplingRate, recs[0].SamplerID)
	}
	if recs[1].SamplingRate != 0 {
		t.Errorf("unknown sampler 6: rate %d, want 0 (unknown)", recs[1].SamplingRate)
	}
}

func TestIPFIXPacketIntervalSpace(t *testing.T) {
	// Options: scope selectorId, then 305 interval 1 and 306 space 99:
	// one packet in 100.
	optTmpl := set(3, cat(u16(300), u16(3), u16(1), appendFields(nil, [][]uint32{{302, 4}, {305, 4}, {306, 4}})))
	optData := set(300, cat(u32(9), u32(1), u32(99)))
	tm := set(2, tmpl(301, []uint32{8, 4}, []uint32{12, 4}, []uint32{302, 4}, []uint32{2, 8}))
	data := set(301, cat(ip("192.0.2.1"), ip("192.0.2.2"), u32(9), u64(4)))
	recs := decodeAll(t, New(Config{}, nil), msg{version: 10, sets: [][]byte{optTmpl, optData, tm, data}}.bytes())
	if len(recs) != 1 || recs[0].SamplingRate != 100 {
		t.Fatalf("records %+v, want one with rate 100", recs)
	}
}

func TestIPFIXVariableAndEnterprise(t *testing.T) {
	tm := set(2, tmpl(400,
		[]uint32{8, 4}, []uint32{12, 4},
		[]uint32{1000, 0xffff, 9},      // enterprise 9, variable length: skipped
		[]uint32{82, 0xffff},           // interfaceName, variable: skipped
		[]uint32{7, 2, 12345},          // enterprise field that looks like srcPort: must not be taken
		[]uint32{7, 2}, []uint32{1, 2}, // reduced-size octet count
		[]uint32{152, 8}, []uint32{153, 8}))
	long := bytes.Repeat([]byte{'x'}, 300)
	rec1 := cat(ip("192.0.2.1"), ip("192.0.2.2"), u8(3), []byte("abc"), u8(255), u16(300), long, u16(9999), u16(4242), u16(1500),
		u64(uint64(t0.UnixMilli())), u64(uint64(t0.Add(1500*time.Millisecond).UnixMilli())))
	rec2 := cat(ip("192.0.2.3"), ip("192.0.2.4"), u8(0), u8(1), []byte("e"), u16(1), u16(2), u16(3), u64(0), u64(0))
	recs := decodeAll(t, New(Config{}, nil), msg{version: 10, sets: [][]byte{tm, set(400, rec1, rec2)}}.bytes())
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	if r.SrcPort != 4242 || r.Bytes != 1500 || r.DstAddr != netip.MustParseAddr("192.0.2.2") ||
		!r.FlowEnd.Equal(t0.Add(1500*time.Millisecond)) || !r.FlowStart.Equal(t0) {
		t.Errorf("record 1 %+v", r)
	}
	if recs[1].SrcPort != 2 || recs[1].Bytes != 3 {
		t.Errorf("record 2 %+v", recs[1])
	}
}

func TestIPFIXBiflow(t *testing.T) {
	const rev = penReverse
	tm := set(2, tmpl(500, []uint32{8, 4}, []uint32{12, 4}, []uint32{7, 2}, []uint32{11, 2}, []uint32{4, 1},
		[]uint32{1, 8}, []uint32{2, 8}, []uint32{1, 8, rev}, []uint32{2, 8, rev}, []uint32{6, 1}, []uint32{6, 1, rev},
		[]uint32{10, 4}, []uint32{14, 4}))
	rec := cat(ip("192.0.2.1"), ip("198.51.100.1"), u16(40000), u16(443), u8(6), u64(1000), u64(10), u64(50000), u64(40),
		u8(0x02), u8(0x12), u32(1), u32(2))
	oneway := cat(ip("192.0.2.1"), ip("198.51.100.1"), u16(40001), u16(443), u8(6), u64(60), u64(1), u64(0), u64(0),
		u8(0x02), u8(0), u32(1), u32(2))
	recs := decodeAll(t, New(Config{}, nil), msg{version: 10, sets: [][]byte{tm, set(500, rec, oneway)}}.bytes())
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3 (forward, reverse, forward)", len(recs))
	}
	f, r := recs[0], recs[1]
	if f.Reverse || f.Bytes != 1000 || f.Packets != 10 || f.TCPFlags != 0x02 {
		t.Errorf("forward %+v", f)
	}
	if !r.Reverse || r.Bytes != 50000 || r.Packets != 40 || r.TCPFlags != 0x12 ||
		r.SrcAddr != f.DstAddr || r.DstAddr != f.SrcAddr || r.SrcPort != 443 || r.DstPort != 40000 || r.InIf != 2 || r.OutIf != 1 {
		t.Errorf("reverse %+v", r)
	}
	if recs[2].Reverse {
		t.Error("a flow without reverse traffic must not emit a reverse record")
	}
}

func TestIPFIXWithdrawal(t *testing.T) {
	d := New(Config{}, nil)
	tm := set(2, tmpl(600, []uint32{8, 4}))
	decodeAll(t, d, msg{version: 10, sets: [][]byte{tm}}.bytes())
	k := TemplateKey{Exporter: exp, Version: 10, ID: 600}
	if d.Templates().Get(k) == nil {
		t.Fatal("template not learnt")
	}
	decodeAll(t, d, msg{version: 10, sets: [][]byte{set(2, cat(u16(600), u16(0)))}}.bytes())
	if d.Templates().Get(k) != nil {
		t.Fatal("template not withdrawn")
	}
	// All data templates at once (template ID 2).
	decodeAll(t, d, msg{version: 10, sets: [][]byte{set(2, tmpl(601, []uint32{8, 4}), tmpl(602, []uint32{12, 4}))}}.bytes())
	decodeAll(t, d, msg{version: 10, sets: [][]byte{set(2, cat(u16(2), u16(0)))}}.bytes())
	if d.Templates().Len() != 0 {
		t.Errorf("%d templates left after withdraw-all", d.Templates().Len())
	}
	if s := d.Stats(); s.TemplatesWithdrawn != 3 {
		t.Errorf("withdrawn %d, want 3", s.TemplatesWithdrawn)
	}
}

func TestTemplateReplacement(t *testing.T) {
	d := New(Config{}, nil)
	a := set(2, tmpl(700, []uint32{8, 4}, []uint32{7, 2}))
	b := set(2, tmpl(700, []uint32{12, 4}, []uint32{11, 2}))
	recs := decodeAll(t, d,
		msg{version: 10, sets: [][]byte{a, set(700, cat(ip("192.0.2.1"), u16(1)))}}.bytes(),
		msg{version: 10, sets: [][]byte{b, set(700, cat(ip("192.0.2.9"), u16(9)))}}.bytes())
	if len(recs) != 2 || recs[0].SrcPort != 1 || recs[1].DstPort != 9 || recs[1].DstAddr != netip.MustParseAddr("192.0.2.9") {
		t.Errorf("records %+v", recs)
	}
	if d.Stats().TemplatesChanged != 1 {
		t.Errorf("changed %d, want 1", d.Stats().TemplatesChanged)
	}
}

// TestDataBeforeTemplate: data sets that arrive before their template are
// held and decoded when it arrives, in order, with their own headers.
func TestDataBeforeTemplate(t *testing.T) {
	d := New(Config{}, seq.NewTracker(0))
	data1 := msg{version: 9, seq: 1, export: uint32(t0.Unix()), uptime: 60_000, sets: [][]byte{set(256, v9Rec("192.0.2.1", 1))}}
	data2 := msg{version: 9, seq: 2, export: uint32(t0.Unix()) + 5, uptime: 65_000, sets: [][]byte{set(256, v9Rec("192.0.2.2", 2))}}
	tmplOnly := msg{version: 9, seq: 3, export: uint32(t0.Unix()) + 10, uptime: 70_000, sets: [][]byte{v9Tmpl}}
	var c collect
	for i, m := range []msg{data1, data2} {
		if err := d.Decode(exp, t0.Add(time.Duration(i)*time.Second), m.bytes(), c.emit); err != nil {
			t.Fatal(err)
		}
	}
	if len(c.recs) != 0 || d.Stats().HeldNow != 2 {
		t.Fatalf("before template: %d records, %d held", len(c.recs), d.Stats().HeldNow)
	}
	if err := d.Decode(exp, t0.Add(10*time.Second), tmplOnly.bytes(), c.emit); err != nil {
		t.Fatal(err)
	}
	if len(c.recs) != 2 || c.recs[0].SrcPort != 1 || c.recs[1].SrcPort != 2 {
		t.Fatalf("after template: %+v", c.recs)
	}
	// Held records keep their own datagram's time base and sequence.
	if !c.recs[0].FlowStart.Equal(t0.Add(-10*time.Second)) || c.recs[1].Sequence != 2 || !c.recs[0].TimeReceived.Equal(t0) {
		t.Errorf("held record 0 %+v", c.recs[0])
	}
	if s := d.Stats(); s.HeldSets != 2 || s.HeldDecoded != 2 || s.HeldNow != 0 || s.HeldExpired != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestHeldExpiresAndBounds(t *testing.T) {
	d := New(Config{HoldTime: time.Minute, HoldSets: 2}, nil)
	data := msg{version: 9, sets: [][]byte{set(256, v9Rec("192.0.2.1", 1))}}.bytes()
	var c collect
	for i := 0; i < 3; i++ {
		d.Decode(exp, t0, data, c.emit)
	}
	if s := d.Stats(); s.HeldNow != 2 || s.HeldDropped != 1 {
		t.Errorf("bounded: %+v", s)
	}
	d.Expire(t0.Add(2 * time.Minute))
	if s := d.Stats(); s.HeldNow != 0 || s.HeldExpired != 2 {
		t.Errorf("expired: %+v", s)
	}
	d.Decode(exp, t0.Add(2*time.Minute), msg{version: 9, sets: [][]byte{v9Tmpl}}.bytes(), c.emit)
	if len(c.recs) != 0 {
		t.Errorf("expired data was decoded: %d records", len(c.recs))
	}
}

func TestTemplatesPersist(t *testing.T) {
	d := New(Config{}, nil)
	decodeAll(t, d, msg{version: 9, domain: 4, sets: [][]byte{v9Tmpl}}.bytes(),
		msg{version: 10, domain: 4, sets: [][]byte{set(3, cat(u16(300), u16(2), u16(1), appendFields(nil, [][]uint32{{302, 4}, {305, 4, 77}})))}}.bytes())
	var buf bytes.Buffer
	if _, err := d.Templates().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	d2 := New(Config{}, nil)
	if _, err := d2.Templates().ReadFrom(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if d2.Templates().Len() != 2 {
		t.Fatalf("%d templates reloaded", d2.Templates().Len())
	}
	// A restarted decoder decodes data at once.
	recs := decodeAll(t, d2, msg{version: 9, domain: 4, sets: [][]byte{set(256, v9Rec("192.0.2.1", 7))}}.bytes())
	if len(recs) != 1 || recs[0].SrcPort != 7 {
		t.Errorf("after reload: %+v", recs)
	}
	k := TemplateKey{Exporter: exp, Domain: 4, Version: 10, ID: 300}
	if got := d2.Templates().Get(k); got == nil || !got.Options || got.ScopeCount != 1 || got.Fields[1].Enterprise != 77 {
		t.Errorf("options template reloaded as %+v", got)
	}
	for _, bad := range []string{"", "{}\n", "{\"netpulse_templates\":1}\n{\"exporter\":\"x\"}\n",
		"{\"netpulse_templates\":1}\n{\"exporter\":\"192.0.2.1\",\"version\":9,\"id\":256,\"fields\":[]}\n"} {
		if _, err := New(Config{}, nil).Templates().ReadFrom(strings.NewReader(bad)); err == nil && bad != "" {
			t.Errorf("ReadFrom(%q) accepted", bad)
		}
	}
}

func TestMalformed(t *testing.T) {
	cases := map[string][]byte{
		"short v9":        {0, 9, 0, 1},
		"set too long":    msg{version: 9, sets: [][]byte{{1, 0, 0, 200}}}.bytes(),
		"ipfix length":    cat(u16(10), u16(400), u32(0), u32(0), u32(0)),
		"reserved tmpl":   msg{version: 10, sets: [][]byte{set(2, tmpl(5, []uint32{8, 4}))}}.bytes(),
		"fields overflow": msg{version: 10, sets: [][]byte{set(2, cat(u16(256), u16(1000), u32(0)))}}.bytes(),
		"zero length":     msg{version: 10, sets: [][]byte{set(2, tmpl(256, []uint32{8, 0}))}}.bytes(),
		"var past end":    msg{version: 10, sets: [][]byte{set(2, tmpl(256, []uint32{82, 0xffff})), set(256, []byte{200, 1, 2})}}.bytes(),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			d := New(Config{}, nil)
			if err := d.Decode(exp, t0, b, func(*flow.Record) {}); err == nil {
				t.Error("no error")
			}
		})
	}
}

// TestCachesWithinDatagram: what the decoder caches for the data sets of
// one datagram (templates, sampling rates, system init time) follows the
// template and options records that come earlier in the same datagram.
func TestCachesWithinDatagram(t *testing.T) {
	// v9: data, options data changing the rate, data again; then a template
	// replaced between two data sets of the same ID.
	optTmpl := set(1, cat(u16(257), u16(4), u16(12), appendFields(nil, [][]uint32{{1, 4}, {48, 1}, {49, 1}, {50, 4}})))
	opt := func(rate uint32) []byte { return set(257, cat(u32(0), u8(5), u8(2), u32(rate)), []byte{0, 0}) }
	tmplA := set(0, tmpl(258, []uint32{8, 4}, []uint32{12, 4}, []uint32{48, 1}, []uint32{1, 4}))
	tmplB := set(0, tmpl(258, []uint32{12, 4}, []uint32{8, 4}, []uint32{48, 1}, []uint32{1, 4}))
	rec := cat(ip("192.0.2.1"), ip("192.0.2.2"), u8(5), u32(100))
	m := msg{version: 9, sets: [][]byte{optTmpl, opt(100), tmplA, set(258, rec), opt(200), set(258, rec), tmplB, set(258, rec)}}
	recs := decodeAll(t, New(Config{}, nil), m.bytes())
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3", len(recs))
	}
	for i, want := range []uint32{100, 200, 200} {
		if recs[i].SamplingRate != want {
			t.Errorf("record %d: rate %d, want %d", i, recs[i].SamplingRate, want)
		}
	}
	if recs[1].SrcAddr != netip.MustParseAddr("192.0.2.1") || recs[2].SrcAddr != netip.MustParseAddr("192.0.2.2") {
		t.Errorf("template replaced mid-datagram not used: %v then %v", recs[1].SrcAddr, recs[2].SrcAddr)
	}

	// IPFIX: uptime-based times before and after options data giving the
	// system init time (IE 160) in the same message.
	initTmpl := set(3, cat(u16(300), u16(2), u16(1), appendFields(nil, [][]uint32{{149, 4}, {160, 8}})))
	initData := set(300, cat(u32(3), u64(uint64(t0.UnixMilli()))))
	dataTmpl := set(2, tmpl(301, []uint32{8, 4}, []uint32{22, 4}, []uint32{21, 4}))
	drec := cat(ip("192.0.2.1"), u32(1000), u32(2000))
	im := msg{version: 10, domain: 3, sets: [][]byte{dataTmpl, set(301, drec), initTmpl, initData, set(301, drec)}}
	irecs := decodeAll(t, New(Config{}, nil), im.bytes())
	if len(irecs) != 2 {
		t.Fatalf("%d IPFIX records, want 2", len(irecs))
	}
	if !irecs[0].FlowStart.IsZero() {
		t.Errorf("before the init time: start %v, want unknown", irecs[0].FlowStart)
	}
	if want := t0.Add(time.Second); !irecs[1].FlowStart.Equal(want) || !irecs[1].FlowEnd.Equal(t0.Add(2*time.Second)) {
		t.Errorf("after the init time: %v–%v, want %v–", irecs[1].FlowStart, irecs[1].FlowEnd, want)
	}
}
