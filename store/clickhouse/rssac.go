package clickhouse

import (
	"context"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/netpulse/netpulse/rssac"
	"github.com/netpulse/netpulse/rssac/rstore"
	"github.com/netpulse/netpulse/store"
)

// schemaV3 adds the RSSAC observation store's tables (see RSSAC):
//
//   - rssac_observations, one row per query of a run, a MergeTree ordered
//     by (slot, vp) and partitioned by month (toYYYYMM(slot): not the
//     intDiv(toUInt32(…)) form, so loadPartitions and Maintain leave the
//     table alone: RSSAC data is kept for good). rtt_ns keeps a
//     time.Duration exactly; has_serial and retry are UInt8 0/1 (18.16
//     has no Bool).
//   - rssac_runs, one row per stored run, written last: a ReplacingMergeTree
//     on (vp, slot), so that the rare second row of a run (two collectors
//     storing it at the same instant) merges away; readers group by
//     (vp, slot) anyway.
func schemaV3(db string, _ store.Retention) []string {
	return []string{
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.rssac_observations (%s
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(slot)
ORDER BY (slot, vp)`, db, definitions(rssacObsColumns)),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.rssac_runs (%s
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(slot)
ORDER BY (vp, slot)`, db, definitions(rssacRunsColumns)),
	}
}

// rssacObsColumns are the columns of rssac_observations, in AddRun's and
// Observations' order.
var rssacObsColumns = []col{
	{"slot", "DateTime('UTC')"},
	{"vp", "String"},
	{"server", "String"},
	{"address", "String"},
	{"transport", "String"},
	{"family", "UInt8"},
	{"kind", "UInt8"},
	{"outcome", "UInt8"},
	{"rtt_ns", "Int64"},
	{"serial", "UInt32"},
	{"has_serial", "UInt8"},
	{"verdict", "UInt8"},
	{"retry", "UInt8"},
}

var rssacRunsColumns = []col{
	{"vp", "String"},
	{"slot", "DateTime('UTC')"},
	{"received", "DateTime('UTC')"},
	{"observations", "UInt32"},
}

// RSSAC is the store of the collector's RSSAC observations, in the flow
// store's database (schema version 3; schemaV3 describes the tables). Get
// it with Store.RSSAC. Its Close does nothing: the connection is the flow
// store's.
//
// What is atomic, and why a retry never counts a run twice — as Insert
// does for flow batches:
//
//   - A run's observations share one slot, so one partition: AddRun sends
//     them as one INSERT block, which becomes one part, written whole or
//     not at all (a run is far below max_insert_block_size).
//   - The rssac_runs row is written after the observations. Before
//     writing, AddRun asks in one query whether rssac_runs has the run
//     (then rstore.ErrDuplicate, nothing written) and whether
//     rssac_observations already holds rows of it: an earlier attempt
//     that stopped between the two INSERTs (a crash, a lost connection, a
//     cancelled context). Then the observations are not sent again; only
//     the runs row is, which completes the run.
//   - Readers see only runs that have their rssac_runs row, so a run is
//     visible whole or not at all.
//   - Within one Store, two AddRuns of one run run one after the other
//     (claim); two collectors storing the same run into one database at
//     the same instant are not guarded against.
type RSSAC struct {
	s *Store
}

var _ rstore.Store = (*RSSAC)(nil)

// RSSAC returns the store's RSSAC observation store, usable until the
// store is closed.
func (s *Store) RSSAC() *RSSAC { return &RSSAC{s: s} }

// rssacClaimID is the run's id among the ids claim serialises; the NUL
// bytes keep it apart from every wire batch id.
func rssacClaimID(key rstore.RunKey) string {
	return fmt.Sprintf("rssac\x00%s\x00%d", key.VP, key.Slot.Unix())
}

// AddRun implements rstore.Store.
func (r *RSSAC) AddRun(ctx context.Context, key rstore.RunKey, obs []rssac.Observation) error {
	if err := rstore.Check(key, obs); err != nil {
		return err
	}
	s := r.s
	release, err := s.claim(ctx, rssacClaimID(key))
	if err != nil {
		return fmt.Errorf("clickhouse: rssac: add run %s: %w", key, err)
	}
	defer release()
	slot := key.Slot.Unix()
	var runs, stored uint64
	if err := s.conn.QueryRow(ctx, fmt.Sprintf(`SELECT
	(SELECT count() FROM %[1]s.rssac_runs WHERE vp = ? AND slot = toDateTime(?)),
	(SELECT count() FROM %[1]s.rssac_observations WHERE slot = toDateTime(?) AND vp = ?)`, s.db),
		key.VP, slot, slot, key.VP).Scan(&runs, &stored); err != nil {
		return fmt.Errorf("clickhouse: rssac: add run %s: look it up: %w", key, err)
	}
	if runs > 0 {
		return fmt.Errorf("clickhouse: rssac: add run %s: %w", key, rstore.ErrDuplicate)
	}
	id := key.String()
	if len(obs) > 0 && stored == 0 {
		if err := s.insertColumns(ctx, "rssac_observations", rssacObsColumns, obsColumns(obs), id); err != nil {
			return err
		}
	}
	recv := min(max(s.now().Unix(), 0), math.MaxUint32)
	return s.insertColumns(ctx, "rssac_runs", rssacRunsColumns,
		[]any{[]string{key.VP}, []int64{slot}, []int64{recv}, []uint32{uint32(len(obs))}}, id)
}

