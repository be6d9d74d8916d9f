//go:build cgo

package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/netpulse/netpulse/ifwatch"
)

// Ledger is the ifwatch outage ledger kept in the store's file, in the
// tables ifwatch_outages and ifwatch_keys (schema version 2), so that it
// survives restarts. Get it with Store.Ledger. It is safe for concurrent
// use; its writes are serialised in the process (DuckDB lets one process
// at a time have the file open), which is what makes "one open outage
// per key" hold: a check and an insert under one mutex.
type Ledger struct {
	db *sql.DB
	mu sync.Mutex // serialises writes
}

var _ ifwatch.Ledger = (*Ledger)(nil)

// Ledger returns the store's outage ledger. Every call returns the same
// Ledger, so that every caller shares one write mutex; it is usable until
// the store is closed.
func (s *Store) Ledger() *Ledger {
	s.ledgerOnce.Do(func() { s.ledger = &Ledger{db: s.db} })
	return s.ledger
}

// nullMicros is t as a make_timestamp argument, NULL for the zero time.
func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// Open implements ifwatch.Ledger.
func (l *Ledger) Open(ctx context.Context, o ifwatch.Outage) (ifwatch.Outage, error) {
	if !o.Key.Exporter.IsValid() || o.Start.IsZero() || !o.End.IsZero() || !o.ClosedAt.IsZero() {
		return ifwatch.Outage{}, fmt.Errorf("store/duckdb: ledger: %w: open %s: want a valid key, a start and no end", ifwatch.ErrInvalid, o.Key)
	}
	exporter := o.Key.Exporter.AsSlice()
	l.mu.Lock()
	defer l.mu.Unlock()
	var open int64
	err := l.db.QueryRowContext(ctx, `SELECT id FROM ifwatch_outages WHERE exporter = ? AND if_index = ? AND end_time IS NULL LIMIT 1`,
		exporter, o.Key.IfIndex).Scan(&open)
	switch {
	case err == nil:
		return ifwatch.Outage{}, fmt.Errorf("store/duckdb: ledger: %w: %s (outage %d)", ifwatch.ErrOpenExists, o.Key, open)
	case err != sql.ErrNoRows:
		return ifwatch.Outage{}, fmt.Errorf("store/duckdb: ledger: open %s: %w", o.Key, err)
	}
	var id uint64
	err = l.db.QueryRowContext(ctx, `INSERT INTO ifwatch_outages
	(id, exporter, if_index, start_time, end_time, source_name, source_kind, cause, opened_at, closed_at)
VALUES (nextval('ifwatch_outage_ids'), ?, ?, make_timestamp(?), NULL, ?, ?, ?, make_timestamp(?), NULL)
RETURNING id`,
		exporter, o.Key.IfIndex, o.Start.UnixMicro(), o.Source.Name, string(o.Source.Kind), string(o.Cause), nullMicros(o.OpenedAt)).Scan(&id)
	if err != nil {
		return ifwatch.Outage{}, fmt.Errorf("store/duckdb: ledger: open %s: %w", o.Key, err)
	}
	o.ID = ifwatch.OutageID(id)
	return o, nil
}

// Close implements ifwatch.Ledger.
func (l *Ledger) Close(ctx context.Context, id ifwatch.OutageID, end, closedAt time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var start time.Time
	var ended sql.NullTime
	err := l.db.QueryRowContext(ctx, `SELECT start_time, end_time FROM ifwatch_outages WHERE id = ?`, uint64(id)).Scan(&start, &ended)
	switch {
	case err == sql.ErrNoRows:
		return fmt.Errorf("store/duckdb: ledger: %w: %d", ifwatch.ErrNotFound, id)
	case err != nil:
		return fmt.Errorf("store/duckdb: ledger: close %d: %w", id, err)
	case ended.Valid:
		return fmt.Errorf("store/duckdb: ledger: %w: %d", ifwatch.ErrClosed, id)
	}
	if end.IsZero() || end.Before(start) {
		return fmt.Errorf("store/duckdb: ledger: %w: close %d: end %v before start %v", ifwatch.ErrInvalid, id, end, start)
	}
	if _, err := l.db.ExecContext(ctx, `UPDATE ifwatch_outages SET end_time = make_timestamp(?), closed_at = make_timestamp(?) WHERE id = ?`,
		end.UnixMicro(), nullMicros(closedAt), uint64(id)); err != nil {
		return fmt.Errorf("store/duckdb: ledger: close %d: %w", id, err)
	}
	return nil
}

const outageColumns = `id, exporter, if_index, start_time, end_time, source_name, source_kind, cause, opened_at, closed_at`

