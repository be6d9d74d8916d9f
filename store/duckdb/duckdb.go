//go:build cgo

package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	duckdb "github.com/marcboeker/go-duckdb/v2"

	"github.com/netpulse/netpulse/store"
)

// Config configures the store.
type Config struct {
	// Retention is how long each table keeps rows. Zero fields take the
	// store defaults: raw flows, counters and batch ids 7 days, the
	// 1-minute rollup 30 days, the 1-hour rollup 400 days.
	Retention store.Retention `yaml:"retention"`
	// Threads is how many threads DuckDB may use for one query. Default
	// 0: DuckDB's own default, the number of cores.
	Threads int `yaml:"threads"`
	// MemoryLimit caps DuckDB's buffer memory, in DuckDB's notation
	// ("4GB", "512MB"). Default "": DuckDB's own default, 80 % of RAM.
	MemoryLimit string `yaml:"memory_limit"`
	// Now returns the current time, which PickTable needs to know what the
	// retention still covers. Default nil: time.Now. Tests inject a
	// clock.
	Now func() time.Time `yaml:"-"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config { return Config{} }

var memoryLimitRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?\s*([KMGT]i?B|B)$`)

// Store is the DuckDB store. It is safe for concurrent use.
type Store struct {
	path string
	cfg  Config
	db   *sql.DB

	// inflight holds the ids of the batches being inserted, so that a
	// second Insert of the same id waits for the first to end and then
	// finds the id stored (DuckDB would only refuse it at commit).
	mu       sync.Mutex
	inflight map[string]chan struct{}

	ledgerOnce sync.Once
	ledger     *Ledger // ifwatch's outage ledger (ledger.go)

	// maintainMu serialises Maintain; compacted is the time of the last
	// rollup compaction.
	maintainMu sync.Mutex
	compacted  time.Time

	flowSpec  *appendSpec
	scratch   sync.Pool // *inserter
	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens the DuckDB file at path, creating it if needed, and brings its
// schema to SchemaVersion. Only one process may have a file open (DuckDB
// locks it).
func Open(path string, cfg Config) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?") {
		return nil, fmt.Errorf("store/duckdb: path %q: want a file name without '?'", path)
	}
	cfg.Retention = cfg.Retention.WithDefaults()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	opts := url.Values{}
	if cfg.Threads < 0 {
		return nil, fmt.Errorf("store/duckdb: threads %d: want 0 (all cores) or more", cfg.Threads)
	}
	if cfg.Threads > 0 {
		opts.Set("threads", strconv.Itoa(cfg.Threads))
	}
	if cfg.MemoryLimit != "" {
		if !memoryLimitRE.MatchString(cfg.MemoryLimit) {
			return nil, fmt.Errorf("store/duckdb: memory_limit %q: want a size such as 4GB or 512MB", cfg.MemoryLimit)
		}
		opts.Set("memory_limit", cfg.MemoryLimit)
	}
	dsn := path
	if len(opts) > 0 {
		dsn += "?" + opts.Encode()
	}
	conn, err := duckdb.NewConnector(dsn, func(c driver.ExecerContext) error {
		_, err := c.ExecContext(context.Background(), tempTables, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store/duckdb: open %s: %w", path, err)
	}
	db := sql.OpenDB(conn)
	// Inserts run in parallel, each on its own connection; keep a few
	// connections around instead of making one per batch.
	db.SetMaxIdleConns(8)
	ctx := context.Background()
	if _, err := migrate(ctx, db, path); err != nil {
		db.Close()
		return nil, err
	}
	flowSpec, err := newFlowSpec()
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store/duckdb: %w", err)
	}
	return &Store{path: path, cfg: cfg, db: db, flowSpec: flowSpec, inflight: map[string]chan struct{}{}}, nil
}

// Close closes the file. Calling it again does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("store/duckdb: close %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// micros is t as the TIMESTAMP columns hold it.
func micros(t time.Time) int64 { return t.UnixMicro() }

