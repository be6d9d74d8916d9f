// Package result is the probe's result document: one versioned JSON file,
// gzip-compressed, per vantage point and run. It is the contract between
// `netpulse probe` (which writes it) and the collector's rssac part (which
// loads it), documented field by field in docs/probe-results.md.
//
// The shape follows RIPE Atlas DNS results where they fit: each query
// records what was asked, of whom, over what, when, how long it took, and
// what came back — the header flags, NSID, every section as
// name/ttl/type/rdata, and the raw response (abuf, base64) so that a later
// check can re-validate exactly what the server sent.
package result

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Version is the schema version this build writes and reads. A reader
// refuses a document with a version it does not know.
const Version = 1

// Limits a reader enforces on outside input.
const (
	// MaxFileBytes bounds a compressed result file.
	MaxFileBytes = 8 << 20
	// MaxJSONBytes bounds a decompressed document.
	MaxJSONBytes = 32 << 20
	// MaxQueries bounds the queries in one run.
	MaxQueries = 100000
)

// Transports and families.
const (
	UDP = "udp"
	TCP = "tcp"
)

// Purposes of a query.
const (
	// PurposeSOA is the `./SOA` query sent to every server over every
	// transport and family each run: availability, latency and
	// publication latency are measured from it.
	PurposeSOA = "soa"
	// PurposeCorrectness is the one correctness query per server per run.
	PurposeCorrectness = "correctness"
)

// Run is one vantage point's run: every query and traceroute it made in
// one 5-minute interval.
type Run struct {
	// Version is the schema version (Version).
	Version int `json:"version"`
	// VP is the vantage point's id, e.g. "001".
	VP string `json:"vp"`
	// Slot is the start of the 5-minute interval this run measures
	// (a multiple of 5 minutes, UTC).
	Slot time.Time `json:"slot"`
	// Start and End are when the run actually began (after the random
	// delay) and finished.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Clock is the state of the vantage point's clock at Start.
	Clock Clock `json:"clock"`
	// Software names the writer, e.g. "netpulse 0.3.0".
	Software string `json:"software,omitempty"`
	// Queries holds every DNS query of the run, SOA and correctness.
	Queries []Query `json:"queries"`
	// Traces holds one traceroute per target address.
	Traces []Trace `json:"traces,omitempty"`
}

// Clock is whether the vantage point's clock was synchronised, as the
// kernel reports it (adjtimex): measurements from an unsynchronised clock
// can be set aside.
type Clock struct {
	Synced bool `json:"synced"`
	// MaxErrorUS and EstErrorUS are the kernel's maximum and estimated
	// error, microseconds.
	MaxErrorUS int64 `json:"max_error_us,omitempty"`
	EstErrorUS int64 `json:"est_error_us,omitempty"`
	// Source says how the state was read ("adjtimex", "unknown").
	Source string `json:"source,omitempty"`
}

// Query is one DNS query and its outcome.
type Query struct {
	// Target is the server's identity (e.g. "a.root-servers.net"); the
	// metrics are per Target.
	Target string `json:"target"`
	// Address is the IP address queried and Port its port (53 unless
	// configured).
	Address string `json:"address"`
	Port    int    `json:"port"`
	// Family is 4 or 6; Transport is "udp" or "tcp".
	Family    int    `json:"family"`
	Transport string `json:"transport"`
	// Purpose is PurposeSOA or PurposeCorrectness.
	Purpose string `json:"purpose"`
	// QName, QType (mnemonic, e.g. "SOA") and the EDNS settings sent.
	QName   string `json:"qname"`
	QType   string `json:"qtype"`
	DO      bool   `json:"do,omitempty"`
	BufSize int    `json:"bufsize,omitempty"`
	// Retry is true for the TCP query sent after a truncated UDP answer to
	// a correctness query.
	Retry bool `json:"retry,omitempty"`
	// Sent is when the query started: the UDP send, or the TCP connect.
	Sent time.Time `json:"sent"`
	// RTTMS is the time from Sent to the full response, milliseconds;
	// zero when there is no response.
	RTTMS float64 `json:"rtt_ms,omitempty"`
	// Timeout is true when no response came within the timeout. A
	// connection error (refused, unreachable, reset) is also a timeout for
	// the metrics; Error says which it was.
	Timeout bool   `json:"timeout,omitempty"`
	Error   string `json:"error,omitempty"`
	// Response, present when a response was received.
	Response *Response `json:"response,omitempty"`
}

// Response is what came back.
type Response struct {
	// RCode is the (extended) response code, numeric, and its mnemonic.
	RCode     int    `json:"rcode"`
	RCodeName string `json:"rcode_name"`
	// Flags holds the header flags that are set: "qr", "aa", "tc", "rd",
	// "ra", "ad", "cd".
	Flags []string `json:"flags"`
	// ID is the message id.
	ID uint16 `json:"id"`
	// NSID is the server's NSID option, hex as sent, and as text when it is
	// printable.
	NSIDHex  string `json:"nsid_hex,omitempty"`
	NSIDText string `json:"nsid,omitempty"`
	// Size is the response's size in bytes on the wire.
	Size int `json:"size"`
	// Sections, as name/ttl/type/rdata (rdata in presentation format).
	Answer     []RR `json:"answer,omitempty"`
	Authority  []RR `json:"authority,omitempty"`
	Additional []RR `json:"additional,omitempty"`
	// SOASerial is the serial of the SOA in the answer section, when there
	// is one (0 and HasSerial false otherwise).
	SOASerial uint32 `json:"soa_serial,omitempty"`
	HasSerial bool   `json:"has_serial,omitempty"`
	// ABuf is the raw response, base64 in JSON (as RIPE Atlas's abuf).
	ABuf []byte `json:"abuf,omitempty"`
}

