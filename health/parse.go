package health

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxTextSize is the most ParseText reads. kproxy's own monitor reads one
// 4 KB chunk and silently loses the rest; 16 MiB is a few hundred
// thousand device lines.
const MaxTextSize = 16 << 20

// MaxEntries bounds the devices plus unregistered sources ParseText
// keeps, so that 16 MiB of tiny lines cannot cost gigabytes. Real lines
// are long enough that MaxTextSize is reached first.
const MaxEntries = 1 << 17

// maxWarnings bounds Status.Warnings; the ones past it are counted in a
// last warning.
const maxWarnings = 100

// ErrNotHealthText is returned (wrapped) by ParseText when the input
// cannot be a health text at all.
var ErrNotHealthText = errors.New("not a health text")

var (
	// arrow separates a device's ID:name:tag from its target.
	arrow = regexp.MustCompile(`\s->(\s|$)`)
	// sentence ends one of the ". "-separated parts of a device line.
	sentence = regexp.MustCompile(`\.\s+`)
)

// ParseText reads a health text as WriteText or a real kproxy writes it,
// to EOF, at most MaxTextSize bytes.
//
// It is lenient where kproxy's output varies and records in
// Status.Warnings what it could not use:
//   - Line ends may be CRLF; blank lines and white space around lines and
//     fields are ignored; section headers are read case-insensitively and
//     "Device" or "Devices".
//   - In a device line, the target, the rates, Last seen, Sources,
//     Channel highwater and Flow may each be missing (they are then zero,
//     without a warning); parts after the rates may come in any order, and
//     parts or rate keys it does not know are ignored. A part that is
//     there but unreadable (a bad number, address or time) is zero and
//     warned about.
//   - Lists are separated by commas and/or spaces; "-" is an empty list
//     or target; a source written as addr:port gives the address. Times
//     are kproxy's zone-less UTC, or RFC 3339 with a zone.
//   - A device line without a numeric ID, or an unregistered line without
//     an address, is skipped with a warning.
//   - A count in a header that differs from the lines that follow, a
//     missing "Unregistered Devices" line, and lines it cannot place are
//     warned about.
//
// It returns an error only when the input is empty or longer than
// MaxTextSize, when its first non-blank line (the status) is not
// printable text, or when a GOOD status has no "Connected Devices" line
// (a truncated text must not read as healthy). A problem line alone is a
// valid status with a warning.
func ParseText(r io.Reader) (*Status, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxTextSize+1))
	if err != nil {
		return nil, fmt.Errorf("health: read text: %w", err)
	}
	if len(data) > MaxTextSize {
		return nil, fmt.Errorf("health: text longer than %d bytes", MaxTextSize)
	}
	return parse(string(data))
}

// Parser states: which line is expected next.
const (
	stStatus = iota
	stHeader
	stDevices
	stUnregistered
)

type parser struct {
	st      *Status
	line    int
	warned  int
	entries int
}