// BatchIDs returns the ids of the batches received at or after since.
func (s *Store) BatchIDs(ctx context.Context, since time.Time) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM batches WHERE received >= make_timestamp(?)`, micros(since))
	if err != nil {
		return nil, fmt.Errorf("store/duckdb: batch ids: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("store/duckdb: batch ids: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store/duckdb: batch ids: %w", err)
	}
	return ids, nil
}

// TableCounters and TableBatches are the keys of the interface-counter
// and batch-id tables in Info.Rows, beside the three flow tables.
const (
	TableCounters store.Table = "if_counters"
	TableBatches  store.Table = "batches"
)

// Info reports the engine, its version, the schema version, the rows of
// every table and the size of the file and its write-ahead log.
func (s *Store) Info(ctx context.Context) (store.Info, error) {
	in := store.Info{Engine: "duckdb", Rows: map[store.Table]int64{}, DiskBytes: -1}
	err := s.db.QueryRowContext(ctx, `SELECT
	(SELECT library_version FROM pragma_version()),
	(SELECT max(version) FROM schema_migrations),
	(SELECT count(*) FROM flows),
	(SELECT count(*) FROM flows_1m),
	(SELECT count(*) FROM flows_1h),
	(SELECT count(*) FROM if_counters),
	(SELECT count(*) FROM batches)`).Scan(&in.Version, &in.Schema,
		rowsOf(in.Rows, store.TableRaw), rowsOf(in.Rows, store.TableMinute), rowsOf(in.Rows, store.TableHour),
		rowsOf(in.Rows, TableCounters), rowsOf(in.Rows, TableBatches))
	if err != nil {
		return in, fmt.Errorf("store/duckdb: info: %w", err)
	}
	var size int64
	for _, p := range []string{s.path, s.path + ".wal"} {
		fi, err := os.Stat(p)
		switch {
		case err == nil:
			size += fi.Size()
		case !errors.Is(err, os.ErrNotExist):
			return in, fmt.Errorf("store/duckdb: info: %w", err)
		}
	}
	in.DiskBytes = size
	return in, nil
}

// rowsOf is a Scan destination that lands in m[t].
func rowsOf(m map[store.Table]int64, t store.Table) sql.Scanner { return rowCount{m, t} }

type rowCount struct {
	m map[store.Table]int64
	t store.Table
}

func (r rowCount) Scan(v any) error {
	n, ok := v.(int64)
	if !ok {
		return fmt.Errorf("row count of %s: %T", r.t, v)
	}
	r.m[r.t] = n
	return nil
}

// compactLookback is how far back before the previous Maintain a rollup
// compaction reaches, for batches that arrive late; after Open, the first
// compaction reaches back compactFirst.
const (
	compactLookback = 2 * time.Hour
	compactFirst    = 24 * time.Hour
)

// Maintain applies the retention as of now, compacts the rollups (rows
// that batches wrote for the same bucket and key become one), and writes
// the data out to the file (a checkpoint).
func (s *Store) Maintain(ctx context.Context, now time.Time) error {
	s.maintainMu.Lock()
	defer s.maintainMu.Unlock()
	r := s.cfg.Retention
	for _, d := range []struct {
		table, column string
		keep          time.Duration
	}{
		{"flows", "time", r.Raw},
		{"if_counters", "time", r.Raw},
		{"batches", "received", r.Raw},
		{"flows_1m", "time", r.Minute},
		{"flows_1h", "time", r.Hour},
	} {
		q := fmt.Sprintf(`DELETE FROM %s WHERE %s < make_timestamp(?)`, d.table, d.column)
		if _, err := s.db.ExecContext(ctx, q, micros(now.Add(-d.keep))); err != nil {
			return fmt.Errorf("store/duckdb: retention of %s: %w", d.table, err)
		}
	}
	from := now.Add(-compactFirst)
	if !s.compacted.IsZero() {
		last := s.compacted
		if last.After(now) {
			last = now
		}
		from = last.Add(-compactLookback)
	}
	for _, table := range []string{"flows_1m", "flows_1h"} {
		if err := s.compact(ctx, table, from); err != nil {
			return fmt.Errorf("store/duckdb: compact %s: %w", table, err)
		}
	}
	s.compacted = now
	// A checkpoint fails while other transactions run; the next one, or
	// DuckDB's automatic one, will do.
	_, _ = s.db.ExecContext(ctx, `CHECKPOINT`)
	return nil
}

// compact merges the rows of a rollup table from from on that have the
// same bucket and key, in one transaction: a query sees either the rows
// before or the rows after. Rows that concurrent inserts add meanwhile
// are not in the transaction's snapshot, so they are neither summed nor
// deleted.
func (s *Store) compact(ctx context.Context, table string, from time.Time) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN TRANSACTION`); err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			rollback(ctx, conn)
		}
	}()
	cols := `time, ` + rollupColumns
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`CREATE TEMP TABLE compacted AS
SELECT %s, sum(bytes)::UBIGINT AS bytes, sum(packets)::UBIGINT AS packets, sum(flows)::UBIGINT AS flows
FROM %s WHERE time >= make_timestamp(?) GROUP BY %s`, cols, table, cols), micros(from)); err != nil {
		return err
	}
	var before, after int64
	if err := conn.QueryRowContext(ctx, fmt.Sprintf(`SELECT (SELECT count(*) FROM %s WHERE time >= make_timestamp(?)), (SELECT count(*) FROM compacted)`, table),
		micros(from)).Scan(&before, &after); err != nil {
		return err
	}
	if before == after {
		return nil // nothing to merge; the deferred ROLLBACK drops the temporary table
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`DELETE FROM %s WHERE time >= make_timestamp(?)`, table), micros(from)); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`INSERT INTO %s (%s, bytes, packets, flows) SELECT %s, bytes, packets, flows FROM compacted`, table, cols, cols)); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `DROP TABLE compacted`); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		return err
	}
	done = true
	return nil
}
