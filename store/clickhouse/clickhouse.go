// Package clickhouse is the ClickHouse implementation of store.Store, for
// deployments that outgrow the embedded DuckDB store. It speaks the native
// protocol through github.com/ClickHouse/clickhouse-go/v2 (no cgo), and its
// schema and SQL work on ClickHouse 18.16, the version Debian 12 ships, as
// well as on current servers (see schema.go for what that rules out).
//
// Layout: the raw table flows (one row per flow, with its batch id),
// flows_1m and flows_1h (SummingMergeTree rollups fed by materialized views
// on flows), if_counters (interface-counter samples), batches (one row per
// stored batch) and schema_migrations. docs/clickhouse.md describes them
// for operators.
package clickhouse

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/netpulse/netpulse/internal/tlsutil"
	"github.com/netpulse/netpulse/store"
)

// Config says where the ClickHouse server is and how long to keep rows.
type Config struct {
	// Addresses are the servers' native-protocol host:port (9000, or 9440
	// with TLS); the driver fails over between them in order. Default
	// 127.0.0.1:9000.
	Addresses []string `yaml:"addresses"`
	// Database holds netpulse's tables; Open creates it when missing.
	// Default "netpulse".
	Database string `yaml:"database"`
	// User and Password authenticate. Default user "default", no password.
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	// TLS, when enabled, encrypts the native protocol (the server's
	// tcp_port_secure).
	TLS TLSConfig `yaml:"tls"`
	// Retention is how long each table keeps rows; zero fields mean the
	// store.Retention defaults (7 days raw, 30 days of minutes, 400 days
	// of hours). The partition length of each table is chosen from it when
	// the table is created (about a 24th of it; see partitionLength).
	Retention store.Retention `yaml:"retention"`
	// DialTimeout bounds connecting to a server. Default 10 s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// MaxOpenConns bounds the connections to the servers. Default 8.
	MaxOpenConns int `yaml:"max_open_conns"`
	// Compression compresses the native protocol's blocks with LZ4, which
	// saves network at a little CPU. Default true; set false on loopback.
	Compression *bool `yaml:"compression"`

	// Now is the clock PickTable uses; nil means time.Now. Tests set it.
	Now func() time.Time `yaml:"-"`
}

// TLSConfig is the TLS client configuration for the native protocol.
type TLSConfig struct {
	Enable bool `yaml:"enable"`
	// CAFile is a PEM bundle of the CAs to trust; empty trusts the
	// system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate for mutual TLS (both
	// or neither).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the server's certificate
	// (default: the host of the address).
	ServerName string `yaml:"server_name"`
}

// DefaultConfig returns the configuration with every default filled in.
func DefaultConfig() Config {
	return Config{}.withDefaults()
}

func (c Config) withDefaults() Config {
	if len(c.Addresses) == 0 {
		c.Addresses = []string{"127.0.0.1:9000"}
	}
	if c.Database == "" {
		c.Database = "netpulse"
	}
	if c.User == "" {
		c.User = "default"
	}
	c.Retention = c.Retention.WithDefaults()
	if c.DialTimeout <= 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.MaxOpenConns <= 0 {
		c.MaxOpenConns = 8
	}
	if c.Compression == nil {
		on := true
		c.Compression = &on
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c *Config) validate() error {
	for _, a := range c.Addresses {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("clickhouse.addresses: %q: want host:port (the native protocol port, 9000 or 9440 with TLS)", a)
		}
	}
	if !identifier.MatchString(c.Database) {
		return fmt.Errorf("clickhouse.database: %q: want letters, digits and _ (not starting with a digit)", c.Database)
	}
	return nil
}

// Store is a store.Store on ClickHouse. Its methods are safe for
// concurrent use.
type Store struct {
	cfg     Config
	db      string
	conn    driver.Conn
	now     func() time.Time
	version string
	// partitions is each table's partition length in seconds, as created.
	partitions map[string]int64

	mu       sync.Mutex
	inflight map[string]chan struct{} // batch ids being inserted

	ledgerOnce sync.Once
	ledger     *Ledger // ifwatch's outage ledger (ledger.go)
}

var _ store.Store = (*Store)(nil)

