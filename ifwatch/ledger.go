package ifwatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// OutageID identifies an outage in its ledger. The ledger assigns it; 0
// is never a valid ID.
type OutageID uint64

// Outage is one period during which a key was down.
//
// Start and End bound the downtime that is counted: [Start, End). They
// are set from the observations, not from when the watcher noticed: Start
// is the last traffic seen before a silence (or when the key was first
// seen, for a key never seen with traffic), or the time of the oper-down
// report; End is the first traffic of the run that brought the key back.
// OpenedAt and ClosedAt are when the watcher confirmed each, by its clock:
// they come later (down_after, hold), and are what "went down in the
// last 10 minutes" also looks at, so a report run every 10 minutes never
// misses an outage confirmed just after the previous run.
type Outage struct {
	ID  OutageID
	Key Key
	// Start is when the key went down; End when it came back, the zero
	// time while the outage is open.
	Start, End time.Time
	// Source is the source that saw it: the one that last saw traffic and
	// then went silent or reported zero, or the counters source that
	// reported oper-down.
	Source Source
	Cause  Cause
	// OpenedAt and ClosedAt are when the watcher confirmed the outage and
	// its end; ClosedAt is zero while open.
	OpenedAt, ClosedAt time.Time
}

// IsOpen tells whether the outage is still open.
func (o Outage) IsOpen() bool { return o.End.IsZero() }

// Duration is End - Start, or now - Start while open.
func (o Outage) Duration(now time.Time) time.Duration {
	if o.IsOpen() {
		return now.Sub(o.Start)
	}
	return o.End.Sub(o.Start)
}

// KnownKey is a key and when it was first seen. Availability of a key is
// counted from then (see Downtime), so this is kept in the ledger with
// the outages and survives restarts.
type KnownKey struct {
	Key       Key
	FirstSeen time.Time
}

// Errors of a Ledger. Implementations return them (possibly wrapped) so
// that callers can tell them with errors.Is.
var (
	// ErrOpenExists: Open for a key that already has an open outage.
	ErrOpenExists = errors.New("ifwatch: the key already has an open outage")
	// ErrNotFound: Close of an ID the ledger does not have.
	ErrNotFound = errors.New("ifwatch: no such outage")
	// ErrClosed: Close of an outage already closed.
	ErrClosed = errors.New("ifwatch: outage already closed")
	// ErrInvalid: an outage or key that cannot be stored (no exporter
	// address, zero Start, End before Start).
	ErrInvalid = errors.New("ifwatch: invalid outage or key")
)

// Ledger is the durable record of outages and of the keys ever seen. The
// watcher writes it; reports read it, from the same process or another.
// This package has an in-memory one (MemLedger); the durable ones
// (DuckDB, ClickHouse) belong in the store packages, and package
// ifwatch/ledgertest checks any implementation against the rules below.
//
// A Ledger must be safe for concurrent use. All times are absolute
// instants: an implementation may store them in UTC and at microsecond
// precision or better (the watcher's times are as precise as its clock
// and the sources'; round-tripping must not move an instant by more
// than a microsecond).
type Ledger interface {
	// Open records a new open outage and returns it with its ID set.
	// o.ID is ignored; o.Key must be valid, o.Start set, and o.End and
	// o.ClosedAt zero. A key has at most one open outage: Open for a key
	// that has one fails with ErrOpenExists and records nothing.
	Open(ctx context.Context, o Outage) (Outage, error)
	// Close sets the End and ClosedAt of the open outage id. It fails
	// with ErrNotFound for an unknown id, ErrClosed for an outage already
	// closed (and leaves it as it was), and ErrInvalid when end is
	// before the outage's Start.
	Close(ctx context.Context, id OutageID, end, closedAt time.Time) error
	// Overlapping returns the outages, open and closed, that touch the
	// range [from, to): those whose downtime [Start, End) overlaps it
	// (an open outage's downtime runs on without end: Start < to is
	// enough), and those opened or closed within it (OpenedAt or
	// ClosedAt in [from, to)). Ordered by Start, then ID.
	Overlapping(ctx context.Context, from, to time.Time) ([]Outage, error)
	// OpenOutages returns every open outage, ordered by Start, then ID.
	OpenOutages(ctx context.Context) ([]Outage, error)
	// AddKeys records keys as known from FirstSeen. A key already known
	// keeps the earlier of its two FirstSeen times. Keys with an invalid
	// exporter address are refused with ErrInvalid, and none of the
	// batch is recorded.
	AddKeys(ctx context.Context, keys []KnownKey) error
	// Keys returns every known key, ordered by Key.Compare.
	Keys(ctx context.Context) ([]KnownKey, error)
}

// EarliestKeys checks keys and returns one entry per key with its earliest
// FirstSeen, in the order keys first appear: the first step of every
// Ledger's AddKeys. A key with an invalid exporter address fails the whole
// batch with ErrInvalid.
func EarliestKeys(keys []KnownKey) ([]KnownKey, error) {
	at := make(map[Key]int, len(keys))
	out := make([]KnownKey, 0, len(keys))
	for _, k := range keys {
		if !k.Key.Exporter.IsValid() {
			return nil, fmt.Errorf("%w: key with no exporter address", ErrInvalid)
		}
		i, ok := at[k.Key]
		switch {
		case !ok:
			at[k.Key] = len(out)
			out = append(out, k)
		case k.FirstSeen.Before(out[i].FirstSeen):
			out[i].FirstSeen = k.FirstSeen
		}
	}
	return out, nil
}

