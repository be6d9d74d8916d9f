package alert

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Formatting only: bytes out, no I/O. The grammar is RFC 5424 §6:
//
//	SYSLOG-MSG = PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID
//	             SP MSGID SP STRUCTURED-DATA [SP MSG]

// Field lengths of the RFC 5424 header (§6.2) and of SD-NAME (§6.3).
const (
	maxHostname = 255
	maxAppName  = 48
	maxProcID   = 128
	maxMsgID    = 32
	maxSDName   = 32
	// maxTag is RFC 3164's TAG limit (§4.1.3).
	maxTag = 32
)

// header holds the fields a sender fills in once for all its messages.
type header struct {
	facility Facility
	hostname string // sanitised
	appName  string // sanitised
	procID   string // sanitised
}

func newHeader(f Facility, hostname, appName string, pid int) header {
	return header{
		facility: f,
		hostname: printASCII(hostname, maxHostname),
		appName:  printASCII(appName, maxAppName),
		procID:   printASCII(strconv.Itoa(pid), maxProcID),
	}
}

func (h header) pri(s Severity) int { return int(h.facility)*8 + int(s&7) }

// bom marks an RFC 5424 MSG as UTF-8 (§6.4). It is sent only when the
// message is not plain ASCII, which any receiver reads the same way
// (RFC 5424 allows MSG-ANY), so that ASCII logs do not carry three
// invisible bytes into every file on the server.
const bom = "\xef\xbb\xbf"

// appendRFC5424 appends ev as an RFC 5424 message. The timestamp is UTC
// with microseconds, the most TIME-SECFRAC allows (Go's RFC3339Nano has
// nine digits, which strict parsers reject).
func appendRFC5424(b []byte, h header, ev Event) []byte {
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(h.pri(ev.Severity)), 10)
	b = append(b, ">1 "...)
	if ev.Time.IsZero() || ev.Time.UTC().Year() > 9999 {
		b = append(b, '-')
	} else {
		b = ev.Time.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
	}
	b = append(b, ' ')
	b = append(b, h.hostname...)
	b = append(b, ' ')
	b = append(b, h.appName...)
	b = append(b, ' ')
	b = append(b, h.procID...)
	b = append(b, ' ')
	b = append(b, printASCII(ev.MsgID, maxMsgID)...)
	b = append(b, ' ')
	b = appendSD(b, ev.SD)
	if ev.Message != "" {
		b = append(b, ' ')
		if !isASCII(ev.Message) {
			b = append(b, bom...)
		}
		b = appendValidUTF8(b, ev.Message)
	}
	return b
}

// appendRFC3164 appends ev in the BSD format (RFC 3164 §4.1):
// "<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG", the time local as the
// format has no zone. It has no MSGID nor structured data, so the
// structured data follows the message in RFC 5424 notation rather than
// being lost.
func appendRFC3164(b []byte, h header, ev Event) []byte {
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(h.pri(ev.Severity)), 10)
	b = append(b, '>')
	b = ev.Time.Local().AppendFormat(b, time.Stamp)
	b = append(b, ' ')
	b = append(b, h.hostname...)
	b = append(b, ' ')
	b = append(b, tag(h.appName)...)
	b = append(b, '[')
	b = append(b, h.procID...)
	b = append(b, "]: "...)
	b = appendValidUTF8(b, ev.Message)
	if len(ev.SD) > 0 {
		if ev.Message != "" {
			b = append(b, ' ')
		}
		b = appendSD(b, ev.SD)
	}
	return b
}

// appendOctetCounted frames msg for a stream (RFC 6587 §3.4.1): its
// length in bytes, a space, the message. Unlike LF-terminated framing it
// carries messages with newlines intact.
func appendOctetCounted(b, msg []byte) []byte {
	b = strconv.AppendInt(b, int64(len(msg)), 10)
	b = append(b, ' ')
	return append(b, msg...)
}

