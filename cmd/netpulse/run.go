package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/netpulse/netpulse/collector"
	"github.com/netpulse/netpulse/config"
	"github.com/netpulse/netpulse/demo"
	"github.com/netpulse/netpulse/device"
	"github.com/netpulse/netpulse/logging"
	"github.com/netpulse/netpulse/proxy"
)

const runUsage = `usage: netpulse run [-demo] [-data DIR] [-api ADDR] [-flow ADDR] [-config FILE]

The all-in-one: a collector on the embedded DuckDB store and a proxy, in
one process, with all state in one data directory. It prints where to point
routers, where the API is, and the token. With -demo, simulated routers
send NetFlow v5, v9, IPFIX and sFlow over loopback.

Flags:
`

// cmdRun runs `netpulse run`.
func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", "netpulse-data", "data `directory`: store, devices, token, spool")
	apiAddr := fs.String("api", "127.0.0.1:8080", "`address` of the API (plain HTTP, loopback only; use `netpulse collector` with TLS for a network)")
	flowAddr := fs.String("flow", "127.0.0.1:9995", "UDP `address` routers send flow to (0.0.0.0:9995 to receive from the network)")
	withDemo := fs.Bool("demo", false, "simulated routers send flow over loopback")
	cfgPath := fs.String("config", "", "YAML configuration `file` (log, decoder, collector.store.retention, collector.dedup)")
	logLevel := fs.String("log_level", "", "debug|info|warn|error")
	if !parseFlags(fs, args, runUsage, stderr, nil) {
		return 2
	}
	cfg := config.Default()
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
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
	flowAP, err := netip.ParseAddrPort(*flowAddr)
	if err != nil {
		fmt.Fprintf(stderr, "netpulse run: -flow %q: %v\n", *flowAddr, err)
		return 2
	}
	dir, err := filepath.Abs(*dataDir)
	if err == nil {
		err = os.MkdirAll(dir, 0o750)
	}
	if err != nil {
		fmt.Fprintln(stderr, "netpulse run: data directory:", err)
		return 1
	}
	token, err := loadOrMakeToken(filepath.Join(dir, "api-token"))
	if err != nil {
		fmt.Fprintln(stderr, "netpulse run:", err)
		return 1
	}

	ctx, cancel := runContext()
	defer cancel()

	// The collector, on the embedded store.
	cc := cfg.Collector
	cc.Listen, cc.PlainHTTP, cc.DataDir = *apiAddr, true, dir
	cc.DevicesFile, cc.Store.Path, cc.Store.Engine = "", "", "duckdb"
	if *withDemo && cc.IfWatch.Rules.DownAfter == collector.DefaultConfig().IfWatch.Rules.DownAfter {
		// The demo's interfaces go silent for 3 minutes: show them down.
		cc.IfWatch.Rules.DownAfter = 90 * time.Second
	}
	cc = cc.WithDefaults()
	st, err := openStore(ctx, cc)
	if err != nil {
		fmt.Fprintln(stderr, "netpulse run:", err)
		return 1
	}
	defer st.Close()
	srv, err := collector.New(cc, st, collector.Options{ProxyTokens: map[string]string{token: "local"}, APITokens: []string{token}, Ledger: storeLedger(st)}, log)
	if err != nil {
		fmt.Fprintln(stderr, "netpulse run:", err)
		return 2
	}
	var sim *demo.Simulator
	if *withDemo {
		if sim, err = demo.New(demo.Config{}); err != nil {
			fmt.Fprintln(stderr, "netpulse run: demo:", err)
			return 2
		}
		if err := registerDemoDevices(ctx, srv.Devices(), sim.Devices()); err != nil {
			fmt.Fprintln(stderr, "netpulse run: demo devices:", err)
			return 1
		}
	}
	if err := srv.Start(ctx); err != nil {
		fmt.Fprintln(stderr, "netpulse run:", err)
		return 1
	}
	apiURL := "http://" + srv.Addr().String()

	// The proxy, sending to the collector over loopback like any other.
	set := proxy.DefaultSettings()
	set.Decoder = cfg.Decoder
	set.Name = "local"
	set.Host, set.Port = flowAP.Addr().String(), int(flowAP.Port())
	set.Healthcheck = "127.0.0.1"
	set.DataDir = filepath.Join(dir, "proxy")
	if err := os.MkdirAll(set.DataDir, 0o750); err != nil {
		fmt.Fprintln(stderr, "netpulse run:", err)
		_ = stopCollector(log, srv)
		return 1
	}
	set.AcceptUnregistered = false
	set.Sinks.Collector.URL = apiURL
	set.Sinks.Collector.AllowInsecureLoopback = true
	set.Sinks.Collector.ProxyName = "local"
	set.Sinks.Collector.SpoolDir = filepath.Join(dir, "proxy", "spool")
	set.Sinks.TokenFile = filepath.Join(dir, "api-token")
	set.DevicesAPI.URL = apiURL
	set.DevicesAPI.AllowInsecureLoopback = true
	set.DevicesAPI.Interval = 10 * time.Second
	psvc, err := proxy.NewService(set, log)
	if err != nil {
		fmt.Fprintln(stderr, "netpulse run: proxy:", err)
		_ = stopCollector(log, srv)
		return 2
	}
	if err := psvc.Start(ctx); err != nil {
		fmt.Fprintln(stderr, "netpulse run: proxy:", err)
		_ = stopCollector(log, srv)
		return 1
	}
	flowAP = psvc.Proxy.Addr() // the port, when -flow asked for any
	if sim != nil {
		go func() {
			target := netip.AddrPortFrom(loopbackOf(flowAP.Addr()), flowAP.Port())
			if err := sim.Run(ctx, target); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("demo stopped", "err", err)
			}
		}()
	}
	printBanner(stdout, dir, apiURL, flowAP, psvc.Health.Addr(), token, sim)

	waitSignals(ctx, log, srv)
	sctx, scancel := context.WithTimeout(context.Background(), stopTimeout)
	defer scancel()
	code := 0
	if err := psvc.Stop(sctx); err != nil { // flushes to the collector, still up
		log.Error("proxy stop", "err", err)
		code = 1
	}
	if stopCollector(log, srv) != 0 {
		code = 1
	}
	return code
}

