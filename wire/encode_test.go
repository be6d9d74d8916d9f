package wire

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/decoder"
	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/flow/flowpb"
	"google.golang.org/protobuf/proto"
)

// viaProto is the reference encoding: the records' protobuf messages,
// marshalled by the protobuf library.
func viaProto(t testing.TB, id, proxy string, created int64, recs []flow.Record) []byte {
	t.Helper()
	pb := &flowpb.Batch{BatchId: id, Proxy: proxy, CreatedNs: created}
	for i := range recs {
		pb.Records = append(pb.Records, recs[i].ToProto())
	}
	b, err := proto.Marshal(pb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkSameEncoding(t *testing.T, what string, recs []flow.Record) {
	t.Helper()
	want := viaProto(t, "id-1", "proxy-1", 1700000000123456789, recs)
	got, err := AppendBatch(nil, "id-1", "proxy-1", 1700000000123456789, recs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		var g, w flowpb.Batch
		proto.Unmarshal(got, &g)
		proto.Unmarshal(want, &w)
		t.Fatalf("%s: encoding differs from proto.Marshal\n got  %x\n want %x\n got  %v\n want %v", what, got, want, &g, &w)
	}
}

// TestAppendBatchCaptures: the records of every real capture (flows,
// reverse biflow halves, sFlow counter records) encode as proto.Marshal
// encodes them.
func TestAppendBatchCaptures(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "captures", "*.pcap"))
	if len(files) == 0 {
		t.Fatal("no captures")
	}
	for _, f := range files {
		dgs, err := capture.ReadAllUDP(f)
		if err != nil {
			t.Fatal(err)
		}
		d := decoder.New(decoder.DefaultConfig())
		var recs []flow.Record
		for _, dg := range dgs {
			d.Decode(dg.Src.Addr(), dg.Time, dg.Payload, func(r *flow.Record) {
				// What the proxy adds.
				r.DeviceID, r.ResampleFactor = 7, 3
				r.SrcInternal, r.SrcHostname, r.DstCountry = true, "host.example", "FR"
				recs = append(recs, *r)
			})
		}
		if len(recs) == 0 {
			continue
		}
		checkSameEncoding(t, filepath.Base(f), recs)
	}
}

// TestAppendRecordEveryField sets each field of flow.Record in turn (a
// field added to the record and to ToProto but not to AppendRecord fails
// here), with small and extreme values.
func TestAppendRecordEveryField(t *testing.T) {
	typ := reflect.TypeFor[flow.Record]()
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if f.Name == "Counters" || f.Name == "Kind" {
			continue // Kind below; counters take proto.Marshal's path
		}
		for vi, v := range valuesOf(t, f.Type) {
			r := flow.Record{Kind: flow.KindFlow}
			reflect.ValueOf(&r).Elem().Field(i).Set(v)
			checkSameEncoding(t, f.Name+"#"+string(rune('0'+vi)), []flow.Record{r})
		}
	}
	for _, k := range []flow.Kind{0, flow.KindFlow, 200} {
		checkSameEncoding(t, "Kind", []flow.Record{{Kind: k}})
	}
	checkSameEncoding(t, "empty batch", nil)
}

// valuesOf returns non-zero values of a record field's type.
func valuesOf(t *testing.T, typ reflect.Type) []reflect.Value {
	vals := func(xs ...any) []reflect.Value {
		out := make([]reflect.Value, len(xs))
		for i, x := range xs {
			out[i] = reflect.ValueOf(x).Convert(typ)
		}
		return out
	}
	switch typ {
	case reflect.TypeFor[time.Time]():
		return vals(time.Unix(1700000000, 123456789), time.Unix(-5, 0), time.Unix(0, 1))
	case reflect.TypeFor[netip.Addr]():
		return vals(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:10.0.0.1"),
			netip.MustParseAddr("fe80::1%eth0"))
	case reflect.TypeFor[flow.MAC]():
		return vals(flow.MAC{2, 0, 0, 0, 0, 1}, flow.MAC{255, 255, 255, 255, 255, 255})
	}
	switch typ.Kind() {
	case reflect.Bool:
		return vals(true)
	case reflect.String:
		return vals("x", "host.example.with.a.rather.long.name.to.cross.one.hundred.and.twenty.eight.bytes.of.encoded.length.in.one.varint.xxxxxxxxxxxxxxxxxxxxxxxxx")
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return []reflect.Value{reflect.ValueOf(uint64(1)).Convert(typ), reflect.ValueOf(^uint64(0)).Convert(typ)}
	}
	t.Fatalf("flow.Record has a field of type %v that this test does not know: teach it (and AppendRecord)", typ)
	return nil
}

