package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/netpulse/netpulse/flow/flowpb"
	"google.golang.org/protobuf/proto"
)

func testBatch(n int) *flowpb.Batch {
	b := &flowpb.Batch{BatchId: NewBatchID(), Proxy: "p1", CreatedNs: 1700000000000000000}
	for i := 0; i < n; i++ {
		b.Records = append(b.Records, &flowpb.Record{
			Kind: flowpb.Kind_KIND_FLOW, FlowType: flowpb.FlowType_FLOW_TYPE_IPFIX,
			Exporter: []byte{192, 0, 2, 1}, SrcAddr: []byte{10, 0, 0, byte(i)}, DstAddr: []byte{10, 0, 1, byte(i >> 8)},
			SrcPort: uint32(i), DstPort: 443, Proto: 6, Bytes: uint64(i) * 1500, Packets: uint64(i), SrcHostname: "host.example",
		})
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	c := NewCodec()
	for _, n := range []int{0, 1, 5000} {
		want := testBatch(n)
		body, err := c.EncodeBatch(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.DecodeBatch(body, DefaultMaxDecompressed)
		if err != nil {
			t.Fatalf("%d records: %v", n, err)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("%d records: round trip differs", n)
		}
	}
	// The package-level helpers agree with a Codec.
	want := testBatch(3)
	body, err := EncodeBatch(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBatch(body, 1<<20)
	if err != nil || !proto.Equal(got, want) {
		t.Fatalf("DecodeBatch: %v", err)
	}
}

func TestNewBatchID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewBatchID()
		if len(id) != 32 || !ValidBatchID(id) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "a b", strings.Repeat("a", MaxBatchIDLen+1), "é", "x/y"} {
		if ValidBatchID(bad) {
			t.Errorf("ValidBatchID(%q) = true", bad)
		}
	}
}

// bomb returns a tiny zstd body that decompresses to n zero bytes,
// streamed so that the frame does not declare its size (withFCS false),
// or in one frame that declares it.
func bomb(t testing.TB, n int, withFCS bool) []byte {
	t.Helper()
	if withFCS {
		enc, _ := zstd.NewWriter(nil)
		return enc.EncodeAll(make([]byte, n), nil)
	}
	var buf bytes.Buffer
	enc, _ := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
	zero := make([]byte, 1<<20)
	for w := 0; w < n; w += len(zero) {
		if _, err := enc.Write(zero); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecodeBomb(t *testing.T) {
	c := NewCodec()
	for _, fcs := range []bool{false, true} {
		body := bomb(t, 64<<20, fcs)
		if len(body) > 64<<10 {
			t.Fatalf("bomb of %d bytes is not small", len(body))
		}
		_, err := c.DecodeBatch(body, 1<<20)
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("fcs=%v: got %v, want ErrTooLarge", fcs, err)
		}
	}
}

func TestDecodeTooManyRecords(t *testing.T) {
	c := NewCodec()
	body, _ := c.EncodeBatch(testBatch(11))
	if _, err := c.DecodeBatchLimit(body, 1<<20, 10); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if _, err := c.DecodeBatchLimit(body, 1<<20, 11); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeMalformed(t *testing.T) {
	c := NewCodec()
	enc, _ := zstd.NewWriter(nil)
	good, _ := proto.Marshal(testBatch(1))
	noID, _ := proto.Marshal(&flowpb.Batch{Proxy: "x"})
	for name, body := range map[string][]byte{
		"empty":        nil,
		"garbage":      []byte("this is not zstd at all"),
		"plain proto":  good,
		"bad protobuf": enc.EncodeAll([]byte{0xff, 0xff, 0xff}, nil),
		"no batch id":  enc.EncodeAll(noID, nil),
		"truncated":    enc.EncodeAll(good, nil)[:20],
	} {
		if _, err := c.DecodeBatch(body, 1<<20); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	c := NewCodec()
	for _, n := range []int{0, 1, 3} {
		body, _ := c.EncodeBatch(testBatch(n))
		f.Add(body)
	}
	f.Add(bomb(f, 1<<20, false))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := c.DecodeBatchLimit(body, 256<<10, 1000)
		if err != nil {
			if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if !ValidBatchID(b.BatchId) || len(b.Records) > 1000 {
			t.Fatalf("accepted a bad batch: id %q, %d records", b.BatchId, len(b.Records))
		}
		// What was accepted encodes and decodes again to the same batch.
		again, err := c.EncodeBatch(b)
		if err != nil {
			t.Fatal(err)
		}
		b2, err := c.DecodeBatchLimit(again, 256<<10, 1000)
		if err != nil && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if err == nil && !proto.Equal(b, b2) {
			t.Fatal("re-encoded batch differs")
		}
	})
}

func BenchmarkEncodeBatch(b *testing.B) {
	c := NewCodec()
	batch := testBatch(DefaultBatchRecords)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.EncodeBatch(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*DefaultBatchRecords)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkDecodeBatch(b *testing.B) {
	c := NewCodec()
	body, _ := c.EncodeBatch(testBatch(DefaultBatchRecords))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.DecodeBatch(body, DefaultMaxDecompressed); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*DefaultBatchRecords)/b.Elapsed().Seconds(), "records/s")
}