// runContext ends on SIGINT or SIGTERM; tests replace it.
var runContext = func() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// loopbackOf is where the demo sends for a listen address: the address
// itself, or 127.0.0.1 (::1) for a wildcard.
func loopbackOf(a netip.Addr) netip.Addr {
	switch {
	case a.IsUnspecified() && a.Is6():
		return netip.IPv6Loopback()
	case a.IsUnspecified():
		return netip.MustParseAddr("127.0.0.1")
	}
	return a
}

// registerDemoDevices adds the simulated routers to the device list, once.
func registerDemoDevices(ctx context.Context, fs *device.FileStore, devs []device.Device) error {
	cur, err := fs.List(ctx)
	if err != nil {
		return err
	}
	for _, d := range devs {
		if cur.ByID(d.ID) != nil {
			continue
		}
		if cur, err = fs.Put(ctx, d, device.PutCreate); err != nil {
			return err
		}
	}
	return nil
}

// loadOrMakeToken reads the token file, or writes a new random token.
func loadOrMakeToken(path string) (string, error) {
	if t := strings.TrimSpace(os.Getenv("NETPULSE_API_TOKEN")); t != "" {
		return t, nil
	}
	b, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(b)); len(t) >= 16 {
			return t, nil
		}
		return "", fmt.Errorf("token file %s: shorter than 16 characters", path)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var r [20]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	t := hex.EncodeToString(r[:])
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", err
	}
	return t, nil
}

func printBanner(w io.Writer, dir, apiURL string, flow netip.AddrPort, health net.Addr, token string, sim *demo.Simulator) {
	host := flow.Addr().String()
	where := "this host"
	if flow.Addr().IsLoopback() {
		where = host + " (loopback only: start with -flow 0.0.0.0:" + strconv.Itoa(int(flow.Port())) + " to receive from routers)"
	}
	tokFile := filepath.Join(dir, "api-token")
	fmt.Fprintf(w, `
netpulse is running: collector + proxy in one process, DuckDB store.

  Routers:   send NetFlow v5/v9, IPFIX and sFlow to UDP port %d on %s
  API:       %s/api/v1/   (query, devices, proxies, status; /metrics)
  Token:     %s   (in %s)
  Health:    proxy health check on %s (kproxy text; GET /healthz)
  Data:      %s
`, flow.Port(), where, apiURL, token, tokFile, health, dir)
	if sim != nil {
		fmt.Fprintf(w, "  Demo:      %d simulated routers sending over loopback\n", len(sim.Devices()))
	}
	fmt.Fprintf(w, `
Try (data shows within a minute):
  T="Authorization: Bearer $(cat %s)"
  curl -s -H "$T" '%s/api/v1/query?group_by=exporter&from=-15m'
  curl -s -H "$T" '%s/api/v1/query?group_by=dst_port&filter=proto=6&limit=5'
  curl -s -H "$T" '%s/api/v1/query?step=1m&from=-30m'
  curl -s -H "$T" '%s/api/v1/devices'
  ./bin/netpulse ifwatch report -api %s -token_file %s     # interfaces down/up in the last 10 minutes

Stop with Ctrl-C.
`, tokFile, apiURL, apiURL, apiURL, apiURL, apiURL, tokFile)
}