// TestEncodeRecordsRoundTrip: a body from EncodeRecords decodes to the
// records.
func TestEncodeRecordsRoundTrip(t *testing.T) {
	recs := []flow.Record{
		{Kind: flow.KindFlow, Type: flow.TypeIPFIX, SrcAddr: netip.MustParseAddr("10.0.0.1"), Bytes: 1500, SrcHostname: "a"},
		{Kind: flow.KindCounters, Type: flow.TypeSFlowV5, Counters: flow.Counters{IfIndex: 3, InOctets: 7, HasEthernet: true,
			Ethernet: flow.EthernetCounters{FCSErrors: 2}}},
	}
	c := NewCodec()
	body, err := c.EncodeRecords("b-1", "p", 42, recs)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := c.DecodeBatch(body, DefaultMaxDecompressed)
	if err != nil {
		t.Fatal(err)
	}
	if pb.BatchId != "b-1" || pb.Proxy != "p" || pb.CreatedNs != 42 || len(pb.Records) != len(recs) {
		t.Fatalf("batch %v", pb)
	}
	for i, pr := range pb.Records {
		if got := flow.FromProto(pr); !reflect.DeepEqual(got, recs[i]) {
			t.Errorf("record %d: got %+v\nwant %+v", i, got, recs[i])
		}
	}
}

// FuzzAppendRecord builds records from the fuzzer's bytes and compares
// the encoding with proto.Marshal's.
func FuzzAppendRecord(f *testing.F) {
	f.Add([]byte{1, 2, 3}, "host", false)
	f.Add(bytes.Repeat([]byte{0xff}, 200), "", true)
	f.Fuzz(func(t *testing.T, b []byte, s string, rev bool) {
		b = append(b, make([]byte, 128)...) // read zeros past the end
		u64 := func(i int) uint64 { return binary.LittleEndian.Uint64(b[i:]) }
		addr := func(i int) netip.Addr {
			switch b[i] % 4 {
			case 1:
				return netip.AddrFrom4([4]byte(b[i+1 : i+5]))
			case 2:
				return netip.AddrFrom16([16]byte(b[i+1 : i+17]))
			case 3:
				return netip.AddrFrom16([16]byte(b[i+1 : i+17])).WithZone("z")
			}
			return netip.Addr{}
		}
		tm := func(i int) time.Time {
			if b[i]%2 == 0 {
				return time.Time{}
			}
			return time.Unix(0, int64(u64(i+1)>>2)-1<<60)
		}
		r := flow.Record{
			Kind: flow.Kind(b[0] % 2), Type: flow.Type(b[1]), TimeReceived: tm(2), Exporter: addr(11), Agent: addr(28),
			ObservationDomain: uint32(u64(45)), Sequence: uint32(u64(49)), SamplingRate: uint32(u64(53)),
			SamplerID: uint32(u64(57)), FlowStart: tm(61), FlowEnd: tm(70), SrcAddr: addr(79), DstAddr: addr(96),
			SrcPort: uint16(u64(2)), DstPort: uint16(u64(4)), Proto: b[6], TCPFlags: b[7], ToS: b[8], EtherType: uint16(u64(9)),
			InIf: uint32(u64(13)), OutIf: uint32(u64(17)), Bytes: u64(21), Packets: u64(29), SrcAS: uint32(u64(37)),
			DstAS: uint32(u64(41)), SrcMask: b[45], DstMask: b[46], NextHop: addr(47), SrcVLAN: uint16(u64(64)),
			DstVLAN: uint16(u64(66)), SrcMAC: flow.MAC(b[68:74]), DstMAC: flow.MAC(b[74:80]), Direction: flow.Direction(b[80]),
			Reverse: rev, DeviceID: u64(81), ResampleFactor: uint32(u64(89)), SrcInternal: b[93]%2 == 1,
			DstInternal: b[94]%2 == 1, SrcHostname: s, DstHostname: s + s, SrcCountry: string(b[95:97]),
		}
		pb := &flowpb.Batch{BatchId: s, Proxy: "p", CreatedNs: int64(u64(100)), Records: []*flowpb.Record{r.ToProto()}}
		want, werr := proto.Marshal(pb)
		got, err := AppendBatch(nil, s, "p", int64(u64(100)), []flow.Record{r})
		if (err != nil) != (werr != nil) {
			t.Fatalf("AppendBatch error %v, proto.Marshal error %v", err, werr)
		}
		if err != nil {
			return
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("encoding differs for %+v\n got  %x\n want %x", r, got, want)
		}
	})
}

