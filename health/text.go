package health

import (
	"fmt"
	"io"
	"strconv"
	"time"
)

// good is the whole first line of a healthy status.
const good = "GOOD"

// timeLayout is kproxy's timestamp: UTC without a zone, in microseconds.
const timeLayout = "2006-01-02T15:04:05.000000"

// never is written for a zero time.
const never = "never"

// WriteText writes s in kproxy's health-check layout, with ages computed
// at now:
//
//	GOOD
//	1 Connected Devices
//	* 101:edge-ams-1:0 -> collector:20012 (In1: 1520.250000, Out1: 1520.250000, In15: 1498.731111, Out15: 1498.731111). Last seen 2026-11-22T10:00:59.512000 (0.488s ago). Sources: 192.0.2.1, 2001:db8::1. Channel highwater: 12, 0. Flow: ipfix
//	1 Unregistered Devices
//	* 192.0.2.9 first seen 2026-11-22T09:59:56.800000 (63.200s ago)
//	Proxy: name=edge-1 version=v0.4.0 listen=0.0.0.0:9995 started=2026-11-22T08:00:00.000000 uptime=7260.000s
//
// Times are UTC in microseconds (truncated), ages are seconds with
// milliseconds, rates have six decimals, as kproxy writes them. Names,
// flow types and the Proxy: values are written as one token each (white
// space and control characters become '_'); an empty target, list or flow
// type is written "-"; addresses without a zone; invalid addresses are left
// out. The Proxy: line, netpulse's own, is written only when one of its
// values is set, and its empty values are left out. A non-empty Problem
// is written on one line and never as GOOD. ParseText reads all of it back.
func WriteText(w io.Writer, s *Status, now time.Time) error {
	if _, err := w.Write(AppendText(nil, s, now)); err != nil {
		return fmt.Errorf("health: write text: %w", err)
	}
	return nil
}

// AppendText appends what WriteText writes to b.
func AppendText(b []byte, s *Status, now time.Time) []byte {
	if s == nil {
		s = &Status{}
	}
	if s.Problem == "" {
		b = append(b, good...)
	} else {
		b = append(b, problemLine(s.Problem)...)
	}
	b = append(b, '\n')

	b = strconv.AppendInt(b, int64(len(s.Devices)), 10)
	b = append(b, " Connected Devices\n"...)
	for i := range s.Devices {
		b = appendDevice(b, &s.Devices[i], now)
	}

	n := 0
	for _, u := range s.Unregistered {
		if u.Addr.IsValid() {
			n++
		}
	}
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, " Unregistered Devices\n"...)
	for _, u := range s.Unregistered {
		if !u.Addr.IsValid() {
			continue
		}
		b = append(b, "* "...)
		b = u.Addr.WithZone("").AppendTo(b)
		b = append(b, " first seen "...)
		b = appendTimeAge(b, u.FirstSeen, now)
		b = append(b, '\n')
	}

	return appendProxy(b, s, now)
}

func appendDevice(b []byte, d *Device, now time.Time) []byte {
	b = append(b, "* "...)
	b = strconv.AppendUint(b, d.ID, 10)
	b = append(b, ':')
	b = append(b, token(d.Name)...)
	b = append(b, ':')
	b = strconv.AppendUint(b, d.Tag, 10)
	b = append(b, " -> "...)
	b = append(b, targetToken(d.Target)...)
	b = append(b, " (In1: "...)
	b = appendRate(b, d.In1)
	b = append(b, ", Out1: "...)
	b = appendRate(b, d.Out1)
	b = append(b, ", In15: "...)
	b = appendRate(b, d.In15)
	b = append(b, ", Out15: "...)
	b = appendRate(b, d.Out15)
	b = append(b, "). Last seen "...)
	b = appendTimeAge(b, d.LastSeen, now)
	b = append(b, ". Sources: "...)
	n := 0
	for _, a := range d.Sources {
		if !a.IsValid() {
			continue
		}
		if n > 0 {
			b = append(b, ", "...)
		}
		b = a.WithZone("").AppendTo(b)
		n++
	}
	if n == 0 {
		b = append(b, none...)
	}
	b = append(b, ". Channel highwater: "...)
	for i, h := range d.Highwater {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendInt(b, int64(h), 10)
	}
	if len(d.Highwater) == 0 {
		b = append(b, none...)
	}
	b = append(b, ". Flow: "...)
	b = append(b, flowToken(d.FlowType)...)
	return append(b, '\n')
}

// appendRate writes a rate with six decimals; NaN and infinities as
// strconv spells them, which ParseFloat reads back.
func appendRate(b []byte, f float64) []byte {
	return strconv.AppendFloat(b, f, 'f', 6, 64)
}

// appendTimeAge writes "2024-10-06T19:25:37.233040 (17.385s ago)", or
// "never" for the zero time.
func appendTimeAge(b []byte, t, now time.Time) []byte {
	// A time within the zero time's first microsecond would be written
	// as the zero time, which reads back as never.
	if t.Truncate(time.Microsecond).IsZero() {
		return append(b, never...)
	}
	b = t.UTC().AppendFormat(b, timeLayout)
	b = append(b, " ("...)
	b = appendSeconds(b, now.Sub(t))
	return append(b, " ago)"...)
}

// appendSeconds writes d as seconds with milliseconds, "17.385s".
func appendSeconds(b []byte, d time.Duration) []byte {
	b = strconv.AppendFloat(b, d.Seconds(), 'f', 3, 64)
	return append(b, 's')
}

// appendProxy writes netpulse's "Proxy:" line when there is anything to
// say.
func appendProxy(b []byte, s *Status, now time.Time) []byte {
	kv := [...]struct{ k, v string }{
		{"name", token(s.ProxyName)},
		{"version", token(s.Version)},
		{"listen", token(s.Listen)},
	}
	if kv[0].v == "" && kv[1].v == "" && kv[2].v == "" && s.Started.Truncate(time.Microsecond).IsZero() {
		return b
	}
	b = append(b, "Proxy:"...)
	for _, e := range kv {
		if e.v == "" {
			continue
		}
		b = append(b, ' ')
		b = append(b, e.k...)
		b = append(b, '=')
		b = append(b, e.v...)
	}
	if !s.Started.Truncate(time.Microsecond).IsZero() {
		b = append(b, " started="...)
		b = s.Started.UTC().AppendFormat(b, timeLayout)
		b = append(b, " uptime="...)
		b = appendSeconds(b, now.Sub(s.Started))
	}
	return append(b, '\n')
}
