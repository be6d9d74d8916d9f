package statsfile

import (
	"bytes"
	"math"
	"os"
	"testing"
)

// FuzzParse feeds arbitrary bytes to both column mappings and checks that
// the parser never panics, stays within its limits and only returns rows
// it could vouch for.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/exporter_device_stats.txt", "testdata/interface_stats.txt"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	const hdr = "Exporter Address\tLast Active\tCurrent NetFlow bps\n"
	for _, s := range []string{
		"",
		"\n\n",
		hdr,
		hdr + "192.0.2.1\t1700000000\t1000\n",
		"\xef\xbb\xbf" + hdr + "\"192.0.2.1\"\t\"1700000000\"\t\"1\"\r\n",
		hdr + "192.0.2.1\x00\t\x00\t\x00\n",
		hdr + "\"\"\"\"\t\"\t\"\n",
		hdr + "::ffff:192.0.2.1\t1.5e9\t1e308\n",
		hdr + "fe80::1%eth0\t-1\t-0\n",
		"Exporter Address\tifIndex\tLast Active\tCurrent NetFlow bps\n192.0.2.1\t4294967295\t0\t1\n",
		"Exporter Address\tExporter Address\n",
		"\t\t\t\n\t\t\t\n",
	} {
		f.Add([]byte(s))
	}
	lim := Limits{MaxFileSize: 1 << 20, MaxRows: 1000, MaxLineBytes: 4096, MaxBadSamples: 3}
	parsers := []*Parser{New(Columns{}, lim), New(Columns{IfIndex: "ifIndex"}, lim)}
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := bytes.Count(data, []byte("\n")) + 1
		for _, p := range parsers {
			res, err := p.Parse(data)
			if err != nil {
				if res != nil {
					t.Fatalf("error %v with a result", err)
				}
				continue
			}
			if n := len(res.Rows) + res.BadRows; n > lim.MaxRows || n >= lines {
				t.Fatalf("%d rows and bad rows from %d lines (max %d)", n, lines, lim.MaxRows)
			}
			if len(res.BadSamples) > lim.MaxBadSamples || len(res.BadSamples) > res.BadRows {
				t.Fatalf("%d samples of %d bad rows", len(res.BadSamples), res.BadRows)
			}
			for _, s := range res.BadSamples {
				if s.Line < 2 || s.Line > lines || s.Reason == "" {
					t.Fatalf("bad sample %+v of %d lines", s, lines)
				}
			}
			for _, r := range res.Rows {
				if !r.Exporter.IsValid() || r.Exporter.Zone() != "" || r.Exporter.Is4In6() {
					t.Fatalf("exporter %v", r.Exporter)
				}
				if math.IsNaN(r.BPS) || math.IsInf(r.BPS, 0) || r.BPS < 0 || math.Signbit(r.BPS) {
					t.Fatalf("bps %v", r.BPS)
				}
				if !r.LastActive.IsZero() && (r.LastActive.Unix() <= 0 || r.LastActive.Year() > 9999) {
					t.Fatalf("last active %v", r.LastActive)
				}
				if r.IfIndex != 0 && p.Columns().IfIndex == "" {
					t.Fatalf("ifIndex %d without an ifIndex column", r.IfIndex)
				}
			}
		}
	})
}
