//go:build cgo

package duckdb

import (
	"context"
	"database/sql/driver"
	"fmt"
	"iter"
	"time"

	duckdb "github.com/marcboeker/go-duckdb/v2"

	"github.com/netpulse/netpulse/rssac"
	"github.com/netpulse/netpulse/rssac/rstore"
)

// RSSAC is the store of the collector's RSSAC observations, kept in the
// flow store's file, in the tables rssac_runs and rssac_observations
// (schema version 3). Get it with Store.RSSAC. Its Close does nothing: the
// file is the flow store's, closed with it.
//
// A run is one transaction: its rssac_runs row, whose primary key
// (vp, slot) refuses a run stored before, then its observations, written
// with DuckDB's appender. Two AddRuns of one key in this process run one
// after the other (the flow store's claim), so the second finds the first
// committed and returns rstore.ErrDuplicate.
type RSSAC struct {
	s *Store
}

var _ rstore.Store = (*RSSAC)(nil)

// RSSAC returns the store's RSSAC observation store, usable until the
// store is closed.
func (s *Store) RSSAC() *RSSAC { return &RSSAC{s: s} }

// claimID is the run's id among the ids the flow store's claim
// serialises; the NUL bytes keep it apart from every wire batch id.
func claimID(key rstore.RunKey) string {
	return fmt.Sprintf("rssac\x00%s\x00%d", key.VP, key.Slot.Unix())
}

// AddRun implements rstore.Store.
func (r *RSSAC) AddRun(ctx context.Context, key rstore.RunKey, obs []rssac.Observation) error {
	if err := rstore.Check(key, obs); err != nil {
		return err
	}
	s := r.s
	release, err := s.claim(ctx, claimID(key))
	if err != nil {
		return fmt.Errorf("store/duckdb: rssac: add run %s: %w", key, err)
	}
	defer release()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store/duckdb: rssac: add run %s: %w", key, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN TRANSACTION`); err != nil {
		return fmt.Errorf("store/duckdb: rssac: add run %s: %w", key, err)
	}
	done := false
	defer func() {
		if !done {
			rollback(ctx, conn)
		}
	}()
	slot := key.Slot.UTC()
	err = conn.Raw(func(dc any) error {
		a, err := duckdb.NewAppenderFromConn(dc.(driver.Conn), "", "rssac_runs")
		if err != nil {
			return err
		}
		if err := a.AppendRow(key.VP, slot, s.cfg.Now().UTC(), uint32(len(obs))); err != nil {
			a.Close()
			return err
		}
		return a.Close()
	})
	if err != nil {
		// The key violation comes as text only: look.
		rollback(ctx, conn)
		done = true
		var one int
		if s.db.QueryRowContext(ctx, `SELECT 1 FROM rssac_runs WHERE vp = ? AND slot = make_timestamp(?)`, key.VP, slot.UnixMicro()).Scan(&one) == nil {
			return fmt.Errorf("store/duckdb: rssac: add run %s: %w", key, rstore.ErrDuplicate)
		}
		return fmt.Errorf("store/duckdb: rssac: add run %s: %w", key, err)
	}
	if len(obs) > 0 {
		err = conn.Raw(func(dc any) error {
			a, err := duckdb.NewAppenderFromConn(dc.(driver.Conn), "", "rssac_observations")
			if err != nil {
				return err
			}
			row := make([]driver.Value, 13)
			for i := range obs {
				o := &obs[i]
				row[0], row[1], row[2], row[3], row[4] = slot, key.VP, o.Server, o.Address, o.Transport
				row[5], row[6], row[7], row[8] = uint8(o.Family), uint8(o.Kind), uint8(o.Outcome), int64(o.RTT)
				row[9], row[10], row[11], row[12] = o.Serial, o.HasSerial, uint8(o.Verdict), o.Retry
				if err := a.AppendRow(row...); err != nil {
					a.Close()
					return err
				}
			}
			return a.Close()
		})
		if err != nil {
			return fmt.Errorf("store/duckdb: rssac: add run %s: observations: %w", key, err)
		}
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		return fmt.Errorf("store/duckdb: rssac: add run %s: commit: %w", key, err)
	}
	done = true
	return nil
}

