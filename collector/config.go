package collector

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/netpulse/netpulse/ifwatch"
	"github.com/netpulse/netpulse/store"
	"github.com/netpulse/netpulse/wire"
)

// Config is the collector section of the configuration file. The zero
// value of a field means its default (DefaultConfig).
type Config struct {
	// Listen is the HTTPS address of ingest, the APIs, /metrics, /healthz
	// and /readyz. Default ":8443".
	Listen string `yaml:"listen"`
	// CertFile and KeyFile are the server's TLS certificate and key.
	// Required unless PlainHTTP.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, when set, requires proxies to present a client
	// certificate signed by one of these CAs (mutual TLS).
	ClientCAFile string `yaml:"client_ca_file"`
	// PlainHTTP serves plain HTTP. Refused unless Listen is a loopback
	// address: tokens never cross a network in clear.
	PlainHTTP bool `yaml:"plain_http"`
	// DataDir holds the collector's state: the DuckDB file, the device
	// list when DevicesFile is not set, the de-duplication window across
	// restarts. Default "/var/lib/netpulse".
	DataDir string `yaml:"data_dir"`
	// ProxyTokensFile lists the proxies allowed to send, one per line:
	// "NAME TOKEN". A token names its proxy. Required.
	ProxyTokensFile string `yaml:"proxy_tokens_file"`
	// APITokensFile lists operators' tokens, one per line: they query the
	// API and change the device list. Without it, the query API answers
	// nobody and the device list is read-only. The environment variable
	// NETPULSE_API_TOKEN adds one.
	APITokensFile string `yaml:"api_tokens_file"`
	// DevicesFile is the device list in the YAML format of the proxy's
	// -devices file. It stays the source of truth: the API writes its
	// changes back to it, and SIGHUP reloads it after a hand edit.
	// Default DataDir/devices.yaml.
	DevicesFile string `yaml:"devices_file"`
	// Store is where flows go.
	Store StoreConfig `yaml:"store"`
	// Dedup drops the copies of records that reach the collector through
	// several proxies (docs/collector.md).
	Dedup DedupConfig `yaml:"dedup"`
	// Ingest bounds requests from proxies.
	Ingest wire.HandlerConfig `yaml:"ingest"`
	// MaintainInterval is how often retention runs. Default 5m.
	MaintainInterval time.Duration `yaml:"maintain_interval"`
	// IfWatch watches every exporter+interface for silence
	// (docs/ifwatch.md).
	IfWatch IfWatchConfig `yaml:"ifwatch"`
	// RSSAC loads the probes' RSSAC047 results (docs/rssac-ingest.md).
	RSSAC RSSACConfig `yaml:"rssac"`
}

// StoreConfig picks and configures the store.
type StoreConfig struct {
	// Engine is "duckdb" (default: one file in DataDir, nothing to
	// install) or "clickhouse".
	Engine string `yaml:"engine"`
	// Path is the DuckDB file. Default DataDir/flows.duckdb.
	Path string `yaml:"path"`
	// ClickHouse is used when Engine is "clickhouse".
	ClickHouse ClickHouseConfig `yaml:"clickhouse"`
	// Retention of raw flows and rollups (docs/storage.md).
	Retention store.Retention `yaml:"retention"`
}

// ClickHouseConfig points at a ClickHouse server (native protocol).
type ClickHouseConfig struct {
	// Addrs are host:port of the native protocol. Default 127.0.0.1:9000.
	Addrs    []string `yaml:"addrs"`
	Database string   `yaml:"database"` // default "netpulse"
	User     string   `yaml:"user"`     // default "default"
	// PasswordFile holds the password; NETPULSE_CLICKHOUSE_PASSWORD
	// overrides it.
	PasswordFile string `yaml:"password_file"`
	TLS          bool   `yaml:"tls"`
	CAFile       string `yaml:"ca_file"`
}

