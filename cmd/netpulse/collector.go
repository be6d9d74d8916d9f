package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/netpulse/netpulse/collector"
	"github.com/netpulse/netpulse/config"
	"github.com/netpulse/netpulse/ifwatch"
	"github.com/netpulse/netpulse/logging"
	"github.com/netpulse/netpulse/rssac/rstore"
	"github.com/netpulse/netpulse/store"
	"github.com/netpulse/netpulse/store/clickhouse"
)

const collectorUsage = `usage: netpulse collector -config FILE [-log_level LEVEL]

Runs the collector of the file's collector: section (docs/collector.md):
HTTPS ingest from proxies, de-duplication, the store (DuckDB or
ClickHouse), the device registry and the query API. SIGHUP reloads the
device file; SIGINT/SIGTERM stop it.

Flags:
`

// cmdCollector runs `netpulse collector`.
func cmdCollector(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("collector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "YAML configuration `file` (its collector: section)")
	logLevel := fs.String("log_level", "", "debug|info|warn|error (default: the file's)")
	if !parseFlags(fs, args, collectorUsage, stderr, cfgPath) {
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if *logLevel != "" {
		cfg.Log.Level = *logLevel
	}
	log, err := logging.New(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	defer logging.Close(log) // flushes the log file and the syslog queue
	cc := cfg.Collector.WithDefaults()
	if cc.ProxyTokensFile == "" {
		fmt.Fprintln(stderr, "netpulse collector: collector.proxy_tokens_file is required")
		return 2
	}
	proxyTokens, err := collector.ReadProxyTokens(cc.ProxyTokensFile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	apiTokens, err := readAPITokens(cc.APITokensFile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	st, err := openStore(ctx, cc)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer st.Close()
	opts := collector.Options{ProxyTokens: proxyTokens, APITokens: apiTokens, Ledger: storeLedger(st)}
	var rs *collector.RSSAC
	if cc.RSSAC.Enabled {
		if rs, err = collector.NewRSSAC(cc, collector.RSSACDeps{Store: storeRSSAC(st), APITokens: apiTokens, Log: log.With("component", "rssac")}); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		opts.Extra = rs.Handlers()
	}
	srv, err := collector.New(cc, st, opts, log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if rs != nil {
		if err := rs.Register(srv.Registry()); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if err := rs.Start(ctx); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	if err := srv.Start(ctx); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	waitSignals(ctx, log, srv)
	code := stopCollector(log, srv)
	if rs != nil {
		sctx, scancel := context.WithTimeout(context.Background(), stopTimeout)
		defer scancel()
		if err := rs.Stop(sctx); err != nil {
			log.Error("stop rssac", "err", err)
			code = 1
		}
	}
	return code
}

// readAPITokens reads the operators' tokens file, if any, and adds
// NETPULSE_API_TOKEN.
func readAPITokens(path string) ([]string, error) {
	var toks []string
	if path != "" {
		var err error
		if toks, err = collector.ReadAPITokens(path); err != nil {
			return nil, err
		}
	}
	if t := strings.TrimSpace(os.Getenv("NETPULSE_API_TOKEN")); t != "" {
		toks = append(toks, t)
	}
	return toks, nil
}

// waitSignals reloads the device file on SIGHUP until ctx ends.
func waitSignals(ctx context.Context, log *slog.Logger, srv *collector.Server) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			if err := srv.Devices().Reload(); err != nil {
				log.Error("device file reload failed; keeping the list in use", "err", err)
			} else {
				log.Info("device file reloaded", "file", srv.Devices().Path())
			}
		case <-ctx.Done():
			return
		}
	}
}

func stopCollector(log *slog.Logger, srv *collector.Server) int {
	log.Info("stopping: finishing requests in flight", "timeout", stopTimeout)
	sctx, scancel := context.WithTimeout(context.Background(), stopTimeout)
	defer scancel()
	if err := srv.Stop(sctx); err != nil {
		log.Error("stop", "err", err)
		return 1
	}
	return 0
}

// openDuckDB, duckLedger and duckRSSAC are set by store_duckdb.go when
// the binary is built with cgo.
var (
	openDuckDB func(path string, r store.Retention) (store.Store, error)
	duckLedger func(store.Store) ifwatch.Ledger
	duckRSSAC  func(store.Store) rstore.Store
)

// storeRSSAC is the RSSAC observation store kept in the flow store; nil
// for a store without one (collector.NewRSSAC refuses it).
func storeRSSAC(st store.Store) rstore.Store {
	if s, ok := st.(*clickhouse.Store); ok {
		return s.RSSAC()
	}
	if duckRSSAC != nil {
		return duckRSSAC(st)
	}
	return nil
}

// storeLedger is the ifwatch outage ledger kept in the flow store.
func storeLedger(st store.Store) ifwatch.Ledger {
	if s, ok := st.(*clickhouse.Store); ok {
		return s.Ledger()
	}
	if duckLedger != nil {
		return duckLedger(st)
	}
	return nil
}

// openStore opens the configured store.
func openStore(ctx context.Context, cc collector.Config) (store.Store, error) {
	switch cc.Store.Engine {
	case "duckdb":
		if openDuckDB == nil {
			return nil, errors.New("this netpulse was built without cgo, so without the embedded DuckDB store: build it with `make build`, or set collector.store.engine: clickhouse")
		}
		return openDuckDB(cc.Store.Path, cc.Store.Retention)
	case "clickhouse":
		c := cc.Store.ClickHouse
		pw := strings.TrimSpace(os.Getenv("NETPULSE_CLICKHOUSE_PASSWORD"))
		if pw == "" && c.PasswordFile != "" {
			b, err := os.ReadFile(c.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("clickhouse password_file: %w", err)
			}
			pw = strings.TrimSpace(string(b))
		}
		return clickhouse.Open(ctx, clickhouse.Config{
			Addresses: c.Addrs, Database: c.Database, User: c.User, Password: pw,
			TLS: clickhouse.TLSConfig{Enable: c.TLS, CAFile: c.CAFile}, Retention: cc.Store.Retention,
		})
	}
	return nil, fmt.Errorf("unknown store engine %q", cc.Store.Engine)
}