func BenchmarkEncodeRecords(b *testing.B) {
	recs := make([]flow.Record, 5000)
	for i := range recs {
		recs[i] = flow.Record{Kind: flow.KindFlow, Type: flow.TypeIPFIX, TimeReceived: time.Unix(1700000000, int64(i)),
			Exporter: netip.MustParseAddr("192.0.2.1"), SrcAddr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}),
			DstAddr: netip.MustParseAddr("10.1.0.1"), SrcPort: uint16(i), DstPort: 443, Proto: 6, Bytes: uint64(i) * 1500,
			Packets: uint64(i), DeviceID: 7, SrcHostname: "host.example"}
	}
	c := NewCodec()
	for _, how := range []string{"proto", "direct"} {
		b.Run("via="+how, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if how == "proto" {
					pb := &flowpb.Batch{BatchId: "x", Proxy: "p", CreatedNs: 1, Records: make([]*flowpb.Record, len(recs))}
					for i := range recs {
						pb.Records[i] = recs[i].ToProto()
					}
					_, err = c.EncodeBatch(pb)
				} else {
					_, err = c.EncodeRecords("x", "p", 1, recs)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// TestAppendRecordInvalidUTF8: a string proto.Marshal refuses is refused.
func TestAppendRecordInvalidUTF8(t *testing.T) {
	r := flow.Record{Kind: flow.KindFlow, SrcHostname: "bad\xff"}
	if _, err := proto.Marshal(r.ToProto()); err == nil {
		t.Fatal("proto.Marshal took invalid UTF-8: the reference changed")
	}
	if _, err := AppendBatch(nil, "id", "p", 1, []flow.Record{r}); err == nil {
		t.Fatal("AppendBatch took invalid UTF-8")
	}
}

// variedRecords are flow records as varied as real traffic (the captures
// repeat a few hundred flows, which compress far better): random hosts and
// ports, heavy-tailed sizes, times spread over a minute.
func variedRecords(n int) []flow.Record {
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	recs := make([]flow.Record, n)
	for i := range recs {
		st := t0.Add(-time.Duration(rng.IntN(60000)) * time.Millisecond)
		recs[i] = flow.Record{Kind: flow.KindFlow, Type: flow.TypeIPFIX, TimeReceived: t0.Add(time.Duration(i) * time.Microsecond),
			Exporter: netip.MustParseAddr("192.0.2.1"), ObservationDomain: 1, Sequence: uint32(1000 + i/5),
			FlowStart: st, FlowEnd: st.Add(time.Duration(rng.IntN(30000)) * time.Millisecond),
			SrcAddr: netip.AddrFrom4([4]byte{10, byte(rng.IntN(4)), byte(rng.IntN(256)), byte(rng.IntN(256))}),
			DstAddr: netip.AddrFrom4([4]byte{byte(rng.IntN(223)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))}),
			SrcPort: uint16(32768 + rng.IntN(28000)), DstPort: []uint16{443, 80, 53, 22, 123}[rng.IntN(5)], Proto: []uint8{6, 17}[rng.IntN(2)],
			TCPFlags: uint8(rng.IntN(64)), InIf: uint32(1 + rng.IntN(8)), OutIf: uint32(1 + rng.IntN(8)),
			Packets: uint64(1 + rng.ExpFloat64()*20), Bytes: uint64(60 + rng.ExpFloat64()*20000), SrcAS: 64500, DstAS: uint32(rng.IntN(70000)),
			SrcMask: 24, DstMask: uint8(rng.IntN(25)), NextHop: netip.MustParseAddr("192.0.2.254"), DeviceID: 7, EtherType: 0x800}
	}
	return recs
}

// BenchmarkCompressLevels compresses batches of varied records at zstd's
// levels: records/s and compressed bytes per record, the trade-off behind
// Codec.compress's choice of the fastest level.
func BenchmarkCompressLevels(b *testing.B) {
	raw, err := AppendBatch(nil, NewBatchID(), "proxy-1", 1, variedRecords(DefaultBatchRecords))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression} {
		b.Run("level="+l.String(), func(b *testing.B) {
			enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(l))
			if err != nil {
				b.Fatal(err)
			}
			var out []byte
			for b.Loop() {
				out = enc.EncodeAll(raw, out[:0])
			}
			b.ReportMetric(float64(DefaultBatchRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(len(out))/DefaultBatchRecords, "B/record")
		})
	}
}
