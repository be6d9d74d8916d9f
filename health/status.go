// Package health is the proxy's health check, served on TCP at the flow
// port plus one as kproxy does (flow on udp/9995, health on tcp/9996).
//
// A client that connects and sends nothing gets the health text, kproxy's
// layout, and the connection is closed: existing kproxy monitors work
// unchanged. A client that speaks HTTP on the same port gets /healthz,
// /readyz, /status (JSON), /metrics and / (the text). WriteText and
// ParseText are the two halves of the text format; ParseText also reads
// a real kproxy's output, so one monitor can watch both.
package health

import (
	"net/netip"
	"strings"
	"time"
	"unicode"
)

// Status is one answer of the health check.
type Status struct {
	// Problem is empty when all is well (the text's first line is then
	// GOOD); otherwise it names what is wrong, in one line.
	Problem string `json:"problem"`
	// Devices are the registered devices that send flow, kproxy's
	// "Connected Devices".
	Devices []Device `json:"devices"`
	// Unregistered are the sources that sent flow in the last 30 minutes
	// but belong to no registered device.
	Unregistered []Unregistered `json:"unregistered"`

	// ProxyName, Version, Listen and Started describe the proxy itself.
	// kproxy writes none of them; netpulse writes them on a last
	// "Proxy:" line, which kproxy monitors ignore. Empty when unknown.
	ProxyName string `json:"proxy_name,omitempty"`
	Version   string `json:"version,omitempty"`
	// Listen is the flow address the proxy receives on, e.g.
	// 0.0.0.0:9995.
	Listen string `json:"listen,omitempty"`
	// Started is when the proxy started; the text also shows the uptime
	// it makes at the time of writing.
	Started time.Time `json:"started,omitzero"`

	// Warnings are set by ParseText: what it skipped or could not read
	// (with line numbers). WriteText ignores them.
	Warnings []string `json:"warnings,omitempty"`
}

// Device is one registered device in the health check.
type Device struct {
	ID   uint64 `json:"id"`
	Name string `json:"name"`
	// Tag is kproxy's third number after the device ID and name (for
	// example 67661 in "29118:mgr-skg-cr01:67661"). Its meaning is not
	// documented, probably the company ID; it is kept as read, and
	// netpulse writes 0.
	Tag uint64 `json:"tag"`
	// Target is where the device's flow goes: for kproxy a local
	// address of its per-device worker, for netpulse the sinks it
	// forwards to, comma-separated host:port. Empty is written as "-".
	Target string `json:"target"`
	// In1 and In15 are flows per second received from the device,
	// averaged over the last 1 and 15 minutes; Out1 and Out15 are flows
	// per second forwarded to the sinks over the same windows, after
	// resampling. (kproxy's documentation calls them differences in
	// packet counts over the window; netpulse defines them as rates so
	// that the two windows can be compared.)
	In1   float64 `json:"in1"`
	Out1  float64 `json:"out1"`
	In15  float64 `json:"in15"`
	Out15 float64 `json:"out15"`
	// LastSeen is when the device last sent a datagram; zero if never.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Sources are the addresses the device's datagrams come from.
	Sources []netip.Addr `json:"sources"`
	// Highwater are the maximum lengths the device's internal queues
	// reached, in kproxy's "Channel highwater" order.
	Highwater []int `json:"highwater"`
	// FlowType is the export protocol, e.g. ipfix or netflow9.
	FlowType string `json:"flow_type"`
}

// Unregistered is a source that sends flow but belongs to no registered
// device. It has the fields of device.UnregisteredSource, so a list from
// the device registry converts element by element:
// health.Unregistered(src).
type Unregistered struct {
	Addr      netip.Addr `json:"addr"`
	FirstSeen time.Time  `json:"first_seen"`
}

// Good reports whether the status has no problem.
func (s *Status) Good() bool { return s.Problem == "" }

// none is how the text writes an empty target, list or flow type.
const none = "-"

// token returns s fit for a field of the text that a parser splits on
// white space: white space and control characters become '_', and
// invalid UTF-8 becomes U+FFFD. Device names, flow types and the
// Proxy: line's values pass through it.
func token(s string) string {
	return mapRunes(s, func(r rune) rune {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return '_'
		}
		return r
	})
}

// targetToken is token without parentheses, which would be taken for the
// start of the rates; no host:port list has them.
func targetToken(s string) string {
	s = mapRunes(token(s), func(r rune) rune {
		if r == '(' || r == ')' {
			return '_'
		}
		return r
	})
	if s == "" || s == none {
		return none
	}
	return s
}

// flowToken is the written form of a flow type: a token without trailing
// dots, which the parser would take for a sentence end.
func flowToken(s string) string {
	s = strings.TrimRight(token(s), ".")
	if s == "" {
		return none
	}
	return s
}

// problemLine is the written first line for a problem: one line of
// printable text that cannot be mistaken for GOOD.
func problemLine(p string) string {
	p = strings.TrimSpace(mapRunes(p, func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}))
	switch p {
	case "":
		return "NOT GOOD"
	case good:
		return "NOT GOOD: " + p
	}
	return p
}

// mapRunes is strings.Map that also maps invalid UTF-8 to U+FFFD.
func mapRunes(s string, f func(rune) rune) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s { // invalid bytes come as utf8.RuneError
		b.WriteRune(f(r))
	}
	return b.String()
}