// RR is one resource record in presentation form.
type RR struct {
	Name  string `json:"name"`
	TTL   uint32 `json:"ttl"`
	Class string `json:"class,omitempty"`
	Type  string `json:"type"`
	RData string `json:"rdata"`
}

// Trace is one traceroute.
type Trace struct {
	Target  string `json:"target"`
	Address string `json:"address"`
	Family  int    `json:"family"`
	// Method is "icmp", "udp" (built in) or "scamper".
	Method string    `json:"method"`
	Start  time.Time `json:"start"`
	Hops   []Hop     `json:"hops,omitempty"`
	// Reached is true when the destination answered.
	Reached bool   `json:"reached"`
	Error   string `json:"error,omitempty"`
}

// Hop is one TTL's replies.
type Hop struct {
	TTL int `json:"ttl"`
	// Replies, one per probe sent at this TTL; an empty Addr is a probe
	// that got no reply.
	Replies []HopReply `json:"replies"`
}

// HopReply is one probe's reply at a hop.
type HopReply struct {
	Addr  string  `json:"addr,omitempty"`
	RTTMS float64 `json:"rtt_ms,omitempty"`
}

// Interval is the measurement interval: runs happen every 5 minutes.
const Interval = 5 * time.Minute

// SlotOf returns the start of the interval t falls in.
func SlotOf(t time.Time) time.Time { return t.UTC().Truncate(Interval) }

// FileName is the conventional name of a run's file:
// "<vp>-<yyyymmddThhmm>.json.gz" (UTC slot).
func FileName(vp string, slot time.Time) string {
	return fmt.Sprintf("%s-%s.json.gz", vp, slot.UTC().Format("20060102T1504"))
}

// MonthDir is the yyyymm folder a run's file is kept in.
func MonthDir(slot time.Time) string { return slot.UTC().Format("200601") }

// Encode writes r as gzip-compressed JSON.
func Encode(w io.Writer, r *Run) error {
	if r.Version == 0 {
		r.Version = Version
	}
	zw := gzip.NewWriter(w)
	enc := json.NewEncoder(zw)
	if err := enc.Encode(r); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}

// Marshal returns r as gzip-compressed JSON.
func Marshal(r *Run) ([]byte, error) {
	var b bytes.Buffer
	if err := Encode(&b, r); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Errors a reader returns.
var (
	ErrVersion = errors.New("result: unknown schema version")
	ErrTooBig  = errors.New("result: document too large")
)

// Decode reads one gzip-compressed (or, if it does not start with the
// gzip magic, plain) JSON document and checks it (Validate).
func Decode(data []byte) (*Run, error) {
	if len(data) > MaxFileBytes {
		return nil, ErrTooBig
	}
	var rd io.Reader = bytes.NewReader(data)
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, fmt.Errorf("result: gzip: %w", err)
		}
		defer zr.Close()
		rd = zr
	}
	lr := &io.LimitedReader{R: rd, N: MaxJSONBytes + 1}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	var r Run
	if err := dec.Decode(&r); err != nil {
		if lr.N <= 0 {
			return nil, ErrTooBig
		}
		return nil, fmt.Errorf("result: %w", err)
	}
	if lr.N <= 0 {
		return nil, ErrTooBig
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks what a loader relies on.
func (r *Run) Validate() error {
	if r.Version != Version {
		return fmt.Errorf("%w: %d (this build reads %d)", ErrVersion, r.Version, Version)
	}
	if r.VP == "" || len(r.VP) > 64 {
		return errors.New("result: vp missing or longer than 64 bytes")
	}
	if r.Slot.IsZero() || !r.Slot.Equal(SlotOf(r.Slot)) {
		return fmt.Errorf("result: slot %s is not the start of a 5-minute interval", r.Slot.Format(time.RFC3339))
	}
	if len(r.Queries) > MaxQueries {
		return fmt.Errorf("result: %d queries (at most %d)", len(r.Queries), MaxQueries)
	}
	for i := range r.Queries {
		q := &r.Queries[i]
		if q.Target == "" || len(q.Target) > 255 {
			return fmt.Errorf("result: query %d: target missing or too long", i)
		}
		if q.Family != 4 && q.Family != 6 {
			return fmt.Errorf("result: query %d: family %d (want 4 or 6)", i, q.Family)
		}
		if q.Transport != UDP && q.Transport != TCP {
			return fmt.Errorf("result: query %d: transport %q (want udp or tcp)", i, q.Transport)
		}
		if q.Purpose != PurposeSOA && q.Purpose != PurposeCorrectness {
			return fmt.Errorf("result: query %d: purpose %q", i, q.Purpose)
		}
		if q.RTTMS < 0 || q.RTTMS > 3600e3 {
			return fmt.Errorf("result: query %d: rtt_ms %g out of range", i, q.RTTMS)
		}
		if q.Timeout && q.Response != nil {
			return fmt.Errorf("result: query %d: both a timeout and a response", i)
		}
	}
	return nil
}

// Answered reports whether q got a response (it did not time out or fail
// to connect).
func (q *Query) Answered() bool { return !q.Timeout && q.Error == "" && q.Response != nil }

// Available reports whether q counts as available under RSSAC047: a
// response with RCODE 0 (NOERROR). A timeout or connection error never
// does.
func (q *Query) Available() bool { return q.Answered() && q.Response.RCode == 0 }
