package clickhouse

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/netpulse/netpulse/store"
)

// The schema works on ClickHouse 18.16 (Debian 12's package) and on
// current servers alike, so it uses none of what came later:
//
//   - no DateTime64: a time is a DateTime('UTC') (seconds, which is what
//     partitions, the primary key and the rollups use) plus a time_ms
//     UInt16 column (milliseconds within the second) that only the raw
//     range ends need. The 'UTC' in the type makes toStartOfHour and
//     friends independent of the server's time zone.
//   - no IPv6 type: an address is a String holding netip.Addr.AsSlice,
//     that is 0 bytes when absent, 4 for IPv4, 16 for IPv6. Unlike an
//     IPv6 column (IPv4 mapped into it, absent as ::) this keeps absent,
//     ::, IPv4 and IPv4-mapped IPv6 apart, so every key goes back to
//     exactly the netip.Addr that was stored.
//   - no LowCardinality, no Bool: plain String, UInt8 0/1.
//   - no TTL: Maintain drops whole partitions (see partitionLength).
//
// Every table is partitioned by intDiv(toUInt32(time), P): P seconds per
// partition, aligned to the Unix epoch, chosen from the table's retention
// when the table is created (partitionLength) and read back from
// system.tables at Open, so a later change of retention keeps working
// (with the old partition length).

// Table names besides store.TableRaw, store.TableMinute and store.TableHour.
const (
	tableCounters   = "if_counters"
	tableBatches    = "batches"
	tableMigrations = "schema_migrations"
)

// col is one column of a table: its name and ClickHouse type.
type col struct{ name, typ string }

// flowsColumns are the raw table's columns, in the order Insert sends
// them: the time, every store.Dims column in its order, then the flow's
// own fields.
var flowsColumns = []col{
	{"time", "DateTime('UTC')"},
	{"time_ms", "UInt16"},
	{"proxy", "String"},
	{"device_id", "UInt64"},
	{"exporter", "String"},
	{"observation_domain", "UInt32"},
	{"flow_type", "UInt8"},
	{"in_if", "UInt32"},
	{"out_if", "UInt32"},
	{"src_addr", "String"},
	{"dst_addr", "String"},
	{"src_port", "UInt16"},
	{"dst_port", "UInt16"},
	{"proto", "UInt8"},
	{"tcp_flags", "UInt8"},
	{"tos", "UInt8"},
	{"src_as", "UInt32"},
	{"dst_as", "UInt32"},
	{"next_hop", "String"},
	{"src_vlan", "UInt16"},
	{"dst_vlan", "UInt16"},
	{"direction", "UInt8"},
	{"src_internal", "UInt8"},
	{"dst_internal", "UInt8"},
	{"src_hostname", "String"},
	{"dst_hostname", "String"},
	{"src_country", "String"},
	{"dst_country", "String"},
	{"flow_start", "DateTime('UTC')"},
	{"flow_end", "DateTime('UTC')"},
	{"sequence", "UInt32"},
	{"sampling_rate", "UInt32"},
	{"scale", "UInt64"},
	{"bytes", "UInt64"},
	{"packets", "UInt64"},
	{"batch_id", "String"},
}

// rollupColumns are the columns of flows_1m and flows_1h: the bucket
// start, store.RollupDims, and the scaled sums.
func rollupColumns() []col {
	cols := []col{{"time", "DateTime('UTC')"}}
	for _, d := range store.RollupDims {
		cols = append(cols, col{string(d), columnType(string(d))})
	}
	return append(cols, col{"bytes", "UInt64"}, col{"packets", "UInt64"}, col{"flows", "UInt64"})
}