// MemLedger is a Ledger in memory, for tests, demos and the benchmark; it
// is lost when the process ends. Its zero value is not usable: call
// NewMemLedger.
type MemLedger struct {
	mu      sync.Mutex
	outages []Outage // by ID: outages[i].ID == i+1
	open    map[Key]OutageID
	keys    map[Key]time.Time
}

// NewMemLedger returns an empty in-memory ledger.
func NewMemLedger() *MemLedger {
	return &MemLedger{open: map[Key]OutageID{}, keys: map[Key]time.Time{}}
}

var _ Ledger = (*MemLedger)(nil)

// Open implements Ledger.
func (l *MemLedger) Open(_ context.Context, o Outage) (Outage, error) {
	if !o.Key.Exporter.IsValid() || o.Start.IsZero() || !o.End.IsZero() || !o.ClosedAt.IsZero() {
		return Outage{}, fmt.Errorf("%w: open %s: want a valid key, a start and no end", ErrInvalid, o.Key)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if id, ok := l.open[o.Key]; ok {
		return Outage{}, fmt.Errorf("%w: %s (outage %d)", ErrOpenExists, o.Key, id)
	}
	o.ID = OutageID(len(l.outages) + 1)
	l.outages = append(l.outages, o)
	l.open[o.Key] = o.ID
	return o, nil
}

// Close implements Ledger.
func (l *MemLedger) Close(_ context.Context, id OutageID, end, closedAt time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkCloseLocked(id, end); err != nil {
		return err
	}
	o := &l.outages[id-1]
	o.End, o.ClosedAt = end, closedAt
	delete(l.open, o.Key)
	return nil
}

// checkCloseLocked tells whether Close(id, end) may proceed. l.mu is held.
func (l *MemLedger) checkCloseLocked(id OutageID, end time.Time) error {
	if id == 0 || int(id) > len(l.outages) {
		return fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	o := &l.outages[id-1]
	if !o.IsOpen() {
		return fmt.Errorf("%w: %d", ErrClosed, id)
	}
	if end.IsZero() || end.Before(o.Start) {
		return fmt.Errorf("%w: close %d: end %v before start %v", ErrInvalid, id, end, o.Start)
	}
	return nil
}

// Overlapping implements Ledger. It scans every outage: fine for tests
// and demos; the durable ledgers index Start, End, OpenedAt and ClosedAt.
func (l *MemLedger) Overlapping(_ context.Context, from, to time.Time) ([]Outage, error) {
	in := func(t time.Time) bool { return !t.IsZero() && !t.Before(from) && t.Before(to) }
	l.mu.Lock()
	defer l.mu.Unlock()
	var idx []int32 // sorting indexes moves less memory than sorting outages
	for i := range l.outages {
		o := &l.outages[i]
		if (o.Start.Before(to) && (o.IsOpen() || o.End.After(from))) || in(o.OpenedAt) || in(o.ClosedAt) {
			idx = append(idx, int32(i))
		}
	}
	// By ID already; by Start too when outages were opened in order.
	cmpIdx := func(a, b int32) int {
		if c := l.outages[a].Start.Compare(l.outages[b].Start); c != 0 {
			return c
		}
		return int(a - b)
	}
	if !slices.IsSortedFunc(idx, cmpIdx) {
		slices.SortFunc(idx, cmpIdx)
	}
	out := make([]Outage, len(idx))
	for j, i := range idx {
		out[j] = l.outages[i]
	}
	return out, nil
}

// OpenOutages implements Ledger.
func (l *MemLedger) OpenOutages(context.Context) ([]Outage, error) {
	l.mu.Lock()
	out := make([]Outage, 0, len(l.open))
	for _, id := range l.open {
		out = append(out, l.outages[id-1])
	}
	l.mu.Unlock()
	sortOutages(out)
	return out, nil
}

// AddKeys implements Ledger.
func (l *MemLedger) AddKeys(_ context.Context, keys []KnownKey) error {
	keys, err := EarliestKeys(keys)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if t, ok := l.keys[k.Key]; !ok || k.FirstSeen.Before(t) {
			l.keys[k.Key] = k.FirstSeen
		}
	}
	return nil
}

// Keys implements Ledger.
func (l *MemLedger) Keys(context.Context) ([]KnownKey, error) {
	l.mu.Lock()
	out := make([]KnownKey, 0, len(l.keys))
	for k, t := range l.keys {
		out = append(out, KnownKey{k, t})
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b KnownKey) int { return a.Key.Compare(b.Key) })
	return out, nil
}

// sortOutages orders outages by Start, then ID, as Ledger promises.
func sortOutages(s []Outage) {
	slices.SortFunc(s, func(a, b Outage) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
}
