package health

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netpulse/netpulse/device"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// The registry's list converts to ours element by element.
var _ = Unregistered(device.UnregisteredSource{})

// kproxyLine is a device line captured from a real kproxy.
const kproxyLine = "* 29118:mgr-skg-cr01:67661 -> 127.0.0.1:40014 (In1: 0.092757, Out1: 0.118906, In15: 0.090289, Out15: 0.145759). Last seen 2024-10-06T19:25:37.233040 (17.385s ago). Sources: 192.168.255.2. Channel highwater: 0, 0, 1. Flow: ipfix"

// kproxyDevice is kproxyLine's device.
func kproxyDevice() Device {
	return Device{
		ID: 29118, Name: "mgr-skg-cr01", Tag: 67661, Target: "127.0.0.1:40014",
		In1: 0.092757, Out1: 0.118906, In15: 0.090289, Out15: 0.145759,
		LastSeen:  time.Date(2024, 10, 6, 19, 25, 37, 233040000, time.UTC),
		Sources:   []netip.Addr{netip.MustParseAddr("192.168.255.2")},
		Highwater: []int{0, 0, 1},
		FlowType:  "ipfix",
	}
}

// kproxyNow is when kproxyLine was written: 17.385s after Last seen.
var kproxyNow = time.Date(2024, 10, 6, 19, 25, 54, 618040000, time.UTC)

// TestWriteTextKproxyLayout writes kproxy's captured line byte for byte.
func TestWriteTextKproxyLayout(t *testing.T) {
	s := &Status{Devices: []Device{kproxyDevice()}}
	got := string(AppendText(nil, s, kproxyNow))
	want := "GOOD\n1 Connected Devices\n" + kproxyLine + "\n0 Unregistered Devices\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// goldenStatus exercises every field WriteText writes.
func goldenStatus() (*Status, time.Time) {
	now := time.Date(2026, 11, 22, 10, 1, 0, 0, time.UTC)
	return &Status{
		Devices: []Device{
			{
				ID: 101, Name: "edge-ams-1", Target: "collector.example.net:20012,kafka-1:9092",
				In1: 1520.25, Out1: 1520.25, In15: 1498.7311111, Out15: 749.36555555,
				LastSeen:  now.Add(-488 * time.Millisecond),
				Sources:   []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")},
				Highwater: []int{12, 0},
				FlowType:  "ipfix",
			},
			{
				// Never seen, nothing known, a name with a space.
				ID: 102, Name: "core router", Tag: 7,
			},
		},
		Unregistered: []Unregistered{
			{Addr: netip.MustParseAddr("192.0.2.9"), FirstSeen: now.Add(-63200 * time.Millisecond)},
			{Addr: netip.MustParseAddr("2001:db8::9"), FirstSeen: now.Add(-29 * time.Minute)},
			{}, // invalid: left out
		},
		ProxyName: "edge-1",
		Version:   "v0.4.0",
		Listen:    "0.0.0.0:9995",
		Started:   now.Add(-2*time.Hour - time.Minute),
	}, now
}

func TestWriteTextGolden(t *testing.T) {
	s, now := goldenStatus()
	var buf bytes.Buffer
	if err := WriteText(&buf, s, now); err != nil {
		t.Fatal(err)
	}
	golden(t, "netpulse.txt", buf.Bytes())

	s.Problem = "no route to collector.example.net:20012\n(dial timeout)"
	buf.Reset()
	if err := WriteText(&buf, s, now); err != nil {
		t.Fatal(err)
	}
	golden(t, "netpulse-problem.txt", buf.Bytes())
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update and review the diff)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestWriteTextEmpty(t *testing.T) {
	for _, s := range []*Status{nil, {}} {
		got := string(AppendText(nil, s, time.Time{}))
		if want := "GOOD\n0 Connected Devices\n0 Unregistered Devices\n"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// A problem is one line and never reads as GOOD.
func TestWriteTextProblemLine(t *testing.T) {
	for _, tc := range []struct{ problem, want string }{
		{"collector unreachable", "collector unreachable"},
		{"two\nlines\r\n", "two lines"},
		{"  padded\t", "padded"},
		{" ", "NOT GOOD"},
		{"\n", "NOT GOOD"},
		{"GOOD", "NOT GOOD: GOOD"},
		{" GOOD\n", "NOT GOOD: GOOD"},
		{"bad \xff byte", "bad \uFFFD byte"},
	} {
		got := string(AppendText(nil, &Status{Problem: tc.problem}, time.Time{}))
		first, _, _ := strings.Cut(got, "\n")
		if first != tc.want {
			t.Errorf("Problem %q: first line %q, want %q", tc.problem, first, tc.want)
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestWriteTextError(t *testing.T) {
	err := WriteText(failWriter{}, &Status{}, time.Time{})
	if err == nil || !strings.Contains(err.Error(), "health: write text") {
		t.Errorf("got %v, want a wrapped write error", err)
	}
}
