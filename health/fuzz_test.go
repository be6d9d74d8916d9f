package health

import (
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// canonical is s as ParseText reads it back from WriteText: names and
// other tokens sanitized, times in UTC truncated to microseconds, rates
// rounded to six decimals, zones and invalid addresses dropped, "-" read
// as empty, and no warnings.
func canonical(s *Status) *Status {
	c := &Status{
		ProxyName: token(s.ProxyName),
		Version:   token(s.Version),
		Listen:    token(s.Listen),
		Started:   canonTime(s.Started),
	}
	if s.Problem != "" {
		c.Problem = problemLine(s.Problem)
	}
	for _, d := range s.Devices {
		cd := Device{
			ID: d.ID, Name: token(d.Name), Tag: d.Tag,
			In1: canonRate(d.In1), Out1: canonRate(d.Out1), In15: canonRate(d.In15), Out15: canonRate(d.Out15),
			LastSeen: canonTime(d.LastSeen),
		}
		if t := targetToken(d.Target); t != none {
			cd.Target = t
		}
		for _, a := range d.Sources {
			if a.IsValid() {
				cd.Sources = append(cd.Sources, a.WithZone(""))
			}
		}
		if len(d.Highwater) > 0 {
			cd.Highwater = append([]int(nil), d.Highwater...)
		}
		if f := flowToken(d.FlowType); f != none {
			cd.FlowType = f
		}
		c.Devices = append(c.Devices, cd)
	}
	for _, u := range s.Unregistered {
		if u.Addr.IsValid() {
			c.Unregistered = append(c.Unregistered, Unregistered{u.Addr.WithZone(""), canonTime(u.FirstSeen)})
		}
	}
	return c
}

func canonTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

func canonRate(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 6, 64), 64)
	return v
}

// checkRoundTrip checks that ParseText reads WriteText's text of s back
// as canonical(s), without warnings, and that writing that again gives
// the same text.
func checkRoundTrip(t *testing.T, s *Status) {
	t.Helper()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	text := AppendText(nil, s, now)
	got, err := ParseText(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("ParseText(WriteText(s)): %v\ntext:\n%s", err, text)
	}
	if len(got.Warnings) > 0 {
		t.Fatalf("warnings %q\ntext:\n%s", got.Warnings, text)
	}
	if g, w := fmt.Sprintf("%#v", got), fmt.Sprintf("%#v", canonical(s)); g != w {
		t.Fatalf("round trip differs\ntext:\n%s\ngot:  %s\nwant: %s", text, g, w)
	}
	if again := AppendText(nil, got, now); !bytes.Equal(again, text) {
		t.Fatalf("second write differs\nfirst:\n%s\nsecond:\n%s", text, again)
	}
}

func TestRoundTrip(t *testing.T) {
	golden, _ := goldenStatus()
	golden.Problem = "collector down"
	odd := &Status{
		Problem: "GOOD",
		Devices: []Device{
			{ID: math.MaxUint64, Tag: math.MaxUint64, Name: "a:5", Target: "(x)", FlowType: "ip. fix.",
				In1: math.NaN(), Out1: math.Inf(1), In15: math.Inf(-1), Out15: -1e-9,
				LastSeen:  time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("X", 3600)),
				Sources:   []netip.Addr{{}, netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("::ffff:192.0.2.1")},
				Highwater: []int{-5, math.MaxInt64, math.MinInt64}},
			{Name: "\xff\x00 ->\u2028", Target: "-", FlowType: "-"},
			{Name: "x:", Target: "a b", In1: 1e300, Out1: 5e-7, LastSeen: time.Date(1, 1, 1, 0, 0, 0, 500, time.UTC)},
		},
		Unregistered: []Unregistered{{Addr: netip.MustParseAddr("fe80::2%1")}},
		ProxyName:    "=x y",
		Started:      time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for i, s := range []*Status{{}, {Problem: " "}, golden, odd, {Version: "v"}} {
		t.Run(strconv.Itoa(i), func(t *testing.T) { checkRoundTrip(t, s) })
	}
}

// FuzzRoundTrip builds statuses from fuzzed fields, within WriteText's
// domain (years 0 to 9999), and checks the round trip.
func FuzzRoundTrip(f *testing.F) {
	f.Add("", "edge-1", "collector:20012", "ipfix", uint64(1), uint64(0), 1.5, 2.25, int64(1e15), []byte{192, 0, 2, 1}, 3, "v1")
	f.Add("bad\nthing", "a b:7", "(", "..", uint64(0), uint64(9), math.NaN(), math.Copysign(0, -1), int64(-1), []byte{}, -1, "")
	f.Fuzz(func(t *testing.T, problem, name, target, flowType string, id, tag uint64, in, out float64, at int64, addr []byte, hw int, version string) {
		lo := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
		hi := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC).UnixMicro()
		when := time.UnixMicro(lo + int64(uint64(at)%uint64(hi-lo))).Add(time.Duration(uint64(at) % 1000))
		var a netip.Addr
		switch {
		case len(addr) >= 16:
			a = netip.AddrFrom16([16]byte(addr[:16]))
		case len(addr) >= 4:
			a = netip.AddrFrom4([4]byte(addr[:4]))
		}
		hws := make([]int, len(addr)%4)
		for i := range hws {
			hws[i] = hw * i
		}
		s := &Status{
			Problem: problem,
			Devices: []Device{
				{ID: id, Name: name, Tag: tag, Target: target, In1: in, Out1: out, In15: in / 3, Out15: out * 7,
					LastSeen: when, Sources: []netip.Addr{a, a}, Highwater: hws, FlowType: flowType},
				{ID: tag, Name: target, Target: name, FlowType: name},
			},
			Unregistered: []Unregistered{{Addr: a, FirstSeen: when}},
			ProxyName:    name,
			Version:      version,
			Listen:       target,
		}
		if at%2 == 0 {
			s.Started = when
		}
		checkRoundTrip(t, s)
	})
}

// FuzzParseText checks that ParseText never panics and that whatever it
// reads survives a write and a second parse.
func FuzzParseText(f *testing.F) {
	for _, name := range []string{"kproxy.txt", "kproxy-brief.txt", "netpulse.txt", "netpulse-problem.txt"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("down\n"))
	f.Add([]byte("GOOD\n0 Connected Devices\n1 Unregistered Devices\n* 192.0.2.1 first seen 2026-01-01T00:00:00Z\nProxy: name=a started=2026-01-01T00:00:00.000000\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseText(bytes.NewReader(data))
		if err != nil {
			return
		}
		checkRoundTrip(t, s)
	})
}

// Crashers and odd inputs found while fuzzing, kept as named tests.
func TestParseTextRegressions(t *testing.T) {
	for _, tc := range []struct{ name, text string }{
		{"header count with sign", "GOOD\n+1 Connected Devices\n0 Unregistered Devices\n"},
		{"arrow at end of line", "GOOD\n1 Connected Devices\n* 1:a ->\n0 Unregistered Devices\n"},
		{"unclosed rates", "GOOD\n1 Connected Devices\n* 1:a -> b (In1: 1\n0 Unregistered Devices\n"},
		{"year out of range after zone", "GOOD\n1 Connected Devices\n* 1:a -> b (In1: 1). Last seen 0000-01-01T00:00:00+01:00\n0 Unregistered Devices\n"},
		{"year 0", "GOOD\n0 Connected Devices\n1 Unregistered Devices\n* ::1 first seen 0000-01-01T00:00:00-01:00\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseText(strings.NewReader(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			checkRoundTrip(t, s)
		})
	}
}
