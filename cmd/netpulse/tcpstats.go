package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/netpulse/netpulse/config"
	"github.com/netpulse/netpulse/tcpstats"
)

// strs collects a repeatable string flag.
type strs []string

func (f *strs) String() string     { return strings.Join(*f, ",") }
func (f *strs) Set(s string) error { *f = append(*f, s); return nil }

// tcpstatsArgs is what the command line and the file say.
type tcpstatsArgs struct {
	cfg     tcpstats.FileConfig
	read    []string
	format  string
	iflag   bool // --interface was given
	cfgPath string
}

// flagError is a command-line error the flag package has already printed.
type flagError struct{ error }

// tcpstatsSettings reads the file named by -config, if any, then the
// flags over it. SIGHUP calls it again, so a reload sees the edited file
// with the same flags still winning.
func tcpstatsSettings(args []string, stderr io.Writer) (tcpstatsArgs, error) {
	pre := flag.NewFlagSet("tcpstats", flag.ContinueOnError)
	pre.SetOutput(io.Discard)
	cfgPath := pre.String("config", "", "")
	pre.Parse(configArgs(args))
	a := tcpstatsArgs{cfg: tcpstats.DefaultFileConfig(), cfgPath: *cfgPath}
	if *cfgPath != "" {
		c, err := config.Load(*cfgPath)
		if err != nil {
			return a, err
		}
		a.cfg = c.TCPStats
	}
	fs := flag.NewFlagSet("tcpstats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", *cfgPath, "YAML configuration `file` (its tcpstats: section); flags override it; SIGHUP reloads it")
	var read strs
	fs.Var(&read, "read", "pcap or pcapng `file` to analyze offline (repeatable; more files may follow the flags)")
	fs.StringVar(&a.format, "format", "table", "offline output format: table or json")
	a.cfg.Flags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: netpulse tcpstats --read FILE [FILE...] [--format table|json]
       netpulse tcpstats [-config FILE] --interface NAME [--interface NAME...] [--filter EXPR] [--listen ADDR]

TCP analysis following Wireshark's tcp.analysis rules (docs/tcpstats.md).
Live, SIGHUP reloads the file: filter, interfaces, service ports and top-K.`)
		fs.PrintDefaults()
	}
	rest, err := parse(fs, args)
	if err != nil {
		return a, flagError{err}
	}
	a.read = append(read, rest...)
	fs.Visit(func(f *flag.Flag) { a.iflag = a.iflag || f.Name == "interface" })
	if err := a.cfg.Validate(); err != nil {
		return a, err
	}
	return a, nil
}

// cmdTCPStats runs `netpulse tcpstats`: offline analysis of capture files
// (--read) or live capture with Prometheus metrics (--interface, or the
// file's tcpstats.interfaces).
func cmdTCPStats(args []string, stdout, stderr io.Writer) int {
	a, err := tcpstatsSettings(args, stderr)
	if err != nil {
		if !errors.As(err, new(flagError)) { // the flag package printed those
			fmt.Fprintln(stderr, "netpulse tcpstats:", err)
		}
		return 2
	}
	switch {
	case len(a.read) > 0 && a.iflag:
		fmt.Fprintln(stderr, "netpulse tcpstats: --read and --interface exclude each other")
		return 2
	case len(a.read) == 0 && len(a.cfg.Interfaces) > 0:
		return tcpstatsLive(a, args, stderr)
	case len(a.read) == 0:
		fmt.Fprintln(stderr, "usage: netpulse tcpstats --read FILE... | --interface NAME... (see -h)")
		return 2
	}
	if a.format != "table" && a.format != "json" {
		fmt.Fprintf(stderr, "netpulse tcpstats: --format %q: want table or json\n", a.format)
		return 2
	}
	rep, err := tcpstats.ReadFiles(a.read, a.cfg.Table())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if a.format == "json" {
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

// tcpstatsLive captures until SIGINT or SIGTERM; SIGHUP reloads.
func tcpstatsLive(a tcpstatsArgs, args []string, stderr io.Writer) int {
	l, err := tcpstats.NewLive(a.cfg.Live())
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
	fmt.Fprintf(stderr, "netpulse tcpstats: capturing on %s, metrics on http://%s/metrics\n", strings.Join(a.cfg.Interfaces, ","), l.Addr())
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			if err := tcpstatsReload(l, args); err != nil {
				fmt.Fprintf(stderr, "netpulse tcpstats: reload failed, the running configuration stays: %v\n", err)
			} else {
				fmt.Fprintln(stderr, "netpulse tcpstats: reloaded")
			}
		case <-ctx.Done():
			l.Stop()
			return 0
		}
	}
}

// tcpstatsReload reads the file and flags again and applies them.
func tcpstatsReload(l *tcpstats.Live, args []string) error {
	a, err := tcpstatsSettings(args, io.Discard)
	if err != nil {
		return err
	}
	if len(a.cfg.Interfaces) == 0 {
		return errors.New("no interface left (tcpstats.interfaces is empty)")
	}
	return l.Reload(a.cfg.Live())
}
