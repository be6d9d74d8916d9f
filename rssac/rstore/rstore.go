// Package rstore is the storage contract of the collector's RSSAC part:
// one row per DNS query a vantage point made (rssac.Observation), kept per
// run — one vantage point's 5-minute run, identified by RunKey — so that a
// run goes in whole or not at all, and a run already stored is refused
// (ErrDuplicate) rather than counted twice. The metrics read the
// observations of a week or a month back as a stream.
//
// Three engines implement Store: Memory (here, for tests and for
// collectors that keep nothing), DuckDB (store/duckdb, in the flow store's
// file) and ClickHouse (store/clickhouse, in the flow store's database).
// The shared suite in rssac/rstore/rstoretest proves each against the
// rules below.
package rstore

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/netpulse/netpulse/probe/result"
	"github.com/netpulse/netpulse/rssac"
)

// RunKey names one run: a vantage point and the start of the 5-minute
// interval it measured.
type RunKey struct {
	VP   string
	Slot time.Time
}

// String is the key as logs show it: "001@2026-10-01T00:05:00Z".
func (k RunKey) String() string { return k.VP + "@" + k.Slot.UTC().Format(time.RFC3339) }

// VPRuns sums up one vantage point's runs in a time range.
type VPRuns struct {
	VP string `json:"vp"`
	// Runs is the number of runs stored, Observations the number of
	// observations in them.
	Runs         int64 `json:"runs"`
	Observations int64 `json:"observations"`
	// First and Last are the slots of the earliest and latest run.
	First time.Time `json:"first_slot"`
	Last  time.Time `json:"last_slot"`
}

// Store keeps runs of observations. Every method is safe for concurrent
// use.
//
// Rules every engine keeps (rstoretest checks them):
//   - AddRun stores a run atomically: a reader sees all of its
//     observations or none. A run whose key is stored returns
//     ErrDuplicate and changes nothing, whatever its observations; so does
//     a second AddRun of the same key racing the first.
//   - A run may have no observations; it still counts in Runs.
//   - Every Observation field round-trips exactly (RTT to the
//     nanosecond); Slot comes back in UTC.
//   - Ranges are half-open, [from, to), on the run's slot.
type Store interface {
	// AddRun stores the observations of the run key. Every observation
	// must carry the key's VP and Slot (Check); the slot is the start of a
	// 5-minute interval.
	AddRun(ctx context.Context, key RunKey, obs []rssac.Observation) error
	// Observations streams the observations of the runs whose slot is in
	// [from, to), in no particular order. On an error it yields the error
	// (with a zero Observation) and stops. Breaking out of the loop early
	// releases what the stream holds.
	Observations(ctx context.Context, from, to time.Time) iter.Seq2[rssac.Observation, error]
	// Runs sums up, per vantage point, the runs whose slot is in
	// [from, to), sorted by VP.
	Runs(ctx context.Context, from, to time.Time) ([]VPRuns, error)
	// Close releases the store. Engines that live in the flow store
	// (DuckDB, ClickHouse) leave the closing to it.
	Close() error
}

// Errors of AddRun.
var (
	// ErrDuplicate: the run is already stored.
	ErrDuplicate = errors.New("rstore: run already stored")
	// ErrInvalid: the key or an observation breaks the rules of Check.
	ErrInvalid = errors.New("rstore: invalid run")
)

// The slots every engine keeps (ClickHouse's DateTime ends in 2106).
var (
	minSlot = time.Unix(0, 0)
	maxSlot = time.Date(2106, 1, 1, 0, 0, 0, 0, time.UTC)
)

// MaxVPLen bounds a vantage point's name, as result.Run.Validate does.
const MaxVPLen = 64

// Check tells whether obs may be stored as run key: a VP name, a slot at
// the start of a 5-minute interval from 1970 to 2105, and every observation of that VP and
// slot, with a family that fits a byte (4 or 6 in practice). Errors wrap
// ErrInvalid.
func Check(key RunKey, obs []rssac.Observation) error {
	if key.VP == "" || len(key.VP) > MaxVPLen {
		return fmt.Errorf("%w: vp %q: want 1 to %d bytes", ErrInvalid, key.VP, MaxVPLen)
	}
	if key.Slot.IsZero() || !key.Slot.Equal(result.SlotOf(key.Slot)) {
		return fmt.Errorf("%w: %s: slot is not the start of a 5-minute interval", ErrInvalid, key)
	}
	if key.Slot.Before(minSlot) || !key.Slot.Before(maxSlot) {
		return fmt.Errorf("%w: %s: slot outside 1970 to 2105", ErrInvalid, key)
	}
	for i := range obs {
		o := &obs[i]
		if o.VP != key.VP || !o.Slot.Equal(key.Slot) {
			return fmt.Errorf("%w: %s: observation %d is of %s@%s", ErrInvalid, key, i, o.VP, o.Slot.UTC().Format(time.RFC3339))
		}
		if o.Family < 0 || o.Family > 255 {
			return fmt.Errorf("%w: %s: observation %d: family %d", ErrInvalid, key, i, o.Family)
		}
	}
	return nil
}

// CheckRange refuses a range that is empty or reversed.
func CheckRange(from, to time.Time) error {
	if !from.Before(to) {
		return fmt.Errorf("rstore: range [%s, %s) is empty", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	}
	return nil
}

// Fail is the stream of a single error, for engines that fail before
// reading anything.
func Fail(err error) iter.Seq2[rssac.Observation, error] {
	return func(yield func(rssac.Observation, error) bool) { yield(rssac.Observation{}, err) }
}

// Collect reads a whole stream into a slice, for tests and small ranges.
func Collect(seq iter.Seq2[rssac.Observation, error]) ([]rssac.Observation, error) {
	var out []rssac.Observation
	for o, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, o)
	}
	return out, nil
}

// Values adapts a stream to the iter.Seq that rssac.Compute reads: it
// yields the observations and, on an error, stops and leaves the error in
// *errp, which the caller checks once the loop is over.
func Values(seq iter.Seq2[rssac.Observation, error], errp *error) iter.Seq[rssac.Observation] {
	return func(yield func(rssac.Observation) bool) {
		for o, err := range seq {
			if err != nil {
				*errp = err
				return
			}
			if !yield(o) {
				return
			}
		}
	}
}