// DedupConfig bounds the de-duplication window.
type DedupConfig struct {
	// Window is how long a record's key is remembered. Default 10m: longer
	// than the delay between two proxies forwarding the same datagram,
	// including a proxy catching up after a short outage.
	Window time.Duration `yaml:"window"`
	// MaxKeys bounds the keys remembered. Default 4,000,000 (about 100 MB).
	MaxKeys int `yaml:"max_keys"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Listen:  ":8443",
		DataDir: "/var/lib/netpulse",
		Store: StoreConfig{Engine: "duckdb", ClickHouse: ClickHouseConfig{
			Addrs: []string{"127.0.0.1:9000"}, Database: "netpulse", User: "default",
		}, Retention: store.Retention{}.WithDefaults()},
		Dedup:            DedupConfig{Window: 10 * time.Minute, MaxKeys: 4000000},
		Ingest:           wire.DefaultHandlerConfig(),
		MaintainInterval: 5 * time.Minute,
		IfWatch:          IfWatchConfig{Rules: ifwatch.DefaultConfig(), Tick: 15 * time.Second},
		RSSAC:            DefaultRSSACConfig(),
	}
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.Listen == "" {
		c.Listen = d.Listen
	}
	if c.DataDir == "" {
		c.DataDir = d.DataDir
	}
	if c.DevicesFile == "" {
		c.DevicesFile = c.DataDir + "/devices.yaml"
	}
	if c.Store.Engine == "" {
		c.Store.Engine = d.Store.Engine
	}
	if c.Store.Path == "" {
		c.Store.Path = c.DataDir + "/flows.duckdb"
	}
	ch := &c.Store.ClickHouse
	if len(ch.Addrs) == 0 {
		ch.Addrs = d.Store.ClickHouse.Addrs
	}
	if ch.Database == "" {
		ch.Database = d.Store.ClickHouse.Database
	}
	if ch.User == "" {
		ch.User = d.Store.ClickHouse.User
	}
	c.Store.Retention = c.Store.Retention.WithDefaults()
	if c.Dedup.Window <= 0 {
		c.Dedup.Window = d.Dedup.Window
	}
	if c.Dedup.MaxKeys <= 0 {
		c.Dedup.MaxKeys = d.Dedup.MaxKeys
	}
	if c.MaintainInterval <= 0 {
		c.MaintainInterval = d.MaintainInterval
	}
	c.RSSAC = c.RSSAC.withDefaults(c.DataDir)
	return c
}

// Validate checks what YAML types cannot.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if c.PlainHTTP {
		if !loopbackListen(c.Listen) {
			return fmt.Errorf("collector.plain_http: refused on %q: plain HTTP only on a loopback address (127.0.0.1:PORT or [::1]:PORT)", c.Listen)
		}
	} else if c.CertFile == "" || c.KeyFile == "" {
		return errors.New("collector: cert_file and key_file are required (or plain_http with a loopback listen address)")
	}
	switch c.Store.Engine {
	case "duckdb", "clickhouse":
	default:
		return fmt.Errorf("collector.store.engine: %q is not duckdb or clickhouse", c.Store.Engine)
	}
	return c.RSSAC.validate(false)
}

func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// ReadProxyTokens reads a proxy tokens file: "NAME TOKEN" per line, # for
// comments. Names and tokens must be unique.
func ReadProxyTokens(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("proxy tokens: %w", err)
	}
	tokens := map[string]string{}
	names := map[string]bool{}
	for _, l := range lines(data) {
		i, f := l.n, strings.Fields(l.s)
		if len(f) != 2 {
			return nil, fmt.Errorf("proxy tokens %s:%d: want \"NAME TOKEN\"", path, i)
		}
		if len(f[1]) < 16 {
			return nil, fmt.Errorf("proxy tokens %s:%d: token of proxy %q shorter than 16 characters", path, i, f[0])
		}
		if names[f[0]] || tokens[f[1]] != "" {
			return nil, fmt.Errorf("proxy tokens %s:%d: proxy %q or its token listed twice", path, i, f[0])
		}
		names[f[0]] = true
		tokens[f[1]] = f[0]
	}
	return tokens, nil
}

// ReadAPITokens reads an operators' tokens file: one token per line.
func ReadAPITokens(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("api tokens: %w", err)
	}
	var out []string
	for _, l := range lines(data) {
		i, line := l.n, l.s
		if len(line) < 16 || strings.ContainsAny(line, " \t") {
			return nil, fmt.Errorf("api tokens %s:%d: a token is one word of at least 16 characters", path, i)
		}
		out = append(out, line)
	}
	return out, nil
}

// line is a meaningful line of a tokens file and its 1-based number.
type line struct {
	n int
	s string
}

// lines returns the non-empty, non-comment lines, trimmed.
func lines(data []byte) []line {
	var out []line
	sc := bufio.NewScanner(bytes.NewReader(data))
	for i := 1; sc.Scan(); i++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, line{i, l})
	}
	return out
}
