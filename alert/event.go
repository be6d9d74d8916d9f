// Package alert delivers netpulse's events and logs to the places
// operators watch: a syslog server (RFC 5424 or RFC 3164, over UDP, TCP or
// TLS), a webhook (JSON POST) and a rotating local file. ifwatch hands one
// Event to a Multi of all three; package logging ships every component's
// log records through a Syslog and a File.
//
// A Sender never blocks its caller on the network: Send formats the event
// at once and puts it on a bounded queue that a worker drains. When the
// queue is full the event is dropped and counted, so a slow or dead
// server costs log lines, never a stalled poll loop. Every event ends in
// exactly one of the Stats counters Sent, Dropped or Failed once Stop has
// returned.
package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Severity is a syslog severity (RFC 5424 §6.2.1), 0 the most severe.
type Severity uint8

// The eight syslog severities.
const (
	Emergency Severity = iota
	Alert
	Critical
	Error
	Warning
	Notice
	Info
	Debug
)

var severityNames = [...]string{"emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"}

// String returns the severity's name: emergency, alert, critical, error,
// warning, notice, info or debug.
func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return fmt.Sprintf("severity(%d)", s)
}

// MarshalText writes the severity by name, so JSON events read "warning"
// rather than 4.
func (s Severity) MarshalText() ([]byte, error) {
	if int(s) >= len(severityNames) {
		return nil, fmt.Errorf("alert: severity %d out of range 0-7", s)
	}
	return []byte(s.String()), nil
}

// UnmarshalText reads a severity name (or the syslog keywords emerg, crit,
// err, warn, info).
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseSeverity parses a severity name as String spells it, or its
// syslog.conf keyword (emerg, crit, err, warn).
func ParseSeverity(name string) (Severity, error) {
	n := strings.ToLower(name)
	for i, s := range severityNames {
		if n == s {
			return Severity(i), nil
		}
	}
	switch n {
	case "emerg", "panic":
		return Emergency, nil
	case "crit":
		return Critical, nil
	case "err":
		return Error, nil
	case "warn":
		return Warning, nil
	case "informational":
		return Info, nil
	}
	return 0, fmt.Errorf("severity %q: want emergency, alert, critical, error, warning, notice, info or debug", name)
}

// Facility is a syslog facility (RFC 5424 §6.2.1), kern (0) to local7 (23).
type Facility uint8

var facilityNames = [...]string{
	"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
	"uucp", "cron", "authpriv", "ftp", "ntp", "security", "console", "clock",
	"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
}

// String returns the facility's syslog.conf name (daemon, local0…).
func (f Facility) String() string {
	if int(f) < len(facilityNames) {
		return facilityNames[f]
	}
	return fmt.Sprintf("facility(%d)", f)
}

// ParseFacility parses a facility's syslog.conf name, as String spells it.
func ParseFacility(name string) (Facility, error) {
	n := strings.ToLower(name)
	for i, f := range facilityNames {
		if n == f {
			return Facility(i), nil
		}
	}
	return 0, fmt.Errorf("facility %q: want kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, ntp, security, console, clock or local0 to local7", name)
}

// Param is one SD-PARAM of an RFC 5424 structured-data element.
type Param struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Event is one thing worth telling an operator: an interface went down, a
// proxy came back, a log record. Syslog sends Time, Severity, MsgID,
// Message and SD; the webhook and the file write the whole event as JSON.
//
// Send does not keep the event: it formats (or marshals) it at once, so
// the caller may reuse its maps and slices when Send returns.
type Event struct {
	// Time is when it happened; the zero time means "now" at Send.
	Time time.Time `json:"time"`
	// Severity defaults to Emergency (0), so set it.
	Severity Severity `json:"severity"`
	// MsgID names the kind of event ("ifdown", "proxy-state"); syslog
	// keeps 32 printable ASCII characters of it.
	MsgID string `json:"msgid,omitempty"`
	// Message is the human-readable text.
	Message string `json:"message"`
	// SD is the structured data, keyed by SD-ID. Private SD-IDs take the
	// form name@enterprise-number ("ifwatch@32473"). Elements are sent
	// sorted by SD-ID; parameters keep their order, and a name may repeat.
	SD map[string][]Param `json:"sd,omitempty"`
	// Payload is any JSON-able value for the webhook and the file (the
	// monitor's Alert, ifwatch's transition); syslog does not send it.
	Payload any `json:"payload,omitempty"`
}

// Sender delivers events. Start starts its worker (ctx bounds only the
// start-up, not the worker's life); Send queues an event without blocking;
// Stop delivers what is queued until ctx ends, then drops the rest and
// reports how many were lost.
type Sender interface {
	Start(ctx context.Context) error
	Send(ev Event)
	Stop(ctx context.Context) error
}

// Deps are what senders take from their owner rather than build.
type Deps struct {
	// Log receives a sender's own delivery trouble, rate-limited to the
	// first failure after a success and the recovery after it. It must not
	// feed back into the same sender: package logging hands the syslog
	// sender a logger that writes to stderr and the file only. Nil
	// discards.
	Log *slog.Logger
	// Now is the clock for events without a time; nil is time.Now.
	Now func() time.Time
	// HTTPClient posts webhooks; nil is a client of its own.
	HTTPClient *http.Client
}

func (d Deps) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d Deps) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Stats counts a sender's events. Once Stop has returned, every event
// handed to Send is in exactly one of Sent, Dropped and Failed.
type Stats struct {
	// Sent events were written to the server's socket (syslog; TCP and
	// TLS cannot tell whether the server then kept them), answered 2xx
	// (webhook) or written to the file.
	Sent uint64
	// Dropped events were never attempted: the queue was full, Send came
	// after Stop, or Stop's deadline passed with them still queued.
	Dropped uint64
	// Failed events were attempted and given up: a syslog message that
	// failed to write three times, a webhook out of retries or refused
	// with a 4xx, a file write error, an event that does not marshal.
	Failed uint64
	// Errors counts failed attempts (dial, write, HTTP), each followed by
	// a retry after a backoff or by a Failed event.
	Errors uint64
}

// Multi sends each event to every sender in it, so ifwatch can hand one
// transition to syslog, a webhook and a file.
type Multi []Sender

// Start starts the senders in order; when one fails, those already
// started are stopped again.
func (m Multi) Start(ctx context.Context) error {
	for i, s := range m {
		if err := s.Start(ctx); err != nil {
			for j := i - 1; j >= 0; j-- {
				_ = m[j].Stop(ctx)
			}
			return err
		}
	}
	return nil
}

// Send gives ev, stamped once with the current time when it has none, to
// every sender.
func (m Multi) Send(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	for _, s := range m {
		s.Send(ev)
	}
}

// Stop stops the senders in reverse order, all of them even when one
// fails, and joins their errors.
func (m Multi) Stop(ctx context.Context) error {
	var errs []error
	for i := len(m) - 1; i >= 0; i-- {
		errs = append(errs, m[i].Stop(ctx))
	}
	return errors.Join(errs...)
}
