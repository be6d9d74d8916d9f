package alert

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var t0 = time.Date(2024, 3, 9, 14, 5, 6, 123456789, time.FixedZone("CET", 3600))

func TestRFC5424(t *testing.T) {
	h := newHeader(3, "fc-1.example.net", "netpulse-ifwatch", 4242)
	for _, tc := range []struct {
		name string
		ev   Event
		want string
	}{
		{"minimal", Event{Time: t0, Severity: Warning, Message: "link down"},
			"<28>1 2024-03-09T13:05:06.123456Z fc-1.example.net netpulse-ifwatch 4242 - - link down"},
		{"no time no message", Event{Severity: Emergency},
			"<24>1 - fc-1.example.net netpulse-ifwatch 4242 - -"},
		{"msgid and sd", Event{Time: t0, Severity: Notice, MsgID: "ifup", Message: "up",
			SD: map[string][]Param{
				"ifwatch@32473": {{"exporter", "10.0.0.1"}, {"ifindex", "3"}},
				"meta":          {{"sequenceId", "7"}},
			}},
			`<29>1 2024-03-09T13:05:06.123456Z fc-1.example.net netpulse-ifwatch 4242 ifup [ifwatch@32473 exporter="10.0.0.1" ifindex="3"][meta sequenceId="7"] up`},
		{"escaping", Event{Time: t0, Severity: Info, SD: map[string][]Param{
			"x@32473": {{"q", `say "hi"`}, {"b", `C:\dir`}, {"r", "a]b"}, {"ok", "[=] ünï"}}}},
			`<30>1 2024-03-09T13:05:06.123456Z fc-1.example.net netpulse-ifwatch 4242 - [x@32473 q="say \"hi\"" b="C:\\dir" r="a\]b" ok="[=\] ünï"]`},
		{"non-ASCII message gets a BOM", Event{Time: t0, Severity: Info, Message: "débit nul"},
			"<30>1 2024-03-09T13:05:06.123456Z fc-1.example.net netpulse-ifwatch 4242 - - \ufeffdébit nul"},
		{"invalid UTF-8 replaced", Event{Time: t0, Severity: Info, Message: "a\xffb", SD: map[string][]Param{"x": {{"v", "\xfe"}}}},
			"<30>1 2024-03-09T13:05:06.123456Z fc-1.example.net netpulse-ifwatch 4242 - [x v=\"\ufffd\"] \ufeffa\ufffdb"},
		{"msgid sanitised", Event{Time: t0, Severity: Debug, MsgID: "proxy state change that is far too long"},
			"<31>1 2024-03-09T13:05:06.123456Z fc-1.example.net netpulse-ifwatch 4242 proxystatechangethatisfartoolong -"},
		{"bad sd names", Event{Time: t0, Severity: Debug, SD: map[string][]Param{
			`a b="c]`: {{"k=v", "1"}, {"ü", "2"}}, "": {{"lost", "x"}}}},
			`<31>1 2024-03-09T13:05:06.123456Z fc-1.example.net netpulse-ifwatch 4242 - [abc kv="1" _="2"]`},
		{"ids that sanitise alike merge", Event{Time: t0, Severity: Debug, SD: map[string][]Param{
			"a b": {{"x", "1"}}, "ab": {{"y", "2"}}}},
			`<31>1 2024-03-09T13:05:06.123456Z fc-1.example.net netpulse-ifwatch 4242 - [ab x="1" y="2"]`},
		{"empty element", Event{Time: t0, Severity: Debug, SD: map[string][]Param{"origin": nil}},
			`<31>1 2024-03-09T13:05:06.123456Z fc-1.example.net netpulse-ifwatch 4242 - [origin]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(appendRFC5424(nil, h, tc.ev)); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestSanitiseHeader(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"", 48, "-"},
		{"plain", 48, "plain"},
		{"with space\tand\nnewline", 48, "withspaceandnewline"},
		{"ünïcode-host", 255, "ncode-host"},
		{"\x00\x7f", 48, "-"},
		{strings.Repeat("a", 60), 48, strings.Repeat("a", 48)},
		{`!"#[]=~`, 32, `!"#[]=~`}, // all of PRINTUSASCII is fine in the header
	} {
		if got := printASCII(tc.in, tc.max); got != tc.want {
			t.Errorf("printASCII(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
	h := newHeader(0, "", "", 1)
	if h.hostname != "-" || h.appName != "-" || h.procID != "1" {
		t.Errorf("empty header fields: %+v", h)
	}
	for in, want := range map[string]string{
		`a b=c"d]e`:             "abcde",
		strings.Repeat("x", 40): strings.Repeat("x", 32),
		"é":                     "",
		"[ok@32473":             "[ok@32473", // '[' is allowed in an SD-NAME
	} {
		if got := sdName(in); got != want {
			t.Errorf("sdName(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"netpulse":              "netpulse",
		"a:b[c]":                "abc",
		":[]":                   "-",
		strings.Repeat("t", 40): strings.Repeat("t", 32),
	} {
		if got := tag(in); got != want {
			t.Errorf("tag(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRFC3164(t *testing.T) {
	h := newHeader(16, "fc-1", "netpulse", 77)
	ev := Event{Time: t0, Severity: Error, MsgID: "ignored", Message: "export stopped",
		SD: map[string][]Param{"x@32473": {{"if", `eth"0`}}}}
	stamp := t0.Local().Format(time.Stamp)
	want := "<131>" + stamp + ` fc-1 netpulse[77]: export stopped [x@32473 if="eth\"0"]`
	if got := string(appendRFC3164(nil, h, ev)); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	ev.Message, ev.SD = "no sd", nil
	want = "<131>" + stamp + " fc-1 netpulse[77]: no sd"
	if got := string(appendRFC3164(nil, h, ev)); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// The day is space-padded, as RFC 3164 §4.1.2 spells it.
	early := time.Date(2024, 1, 2, 3, 4, 5, 0, time.Local)
	if got := string(appendRFC3164(nil, h, Event{Time: early, Severity: Debug, Message: "m"})); !strings.HasPrefix(got, "<135>Jan  2 03:04:05 ") {
		t.Errorf("got %q", got)
	}
}

func TestOctetCounted(t *testing.T) {
	for _, msg := range []string{"", "x", "two\nlines", strings.Repeat("é", 300)} {
		framed := appendOctetCounted(nil, []byte(msg))
		n, rest, ok := strings.Cut(string(framed), " ")
		if !ok {
			t.Fatalf("%q: no space", framed)
		}
		if l, err := strconv.Atoi(n); err != nil || l != len(rest) || rest != msg {
			t.Errorf("framed %q: length %s, body %d bytes %q", framed, n, len(rest), rest)
		}
	}
	// Two frames back to back split at the counts, newlines and all.
	stream := appendOctetCounted(appendOctetCounted(nil, []byte("a\nb")), []byte("c d"))
	if got, want := string(stream), "3 a\nb3 c d"; got != want {
		t.Errorf("stream %q, want %q", got, want)
	}
}

func TestUDPTruncation(t *testing.T) {
	s, err := NewSyslog(SyslogConfig{Address: "127.0.0.1:9", Hostname: "h"}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("é", maxDatagram) // 2 bytes each
	msg := s.format(Event{Time: t0, Severity: Info, Message: long, SD: map[string][]Param{"x": {{"k", "v"}}}})
	if len(msg) > maxDatagram || len(msg) < maxDatagram-1 {
		t.Errorf("datagram of %d bytes, want %d (or one less at a rune boundary)", len(msg), maxDatagram)
	}
	if !utf8.Valid(msg) || !strings.Contains(string(msg), `[x k="v"] `+bom+"éé") {
		t.Errorf("truncated message lost its structure or UTF-8: %q…", msg[:80])
	}
	// A stream is not truncated.
	s, err = NewSyslog(SyslogConfig{Address: "127.0.0.1:9", Transport: "tcp"}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if msg := s.format(Event{Time: t0, Message: long}); len(msg) < len(long) {
		t.Errorf("tcp message cut to %d bytes", len(msg))
	}
}

// parseSD reads STRUCTURED-DATA back (RFC 5424 §6.3), undoing the
// PARAM-VALUE escapes: the other half of the round trip.
func parseSD(s string) (map[string][]Param, error) {
	if s == "-" {
		return nil, nil
	}
	sd := map[string][]Param{}
	for s != "" {
		if s[0] != '[' {
			return nil, fmt.Errorf("want '[' at %q", s)
		}
		s = s[1:]
		i := strings.IndexAny(s, " ]")
		if i < 1 {
			return nil, fmt.Errorf("no SD-ID at %q", s)
		}
		id := s[:i]
		if _, dup := sd[id]; dup {
			return nil, fmt.Errorf("SD-ID %q twice", id)
		}
		sd[id] = nil
		s = s[i:]
		for s != "" && s[0] == ' ' {
			eq := strings.Index(s, `="`)
			if eq < 2 {
				return nil, fmt.Errorf("no PARAM-NAME at %q", s)
			}
			name := s[1:eq]
			if sdName(name) != name {
				return nil, fmt.Errorf("bad PARAM-NAME %q", name)
			}
			s = s[eq+2:]
			var v strings.Builder
			for {
				if s == "" {
					return nil, errors.New("unterminated PARAM-VALUE")
				}
				c := s[0]
				if c == '\\' && len(s) > 1 && (s[1] == '"' || s[1] == '\\' || s[1] == ']') {
					v.WriteByte(s[1])
					s = s[2:]
					continue
				}
				if c == ']' {
					return nil, fmt.Errorf("unescaped ']' in PARAM-VALUE at %q", s)
				}
				s = s[1:]
				if c == '"' {
					break
				}
				v.WriteByte(c)
			}
			if !utf8.ValidString(v.String()) {
				return nil, fmt.Errorf("PARAM-VALUE %q is not UTF-8", v.String())
			}
			sd[id] = append(sd[id], Param{name, v.String()})
		}
		if s == "" || s[0] != ']' {
			return nil, fmt.Errorf("want ']' at %q", s)
		}
		s = s[1:]
	}
	return sd, nil
}

// FuzzSDRoundTrip checks that any SD-ID, name and value, once formatted,
// read back as the sanitised id and name and the same value (invalid
// UTF-8 replaced), and that the element never breaks out of its
// brackets. The seeds run as a plain test.
func FuzzSDRoundTrip(f *testing.F) {
	for _, s := range [][3]string{
		{"x@32473", "k", "v"},
		{"id", "name", `"]\`},
		{"id", "n", `\"`},
		{"id", "n", `\\]]`},
		{"a b", "c=d", "ü]\"[x=\"y\"]"},
		{"x", "", ""},
		{"x", "k", "end\\"},
		{"x", "k", "\xff\xfe"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, id, name, value string) {
		ev := map[string][]Param{id: {{name, value}, {"after", "z"}}}
		out := string(appendSD(nil, ev))
		got, err := parseSD(out)
		if err != nil {
			t.Fatalf("%q: %v", out, err)
		}
		var want map[string][]Param
		if sid := sdName(id); sid != "" {
			n := sdName(name)
			if n == "" {
				n = "_"
			}
			want = map[string][]Param{sid: {{n, strings.ToValidUTF8(value, "\ufffd")}, {"after", "z"}}}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("formatted %q\nread back %q\nwant      %q", out, got, want)
		}
	})
}