// Overlapping implements ifwatch.Ledger.
func (l *Ledger) Overlapping(ctx context.Context, from, to time.Time) ([]ifwatch.Outage, error) {
	f, t := from.UnixMicro(), to.UnixMicro()
	return l.outages(ctx, `SELECT `+outageColumns+` FROM ifwatch_outages
WHERE (start_time < make_timestamp(?) AND (end_time IS NULL OR end_time > make_timestamp(?)))
	OR (opened_at >= make_timestamp(?) AND opened_at < make_timestamp(?))
	OR (closed_at >= make_timestamp(?) AND closed_at < make_timestamp(?))
ORDER BY start_time, id`, t, f, f, t, f, t)
}

// OpenOutages implements ifwatch.Ledger.
func (l *Ledger) OpenOutages(ctx context.Context) ([]ifwatch.Outage, error) {
	return l.outages(ctx, `SELECT `+outageColumns+` FROM ifwatch_outages WHERE end_time IS NULL ORDER BY start_time, id`)
}

func (l *Ledger) outages(ctx context.Context, q string, args ...any) ([]ifwatch.Outage, error) {
	rows, err := l.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store/duckdb: ledger: read outages: %w", err)
	}
	defer rows.Close()
	var out []ifwatch.Outage
	for rows.Next() {
		var (
			o                       ifwatch.Outage
			id                      uint64
			exporter                []byte
			end, openedAt, closedAt sql.NullTime
			name, kind, cause       string
		)
		if err := rows.Scan(&id, &exporter, &o.Key.IfIndex, &o.Start, &end, &name, &kind, &cause, &openedAt, &closedAt); err != nil {
			return nil, fmt.Errorf("store/duckdb: ledger: read outages: %w", err)
		}
		addr, ok := netip.AddrFromSlice(exporter)
		if !ok {
			return nil, fmt.Errorf("store/duckdb: ledger: outage %d: bad exporter address %x", id, exporter)
		}
		o.ID, o.Key.Exporter = ifwatch.OutageID(id), addr
		o.Source = ifwatch.Source{Name: name, Kind: ifwatch.SourceKind(kind)}
		o.Cause = ifwatch.Cause(cause)
		o.Start = o.Start.UTC()
		o.End, o.OpenedAt, o.ClosedAt = nullTime(end), nullTime(openedAt), nullTime(closedAt)
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store/duckdb: ledger: read outages: %w", err)
	}
	return out, nil
}

func nullTime(t sql.NullTime) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// keysPerStatement bounds the rows of one AddKeys INSERT.
const keysPerStatement = 256

// AddKeys implements ifwatch.Ledger. The batch is written in one
// transaction: all of it or none.
func (l *Ledger) AddKeys(ctx context.Context, keys []ifwatch.KnownKey) error {
	// One row per key, the earliest time: an upsert may not touch a row
	// twice in one statement.
	keys, err := ifwatch.EarliestKeys(keys)
	if err != nil {
		return fmt.Errorf("store/duckdb: ledger: %w", err)
	}
	if len(keys) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store/duckdb: ledger: add keys: %w", err)
	}
	defer tx.Rollback()
	for chunk := range slices.Chunk(keys, keysPerStatement) {
		var q strings.Builder
		q.WriteString(`INSERT INTO ifwatch_keys (exporter, if_index, first_seen) VALUES `)
		args := make([]any, 0, 3*len(chunk))
		for i, k := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, make_timestamp(?))")
			args = append(args, k.Key.Exporter.AsSlice(), k.Key.IfIndex, k.FirstSeen.UnixMicro())
		}
		q.WriteString(` ON CONFLICT (exporter, if_index) DO UPDATE SET first_seen = least(ifwatch_keys.first_seen, excluded.first_seen)`)
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("store/duckdb: ledger: add keys: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store/duckdb: ledger: add keys: %w", err)
	}
	return nil
}

// Keys implements ifwatch.Ledger.
func (l *Ledger) Keys(ctx context.Context) ([]ifwatch.KnownKey, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT exporter, if_index, first_seen FROM ifwatch_keys`)
	if err != nil {
		return nil, fmt.Errorf("store/duckdb: ledger: read keys: %w", err)
	}
	defer rows.Close()
	var out []ifwatch.KnownKey
	for rows.Next() {
		var k ifwatch.KnownKey
		var exporter []byte
		if err := rows.Scan(&exporter, &k.Key.IfIndex, &k.FirstSeen); err != nil {
			return nil, fmt.Errorf("store/duckdb: ledger: read keys: %w", err)
		}
		addr, ok := netip.AddrFromSlice(exporter)
		if !ok {
			return nil, fmt.Errorf("store/duckdb: ledger: key with bad exporter address %x", exporter)
		}
		k.Key.Exporter, k.FirstSeen = addr, k.FirstSeen.UTC()
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store/duckdb: ledger: read keys: %w", err)
	}
	slices.SortFunc(out, func(a, b ifwatch.KnownKey) int { return a.Key.Compare(b.Key) })
	return out, nil
}
