package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/netpulse/netpulse/tcpstats"
)

// files collects a repeatable --read flag.
type files []string

func (f *files) String() string     { return strings.Join(*f, ",") }
func (f *files) Set(s string) error { *f = append(*f, s); return nil }

// cmdTCPStats runs `netpulse tcpstats --read FILE...`: offline TCP analysis
// of pcap/pcapng captures. Live capture is not built yet.
func cmdTCPStats(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tcpstats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var read files
	fs.Var(&read, "read", "pcap or pcapng `file` to analyze (repeatable; further files may follow the flags)")
	format := fs.String("format", "table", "output format: table or json")
	cfg := tcpstats.DefaultConfig()
	fs.IntVar(&cfg.MaxFlows, "max-flows", cfg.MaxFlows, "most connections followed at once; the least recently seen is evicted and counted")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "end a connection after this long without packets")
	fs.DurationVar(&cfg.ClosedTimeout, "closed-timeout", cfg.ClosedTimeout, "end a connection this long after its RST or second FIN")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: netpulse tcpstats --read FILE [FILE...] [flags]\n\nOffline TCP analysis following Wireshark's tcp.analysis rules (docs/tcpstats.md).\nLive capture (--interface) is not built yet.")
		fs.PrintDefaults()
	}
	rest, err := parse(fs, args)
	if err != nil {
		return 2
	}
	read = append(read, rest...)
	if len(read) == 0 {
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