func (p *parser) warnf(format string, args ...any) {
	p.warned++
	if p.warned > maxWarnings {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if p.line > 0 {
		msg = fmt.Sprintf("line %d: %s", p.line, msg)
	}
	p.st.Warnings = append(p.st.Warnings, msg)
}

func parse(text string) (*Status, error) {
	p := &parser{st: &Status{}}
	st := p.st
	state := stStatus
	nConnected, nUnregistered := -1, -1 // from the headers
	devLines, unregLines := 0, 0
	proxySeen := false

	for i, raw := range strings.Split(text, "\n") {
		p.line = i + 1
		line := strings.TrimSpace(raw)
		if line == "" {
			continue
		}
		if state == stStatus {
			if !isText(line) {
				return nil, fmt.Errorf("health: line %d: status line is not printable text: %w", p.line, ErrNotHealthText)
			}
			if line != good {
				st.Problem = line
			}
			state = stHeader
			continue
		}
		if n, ok := p.header(line, "connected"); ok {
			if state != stHeader {
				p.warnf("second Connected Devices line ignored")
				continue
			}
			nConnected, state = n, stDevices
			continue
		}
		if n, ok := p.header(line, "unregistered"); ok {
			if state == stUnregistered {
				p.warnf("second Unregistered Devices line ignored")
				continue
			}
			if state == stHeader {
				p.warnf("Unregistered Devices before Connected Devices")
			}
			nUnregistered, state = n, stUnregistered
			continue
		}
		if rest, ok := cutPrefixFold(line, "Proxy:"); ok {
			if proxySeen {
				p.warnf("second Proxy line ignored")
				continue
			}
			proxySeen = true
			p.proxy(rest)
			continue
		}
		if rest, ok := strings.CutPrefix(line, "*"); ok {
			switch state {
			case stDevices:
				devLines++
				p.device(strings.TrimSpace(rest))
				continue
			case stUnregistered:
				unregLines++
				p.unregistered(strings.TrimSpace(rest))
				continue
			}
		}
		p.warnf("unexpected line %s", excerpt(line))
	}
	p.line = 0

	switch state {
	case stStatus:
		return nil, fmt.Errorf("health: empty text: %w", ErrNotHealthText)
	case stHeader:
		if st.Problem == "" {
			return nil, fmt.Errorf("health: GOOD without a Connected Devices line (truncated?): %w", ErrNotHealthText)
		}
		p.warnf("no Connected Devices line")
	case stDevices:
		p.warnf("no Unregistered Devices line")
	}
	if nConnected >= 0 && nConnected != devLines {
		p.warnf("%d Connected Devices announced, %d lines follow", nConnected, devLines)
	}
	if nUnregistered >= 0 && nUnregistered != unregLines {
		p.warnf("%d Unregistered Devices announced, %d lines follow", nUnregistered, unregLines)
	}
	if p.warned > maxWarnings {
		st.Warnings = append(st.Warnings, fmt.Sprintf("%d more warnings", p.warned-maxWarnings))
	}
	return st, nil
}

// header reads "N Connected Devices" (what is "connected") or "N
// Unregistered Devices". A count too large to read is -1, warned about.
func (p *parser) header(line, what string) (int, bool) {
	if line[0] < '0' || line[0] > '9' {
		return 0, false
	}
	f := strings.Fields(line)
	if len(f) != 3 || !strings.EqualFold(f[1], what) ||
		!(strings.EqualFold(f[2], "devices") || strings.EqualFold(f[2], "device")) ||
		strings.TrimLeft(f[0], "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		p.warnf("device count %s: %v", excerpt(f[0]), err)
		return -1, true
	}
	return n, true
}

// full reports, with a warning, that MaxEntries is reached.
func (p *parser) full() bool {
	if p.entries >= MaxEntries {
		p.warnf("more than %d entries: line skipped", MaxEntries)
		return true
	}
	p.entries++
	return false
}

// device reads a device line after its "*":
//
//	29118:mgr-skg-cr01:67661 -> 127.0.0.1:40014 (In1: 0.092757, ...). Last seen ... Flow: ipfix
func (p *parser) device(s string) {
	var head, target, tail string
	if loc := arrow.FindStringIndex(s); loc != nil {
		head = s[:loc[0]]
		after := strings.TrimLeftFunc(s[loc[1]:], unicode.IsSpace)
		j := strings.IndexFunc(after, func(r rune) bool { return r == '(' || unicode.IsSpace(r) })
		if j < 0 {
			j = len(after)
		}
		target, tail = after[:j], after[j:]
	} else {
		j := strings.IndexFunc(s, func(r rune) bool { return r == '(' || unicode.IsSpace(r) })
		if j < 0 {
			j = len(s)
		}
		head, tail = s[:j], s[j:]
	}

	var d Device
	idStr, rest, _ := strings.Cut(head, ":")
	id, err := strconv.ParseUint(strings.TrimSpace(idStr), 10, 64)
	if err != nil {
		p.warnf("device ID %s is not a number: line skipped", excerpt(idStr))
		return
	}
	if p.full() {
		return
	}
	d.ID = id
	name := rest
	if k := strings.LastIndexByte(rest, ':'); k >= 0 {
		if tag, err := strconv.ParseUint(strings.TrimSpace(rest[k+1:]), 10, 64); err == nil {
			d.Tag, name = tag, rest[:k]
		}
	}
	d.Name = strings.TrimSpace(name)
	if target != none {
		d.Target = target
	}

	tail = strings.TrimSpace(tail)
	if rates, ok := strings.CutPrefix(tail, "("); ok {
		if k := strings.IndexByte(rates, ')'); k >= 0 {
			rates, tail = rates[:k], rates[k+1:]
		} else {
			p.warnf("rates without a closing parenthesis")
			tail = ""
		}
		p.rates(rates, &d)
	}

	tail = strings.TrimLeft(tail, ". \t")
	for _, part := range sentence.Split(tail, -1) {
		part = strings.TrimSpace(part)
		if v, ok := cutPrefixFold(part, "Last seen"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				continue
			}
			t, err := parseTime(f[0])
			if err != nil {
				p.warnf("device %d: Last seen: %v", d.ID, err)
			}
			d.LastSeen = t
		} else if v, ok := cutPrefixFold(part, "Sources:"); ok {
			d.Sources = p.addrs(v, d.ID)
		} else if v, ok := cutPrefixFold(part, "Channel highwater:"); ok {
			d.Highwater = p.ints(v, d.ID)
		} else if v, ok := cutPrefixFold(part, "Flow:"); ok {
			v = strings.TrimRight(strings.TrimSpace(v), ".")
			if v != none {
				d.FlowType = v
			}
		}
	}
	p.st.Devices = append(p.st.Devices, d)
}

