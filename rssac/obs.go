// Package rssac is the collector's RSSAC047 part: it turns the probes'
// result documents (package probe/result) into observations, computes the
// RSSAC047 v2 metrics per server and for the root server system, and
// renders the weekly and monthly reports. The zone archive and the
// correctness check live in rssac/zone and rssac/correct; storage in
// rssac/rstore; uploads, drop folders and the watchdog in rssac/ingest.
package rssac

import (
	"time"

	"github.com/netpulse/netpulse/probe/result"
)

// Kind says which metric family an observation feeds.
type Kind uint8

const (
	// KindSOA feeds availability, response latency and publication latency.
	KindSOA Kind = iota + 1
	// KindCorrectness feeds correctness.
	KindCorrectness
)

// Outcome is a query's result as the metrics see it.
type Outcome uint8

const (
	// Answered: a response with RCODE 0.
	Answered Outcome = iota + 1
	// RCodeError: a response with another RCODE (unavailable).
	RCodeError
	// Timeout: no response in time, or a connection error (RSSAC047 counts
	// both as timeouts, never as available).
	Timeout
)

// Verdict is a correctness query's verdict.
type Verdict uint8

const (
	// Unchecked: no zone in the archive could decide (or not a correctness
	// query).
	Unchecked Verdict = iota
	// Correct: the response matches a zone first seen in the prior 48 h and
	// its signatures validate.
	Correct
	// Incorrect: it matches no such zone, or a signature fails.
	Incorrect
)

// Observation is one query reduced to what the metrics need.
type Observation struct {
	// Slot is the start of the run's 5-minute interval (UTC).
	Slot time.Time
	VP   string
	// Server is the target identity (e.g. "a.root-servers.net").
	Server    string
	Address   string
	Transport string // "udp" or "tcp"
	Family    int    // 4 or 6
	Kind      Kind
	Outcome   Outcome
	// RTT is the response time; zero when Outcome is Timeout.
	RTT time.Duration
	// Serial is the SOA serial in the answer, when HasSerial.
	Serial    uint32
	HasSerial bool
	// Verdict is set for correctness queries that have been checked.
	Verdict Verdict
	// Retry marks a correctness query's TCP retry after truncation.
	Retry bool
}

// FromRun returns one observation per query of r. Correctness queries are
// returned Unchecked; the caller sets Verdict with package rssac/correct.
func FromRun(r *result.Run) []Observation {
	out := make([]Observation, 0, len(r.Queries))
	for i := range r.Queries {
		out = append(out, FromQuery(r.VP, r.Slot, &r.Queries[i]))
	}
	return out
}

// FromQuery reduces one query.
func FromQuery(vp string, slot time.Time, q *result.Query) Observation {
	o := Observation{
		Slot:      slot.UTC(),
		VP:        vp,
		Server:    q.Target,
		Address:   q.Address,
		Transport: q.Transport,
		Family:    q.Family,
		Kind:      KindSOA,
		Retry:     q.Retry,
	}
	if q.Purpose == result.PurposeCorrectness {
		o.Kind = KindCorrectness
	}
	switch {
	case !q.Answered():
		o.Outcome = Timeout
	case q.Response.RCode != 0:
		o.Outcome = RCodeError
		o.RTT = time.Duration(q.RTTMS * float64(time.Millisecond))
	default:
		o.Outcome = Answered
		o.RTT = time.Duration(q.RTTMS * float64(time.Millisecond))
	}
	if q.Response != nil && q.Response.HasSerial {
		o.Serial, o.HasSerial = q.Response.SOASerial, true
	}
	return o
}
