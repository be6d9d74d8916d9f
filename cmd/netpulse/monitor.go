package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/netpulse/netpulse/config"
	"github.com/netpulse/netpulse/logging"
	"github.com/netpulse/netpulse/monitor"
)

const monitorUsage = `usage: netpulse monitor -config FILE [-check] [-once] [-log_level LEVEL]

Polls the proxies of the file's monitor: section (see docs/monitor.md),
serves /metrics, /healthz and /readyz on its listen address, pushes Influx
line protocol and alerts on state transitions. SIGINT/SIGTERM stop it.

Flags:
`

// cmdMonitor runs `netpulse monitor`.
func cmdMonitor(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("monitor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "YAML configuration `file` (its monitor: section)")
	check := fs.Bool("check", false, "validate the configuration and exit")
	once := fs.Bool("once", false, "poll every target once, print the statuses and exit (no push, no listener)")
	logLevel := fs.String("log_level", "info", "debug|info|warn|error")
	if !parseFlags(fs, args, monitorUsage, stderr, cfgPath) {
		return 2
	}
	cfg, err := monitor.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if *check {
		fmt.Fprintf(stdout, "%s: monitor: %d targets, ok\n", *cfgPath, len(cfg.Targets))
		return 0
	}
	// The file's log: section (level, format, file, syslog) applies too;
	// -log_level, when given, wins.
	full, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	lc := full.Log
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "log_level" {
			lc.Level = *logLevel
		}
	})
	log, err := logging.New(lc, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	defer logging.Close(log) // flushes the log file and the syslog queue
	if *once {
		cfg.Listen, cfg.Push.URL = "none", ""
		cfg.Alerts = monitor.AlertConfig{Hold: 1 << 30}
	}
	m, err := monitor.New(cfg, monitor.Deps{Log: log})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if *once {
		code := 0
		for _, r := range m.Round(ctx) {
			fmt.Fprintf(stdout, "%s\t%s\t%d\t%s\t%s\n", r.Target.Name, r.Target.Addr(), r.Status, r.State, r.Err)
			if r.Status != monitor.Up {
				code = 1
			}
		}
		return code
	}
	if err := m.Start(ctx); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if a := m.Addr(); a != nil {
		log.Info("monitor: serving /metrics", "addr", a.String())
	}
	log.Info("monitor: polling", "targets", len(cfg.Targets), "interval", cfg.Interval)
	<-ctx.Done()
	sctx, scancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer scancel()
	if err := m.Stop(sctx); err != nil {
		log.Error("monitor: stop", "err", err)
		return 1
	}
	return 0
}