// rates reads "In1: 0.092757, Out1: 0.118906, In15: 0.090289, Out15: 0.145759".
func (p *parser) rates(s string, d *Device) {
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		k, v, ok := strings.Cut(part, ":")
		if !ok {
			p.warnf("device %d: rate %s without a name", d.ID, excerpt(part))
			continue
		}
		var dst *float64
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "in1":
			dst = &d.In1
		case "out1":
			dst = &d.Out1
		case "in15":
			dst = &d.In15
		case "out15":
			dst = &d.Out15
		default:
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			p.warnf("device %d: %s: %v", d.ID, strings.TrimSpace(k), err)
			continue
		}
		*dst = f
	}
}

// listFields splits a list on commas and white space, dropping a
// sentence's final dot and the "-" of an empty list.
func listFields(s string) []string {
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	out := f[:0]
	for _, x := range f {
		if x = strings.TrimRight(x, "."); x != "" && x != none {
			out = append(out, x)
		}
	}
	return out
}

func (p *parser) addrs(s string, id uint64) []netip.Addr {
	var out []netip.Addr
	for _, f := range listFields(s) {
		a, err := parseAddr(f)
		if err != nil {
			p.warnf("device %d: source %s: not an address", id, excerpt(f))
			continue
		}
		out = append(out, a)
	}
	return out
}

func (p *parser) ints(s string, id uint64) []int {
	var out []int
	for _, f := range listFields(s) {
		n, err := strconv.Atoi(f)
		if err != nil {
			p.warnf("device %d: highwater %s: not a number", id, excerpt(f))
			continue
		}
		out = append(out, n)
	}
	return out
}

// unregistered reads an unregistered source after its "*":
//
//	192.0.2.9 first seen 2026-11-22T10:00:00.000000 (63.200s ago)
//
// The time is the field after "seen" or else the first of the next few
// fields that reads as a time.
func (p *parser) unregistered(s string) {
	f := strings.Fields(s)
	if len(f) == 0 {
		p.warnf("unregistered source without an address: line skipped")
		return
	}
	a, err := parseAddr(strings.TrimRight(f[0], ",;."))
	if err != nil {
		p.warnf("unregistered source %s: not an address: line skipped", excerpt(f[0]))
		return
	}
	if p.full() {
		return
	}
	u := Unregistered{Addr: a}
	found := false
	for i := 1; i < len(f)-1; i++ {
		if strings.EqualFold(f[i], "seen") {
			t, err := parseTime(f[i+1])
			if err != nil {
				p.warnf("unregistered source %s: %v", a, err)
			}
			u.FirstSeen, found = t, true
			break
		}
	}
	for i := 1; i < len(f) && i <= maxTimeScan && !found; i++ {
		if c := f[i][0]; c >= '0' && c <= '9' {
			if t, err := parseTime(f[i]); err == nil {
				u.FirstSeen, found = t, true
			}
		}
	}
	p.st.Unregistered = append(p.st.Unregistered, u)
}

// maxTimeScan is how many fields after the address may hold an
// unregistered source's time when no "seen" precedes it.
const maxTimeScan = 8

// proxy reads netpulse's "Proxy:" line, space-separated key=value pairs.
// Unknown keys are ignored so that later versions can add some.
func (p *parser) proxy(s string) {
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "name":
			p.st.ProxyName = v
		case "version":
			p.st.Version = v
		case "listen":
			p.st.Listen = v
		case "started":
			t, err := parseTime(v)
			if err != nil {
				p.warnf("Proxy started: %v", err)
			}
			p.st.Started = t
		}
	}
}

// parseAddr reads an address, or the address of addr:port.
func parseAddr(s string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr(), nil
}

// zoneless is kproxy's time layout with optional fractional seconds.
const zoneless = "2006-01-02T15:04:05.999999999"

// parseTime reads kproxy's zone-less UTC time, an RFC 3339 time, or
// "never" (the zero time). Times are returned in UTC, and only years
// 0 to 9999, which WriteText can write back.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimRight(s, ".,;")
	if s == never {
		return time.Time{}, nil
	}
	t, err := time.Parse(zoneless, s)
	if err != nil {
		if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return time.Time{}, fmt.Errorf("time %s: want 2006-01-02T15:04:05.000000", excerpt(s))
		}
	}
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, fmt.Errorf("time %s: year out of range", excerpt(s))
	}
	return t, nil
}

// isText reports whether s is valid UTF-8 without control characters
// other than tab.
func isText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r != '\t' && unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// cutPrefixFold is strings.CutPrefix, ignoring ASCII case.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// excerpt quotes at most 40 bytes of s for a warning, so that warnings
// stay small whatever the input.
func excerpt(s string) string {
	const n = 40
	if len(s) > n {
		return strconv.Quote(s[:n]) + "..."
	}
	return strconv.Quote(s)
}
