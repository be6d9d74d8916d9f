//go:build cgo

package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are the schema changes, in order: migrations[i] brings the
// schema to version i+1. A migration is never edited once released; a
// change is a new migration appended here (and a line in
// docs/storage.md).
//
// Conventions: times are TIMESTAMP (UTC, microseconds); addresses are
// BLOBs of 4 or 16 bytes (netip.Addr.AsSlice), empty when absent, so that
// IPv4, IPv6 and "none" survive a round trip exactly; flow_type and
// direction are the numbers of flow.Type and flow.Direction. Sums in the
// rollups are already scaled by the sampling rate.
var migrations = []string{
	// 1: the first schema.
	`
CREATE TABLE batches (
	id       VARCHAR PRIMARY KEY,
	proxy    VARCHAR NOT NULL,
	received TIMESTAMP NOT NULL,
	records  UINTEGER NOT NULL
);
CREATE TABLE flows (
	time               TIMESTAMP NOT NULL,
	proxy              VARCHAR NOT NULL,
	device_id          UBIGINT NOT NULL,
	exporter           BLOB NOT NULL,
	observation_domain UINTEGER NOT NULL,
	flow_type          UTINYINT NOT NULL,
	in_if              UINTEGER NOT NULL,
	out_if             UINTEGER NOT NULL,
	src_addr           BLOB NOT NULL,
	dst_addr           BLOB NOT NULL,
	src_port           USMALLINT NOT NULL,
	dst_port           USMALLINT NOT NULL,
	proto              UTINYINT NOT NULL,
	tcp_flags          UTINYINT NOT NULL,
	tos                UTINYINT NOT NULL,
	src_as             UINTEGER NOT NULL,
	dst_as             UINTEGER NOT NULL,
	next_hop           BLOB NOT NULL,
	src_vlan           USMALLINT NOT NULL,
	dst_vlan           USMALLINT NOT NULL,
	direction          UTINYINT NOT NULL,
	src_internal       BOOLEAN NOT NULL,
	dst_internal       BOOLEAN NOT NULL,
	src_hostname       VARCHAR NOT NULL,
	dst_hostname       VARCHAR NOT NULL,
	src_country        VARCHAR NOT NULL,
	dst_country        VARCHAR NOT NULL,
	flow_start         TIMESTAMP,
	flow_end           TIMESTAMP,
	sequence           UINTEGER NOT NULL,
	sampling_rate      UINTEGER NOT NULL,
	scale              UINTEGER NOT NULL,
	bytes              UBIGINT NOT NULL,
	packets            UBIGINT NOT NULL,
	batch_id           VARCHAR NOT NULL
);
CREATE TABLE flows_1m (
	time        TIMESTAMP NOT NULL,
	device_id   UBIGINT NOT NULL,
	exporter    BLOB NOT NULL,
	flow_type   UTINYINT NOT NULL,
	in_if       UINTEGER NOT NULL,
	out_if      UINTEGER NOT NULL,
	proto       UTINYINT NOT NULL,
	src_as      UINTEGER NOT NULL,
	dst_as      UINTEGER NOT NULL,
	direction   UTINYINT NOT NULL,
	src_country VARCHAR NOT NULL,
	dst_country VARCHAR NOT NULL,
	bytes       UBIGINT NOT NULL,
	packets     UBIGINT NOT NULL,
	flows       UBIGINT NOT NULL
);
CREATE TABLE flows_1h AS SELECT * FROM flows_1m LIMIT 0;
CREATE TABLE if_counters (
	time                          TIMESTAMP NOT NULL,
	proxy                         VARCHAR NOT NULL,
	device_id                     UBIGINT NOT NULL,
	exporter                      BLOB NOT NULL,
	if_index                      UINTEGER NOT NULL,
	if_type                       UINTEGER NOT NULL,
	if_speed                      UBIGINT NOT NULL,
	if_direction                  UINTEGER NOT NULL,
	if_admin_up                   BOOLEAN NOT NULL,
	if_oper_up                    BOOLEAN NOT NULL,
	in_octets                     UBIGINT NOT NULL,
	in_ucast_pkts                 UBIGINT NOT NULL,
	in_multicast_pkts             UBIGINT NOT NULL,
	in_broadcast_pkts             UBIGINT NOT NULL,
	in_discards                   UBIGINT NOT NULL,
	in_errors                     UBIGINT NOT NULL,
	in_unknown_protos             UBIGINT NOT NULL,
	out_octets                    UBIGINT NOT NULL,
	out_ucast_pkts                UBIGINT NOT NULL,
	out_multicast_pkts            UBIGINT NOT NULL,
	out_broadcast_pkts            UBIGINT NOT NULL,
	out_discards                  UBIGINT NOT NULL,
	out_errors                    UBIGINT NOT NULL,
	promiscuous                   BOOLEAN NOT NULL,
	has_ethernet                  BOOLEAN NOT NULL,
	eth_alignment_errors          UINTEGER,
	eth_fcs_errors                UINTEGER,
	eth_single_collision_frames   UINTEGER,
	eth_multiple_collision_frames UINTEGER,
	eth_sqe_test_errors           UINTEGER,
	eth_deferred_transmissions    UINTEGER,
	eth_late_collisions           UINTEGER,
	eth_excessive_collisions      UINTEGER,
	eth_internal_mac_tx_errors    UINTEGER,
	eth_carrier_sense_errors      UINTEGER,
	eth_frame_too_longs           UINTEGER,
	eth_internal_mac_rx_errors    UINTEGER,
	eth_symbol_errors             UINTEGER
);
`,
	// 2: the ifwatch outage ledger (see ledger.go). exporter is a BLOB as
	// above (never empty: the ledger refuses keys without an address);
	// end_time and closed_at are NULL while the outage is open, opened_at
	// NULL when the watcher gave no time. Outage ids come from the
	// sequence: monotonic, never 0, never reused.
	`
CREATE SEQUENCE ifwatch_outage_ids START 1;
CREATE TABLE ifwatch_outages (
	id          UBIGINT PRIMARY KEY,
	exporter    BLOB NOT NULL,
	if_index    UINTEGER NOT NULL,
	start_time  TIMESTAMP NOT NULL,
	end_time    TIMESTAMP,
	source_name VARCHAR NOT NULL,
	source_kind VARCHAR NOT NULL,
	cause       VARCHAR NOT NULL,
	opened_at   TIMESTAMP,
	closed_at   TIMESTAMP
);
CREATE TABLE ifwatch_keys (
	exporter   BLOB NOT NULL,
	if_index   UINTEGER NOT NULL,
	first_seen TIMESTAMP NOT NULL,
	PRIMARY KEY (exporter, if_index)
);
`,
	// 3: the RSSAC observations (see rssac.go): one row per run, keyed by
	// vantage point and slot (the primary key refuses a run twice), and
	// one row per query of a run. rtt_ns keeps a time.Duration exactly;
	// transport, family, kind, outcome and verdict are the values of
	// rssac.Observation (strings and the numbers of its enums).
	`
CREATE TABLE rssac_runs (
	vp           VARCHAR NOT NULL,
	slot         TIMESTAMP NOT NULL,
	received     TIMESTAMP NOT NULL,
	observations UINTEGER NOT NULL,
	PRIMARY KEY (vp, slot)
);
CREATE TABLE rssac_observations (
	slot       TIMESTAMP NOT NULL,
	vp         VARCHAR NOT NULL,
	server     VARCHAR NOT NULL,
	address    VARCHAR NOT NULL,
	transport  VARCHAR NOT NULL,
	family     UTINYINT NOT NULL,
	kind       UTINYINT NOT NULL,
	outcome    UTINYINT NOT NULL,
	rtt_ns     BIGINT NOT NULL,
	serial     UINTEGER NOT NULL,
	has_serial BOOLEAN NOT NULL,
	verdict    UTINYINT NOT NULL,
	retry      BOOLEAN NOT NULL
);
`,
}

