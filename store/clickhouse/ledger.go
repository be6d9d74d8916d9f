package clickhouse

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/netpulse/netpulse/ifwatch"
)

// Ledger is the ifwatch outage ledger kept in the database, in the tables
// ifwatch_outages and ifwatch_keys (schema version 2; schemaV2 says how
// they are laid out and why: ReplacingMergeTree with a version column,
// read with argMax, since 18.16 has no synchronous UPDATE). Get it with
// Store.Ledger.
//
// It is safe for concurrent use. Its writes are serialised in the
// process, under one mutex per Store: that is what keeps one open outage
// per key (a check, then an insert) and assigns outage IDs, from the
// largest ID in the table (read on the first write) plus one. Two
// processes writing one database's ledger at once are not guarded
// against: run one watcher per database.
type Ledger struct {
	conn driver.Conn
	db   string

	mu     sync.Mutex // serialises writes
	loaded bool       // next is set
	next   uint64     // the ID of the next Open
}

var _ ifwatch.Ledger = (*Ledger)(nil)

// Ledger returns the store's outage ledger. Every call returns the same
// Ledger, so that every caller shares one write mutex; it is usable until
// the store is closed.
func (s *Store) Ledger() *Ledger {
	s.ledgerOnce.Do(func() { s.ledger = &Ledger{conn: s.conn, db: s.db} })
	return s.ledger
}

// noTime is the microseconds column value of the zero time.Time: an open
// outage's end_us and closed_us. (It is the zero time's own Unix
// microseconds, year 1, so every instant a watcher records stays apart
// from it.)
var noTime = time.Time{}.UnixMicro()

