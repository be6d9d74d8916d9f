package health

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func parseFile(t *testing.T, name string) *Status {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := ParseText(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestParseKproxy reads text captured from a real kproxy.
func TestParseKproxy(t *testing.T) {
	got := parseFile(t, "kproxy.txt")
	want := &Status{Devices: []Device{kproxyDevice()}}
	checkStatus(t, got, want)
}

// TestParseKproxyBrief reads the example as the brief gave it, with "* ..."
// standing for the second device: skipped, with a warning.
func TestParseKproxyBrief(t *testing.T) {
	got := parseFile(t, "kproxy-brief.txt")
	want := &Status{
		Devices:  []Device{kproxyDevice()},
		Warnings: []string{`line 4: device ID "..." is not a number: line skipped`},
	}
	checkStatus(t, got, want)
}

func TestParseGolden(t *testing.T) {
	s, now := goldenStatus()
	for _, name := range []string{"netpulse.txt", "netpulse-problem.txt"} {
		got := parseFile(t, name)
		want := canonical(s)
		if name == "netpulse-problem.txt" {
			want.Problem = "no route to collector.example.net:20012 (dial timeout)"
		}
		checkStatus(t, got, want)
		if text := string(AppendText(nil, got, now)); name == "netpulse.txt" && !strings.Contains(text, "* 102:core_router:7 -> - (In1: 0.000000") {
			t.Errorf("unexpected text:\n%s", text)
		}
	}
}

// checkStatus compares with %#v, which shows NaN equal to NaN and every
// time and address field.
func checkStatus(t *testing.T, got, want *Status) {
	t.Helper()
	if g, w := fmt.Sprintf("%#v", got), fmt.Sprintf("%#v", want); g != w {
		t.Errorf("status differs\ngot:  %+v\nwant: %+v", got, want)
	}
}

// kproxyText is kproxy's example with one replacement in the device line.
func kproxyText(old, new string) string {
	return "GOOD\n1 Connected Devices\n" + strings.Replace(kproxyLine, old, new, 1) + "\n0 Unregistered Devices\n"
}

func TestParseLenient(t *testing.T) {
	full := kproxyDevice()
	with := func(f func(d *Device)) []Device {
		d := kproxyDevice()
		f(&d)
		return []Device{d}
	}
	for _, tc := range []struct {
		name, text string
		want       *Status
	}{
		{"CRLF", strings.ReplaceAll(kproxyText("", ""), "\n", "\r\n"), &Status{Devices: []Device{full}}},
		{"blank lines and indentation", "\n\n  GOOD\n\n 1  connected   DEVICE \n   " + kproxyLine + "\n\n0 Unregistered Devices\n\n",
			&Status{Devices: []Device{full}}},
		{"no final newline", strings.TrimSuffix(kproxyText("", ""), "\n"), &Status{Devices: []Device{full}}},
		{"extra spaces", kproxyText(" -> 127.0.0.1:40014 (In1: 0.092757,", "   ->   127.0.0.1:40014   (  In1:0.092757 ,"),
			&Status{Devices: []Device{full}}},
		{"spaces in lists", kproxyText("0, 0, 1", "0 ,0,  1"), &Status{Devices: []Device{full}}},
		{"no Flow", kproxyText(". Flow: ipfix", ""), &Status{Devices: with(func(d *Device) { d.FlowType = "" })}},
		{"Flow with a final dot", kproxyText("Flow: ipfix", "Flow: ipfix."), &Status{Devices: []Device{full}}},
		{"no target", kproxyText(" -> 127.0.0.1:40014", ""), &Status{Devices: with(func(d *Device) { d.Target = "" })}},
		{"dash target", kproxyText("127.0.0.1:40014", "-"), &Status{Devices: with(func(d *Device) { d.Target = "" })}},
		{"no tag", kproxyText(":67661", ""), &Status{Devices: with(func(d *Device) { d.Tag = 0 })}},
		{"name with spaces and colons", kproxyText("mgr-skg-cr01", "mgr skg:cr01"), &Status{Devices: with(func(d *Device) { d.Name = "mgr skg:cr01" })}},
		{"parts reordered", kproxyText("Sources: 192.168.255.2. Channel highwater: 0, 0, 1. Flow: ipfix", "Flow: ipfix. Channel highwater: 0, 0, 1. Sources: 192.168.255.2"),
			&Status{Devices: []Device{full}}},
		{"unknown part and rate", strings.Replace(kproxyText("Out15: 0.145759", "Out15: 0.145759, Drop1: 3"), "Flow: ipfix", "Shards: 4. Flow: ipfix", 1),
			&Status{Devices: []Device{full}}},
		{"several sources", kproxyText("192.168.255.2", "192.168.255.2, 2001:db8::2 192.0.2.7:2055"),
			&Status{Devices: with(func(d *Device) {
				d.Sources = append(d.Sources, netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("192.0.2.7"))
			})}},
		{"no sources or highwater", kproxyText(". Sources: 192.168.255.2. Channel highwater: 0, 0, 1", ". Sources: -. Channel highwater: -"),
			&Status{Devices: with(func(d *Device) { d.Sources, d.Highwater = nil, nil })}},
		{"RFC 3339 time", kproxyText("2024-10-06T19:25:37.233040", "2024-10-06T21:25:37.23304+02:00"), &Status{Devices: []Device{full}}},
		{"time without fraction", kproxyText("37.233040", "37"),
			&Status{Devices: with(func(d *Device) { d.LastSeen = d.LastSeen.Truncate(time.Second) })}},
		{"never seen", kproxyText("2024-10-06T19:25:37.233040 (17.385s ago)", "never"),
			&Status{Devices: with(func(d *Device) { d.LastSeen = time.Time{} })}},
		{"no rates", kproxyText("(In1: 0.092757, Out1: 0.118906, In15: 0.090289, Out15: 0.145759). ", ""),
			&Status{Devices: with(func(d *Device) { d.In1, d.Out1, d.In15, d.Out15 = 0, 0, 0, 0 })}},
		{"problem alone", "collector unreachable\n",
			&Status{Problem: "collector unreachable", Warnings: []string{"no Connected Devices line"}}},
		{"unregistered", "GOOD\n0 Connected Devices\n2 Unregistered Devices\n* 192.0.2.9 first seen 2026-11-22T10:00:00.000000 (63.2s ago)\n*   192.0.2.10:2055, 2026-11-22T10:00:01Z\n",
			&Status{Unregistered: []Unregistered{
				{netip.MustParseAddr("192.0.2.9"), time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)},
				{netip.MustParseAddr("192.0.2.10"), time.Date(2026, 11, 22, 10, 0, 1, 0, time.UTC)},
			}}},
		{"proxy line", "GOOD\n0 Connected Devices\n0 Unregistered Devices\nProxy: name=edge-1 version=v1 listen=[::]:9995 started=2026-11-22T08:00:00.000000 uptime=1s future=x\n",
			&Status{ProxyName: "edge-1", Version: "v1", Listen: "[::]:9995", Started: time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseText(strings.NewReader(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			checkStatus(t, got, tc.want)
		})
	}
}

func TestParseWarnings(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"count mismatch", "GOOD\n3 Connected Devices\n" + kproxyLine + "\n0 Unregistered Devices\n", "3 Connected Devices announced, 1 lines follow"},
		{"unregistered count", "GOOD\n0 Connected Devices\n1 Unregistered Devices\n", "1 Unregistered Devices announced, 0 lines follow"},
		{"no unregistered line", "GOOD\n1 Connected Devices\n" + kproxyLine + "\n", "no Unregistered Devices line"},
		{"bad rate", kproxyText("0.118906", "fast"), `line 3: device 29118: Out1: strconv.ParseFloat: parsing "fast": invalid syntax`},
		{"bad source", kproxyText("192.168.255.2", "192.168.255.256"), `line 3: device 29118: source "192.168.255.256": not an address`},
		{"bad highwater", kproxyText("0, 0, 1", "0, x"), `line 3: device 29118: highwater "x": not a number`},
		{"bad time", kproxyText("2024-10-06T19", "2024-13-06T19"), `line 3: device 29118: Last seen: time "2024-13-06T19:25:37.233040": want 2006-01-02T15:04:05.000000`},
		{"bad ID", kproxyText("29118", "x29118"), `line 3: device ID "x29118" is not a number: line skipped`},
		{"bad unregistered", "GOOD\n0 Connected Devices\n1 Unregistered Devices\n* nowhere first seen never\n", `line 4: unregistered source "nowhere": not an address: line skipped`},
		{"unexpected line", "GOOD\nhello\n0 Connected Devices\n0 Unregistered Devices\n", `line 2: unexpected line "hello"`},
		{"second header", "GOOD\n0 Connected Devices\n0 Connected Devices\n0 Unregistered Devices\n", "line 3: second Connected Devices line ignored"},
		{"huge count", "GOOD\n99999999999999999999 Connected Devices\n0 Unregistered Devices\n", `line 2: device count "99999999999999999999": strconv.Atoi: parsing "99999999999999999999": value out of range`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseText(strings.NewReader(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			if !containsString(got.Warnings, tc.want) {
				t.Errorf("warnings %q, want one %q", got.Warnings, tc.want)
			}
		})
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestParseWarningsBounded(t *testing.T) {
	text := "GOOD\n0 Connected Devices\n" + strings.Repeat("junk\n", 1000)
	got, err := ParseText(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Warnings) != maxWarnings+1 || got.Warnings[maxWarnings] != "901 more warnings" {
		t.Errorf("%d warnings, last %q", len(got.Warnings), got.Warnings[len(got.Warnings)-1])
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		notHealth  bool
	}{
		{"empty", "", true},
		{"blank", " \n\r\n\t\n", true},
		{"binary", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", true},
		{"invalid UTF-8", "GO\xffOD\n0 Connected Devices\n", true},
		{"GOOD alone", "GOOD\n", true},
		{"GOOD then junk", "GOOD\nhello\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseText(strings.NewReader(tc.text))
			if err == nil {
				t.Fatalf("no error, got %+v", s)
			}
			if errors.Is(err, ErrNotHealthText) != tc.notHealth {
				t.Errorf("error %v: errors.Is(ErrNotHealthText) = %v", err, !tc.notHealth)
			}
		})
	}
}

// TestParseLarge reads past kproxy's monitor's 4 KB and up to the limit.
func TestParseLarge(t *testing.T) {
	const n = 5000
	var b strings.Builder
	fmt.Fprintf(&b, "GOOD\n%d Connected Devices\n", n)
	for i := range n {
		b.WriteString(strings.Replace(kproxyLine, "29118", fmt.Sprint(i+1), 1))
		b.WriteByte('\n')
	}
	b.WriteString("0 Unregistered Devices\n")
	s, err := ParseText(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Devices) != n || len(s.Warnings) != 0 || s.Devices[n-1].ID != n {
		t.Errorf("%d devices, warnings %q", len(s.Devices), s.Warnings)
	}

	_, err = ParseText(io.MultiReader(strings.NewReader("GOOD\n"), strings.NewReader(strings.Repeat(" ", MaxTextSize))))
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("got %v, want a size error", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestParseReadError(t *testing.T) {
	_, err := ParseText(errReader{})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("got %v, want the read error wrapped", err)
	}
}

// TestParseEntriesBounded checks that tiny lines cannot make more than
// MaxEntries devices.
func TestParseEntriesBounded(t *testing.T) {
	text := "GOOD\n0 Connected Devices\n" + strings.Repeat("*1\n", MaxEntries+10)
	s, err := ParseText(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Devices) != MaxEntries {
		t.Errorf("%d devices, want %d", len(s.Devices), MaxEntries)
	}
}

// BenchmarkParseText reads a 1000-device text made from kproxy's line.
func BenchmarkParseText(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("GOOD\n1000 Connected Devices\n")
	for i := range 1000 {
		sb.WriteString(strings.Replace(kproxyLine, "29118", fmt.Sprint(i+1), 1))
		sb.WriteByte('\n')
	}
	sb.WriteString("0 Unregistered Devices\n")
	text := sb.String()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseText(strings.NewReader(text)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteText writes 1000 devices like kproxy's.
func BenchmarkWriteText(b *testing.B) {
	s := &Status{}
	for i := range 1000 {
		d := kproxyDevice()
		d.ID = uint64(i + 1)
		s.Devices = append(s.Devices, d)
	}
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = AppendText(buf[:0], s, kproxyNow)
	}
	b.SetBytes(int64(len(buf)))
}