// obsColumns lays observations out as the column values of
// rssacObsColumns.
func obsColumns(obs []rssac.Observation) []any {
	n := len(obs)
	var (
		slots                                     = make([]int64, n)
		vps, servers, addresses, transports       = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		family, kind, outcome, hasSerial, verdict = make([]uint8, n), make([]uint8, n), make([]uint8, n), make([]uint8, n), make([]uint8, n)
		retry                                     = make([]uint8, n)
		rtt                                       = make([]int64, n)
		serial                                    = make([]uint32, n)
	)
	for i := range obs {
		o := &obs[i]
		slots[i], vps[i] = o.Slot.Unix(), o.VP
		servers[i], addresses[i], transports[i] = o.Server, o.Address, o.Transport
		family[i], kind[i], outcome[i] = uint8(o.Family), uint8(o.Kind), uint8(o.Outcome)
		rtt[i], serial[i], hasSerial[i] = int64(o.RTT), o.Serial, b2u(o.HasSerial)
		verdict[i], retry[i] = uint8(o.Verdict), b2u(o.Retry)
	}
	return []any{slots, vps, servers, addresses, transports, family, kind, outcome, rtt, serial, hasSerial, verdict, retry}
}

// rangeArgs are a [from, to) range as the whole seconds a DateTime slot is
// compared with: a slot (whole seconds) is at or after t exactly when it
// is at or after t rounded up to a second.
func rangeArgs(from, to time.Time) (uint32, uint32) {
	return ceilSecond(from), ceilSecond(to)
}

func ceilSecond(t time.Time) uint32 {
	sec := t.Unix()
	if t.Sub(time.Unix(sec, 0)) > 0 {
		sec++
	}
	return uint32(min(max(sec, 0), math.MaxUint32))
}

// Observations implements rstore.Store. Only runs that have their
// rssac_runs row are read (see RSSAC).
func (r *RSSAC) Observations(ctx context.Context, from, to time.Time) iter.Seq2[rssac.Observation, error] {
	if err := rstore.CheckRange(from, to); err != nil {
		return rstore.Fail(err)
	}
	f, t := rangeArgs(from, to)
	q := fmt.Sprintf(`SELECT %[2]s FROM %[1]s.rssac_observations
WHERE slot >= toDateTime(?) AND slot < toDateTime(?)
	AND (vp, slot) IN (SELECT vp, slot FROM %[1]s.rssac_runs WHERE slot >= toDateTime(?) AND slot < toDateTime(?))`,
		r.s.db, names(rssacObsColumns))
	return func(yield func(rssac.Observation, error) bool) {
		rows, err := r.s.conn.Query(ctx, q, f, t, f, t)
		if err != nil {
			yield(rssac.Observation{}, fmt.Errorf("clickhouse: rssac: observations: %w", err))
			return
		}
		defer rows.Close()
		var (
			o                                         rssac.Observation
			slot                                      time.Time
			family, kind, outcome, hasSerial, verdict uint8
			retry                                     uint8
			rtt                                       int64
		)
		dest := []any{&slot, &o.VP, &o.Server, &o.Address, &o.Transport, &family, &kind, &outcome, &rtt, &o.Serial, &hasSerial, &verdict, &retry}
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				yield(rssac.Observation{}, fmt.Errorf("clickhouse: rssac: observations: %w", err))
				return
			}
			o.Slot = slot.UTC()
			o.Family, o.Kind, o.Outcome, o.RTT = int(family), rssac.Kind(kind), rssac.Outcome(outcome), time.Duration(rtt)
			o.HasSerial, o.Verdict, o.Retry = hasSerial != 0, rssac.Verdict(verdict), retry != 0
			if !yield(o, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(rssac.Observation{}, fmt.Errorf("clickhouse: rssac: observations: %w", err))
		}
	}
}

// Runs implements rstore.Store. A run's rows are grouped first: two rows
// of one run (not merged yet) count once.
func (r *RSSAC) Runs(ctx context.Context, from, to time.Time) ([]rstore.VPRuns, error) {
	if err := rstore.CheckRange(from, to); err != nil {
		return nil, err
	}
	f, t := rangeArgs(from, to)
	rows, err := r.s.conn.Query(ctx, fmt.Sprintf(`SELECT r_vp, toInt64(count()), toInt64(sum(r_obs)), min(r_slot), max(r_slot)
FROM (
	SELECT vp AS r_vp, slot AS r_slot, any(observations) AS r_obs
	FROM %s.rssac_runs
	WHERE slot >= toDateTime(?) AND slot < toDateTime(?)
	GROUP BY vp, slot
)
GROUP BY r_vp
ORDER BY r_vp`, r.s.db), f, t)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: rssac: runs: %w", err)
	}
	defer rows.Close()
	var out []rstore.VPRuns
	for rows.Next() {
		var v rstore.VPRuns
		if err := rows.Scan(&v.VP, &v.Runs, &v.Observations, &v.First, &v.Last); err != nil {
			return nil, fmt.Errorf("clickhouse: rssac: runs: %w", err)
		}
		v.First, v.Last = v.First.UTC(), v.Last.UTC()
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: rssac: runs: %w", err)
	}
	return out, nil
}

// Close implements rstore.Store. It does nothing: the flow store owns the
// connection.
func (r *RSSAC) Close() error { return nil }