// countersColumns are the if_counters columns, in Insert's order.
var countersColumns = []col{
	{"time", "DateTime('UTC')"},
	{"time_ms", "UInt16"},
	{"proxy", "String"},
	{"device_id", "UInt64"},
	{"exporter", "String"},
	{"agent", "String"},
	{"observation_domain", "UInt32"},
	{"flow_type", "UInt8"},
	{"sequence", "UInt32"},
	{"sampling_rate", "UInt32"},
	{"if_index", "UInt32"},
	{"if_type", "UInt32"},
	{"if_speed", "UInt64"},
	{"if_direction", "UInt32"},
	{"if_admin_up", "UInt8"},
	{"if_oper_up", "UInt8"},
	{"in_octets", "UInt64"},
	{"in_ucast_pkts", "UInt64"},
	{"in_multicast_pkts", "UInt64"},
	{"in_broadcast_pkts", "UInt64"},
	{"in_discards", "UInt64"},
	{"in_errors", "UInt64"},
	{"in_unknown_protos", "UInt64"},
	{"out_octets", "UInt64"},
	{"out_ucast_pkts", "UInt64"},
	{"out_multicast_pkts", "UInt64"},
	{"out_broadcast_pkts", "UInt64"},
	{"out_discards", "UInt64"},
	{"out_errors", "UInt64"},
	{"promiscuous", "UInt8"},
	{"has_ethernet", "UInt8"},
	{"eth_alignment_errors", "UInt32"},
	{"eth_fcs_errors", "UInt32"},
	{"eth_single_collision_frames", "UInt32"},
	{"eth_multiple_collision_frames", "UInt32"},
	{"eth_sqe_test_errors", "UInt32"},
	{"eth_deferred_transmissions", "UInt32"},
	{"eth_late_collisions", "UInt32"},
	{"eth_excessive_collisions", "UInt32"},
	{"eth_internal_mac_transmit_errors", "UInt32"},
	{"eth_carrier_sense_errors", "UInt32"},
	{"eth_frame_too_longs", "UInt32"},
	{"eth_internal_mac_receive_errors", "UInt32"},
	{"eth_symbol_errors", "UInt32"},
	{"batch_id", "String"},
}

// batchesColumns are the batches columns: one row per stored batch,
// written last (see Insert).
var batchesColumns = []col{
	{"batch_id", "String"},
	{"proxy", "String"},
	{"received", "DateTime('UTC')"},
	{"received_ms", "UInt16"},
	{"flows", "UInt32"},
	{"counters", "UInt32"},
}

func columnType(name string) string {
	for _, c := range flowsColumns {
		if c.name == name {
			return c.typ
		}
	}
	panic("clickhouse: no raw column " + name)
}

func names(cols []col) string {
	s := make([]string, len(cols))
	for i, c := range cols {
		s[i] = c.name
	}
	return strings.Join(s, ", ")
}

func definitions(cols []col) string {
	s := make([]string, len(cols))
	for i, c := range cols {
		s[i] = "\n\t" + c.name + " " + c.typ
	}
	return strings.Join(s, ",")
}

// partitionLengths are the partition lengths a table may get, each a
// multiple of the one before, so that a raw partition always lies inside
// one rollup partition (and a batch's rollup rows go to one part).
var partitionLengths = []time.Duration{
	time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 7 * 24 * time.Hour, 28 * 24 * time.Hour,
}

// partitionLength returns the partition length for a table that keeps
// rows for keep: the longest of partitionLengths that is at most keep/24,
// and at least an hour. A table then has about 24 to 50 partitions (few
// enough for ClickHouse's merges and queries), and Maintain, which drops
// only partitions wholly older than the retention, keeps rows at most one
// partition (about 4% of keep) longer than asked: 6 h partitions for the
// default 7 days of raw flows, 1 day for 30 days of minutes, 7 days for
// 400 days of hours.
func partitionLength(keep time.Duration) time.Duration {
	p := partitionLengths[0]
	for _, l := range partitionLengths {
		if l <= keep/24 {
			p = l
		}
	}
	return p
}

func partitionBy(column string, p time.Duration) string {
	return fmt.Sprintf("intDiv(toUInt32(%s), %d)", column, int64(p/time.Second))
}

// migration is one step of the schema. Statements must be idempotent
// (IF NOT EXISTS): two collectors may migrate at once, and a crash may
// stop a migration half-way; the next Open runs it again.
type migration struct {
	version     int
	description string
	statements  func(db string, r store.Retention) []string
}

