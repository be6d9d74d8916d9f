// Command netpulse is the one binary of netpulse. It only wires: each
// subcommand parses its flags and hands over to the package that does the
// work.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/netpulse/netpulse/config"
	"github.com/netpulse/netpulse/decode"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `netpulse: network telemetry — flow proxy, collector and health monitors.

Usage:
  netpulse run [-demo] [-data DIR] [-api ADDR] [-flow ADDR]
                                 the all-in-one: collector + proxy on the embedded store
  netpulse collector -config FILE
                                 ingest from proxies, store (DuckDB|ClickHouse), query API

  netpulse decode [--format json|tsv] [--templates FILE] [--stats] FILE...
                                 decode NetFlow/IPFIX/sFlow in pcap or pcapng files
  netpulse config check FILE     validate a configuration file
  netpulse config defaults       print the default configuration
  netpulse version               print the version

  netpulse proxy [-config FILE] [kproxy-style flags]
                                 receive flow from routers and forward it (see -h)

  netpulse tcpstats --read FILE... [--format table|json]
  netpulse tcpstats --interface NAME... [--listen ADDR]
                                 TCP health (Wireshark's tcp.analysis) offline, or live as metrics

  netpulse monitor -config FILE [-check] [-once]
                                 poll proxies' health checks; metrics, push, alerts

  netpulse probe -config FILE [-check] [-once]
                                 an RSSAC047 DNS vantage point: measure, keep, upload

  netpulse rssac report -month YYYY-MM | -week YYYY-Www [-format markdown|json] [-out DIR]
                                 RSSAC047 pass/fail per root server and for the system (asks a collector)

  netpulse ifwatch report [-since 10m | -month YYYY-MM | -rolling] [-format table|json|csv]
                                 what went down/up, downtime and availability (asks a collector)

`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch {
	case cmd == "decode":
		return cmdDecode(rest, stdout, stderr)
	case cmd == "run":
		return cmdRun(rest, stdout, stderr)
	case cmd == "ifwatch":
		return cmdIfwatch(rest, stdout, stderr)
	case cmd == "collector":
		return cmdCollector(rest, stderr)
	case cmd == "monitor":
		return cmdMonitor(rest, stdout, stderr)
	case cmd == "proxy":
		return cmdProxy(rest, stderr)
	case cmd == "probe":
		return cmdProbe(rest, stdout, stderr)
	case cmd == "rssac":
		return cmdRSSAC(rest, stdout, stderr)
	case cmd == "tcpstats":
		return cmdTCPStats(rest, stdout, stderr)
	case cmd == "config":
		return cmdConfig(rest, stdout, stderr)
	case cmd == "version" || cmd == "-v" || cmd == "--version":
		fmt.Fprintf(stdout, "netpulse %s %s %s/%s\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "netpulse: unknown command %q\n\n%s", cmd, usage)
	return 2
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

// parse parses flags that may come before or after the positional
// arguments, as users type them: `decode x.pcap --format tsv`.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseFlags gives fs a usage of text followed by the flags, parses
// args, and refuses positional arguments and, when required is not nil,
// an empty *required (the -config every daemon needs). false means the
// usage was printed: exit 2.
func parseFlags(fs *flag.FlagSet, args []string, text string, stderr io.Writer, required *string) bool {
	fs.Usage = func() {
		fmt.Fprint(stderr, text)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return false
	}
	if fs.NArg() > 0 || (required != nil && *required == "") {
		fs.Usage()
		return false
	}
	return true
}

func cmdDecode(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("decode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o decode.Options
	cfgPath := fs.String("config", "", "configuration `file` (decoder section)")
	fs.StringVar(&o.Format, "format", "json", "output format: json (JSON lines) or tsv")
	fs.StringVar(&o.Templates, "templates", "", "template cache `file`: loaded first when it exists, written at the end")
	fs.BoolVar(&o.Stats, "stats", false, "print decoder counters to stderr at the end")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: netpulse decode [flags] FILE...")
		fs.PrintDefaults()
	}
	files, err := parse(fs, args)
	if err != nil {
		return 2
	}
	if len(files) == 0 {
		fs.Usage()
		return 2
	}
	cfg := config.Default()
	if *cfgPath != "" {
		if cfg, err = config.Load(*cfgPath); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
	}
	o.Decoder = cfg.Decoder
	if err := decode.Run(files, o, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

func cmdConfig(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: netpulse config check FILE | netpulse config defaults")
		return 2
	}
	switch args[0] {
	case "check":
		if len(args) != 2 {
			fmt.Fprintln(stderr, "usage: netpulse config check FILE")
			return 2
		}
		if _, err := config.Load(args[1]); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok\n", args[1])
		return 0
	case "defaults":
		b, err := config.Default().Marshal()
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		stdout.Write(b)
		return 0
	}
	fmt.Fprintf(stderr, "netpulse config: unknown subcommand %q\n", strings.Join(args, " "))
	return 2
}