// Open connects to ClickHouse, creates the database when missing and
// brings its schema to the current version (see migrations).
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var tc *tls.Config
	if cfg.TLS.Enable {
		var err error
		tc, err = tlsutil.ClientConfig("clickhouse.tls", cfg.TLS.CAFile, cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, err
		}
		tc.ServerName = cfg.TLS.ServerName
	}
	opts := &ch.Options{
		Protocol: ch.Native,
		Addr:     cfg.Addresses,
		// No database here: it may not exist yet. Every statement names
		// its tables with the database.
		Auth:             ch.Auth{Username: cfg.User, Password: cfg.Password},
		TLS:              tc,
		DialTimeout:      cfg.DialTimeout,
		MaxOpenConns:     cfg.MaxOpenConns,
		MaxIdleConns:     cfg.MaxOpenConns,
		ConnMaxLifetime:  time.Hour,
		ConnOpenStrategy: ch.ConnOpenInOrder,
		ClientInfo: ch.ClientInfo{Products: []struct{ Name, Version string }{
			{Name: "netpulse", Version: "1"},
		}},
	}
	if *cfg.Compression {
		opts.Compression = &ch.Compression{Method: ch.CompressionLZ4}
	}
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: open %v: %w", cfg.Addresses, err)
	}
	s := &Store{
		cfg:      cfg,
		db:       cfg.Database,
		conn:     conn,
		now:      cfg.Now,
		inflight: map[string]chan struct{}{},
	}
	if err := s.start(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) start(ctx context.Context) error {
	if err := s.conn.Ping(ctx); err != nil {
		return fmt.Errorf("clickhouse: connect to %v: %w", s.cfg.Addresses, err)
	}
	if err := s.conn.QueryRow(ctx, "SELECT version()").Scan(&s.version); err != nil {
		return fmt.Errorf("clickhouse: server version: %w", err)
	}
	if _, err := s.migrate(ctx); err != nil {
		return err
	}
	return s.loadPartitions(ctx)
}

// Close closes the connections.
func (s *Store) Close() error {
	if err := s.conn.Close(); err != nil {
		return fmt.Errorf("clickhouse: close: %w", err)
	}
	return nil
}

// TableCounters is the key of the interface-counter table in Info.Rows.
const TableCounters store.Table = tableCounters

// Info reports the server version, the schema version, the rows of every
// table and their size on disk, all from system.parts (active parts only,
// so rows that a merge of the rollups has not summed yet still count).
func (s *Store) Info(ctx context.Context) (store.Info, error) {
	in := store.Info{Engine: "clickhouse", Version: s.version, Rows: map[store.Table]int64{}}
	v, err := s.schemaVersion(ctx)
	if err != nil {
		return in, err
	}
	in.Schema = v
	for _, t := range []store.Table{store.TableRaw, store.TableMinute, store.TableHour, TableCounters, tableBatches} {
		in.Rows[t] = 0
	}
	rows, err := s.conn.Query(ctx, `SELECT table, sum(rows), sum(bytes_on_disk)
FROM system.parts WHERE database = ? AND active GROUP BY table`, s.db)
	if err != nil {
		return in, fmt.Errorf("clickhouse: info: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var table string
		var n, size uint64
		if err := rows.Scan(&table, &n, &size); err != nil {
			return in, fmt.Errorf("clickhouse: info: %w", err)
		}
		in.Rows[store.Table(table)] = int64(n)
		in.DiskBytes += int64(size)
	}
	if err := rows.Err(); err != nil {
		return in, fmt.Errorf("clickhouse: info: %w", err)
	}
	return in, nil
}

// claim makes concurrent Inserts of one batch id in this process run one
// after the other, so that the second sees the first's rows and returns
// ErrDuplicate. (Two collectors inserting the same batch into one database
// at the same instant are not guarded against; see docs/clickhouse.md.)
func (s *Store) claim(ctx context.Context, id string) (release func(), err error) {
	for {
		s.mu.Lock()
		busy, ok := s.inflight[id]
		if !ok {
			done := make(chan struct{})
			s.inflight[id] = done
			s.mu.Unlock()
			return func() {
				s.mu.Lock()
				delete(s.inflight, id)
				s.mu.Unlock()
				close(done)
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, fmt.Errorf("clickhouse: insert %s: %w", id, ctx.Err())
		}
	}
}

var errNoID = errors.New("clickhouse: insert: batch without id")
