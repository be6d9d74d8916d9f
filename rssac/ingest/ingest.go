// Package ingest loads the probes' result documents (package probe/result)
// into the RSSAC observation store (package rssac/rstore) and keeps every
// original in an archive of yyyymm folders, as the collector's RSSAC part
// (docs/rssac-ingest.md).
//
// Results arrive two ways, with the same checks and the same
// de-duplication:
//
//   - Handler: POST /api/v1/rssac/results, one gzip JSON document per run,
//     with a probe's bearer token (a token may only upload its own
//     vantage point's results);
//   - ImportDir: a drop folder that probes fill by rsync or SFTP, emptied
//     on a schedule.
//
// A run goes to the store first and its original to the archive after,
// through a temporary file renamed into place, so the archive never holds
// half a file, and a run the store refused as a duplicate changes nothing
// (except to put back an original the archive lost). The collector's
// watchdog (Watchdog) alerts when vantage points fall silent, when the
// zone archive stops growing and when the disk fills.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netpulse/netpulse/probe/result"
	"github.com/netpulse/netpulse/rssac"
	"github.com/netpulse/netpulse/rssac/rstore"
)

// Checker decides a correctness query: whether the response matches a
// zone first seen in the 48 hours before slot, and why not (package
// rssac/correct implements it). It is called for answered correctness
// queries only.
type Checker interface {
	Check(slot time.Time, q *result.Query) (rssac.Verdict, string)
}

// CheckerFunc adapts a function to Checker.
type CheckerFunc func(slot time.Time, q *result.Query) (rssac.Verdict, string)

// Check implements Checker.
func (f CheckerFunc) Check(slot time.Time, q *result.Query) (rssac.Verdict, string) {
	return f(slot, q)
}

// Config configures an Ingester. Zero fields take the defaults shown.
type Config struct {
	// ArchiveDir holds the originals, in yyyymm folders (by the run's
	// slot, UTC) under their conventional name (result.FileName).
	// Required; the collector's default is data_dir/rssac/originals.
	ArchiveDir string
	// RejectDir receives the drop-folder files ImportDir refuses, so that
	// they are not tried again. Required for ImportDir; the collector's
	// default is data_dir/rssac/rejected.
	RejectDir string
	// MaxBytes bounds one compressed document. Default
	// result.MaxFileBytes (64 MiB); a document also may not decompress
	// to more than result.MaxJSONBytes.
	MaxBytes int64
	// Settle is how long ImportDir leaves a file alone after its last
	// change, since SFTP writes a file in place. Default 30s.
	Settle time.Duration
}

// Default values.
const (
	DefaultSettle = 30 * time.Second
)

// Deps are what an Ingester uses and does not own.
type Deps struct {
	// Store receives the runs. Required.
	Store rstore.Store
	// Tokens maps each probe token to its vantage point's name (see
	// ReadTokens). The Handler refuses every upload without one.
	Tokens map[string]string
	// Checker decides correctness queries; nil leaves them Unchecked.
	Checker Checker
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Log receives what an operator may want to know; nil discards.
	Log *slog.Logger
}

// Ingester loads result documents. It is safe for concurrent use, and a
// prometheus.Collector of its own metrics (metrics.go).
type Ingester struct {
	cfg     Config
	store   rstore.Store
	tokens  []tokenEntry
	checker Checker
	now     func() time.Time
	log     *slog.Logger

	// seq numbers temporary files, so two loads of one run never share
	// one.
	seq atomic.Uint64
	m   metrics
	// importMu lets one ImportDir pass run at a time per folder.
	importMu sync.Map // dir → *sync.Mutex
}

// New checks cfg and returns an Ingester.
func New(cfg Config, deps Deps) (*Ingester, error) {
	if cfg.ArchiveDir == "" {
		return nil, errors.New("rssac ingest: no archive directory")
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = result.MaxFileBytes
	}
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultSettle
	}
	if deps.Store == nil {
		return nil, errors.New("rssac ingest: no store")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	in := &Ingester{cfg: cfg, store: deps.Store, checker: deps.Checker, now: deps.Now, log: deps.Log}
	for tok, vp := range deps.Tokens {
		if !ValidVP(vp) {
			return nil, fmt.Errorf("rssac ingest: token of vantage point %q: %s", vp, vpRule)
		}
		in.tokens = append(in.tokens, newTokenEntry(tok, vp))
	}
	in.m.init()
	return in, nil
}

// vpRE is what a vantage point's name may be: it becomes part of file
// names (result.FileName) and metric labels.
var vpRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

const vpRule = "want 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"

// ValidVP tells whether name may name a vantage point.
func ValidVP(name string) bool { return vpRE.MatchString(name) }

// Outcome is what became of one result document; the metrics count them.
type Outcome string