// migrations are the schema's history, oldest first. Never edit one that
// was released: add the next.
var migrations = []migration{
	{1, "flows, flows_1m, flows_1h with their materialized views, if_counters, batches", schemaV1},
	{2, "ifwatch_outages, ifwatch_keys: the ifwatch outage ledger", schemaV2},
	{3, "rssac_observations, rssac_runs: the RSSAC observations (rssac.go)", schemaV3},
}

// SchemaVersion is the schema version this package creates.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

func schemaV1(db string, r store.Retention) []string {
	raw, minute, hour := partitionLength(r.Raw), partitionLength(r.Minute), partitionLength(r.Hour)
	rollupKey := "time"
	for _, d := range store.RollupDims {
		rollupKey += ", " + string(d)
	}
	// The rollups are SummingMergeTree tables fed by materialized views
	// on the raw table: one INSERT into flows writes the raw rows and both
	// rollups, so a client crash cannot leave a batch in the raw table and
	// not in the rollups (see Insert). SummingMergeTree merges rows of the
	// same key lazily, in the background; queries sum anyway.
	rollup := func(name string, p time.Duration) string {
		return fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.%s (%s
) ENGINE = SummingMergeTree((bytes, packets, flows))
PARTITION BY %s
ORDER BY (%s)`, db, name, definitions(rollupColumns()), partitionBy("time", p), rollupKey)
	}
	view := func(name, target, bucket string) string {
		dims := make([]string, len(store.RollupDims))
		for i, d := range store.RollupDims {
			dims[i] = string(d)
		}
		return fmt.Sprintf(`CREATE MATERIALIZED VIEW IF NOT EXISTS %[1]s.%[2]s TO %[1]s.%[3]s AS
SELECT %[4]s(time) AS time, %[5]s,
	sum(bytes * scale) AS bytes, sum(packets * scale) AS packets, sum(scale) AS flows
FROM %[1]s.flows
GROUP BY time, %[5]s`, db, name, target, bucket, strings.Join(dims, ", "))
	}
	return []string{
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.flows (%s
) ENGINE = MergeTree()
PARTITION BY %s
ORDER BY (time, exporter, in_if, out_if)`, db, definitions(flowsColumns), partitionBy("time", raw)),
		rollup("flows_1m", minute),
		rollup("flows_1h", hour),
		view("flows_1m_mv", "flows_1m", "toStartOfMinute"),
		view("flows_1h_mv", "flows_1h", "toStartOfHour"),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.if_counters (%s
) ENGINE = MergeTree()
PARTITION BY %s
ORDER BY (time, exporter, if_index)`, db, definitions(countersColumns), partitionBy("time", raw)),
		// Ordered by batch_id so that Insert's look-up of one id reads
		// one granule per part.
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.batches (%s
) ENGINE = MergeTree()
PARTITION BY %s
ORDER BY batch_id`, db, definitions(batchesColumns), partitionBy("received", raw)),
	}
}

// schemaV2 adds the ifwatch outage ledger's tables (see ledger.go for how
// they are written and read). They are not partitioned by time (their
// partition key is not intDiv(toUInt32(…), …), so loadPartitions and
// Maintain leave them alone): the ledger keeps its outages and keys for
// good, and they are few.
//
// Times are Int64 microseconds since the Unix epoch (UTC), which keeps
// the watcher's instants to the microsecond on 18.16 (no DateTime64);
// noTime (the smallest Int64) stands for none: an open outage's end and
// closed time, an outage opened with no time. Exporters are Strings of
// netip.Addr.AsSlice, as in the other tables.
//
// ifwatch_outages is a ReplacingMergeTree on id with a version column:
// 18.16 has no UPDATE (ALTER … UPDATE came in 18.12 as an asynchronous
// mutation, whose effect a following read may not yet see), so Close
// inserts the outage again with version 2 and readers take, per id, the
// columns of the highest version (argMax), which is right before and
// after the background merges that drop the older row.
//
// ifwatch_keys is a ReplacingMergeTree on the key whose version is the
// first-seen time reversed (firstSeenVersion), so merges keep the
// earliest time; readers take min(first_seen) per key anyway.
func schemaV2(db string, _ store.Retention) []string {
	return []string{
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.ifwatch_outages (
	id UInt64,
	exporter String,
	if_index UInt32,
	start_us Int64,
	end_us Int64,
	source_name String,
	source_kind String,
	cause String,
	opened_us Int64,
	closed_us Int64,
	version UInt8
) ENGINE = ReplacingMergeTree(version)
ORDER BY id`, db),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.ifwatch_keys (
	exporter String,
	if_index UInt32,
	first_seen_us Int64,
	version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (exporter, if_index)`, db),
	}
}

