package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/netpulse/netpulse/store"
)

// Maintain applies the retention as of now by dropping whole partitions
// (ALTER TABLE … DROP PARTITION): a partition goes when all of it is older
// than now minus its table's retention. Dropping a partition removes its
// files at once, costs no merge and no mutation, and works on 18.16, which
// has no TTL. The price is precision: a table keeps rows up to one
// partition longer than its retention (partitionLength: about 4% of it,
// at least an hour). Rows are never deleted one by one.
//
// A server refuses to drop a partition larger than its
// max_partition_size_to_drop (50 GB by default); Maintain then returns the
// server's error, and docs/clickhouse.md says how to lift the limit.
func (s *Store) Maintain(ctx context.Context, now time.Time) error {
	r := s.cfg.Retention
	for _, t := range []struct {
		table string
		keep  time.Duration
	}{
		{string(store.TableRaw), r.Raw},
		{tableCounters, r.Raw},
		{tableBatches, r.Raw},
		{string(store.TableMinute), r.Minute},
		{string(store.TableHour), r.Hour},
	} {
		if err := s.dropBefore(ctx, t.table, now.Add(-t.keep)); err != nil {
			return err
		}
	}
	return nil
}

// dropBefore drops the partitions of table whose whole time range is
// before cutoff.
func (s *Store) dropBefore(ctx context.Context, table string, cutoff time.Time) error {
	p := s.partitions[table]
	rows, err := s.conn.Query(ctx, `SELECT DISTINCT partition FROM system.parts
WHERE database = ? AND table = ? AND active`, s.db, table)
	if err != nil {
		return fmt.Errorf("clickhouse: maintain %s: list partitions: %w", table, err)
	}
	var old []int64
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return fmt.Errorf("clickhouse: maintain %s: %w", table, err)
		}
		k, err := strconv.ParseInt(name, 10, 64)
		if err != nil {
			continue // not ours
		}
		// Partition k holds [k*p, (k+1)*p) in Unix seconds.
		if (k+1)*p <= cutoff.Unix() {
			old = append(old, k)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("clickhouse: maintain %s: %w", table, err)
	}
	for _, k := range old {
		if err := s.conn.Exec(ctx, fmt.Sprintf("ALTER TABLE %s.%s DROP PARTITION %d", s.db, table, k)); err != nil {
			return fmt.Errorf("clickhouse: maintain %s: drop partition %d (%s to %s): %w", table, k,
				time.Unix(k*p, 0).UTC().Format(time.RFC3339), time.Unix((k+1)*p, 0).UTC().Format(time.RFC3339), err)
		}
	}
	return nil
}