// Outcomes.
const (
	Stored         Outcome = "stored"          // in the store and the archive
	Duplicate      Outcome = "duplicate"       // the run was stored before; nothing changed
	Unauthorized   Outcome = "unauthorized"    // no or unknown token
	Forbidden      Outcome = "forbidden"       // the document is another vantage point's
	BadMethod      Outcome = "method"          // not a POST
	BadMediaType   Outcome = "media_type"      // Content-Type or Content-Encoding
	TooLarge       Outcome = "too_large"       // compressed or decompressed size over the limits
	BadGzip        Outcome = "bad_gzip"        // not gzip, or corrupt gzip
	BadDocument    Outcome = "bad_document"    // bad JSON, or a document that fails validation
	UnknownVersion Outcome = "unknown_version" // a schema version this collector does not read
	BadName        Outcome = "bad_name"        // missing, unsafe or wrong X-Netpulse-Result-Name
	StoreError     Outcome = "store_error"     // the store failed: retry
	ArchiveError   Outcome = "archive_error"   // writing the original failed: retry
)

var outcomes = [...]Outcome{Stored, Duplicate, Unauthorized, Forbidden, BadMethod, BadMediaType, TooLarge,
	BadGzip, BadDocument, UnknownVersion, BadName, StoreError, ArchiveError}

// Sources of documents, a label of the metrics.
const (
	SourceHTTP = "http"
	SourceDir  = "dir"
)

// Loaded is what a stored (or duplicate) document was.
type Loaded struct {
	VP           string    `json:"vp,omitempty"`
	Slot         time.Time `json:"slot,omitzero"`
	Observations int       `json:"observations,omitempty"`
	// Archived is the original's path under the archive directory,
	// "yyyymm/name".
	Archived string `json:"archived,omitempty"`
}

// load stores run (decoded from data) and archives data. The outcome is
// Stored, Duplicate, StoreError, ArchiveError, or BadDocument for a run
// the store refuses as invalid.
func (in *Ingester) load(ctx context.Context, run *result.Run, data []byte) (Loaded, Outcome, error) {
	obs := rssac.FromRun(run)
	for i := range run.Queries {
		q := &run.Queries[i]
		if q.Purpose == result.PurposeCorrectness && q.Answered() {
			obs[i].Verdict = in.check(run, q)
		}
	}
	key := rstore.RunKey{VP: run.VP, Slot: run.Slot}
	month, name := result.MonthDir(run.Slot), result.FileName(run.VP, run.Slot)
	ld := Loaded{VP: run.VP, Slot: run.Slot.UTC(), Observations: len(obs), Archived: month + "/" + name}
	// The original is written to a temporary file first: if the disk is
	// full, the run is not stored either and the probe keeps it.
	tmp, err := in.writeTemp(month, name, data)
	if err != nil {
		return ld, ArchiveError, err
	}
	err = in.store.AddRun(ctx, key, obs)
	switch {
	case errors.Is(err, rstore.ErrInvalid):
		// A document result.Validate passed and the store cannot keep
		// (a slot before 1970): retrying will not help.
		in.discard(tmp)
		return ld, BadDocument, err
	case errors.Is(err, rstore.ErrDuplicate):
		// Nothing changes, unless the archive lost this run's original
		// (a crash between the store and the rename): put it back.
		healed, herr := in.keepIfMissing(tmp, month, name)
		if herr != nil {
			in.log.Warn("rssac ingest: original of a stored run not archived", "run", key, "err", herr)
		}
		if healed {
			in.log.Info("rssac ingest: archived the original of a run stored before", "run", key)
		}
		return ld, Duplicate, nil
	case err != nil:
		in.discard(tmp)
		return ld, StoreError, err
	}
	in.m.observations.Add(uint64(len(obs)))
	for i := range obs {
		if obs[i].Kind == rssac.KindCorrectness {
			in.m.verdicts[obs[i].Verdict].Add(1)
		}
	}
	in.m.seen(run.VP, in.now(), run.Slot)
	if err := in.commit(tmp, month, name); err != nil {
		// Stored but not archived: the probe's retry (a duplicate) will
		// put the original in place.
		return ld, ArchiveError, err
	}
	return ld, Stored, nil
}

// check runs the Checker, which parses what a server sent: a panic there
// leaves the query Unchecked and is counted, never fatal.
func (in *Ingester) check(run *result.Run, q *result.Query) (v rssac.Verdict) {
	if in.checker == nil {
		return rssac.Unchecked
	}
	defer func() {
		if r := recover(); r != nil {
			in.m.checkerPanics.Add(1)
			in.log.Error("rssac ingest: correctness check panicked; query left unchecked", "vp", run.VP, "slot", run.Slot, "target", q.Target, "panic", r)
			v = rssac.Unchecked
		}
	}()
	v, why := in.checker.Check(run.Slot, q)
	if v == rssac.Incorrect {
		in.log.Debug("rssac ingest: incorrect response", "vp", run.VP, "slot", run.Slot, "target", q.Target, "qname", q.QName, "qtype", q.QType, "why", why)
	}
	if v > rssac.Incorrect {
		v = rssac.Unchecked
	}
	return v
}
