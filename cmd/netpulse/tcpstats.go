package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/netpulse/netpulse/tcpstats"
)

// strs collects a repeatable string flag.
type strs []string

func (f *strs) String() string     { return strings.Join(*f, ",") }
func (f *strs) Set(s string) error { *f = append(*f, s); return nil }

// ports parses a comma-separated port list.
type ports struct{ p *[]uint16 }

func (f ports) String() string {
	if f.p == nil {
		return ""
	}
	var s []string
	for _, p := range *f.p {
		s = append(s, strconv.Itoa(int(p)))
	}
	return strings.Join(s, ",")
}

func (f ports) Set(s string) error {
	*f.p = nil
	for _, v := range strings.Split(s, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 16)
		if err != nil {
			return fmt.Errorf("port %q: %w", v, err)
		}
		*f.p = append(*f.p, uint16(n))
	}
	return nil
}

// cmdTCPStats runs `netpulse tcpstats`: offline analysis of capture files
// (--read) or live capture with Prometheus metrics (--interface).
func cmdTCPStats(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tcpstats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var read, ifaces strs
	fs.Var(&read, "read", "pcap or pcapng `file` to analyze offline (repeatable; more files may follow the flags)")
	fs.Var(&ifaces, "interface", "`name` of an interface to capture on live (repeatable)")
	format := fs.String("format", "table", "offline output format: table or json")
	cfg := tcpstats.DefaultConfig()
	fs.IntVar(&cfg.MaxFlows, "max-flows", cfg.MaxFlows, "most connections followed at once; the least recently seen is evicted and counted")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "end a connection after this long without packets")
	fs.DurationVar(&cfg.ClosedTimeout, "closed-timeout", cfg.ClosedTimeout, "end a connection this long after its RST or second FIN")
	live := tcpstats.LiveConfig{Filter: "tcp", Listen: ":9469"}
	fs.StringVar(&live.Filter, "filter", live.Filter, "capture filter: tcp or all (no general BPF compiler without libpcap)")
	fs.StringVar(&live.Listen, "listen", live.Listen, "address of /metrics, /healthz and /readyz")
	fs.DurationVar(&live.TopInterval, "top-interval", 0, "how often the top-K IP pairs by retransmissions are refreshed (default 1m)")
	fs.IntVar(&live.Metrics.TopK, "top-k", 100, "IP pairs shown in netpulse_tcpstats_top_pair_retransmissions")
	live.Metrics.ServicePorts = append([]uint16(nil), tcpstats.DefaultServicePorts...)
	fs.Var(ports{&live.Metrics.ServicePorts}, "service-ports", "comma-separated server `ports` that get their own service label; others are \"other\"")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: netpulse tcpstats --read FILE [FILE...] [--format table|json]
       netpulse tcpstats --interface NAME [--interface NAME...] [--listen ADDR]

TCP analysis following Wireshark's tcp.analysis rules (docs/tcpstats.md).`)
		fs.PrintDefaults()
	}
	rest, err := parse(fs, args)
	if err != nil {
		return 2
	}
	read = append(read, rest...)
	switch {
	case len(read) > 0 && len(ifaces) > 0:
		fmt.Fprintln(stderr, "netpulse tcpstats: --read and --interface exclude each other")
		return 2
	case len(ifaces) > 0:
		live.Interfaces, live.Table = ifaces, cfg
		return tcpstatsLive(live, stderr)
	case len(read) == 0:
		fs.Usage()
		return 2
	}
	if *format != "table" && *format != "json" {
		fmt.Fprintf(stderr, "netpulse tcpstats: --format %q: want table or json\n", *format)
		return 2
	}
	rep, err := tcpstats.ReadFiles(read, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *format == "json" {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// tcpstatsLive captures until SIGINT or SIGTERM.
func tcpstatsLive(cfg tcpstats.LiveConfig, stderr io.Writer) int {
	l, err := tcpstats.NewLive(cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := l.Start(ctx); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stderr, "netpulse tcpstats: capturing on %s, metrics on http://%s/metrics\n", strings.Join(cfg.Interfaces, ","), l.Addr())
	<-ctx.Done()
	l.Stop()
	return 0
}
