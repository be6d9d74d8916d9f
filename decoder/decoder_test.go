package decoder_test

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/decoder"
	"github.com/netpulse/netpulse/flow"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// captures lists the real-exporter captures; traffic.pcap is their input,
// not an export.
func captures(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "testdata", "captures", "*.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return filepath.Base(f) == "traffic.pcap" })
	if len(files) == 0 {
		t.Fatal("no captures in testdata/captures")
	}
	return files
}

func name(path string) string { return strings.TrimSuffix(filepath.Base(path), ".pcap") }

// decodeCapture decodes every datagram in order and returns the records
// and the decode errors.
func decodeCapture(t testing.TB, dgs []capture.Datagram) (recs []flow.Record, errs []string) {
	t.Helper()
	d := decoder.New(decoder.DefaultConfig())
	for _, dg := range dgs {
		if err := d.Decode(dg.Src.Addr(), dg.Time, dg.Payload, func(r *flow.Record) { recs = append(recs, *r) }); err != nil {
			errs = append(errs, fmt.Sprintf("packet %d: %v", dg.Number, err))
		}
	}
	if held := d.NetFlow().Stats().HeldNow; held > 0 {
		errs = append(errs, fmt.Sprintf("%d data sets never got their template", held))
	}
	return recs, errs
}

// TestGolden decodes each real-exporter capture and compares the TSV with
// the reviewed golden file (go test ./decoder -run TestGolden -update
// rewrites them; review the diff).
func TestGolden(t *testing.T) {
	for _, path := range captures(t) {
		t.Run(name(path), func(t *testing.T) {
			dgs, err := capture.ReadAllUDP(path)
			if err != nil {
				t.Fatal(err)
			}
			recs, errs := decodeCapture(t, dgs)
			for _, e := range errs {
				t.Error(e)
			}
			if len(recs) < 50 {
				t.Errorf("only %d records", len(recs))
			}
			var buf bytes.Buffer
			buf.WriteString(flow.TSVHeader + "\n")
			for i := range recs {
				buf.Write(flow.AppendTSV(nil, &recs[i]))
			}
			golden := filepath.Join("..", "testdata", "golden", name(path)+".tsv")
			if *update {
				os.MkdirAll(filepath.Dir(golden), 0o755)
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				gl, wl := strings.Split(buf.String(), "\n"), strings.Split(string(want), "\n")
				for i := 0; i < max(len(gl), len(wl)); i++ {
					g, w := "", ""
					if i < len(gl) {
						g = gl[i]
					}
					if i < len(wl) {
						w = wl[i]
					}
					if g != w {
						t.Fatalf("differs from %s at line %d:\n got  %s\n want %s", golden, i+1, g, w)
					}
				}
			}
		})
	}
}

// hasTemplate reports whether a v9 or IPFIX datagram carries a template
// or options template set.
func hasTemplate(b []byte) bool {
	v := decoder.Detect(b)
	if v != flow.TypeNetFlowV9 && v != flow.TypeIPFIX {
		return false
	}
	off, tmpl, opts := 20, uint16(0), uint16(1)
	if v == flow.TypeIPFIX {
		off, tmpl, opts = 16, 2, 3
	}
	for off+4 <= len(b) {
		id := uint16(b[off])<<8 | uint16(b[off+1])
		l := int(b[off+2])<<8 | int(b[off+3])
		if id == tmpl || id == opts {
			return true
		}
		if l < 4 {
			break
		}
		off += l
	}
	return false
}

// TestTemplateAfterData moves every datagram that carries templates to the
// end of the capture. Every record must still come out, identical to the
// in-order decode (held data keeps its own datagram's header and time).
func TestTemplateAfterData(t *testing.T) {
	tested := 0
	for _, path := range captures(t) {
		dgs, err := capture.ReadAllUDP(path)
		if err != nil {
			t.Fatal(err)
		}
		var tmpls, rest []capture.Datagram
		for _, dg := range dgs {
			if hasTemplate(dg.Payload) {
				tmpls = append(tmpls, dg)
			} else {
				rest = append(rest, dg)
			}
		}
		if len(tmpls) == 0 || len(rest) == 0 {
			continue
		}
		tested++
		t.Run(name(path), func(t *testing.T) {
			want, errs := decodeCapture(t, dgs)
			if len(errs) > 0 {
				t.Fatalf("in order: %v", errs)
			}
			// Template datagrams also carry data; late, their own data
			// comes out with them, so compare as multisets.
			got, errs := decodeCapture(t, append(rest, tmpls...))
			if len(errs) > 0 {
				t.Fatalf("templates last: %v", errs)
			}
			if len(got) != len(want) {
				t.Fatalf("templates last: %d records, in order %d", len(got), len(want))
			}
			key := func(r flow.Record) string { return string(flow.AppendJSON(nil, &r)) }
			g, w := make([]string, len(got)), make([]string, len(want))
			for i := range got {
				g[i], w[i] = key(got[i]), key(want[i])
			}
			slices.Sort(g)
			slices.Sort(w)
			for i := range g {
				if g[i] != w[i] {
					t.Fatalf("record differs:\n got  %s want %s", g[i], w[i])
				}
			}
		})
	}
	if tested == 0 {
		t.Fatal("no v9 or IPFIX capture with templates")
	}
}

// BenchmarkDecode decodes each real capture, templates primed, and
// reports flows per second on one core.
func BenchmarkDecode(b *testing.B) {
	for _, path := range captures(b) {
		dgs, err := capture.ReadAllUDP(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("capture="+name(path), func(b *testing.B) {
			d := decoder.New(decoder.DefaultConfig())
			var n int
			emit := func(*flow.Record) { n++ }
			now := time.Now()
			for _, dg := range dgs {
				d.Decode(dg.Src.Addr(), now, dg.Payload, emit)
			}
			perPass := n
			n = 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, dg := range dgs {
					d.Decode(dg.Src.Addr(), now, dg.Payload, emit)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "flows/s")
			b.ReportMetric(float64(perPass), "flows/op")
		})
	}
}

// FuzzDecode runs the protocol detection and every decoder, seeded with
// real datagrams from the captures.
func FuzzDecode(f *testing.F) {
	for _, path := range captures(f) {
		dgs, err := capture.ReadAllUDP(path)
		if err != nil {
			f.Fatal(err)
		}
		for i, dg := range dgs {
			if i < 3 {
				f.Add(dg.Payload)
			}
		}
	}
	exporter := netip.MustParseAddr("127.0.0.1")
	f.Fuzz(func(t *testing.T, b []byte) {
		d := decoder.New(decoder.DefaultConfig())
		d.Decode(exporter, time.Unix(0, 0), b, func(r *flow.Record) {
			if r.Type == flow.TypeUnknown {
				t.Fatalf("record of unknown type: %+v", r)
			}
		})
	})
}
