package statsfile

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// render writes a result as stable text, for golden files and diffs.
func render(r *Result) string {
	var b strings.Builder
	for _, row := range r.Rows {
		la := "never"
		if !row.LastActive.IsZero() {
			la = row.LastActive.Format(time.RFC3339Nano)
		}
		fmt.Fprintf(&b, "%s\tif=%d\tlast_active=%s\tbps=%g\n", row.Exporter, row.IfIndex, la, row.BPS)
	}
	fmt.Fprintf(&b, "bad=%d\n", r.BadRows)
	for _, s := range r.BadSamples {
		fmt.Fprintf(&b, "%s\n", s)
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	tests := []struct {
		file string
		cols Columns
	}{
		{"exporter_device_stats.txt", Columns{}},
		{"interface_stats.txt", Columns{IfIndex: "ifIndex"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			res, err := New(tt.cols, Limits{}).Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			got := render(res)
			golden := filepath.Join("testdata", strings.TrimSuffix(tt.file, ".txt")+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", tt.file, golden, got, want)
			}
		})
	}
}

// TestFlowCollectorFile checks the fields of the Flow Collector sample
// by hand, so that the golden file is not the only witness.
func TestFlowCollectorFile(t *testing.T) {
	data, err := os.ReadFile("testdata/exporter_device_stats.txt")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 6 || res.BadRows != 0 {
		t.Fatalf("got %d rows, %d bad; want 6, 0", len(res.Rows), res.BadRows)
	}
	want := Row{Exporter: netip.MustParseAddr("192.0.2.1"), LastActive: time.Unix(1764547200, 0).UTC(), BPS: 84512}
	if res.Rows[0] != want {
		t.Errorf("row 0 = %+v, want %+v", res.Rows[0], want)
	}
	if never := res.Rows[2]; !never.LastActive.IsZero() || never.BPS != 0 {
		t.Errorf("row 2 (Last Active 0) = %+v, want zero time and 0 bps", never)
	}
	if v6 := res.Rows[5].Exporter; v6 != netip.MustParseAddr("2001:db8::10") {
		t.Errorf("row 5 exporter = %v", v6)
	}
}

func TestParse(t *testing.T) {
	const hdr = "Exporter Address\tLast Active\tCurrent NetFlow bps\n"
	tests := []struct {
		name  string
		cols  Columns
		lim   Limits
		in    string
		want  string // render of the result
		isErr error  // errors.Is target, or nil
		asErr any    // errors.As target, or nil
	}{
		{
			name: "minimal",
			in:   hdr + "192.0.2.1\t1700000000\t1000\n",
			want: "192.0.2.1\tif=0\tlast_active=2023-11-14T22:13:20Z\tbps=1000\nbad=0\n",
		},
		{
			name: "no final newline, blank lines skipped",
			in:   "\n" + hdr + "\n\n192.0.2.1\t1700000000\t0",
			want: "192.0.2.1\tif=0\tlast_active=2023-11-14T22:13:20Z\tbps=0\nbad=0\n",
		},
		{
			name: "BOM, CRLF, quotes, blanks, case",
			in:   "\xef\xbb\xbf\"exporter address\"\t LAST ACTIVE \t\"Current NetFlow bps\"\r\n\" 192.0.2.1 \"\t\"1700000000.25\"\t\"12.5\"\r\n",
			want: "192.0.2.1\tif=0\tlast_active=2023-11-14T22:13:20.25Z\tbps=12.5\nbad=0\n",
		},
		{
			name: "columns in another order, extra columns, exponent",
			in:   "Current NetFlow bps\tX\tExporter Address\tY\tLast Active\tZ\n1e3\tx\t::ffff:192.0.2.9\ty\t0\n",
			want: "192.0.2.9\tif=0\tlast_active=never\tbps=1000\nbad=0\n",
		},
		{
			name: "empty last active means never",
			in:   hdr + "192.0.2.1\t\t5\n",
			want: "192.0.2.1\tif=0\tlast_active=never\tbps=5\nbad=0\n",
		},
		{
			name: "per interface",
			cols: Columns{Exporter: "router", IfIndex: "ifIndex", LastActive: "seen", BPS: "bps"},
			in:   "router\tifIndex\tseen\tbps\n192.0.2.1\t3\t1700000000\t7\n192.0.2.1\t4294967295\t1700000000\t0\n192.0.2.1\t4294967296\t1700000000\t0\n",
			want: "192.0.2.1\tif=3\tlast_active=2023-11-14T22:13:20Z\tbps=7\n192.0.2.1\tif=4294967295\tlast_active=2023-11-14T22:13:20Z\tbps=0\nbad=1\nline 4: ifIndex: \"4294967296\" is not an ifIndex (0-4294967295)\n",
		},
		{
			name: "bad rows counted with line numbers",
			lim:  Limits{MaxBadSamples: 3},
			in: hdr +
				"192.0.2.1\t1700000000\t10\n" +
				"not-an-ip\t1700000000\t10\n" +
				"192.0.2.2\t1700000000\n" +
				"192.0.2.3\t1700000000\t-1\n" +
				"192.0.2.4\t1700000000\tNaN\n" +
				"192.0.2.5\t1700000000\t0x10\n" +
				"192.0.2.6\tyesterday\t1\n" +
				"192.0.2.7\t1700000000\t1e999\n" +
				"192.0.2.8\t1700000000\t-0\n",
			want: "192.0.2.1\tif=0\tlast_active=2023-11-14T22:13:20Z\tbps=10\n192.0.2.8\tif=0\tlast_active=2023-11-14T22:13:20Z\tbps=0\nbad=7\n" +
				"line 3: Exporter Address: \"not-an-ip\" is not an IP address\n" +
				"line 4: 2 fields, the header has the columns up to field 3\n" +
				"line 5: Current NetFlow bps: \"-1\" is not a rate in bits per second\n",
		},
		{
			name: "NUL bytes in a row and a zone",
			in:   hdr + "192.0.2.1\x00\t1700000000\t10\nfe80::1%eth0\t1700000000\t1\x00\n192.0.2.2\t1700000000\t3\n",
			want: "192.0.2.2\tif=0\tlast_active=2023-11-14T22:13:20Z\tbps=3\nbad=2\nline 2: Exporter Address: \"192.0.2.1\\x00\" is not an IP address\nline 3: Current NetFlow bps: \"1\\x00\" is not a rate in bits per second\n",
		},
		{
			name: "long line is a bad row",
			lim:  Limits{MaxLineBytes: 64},
			in:   hdr + "192.0.2.1\t1700000000\t" + strings.Repeat("9", 100) + "\n192.0.2.2\t1700000000\t3\n",
			want: "192.0.2.2\tif=0\tlast_active=2023-11-14T22:13:20Z\tbps=3\nbad=1\nline 2: line of 121 bytes is longer than max_line_bytes 64\n",
		},
		{
			name: "year 10000 is not epoch seconds",
			in:   hdr + "192.0.2.1\t253402300800\t1\n",
			want: "bad=1\nline 2: Last Active: \"253402300800\" is not epoch seconds\n",
		},
		{name: "empty", in: "", isErr: ErrNoHeader},
		{name: "only blanks", in: "\r\n \n\t\n", isErr: ErrNoHeader},
		{name: "too large", lim: Limits{MaxFileSize: 10}, in: hdr, isErr: ErrTooLarge},
		{name: "long header", lim: Limits{MaxLineBytes: 10}, in: hdr, isErr: ErrLongHeader},
		{
			name:  "too many rows",
			lim:   Limits{MaxRows: 2},
			in:    hdr + "192.0.2.1\t0\t1\nbad\n192.0.2.3\t0\t1\n",
			isErr: ErrTooManyRows,
		},
		{
			name:  "missing column",
			in:    "Exporter Address\tLast Active\tMaximum NetFlow bps\n192.0.2.1\t0\t1\n",
			asErr: new(*MissingColumnError),
		},
		{
			name:  "missing ifIndex column",
			cols:  Columns{IfIndex: "ifIndex"},
			in:    hdr + "192.0.2.1\t0\t1\n",
			asErr: new(*MissingColumnError),
		},
		{
			name:  "duplicate column",
			in:    "Exporter Address\tLast Active\tCurrent NetFlow bps\tcurrent netflow BPS\n",
			asErr: new(*DuplicateColumnError),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := New(tt.cols, tt.lim).Parse([]byte(tt.in))
			switch {
			case tt.isErr != nil:
				if !errors.Is(err, tt.isErr) {
					t.Fatalf("err = %v, want %v", err, tt.isErr)
				}
				return
			case tt.asErr != nil:
				if !errors.As(err, tt.asErr) {
					t.Fatalf("err = %v (%T), want %T", err, err, tt.asErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if got := render(res); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestMissingColumnMessage(t *testing.T) {
	_, err := Parse([]byte("Exporter Address\tCurrent NetFlow bps\n"))
	var mc *MissingColumnError
	if !errors.As(err, &mc) || mc.Field != "last_active" || mc.Column != "Last Active" {
		t.Fatalf("err = %v, want a missing last_active column", err)
	}
	if !strings.Contains(err.Error(), "set columns.last_active") {
		t.Errorf("message %q does not say which key to set", err)
	}
}

func TestColumnsValidate(t *testing.T) {
	if err := DefaultColumns().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if err := (Columns{IfIndex: "ifIndex"}).Validate(); err != nil {
		t.Errorf("with ifIndex: %v", err)
	}
	if err := (Columns{IfIndex: "exporter address"}).Validate(); err == nil {
		t.Error("ifindex naming the exporter column: no error")
	}
}

func TestManyBadRowsKeepFewSamples(t *testing.T) {
	in := "Exporter Address\tLast Active\tCurrent NetFlow bps\n" + strings.Repeat("x\ty\tz\n", 1000)
	res, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if res.BadRows != 1000 || len(res.BadSamples) != DefaultLimits().MaxBadSamples || len(res.Rows) != 0 {
		t.Errorf("bad=%d samples=%d rows=%d, want 1000, %d, 0", res.BadRows, len(res.BadSamples), len(res.Rows), DefaultLimits().MaxBadSamples)
	}
}

func BenchmarkParseFlowCollectorFile(b *testing.B) {
	one, err := os.ReadFile("testdata/exporter_device_stats.txt")
	if err != nil {
		b.Fatal(err)
	}
	// About 5,000 exporters, a large Flow Collector.
	header, body, _ := strings.Cut(string(one), "\n")
	data := []byte(header + "\n" + strings.Repeat(body, 5000/6+1))
	p := New(Columns{}, Limits{})
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