// SchemaVersion is the schema version this build writes and reads: the
// number of migrations (a test checks it).
const SchemaVersion = 3

// migrate brings the schema of db up to SchemaVersion, one transaction
// per migration, and returns the version found before. A file written by
// a newer netpulse is refused, not guessed at.
func migrate(ctx context.Context, db *sql.DB, path string) (int, error) {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version INTEGER PRIMARY KEY,
	applied TIMESTAMP NOT NULL
)`); err != nil {
		return 0, fmt.Errorf("store/duckdb: %s: schema_migrations: %w", path, err)
	}
	var found int
	if err := db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&found); err != nil {
		return 0, fmt.Errorf("store/duckdb: %s: schema version: %w", path, err)
	}
	if found > SchemaVersion {
		return found, fmt.Errorf("store/duckdb: %s has schema version %d, newer than the %d this netpulse knows: run a newer netpulse, or point storage at another file", path, found, SchemaVersion)
	}
	for v := found + 1; v <= SchemaVersion; v++ {
		if err := apply(ctx, db, v); err != nil {
			return found, fmt.Errorf("store/duckdb: %s: migration to version %d: %w", path, v, err)
		}
	}
	return found, nil
}

func apply(ctx context.Context, db *sql.DB, version int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, migrations[version-1]); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (?, make_timestamp(?))`, version, time.Now().UnixMicro()); err != nil {
		return err
	}
	return tx.Commit()
}