// migrate brings the database to SchemaVersion and returns the version.
func (s *Store) migrate(ctx context.Context) (int, error) {
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS " + s.db,
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.%s (
	version UInt32,
	description String,
	applied DateTime('UTC')
) ENGINE = MergeTree()
ORDER BY version`, s.db, tableMigrations),
	} {
		if err := s.conn.Exec(ctx, q); err != nil {
			return 0, fmt.Errorf("clickhouse: migrate: %w", err)
		}
	}
	current, err := s.schemaVersion(ctx)
	if err != nil {
		return 0, err
	}
	if latest := SchemaVersion(); current > latest {
		return 0, fmt.Errorf("clickhouse: database %s has schema version %d, newer than this netpulse knows (%d): upgrade netpulse", s.db, current, latest)
	}
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		for _, q := range m.statements(s.db, s.cfg.Retention) {
			if err := s.conn.Exec(ctx, q); err != nil {
				return 0, fmt.Errorf("clickhouse: migrate to version %d: %w", m.version, err)
			}
		}
		b, err := s.conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.%s (version, description, applied)", s.db, tableMigrations))
		if err != nil {
			return 0, fmt.Errorf("clickhouse: migrate to version %d: %w", m.version, err)
		}
		if err := b.Append(uint32(m.version), m.description, s.now().UTC()); err != nil {
			b.Abort()
			return 0, fmt.Errorf("clickhouse: migrate to version %d: %w", m.version, err)
		}
		if err := b.Send(); err != nil {
			return 0, fmt.Errorf("clickhouse: migrate to version %d: %w", m.version, err)
		}
		current = m.version
	}
	return current, nil
}

func (s *Store) schemaVersion(ctx context.Context) (int, error) {
	var v uint32
	if err := s.conn.QueryRow(ctx, fmt.Sprintf("SELECT max(version) FROM %s.%s", s.db, tableMigrations)).Scan(&v); err != nil {
		return 0, fmt.Errorf("clickhouse: schema version: %w", err)
	}
	return int(v), nil
}

var partitionKeyRE = regexp.MustCompile(`^intDiv\(toUInt32\((\w+)\), (\d+)\)$`)

// loadPartitions reads each table's partition length back from
// system.tables, as created (maybe by an earlier run with another
// retention).
func (s *Store) loadPartitions(ctx context.Context) error {
	rows, err := s.conn.Query(ctx, "SELECT name, partition_key FROM system.tables WHERE database = ?", s.db)
	if err != nil {
		return fmt.Errorf("clickhouse: read partition keys: %w", err)
	}
	defer rows.Close()
	s.partitions = map[string]int64{}
	for rows.Next() {
		var name, key string
		if err := rows.Scan(&name, &key); err != nil {
			return fmt.Errorf("clickhouse: read partition keys: %w", err)
		}
		m := partitionKeyRE.FindStringSubmatch(key)
		if m == nil {
			continue
		}
		p, err := strconv.ParseInt(m[2], 10, 64)
		if err != nil || p <= 0 {
			return fmt.Errorf("clickhouse: table %s.%s: partition key %q: bad length", s.db, name, key)
		}
		s.partitions[name] = p
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("clickhouse: read partition keys: %w", err)
	}
	for _, t := range []string{string(store.TableRaw), string(store.TableMinute), string(store.TableHour), tableCounters, tableBatches} {
		if s.partitions[t] == 0 {
			return fmt.Errorf("clickhouse: table %s.%s: missing, or not partitioned by intDiv(toUInt32(time), seconds)", s.db, t)
		}
	}
	return nil
}