// Observations implements rstore.Store. The rows come straight from
// DuckDB's result, one at a time; a run is visible whole or not at all
// (it is one transaction).
func (r *RSSAC) Observations(ctx context.Context, from, to time.Time) iter.Seq2[rssac.Observation, error] {
	if err := rstore.CheckRange(from, to); err != nil {
		return rstore.Fail(err)
	}
	return func(yield func(rssac.Observation, error) bool) {
		rows, err := r.s.db.QueryContext(ctx, `SELECT slot, vp, server, address, transport, family, kind, outcome,
	rtt_ns, serial, has_serial, verdict, retry
FROM rssac_observations WHERE slot >= make_timestamp(?) AND slot < make_timestamp(?)`, ceilMicro(from), ceilMicro(to))
		if err != nil {
			yield(rssac.Observation{}, fmt.Errorf("store/duckdb: rssac: observations: %w", err))
			return
		}
		defer rows.Close()
		// Scanning into any skips database/sql's reflection; the values
		// are DuckDB's Go types for the columns.
		var v [13]any
		dest := make([]any, len(v))
		for i := range v {
			dest[i] = &v[i]
		}
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				yield(rssac.Observation{}, fmt.Errorf("store/duckdb: rssac: observations: %w", err))
				return
			}
			o, err := observation(&v)
			if err != nil {
				yield(rssac.Observation{}, fmt.Errorf("store/duckdb: rssac: observations: %w", err))
				return
			}
			if !yield(o, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(rssac.Observation{}, fmt.Errorf("store/duckdb: rssac: observations: %w", err))
		}
	}
}

// observation converts one scanned row.
func observation(v *[13]any) (rssac.Observation, error) {
	var o rssac.Observation
	var ok [13]bool
	var slot time.Time
	slot, ok[0] = v[0].(time.Time)
	o.Slot = slot.UTC()
	o.VP, ok[1] = v[1].(string)
	o.Server, ok[2] = v[2].(string)
	o.Address, ok[3] = v[3].(string)
	o.Transport, ok[4] = v[4].(string)
	var family, kind, outcome, verdict uint8
	family, ok[5] = v[5].(uint8)
	kind, ok[6] = v[6].(uint8)
	outcome, ok[7] = v[7].(uint8)
	var rtt int64
	rtt, ok[8] = v[8].(int64)
	o.Serial, ok[9] = v[9].(uint32)
	o.HasSerial, ok[10] = v[10].(bool)
	verdict, ok[11] = v[11].(uint8)
	o.Retry, ok[12] = v[12].(bool)
	for i, good := range ok {
		if !good {
			return o, fmt.Errorf("column %d: unexpected %T", i, v[i])
		}
	}
	o.Family, o.Kind, o.Outcome, o.RTT, o.Verdict = int(family), rssac.Kind(kind), rssac.Outcome(outcome), time.Duration(rtt), rssac.Verdict(verdict)
	return o, nil
}

// ceilMicro is t in microseconds, rounded up: a stored slot (whole
// microseconds) is at or after t exactly when it is at or after the
// result.
func ceilMicro(t time.Time) int64 {
	us := t.UnixMicro()
	if t.Sub(time.UnixMicro(us)) > 0 {
		us++
	}
	return us
}

// Runs implements rstore.Store.
func (r *RSSAC) Runs(ctx context.Context, from, to time.Time) ([]rstore.VPRuns, error) {
	if err := rstore.CheckRange(from, to); err != nil {
		return nil, err
	}
	rows, err := r.s.db.QueryContext(ctx, `SELECT vp, count(*), coalesce(sum(observations), 0)::BIGINT, min(slot), max(slot)
FROM rssac_runs WHERE slot >= make_timestamp(?) AND slot < make_timestamp(?) GROUP BY vp ORDER BY vp`, ceilMicro(from), ceilMicro(to))
	if err != nil {
		return nil, fmt.Errorf("store/duckdb: rssac: runs: %w", err)
	}
	defer rows.Close()
	var out []rstore.VPRuns
	for rows.Next() {
		var v rstore.VPRuns
		if err := rows.Scan(&v.VP, &v.Runs, &v.Observations, &v.First, &v.Last); err != nil {
			return nil, fmt.Errorf("store/duckdb: rssac: runs: %w", err)
		}
		v.First, v.Last = v.First.UTC(), v.Last.UTC()
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store/duckdb: rssac: runs: %w", err)
	}
	return out, nil
}

// Close implements rstore.Store. It does nothing: the flow store owns the
// file.
func (r *RSSAC) Close() error { return nil }

// Rows counts the rows of rssac_runs and rssac_observations.
func (r *RSSAC) Rows(ctx context.Context) (runs, obs int64, err error) {
	err = r.s.db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM rssac_runs), (SELECT count(*) FROM rssac_observations)`).Scan(&runs, &obs)
	if err != nil {
		return 0, 0, fmt.Errorf("store/duckdb: rssac: rows: %w", err)
	}
	return runs, obs, nil
}