// appendSD appends STRUCTURED-DATA: NILVALUE when empty, else the
// elements sorted by SD-ID. IDs and names are cut to the SD-NAME
// character set; two IDs that become equal are merged, as an SD-ID may
// occur only once in a message (§6.3.2).
func appendSD(b []byte, sd map[string][]Param) []byte {
	if len(sd) == 0 {
		return append(b, '-')
	}
	type element struct {
		id     string
		params []Param
	}
	els := make([]element, 0, len(sd))
	for id, ps := range sd {
		if id = sdName(id); id != "" {
			els = append(els, element{id, ps})
		}
	}
	if len(els) == 0 {
		return append(b, '-')
	}
	// Ids that sanitise alike are ordered by their first parameter, so
	// the output does not depend on map order.
	slices.SortFunc(els, func(x, y element) int {
		if c := cmp.Compare(x.id, y.id); c != 0 {
			return c
		}
		return cmp.Compare(firstName(x.params), firstName(y.params))
	})
	for i, el := range els {
		if i == 0 || els[i-1].id != el.id {
			if i > 0 {
				b = append(b, ']')
			}
			b = append(b, '[')
			b = append(b, el.id...)
		}
		for _, p := range el.params {
			name := sdName(p.Name)
			if name == "" {
				name = "_"
			}
			b = append(b, ' ')
			b = append(b, name...)
			b = append(b, '=', '"')
			b = appendSDValue(b, p.Value)
			b = append(b, '"')
		}
	}
	return append(b, ']')
}

func firstName(ps []Param) string {
	if len(ps) == 0 {
		return ""
	}
	return ps[0].Name + "=" + ps[0].Value
}

// appendSDValue appends a PARAM-VALUE (§6.3.3): UTF-8, with '"', '\' and
// ']' escaped by a backslash. A run of invalid UTF-8 becomes one U+FFFD.
func appendSDValue(b []byte, v string) []byte {
	if !utf8.ValidString(v) {
		v = strings.ToValidUTF8(v, "\uFFFD")
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '"' || c == '\\' || c == ']' {
			b = append(b, '\\')
		}
		b = append(b, v[i])
	}
	return b
}

// printASCII cuts s to a header field: PRINTUSASCII (33-126) only, at
// most max characters, NILVALUE "-" when nothing is left.
func printASCII(s string, max int) string {
	out := strings.Map(func(r rune) rune {
		if r < 33 || r > 126 {
			return -1
		}
		return r
	}, s)
	if len(out) > max {
		out = out[:max]
	}
	if out == "" {
		return "-"
	}
	return out
}

// sdName cuts s to an SD-NAME (§6.3.2): PRINTUSASCII except '=', SP, ']'
// and '"', at most 32 characters; "" when nothing is left.
func sdName(s string) string {
	out := strings.Map(func(r rune) rune {
		if r < 33 || r > 126 || r == '=' || r == ']' || r == '"' {
			return -1
		}
		return r
	}, s)
	if len(out) > maxSDName {
		out = out[:maxSDName]
	}
	return out
}

// tag cuts an app name to an RFC 3164 TAG: no ':', '[' or ']', which end
// the tag, at most 32 characters.
func tag(app string) string {
	out := strings.Map(func(r rune) rune {
		if r == ':' || r == '[' || r == ']' {
			return -1
		}
		return r
	}, app)
	if len(out) > maxTag {
		out = out[:maxTag]
	}
	if out == "" {
		return "-"
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func appendValidUTF8(b []byte, s string) []byte {
	if utf8.ValidString(s) {
		return append(b, s...)
	}
	return append(b, strings.ToValidUTF8(s, "\uFFFD")...)
}

// truncateMessage shortens ev.Message by at least cut bytes, at a rune
// boundary, so a datagram fits its limit.
func truncateMessage(msg string, cut int) string {
	n := len(msg) - cut
	if n <= 0 {
		return ""
	}
	for n > 0 && !utf8.RuneStart(msg[n]) {
		n--
	}
	return msg[:n]
}