func toMicros(t time.Time) int64 {
	if t.IsZero() {
		return noTime
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == noTime {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// firstSeenVersion is the ifwatch_keys version of a first-seen time: the
// earlier the time, the larger the version, so that ReplacingMergeTree
// keeps the earliest.
func firstSeenVersion(us int64) uint64 { return uint64(1<<63) - uint64(us) }

// Outage row versions: the row Open inserts and the one Close inserts.
const (
	versionOpen   uint8 = 1
	versionClosed uint8 = 2
)

func (l *Ledger) insertOutage(ctx context.Context, o ifwatch.Outage, version uint8) error {
	b, err := l.conn.PrepareBatch(ctx, fmt.Sprintf(`INSERT INTO %s.ifwatch_outages
	(id, exporter, if_index, start_us, end_us, source_name, source_kind, cause, opened_us, closed_us, version)`, l.db))
	if err != nil {
		return err
	}
	if err := b.Append(uint64(o.ID), string(o.Key.Exporter.AsSlice()), o.Key.IfIndex, toMicros(o.Start), toMicros(o.End),
		o.Source.Name, string(o.Source.Kind), string(o.Cause), toMicros(o.OpenedAt), toMicros(o.ClosedAt), version); err != nil {
		b.Abort()
		return err
	}
	return b.Send()
}

// Open implements ifwatch.Ledger.
func (l *Ledger) Open(ctx context.Context, o ifwatch.Outage) (ifwatch.Outage, error) {
	if !o.Key.Exporter.IsValid() || o.Start.IsZero() || !o.End.IsZero() || !o.ClosedAt.IsZero() {
		return ifwatch.Outage{}, fmt.Errorf("clickhouse: ledger: %w: open %s: want a valid key, a start and no end", ifwatch.ErrInvalid, o.Key)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.loaded {
		var largest uint64
		if err := l.conn.QueryRow(ctx, fmt.Sprintf(`SELECT max(id) FROM %s.ifwatch_outages`, l.db)).Scan(&largest); err != nil {
			return ifwatch.Outage{}, fmt.Errorf("clickhouse: ledger: open %s: largest outage ID: %w", o.Key, err)
		}
		l.next, l.loaded = largest+1, true
	}
	open, err := l.read(ctx, `exporter = unhex(?) AND if_index = ?`, `o_end = ?`,
		hex.EncodeToString(o.Key.Exporter.AsSlice()), o.Key.IfIndex, noTime)
	if err != nil {
		return ifwatch.Outage{}, fmt.Errorf("clickhouse: ledger: open %s: %w", o.Key, err)
	}
	if len(open) > 0 {
		return ifwatch.Outage{}, fmt.Errorf("clickhouse: ledger: %w: %s (outage %d)", ifwatch.ErrOpenExists, o.Key, open[0].ID)
	}
	// The ID is used up even if the insert fails: it may have been
	// written all the same.
	o.ID = ifwatch.OutageID(l.next)
	l.next++
	if err := l.insertOutage(ctx, o, versionOpen); err != nil {
		return ifwatch.Outage{}, fmt.Errorf("clickhouse: ledger: open %s: %w", o.Key, err)
	}
	return o, nil
}

// Close implements ifwatch.Ledger.
func (l *Ledger) Close(ctx context.Context, id ifwatch.OutageID, end, closedAt time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	got, err := l.read(ctx, `id = ?`, `1`, uint64(id))
	if err != nil {
		return fmt.Errorf("clickhouse: ledger: close %d: %w", id, err)
	}
	if len(got) == 0 {
		return fmt.Errorf("clickhouse: ledger: %w: %d", ifwatch.ErrNotFound, id)
	}
	o := got[0]
	if !o.IsOpen() {
		return fmt.Errorf("clickhouse: ledger: %w: %d", ifwatch.ErrClosed, id)
	}
	if end.IsZero() || end.Before(o.Start) {
		return fmt.Errorf("clickhouse: ledger: %w: close %d: end %v before start %v", ifwatch.ErrInvalid, id, end, o.Start)
	}
	o.End, o.ClosedAt = end, closedAt
	if err := l.insertOutage(ctx, o, versionClosed); err != nil {
		return fmt.Errorf("clickhouse: ledger: close %d: %w", id, err)
	}
	return nil
}

// Overlapping implements ifwatch.Ledger.
func (l *Ledger) Overlapping(ctx context.Context, from, to time.Time) ([]ifwatch.Outage, error) {
	f, t := from.UnixMicro(), to.UnixMicro()
	out, err := l.read(ctx, `1`, `(o_start < ? AND (o_end = ? OR o_end > ?))
	OR (o_opened != ? AND o_opened >= ? AND o_opened < ?)
	OR (o_closed != ? AND o_closed >= ? AND o_closed < ?)`,
		t, noTime, f, noTime, f, t, noTime, f, t)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: ledger: overlapping: %w", err)
	}
	return out, nil
}

// OpenOutages implements ifwatch.Ledger.
func (l *Ledger) OpenOutages(ctx context.Context) ([]ifwatch.Outage, error) {
	out, err := l.read(ctx, `1`, `o_end = ?`, noTime)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: ledger: open outages: %w", err)
	}
	return out, nil
}

// read returns the outages, as of their latest version, whose rows match
// where and whose latest state matches having, ordered by Start, then
// ID. where may only look at the columns a Close does not change (id,
// exporter, if_index, start_us, opened_us, the source and cause); having
// sees the latest state as o_id, o_start, o_end, o_opened and o_closed.
// args are where's, then having's.
func (l *Ledger) read(ctx context.Context, where, having string, args ...any) ([]ifwatch.Outage, error) {
	// The aliases differ from the column names: ClickHouse would take
	// argMax(end_us, version) AS end_us for a cyclic alias.
	q := fmt.Sprintf(`SELECT o_id, o_exporter, o_if_index, o_start, o_end, o_source_name, o_source_kind, o_cause, o_opened, o_closed
FROM (
	SELECT id AS o_id,
		any(exporter) AS o_exporter,
		any(if_index) AS o_if_index,
		any(start_us) AS o_start,
		argMax(end_us, version) AS o_end,
		any(source_name) AS o_source_name,
		any(source_kind) AS o_source_kind,
		any(cause) AS o_cause,
		any(opened_us) AS o_opened,
		argMax(closed_us, version) AS o_closed
	FROM %s.ifwatch_outages
	WHERE %s
	GROUP BY id
)
WHERE %s
ORDER BY o_start, o_id`, l.db, where, having)
	rows, err := l.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ifwatch.Outage
	for rows.Next() {
		var (
			o                           ifwatch.Outage
			id                          uint64
			exporter, name, kind, cause string
			start, end, opened, closed  int64
		)
		if err := rows.Scan(&id, &exporter, &o.Key.IfIndex, &start, &end, &name, &kind, &cause, &opened, &closed); err != nil {
			return nil, err
		}
		addr, ok := netip.AddrFromSlice([]byte(exporter))
		if !ok {
			return nil, fmt.Errorf("outage %d: bad exporter address %x", id, exporter)
		}
		o.ID, o.Key.Exporter = ifwatch.OutageID(id), addr
		o.Start, o.End, o.OpenedAt, o.ClosedAt = fromMicros(start), fromMicros(end), fromMicros(opened), fromMicros(closed)
		o.Source = ifwatch.Source{Name: name, Kind: ifwatch.SourceKind(kind)}
		o.Cause = ifwatch.Cause(cause)
		out = append(out, o)
	}
	return out, rows.Err()
}

// AddKeys implements ifwatch.Ledger. The batch is one INSERT: all of it
// or none.
func (l *Ledger) AddKeys(ctx context.Context, keys []ifwatch.KnownKey) error {
	keys, err := ifwatch.EarliestKeys(keys)
	if err != nil {
		return fmt.Errorf("clickhouse: ledger: %w", err)
	}
	if len(keys) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, err := l.conn.PrepareBatch(ctx, fmt.Sprintf(`INSERT INTO %s.ifwatch_keys (exporter, if_index, first_seen_us, version)`, l.db))
	if err != nil {
		return fmt.Errorf("clickhouse: ledger: add keys: %w", err)
	}
	for _, k := range keys {
		us := k.FirstSeen.UnixMicro()
		if err := b.Append(string(k.Key.Exporter.AsSlice()), k.Key.IfIndex, us, firstSeenVersion(us)); err != nil {
			b.Abort()
			return fmt.Errorf("clickhouse: ledger: add keys: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("clickhouse: ledger: add keys: %w", err)
	}
	return nil
}

// Keys implements ifwatch.Ledger.
func (l *Ledger) Keys(ctx context.Context) ([]ifwatch.KnownKey, error) {
	rows, err := l.conn.Query(ctx, fmt.Sprintf(`SELECT exporter, if_index, min(first_seen_us) FROM %s.ifwatch_keys GROUP BY exporter, if_index`, l.db))
	if err != nil {
		return nil, fmt.Errorf("clickhouse: ledger: keys: %w", err)
	}
	defer rows.Close()
	var out []ifwatch.KnownKey
	for rows.Next() {
		var k ifwatch.KnownKey
		var exporter string
		var us int64
		if err := rows.Scan(&exporter, &k.Key.IfIndex, &us); err != nil {
			return nil, fmt.Errorf("clickhouse: ledger: keys: %w", err)
		}
		addr, ok := netip.AddrFromSlice([]byte(exporter))
		if !ok {
			return nil, fmt.Errorf("clickhouse: ledger: key with bad exporter address %x", exporter)
		}
		k.Key.Exporter, k.FirstSeen = addr, time.UnixMicro(us).UTC()
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: ledger: keys: %w", err)
	}
	slices.SortFunc(out, func(a, b ifwatch.KnownKey) int { return a.Key.Compare(b.Key) })
	return out, nil
}
