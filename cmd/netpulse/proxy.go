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
	"github.com/netpulse/netpulse/proxy"
)

// stopTimeout bounds how long SIGTERM waits for the sinks to flush.
const stopTimeout = 30 * time.Second

// cmdProxy runs `netpulse proxy`: the YAML file first, then the flags,
// which win; SIGHUP reloads the device file, SIGINT/SIGTERM flush and exit.
func cmdProxy(args []string, stderr io.Writer) int {
	// First pass: only -config, to load the file the flags override.
	pre := flag.NewFlagSet("proxy", flag.ContinueOnError)
	pre.SetOutput(io.Discard)
	cfgPath := pre.String("config", "", "")
	pre.Parse(configArgs(args))
	cfg := config.Default()
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
	}
	set := cfg.Proxy
	set.Decoder = cfg.Decoder
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", *cfgPath, "YAML configuration `file` (its proxy: section); flags override it")
	logLevel := fs.String("log_level", cfg.Log.Level, "debug|info|warn|error")
	set.Flags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: netpulse proxy [-config FILE] [flags]\n\nThe collector token comes from NETPULSE_API_TOKEN or -api_token_file, never the command line.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "netpulse proxy: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg.Log.Level = *logLevel
	log, err := logging.New(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	defer logging.Close(log) // flushes the log file and the syslog queue
	svc, err := proxy.NewService(set, log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := svc.Start(ctx); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log.Info("health check", "addr", svc.Health.Addr().String())
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			if err := svc.Reload(); err != nil {
				log.Error("reload failed; keeping the devices in use", "err", err)
			}
			continue
		case <-ctx.Done():
		}
		break
	}
	log.Info("stopping: flushing sinks", "timeout", stopTimeout)
	sctx, scancel := context.WithTimeout(context.Background(), stopTimeout)
	defer scancel()
	if err := svc.Stop(sctx); err != nil {
		log.Error("stop", "err", err)
		return 1
	}
	return 0
}

// configArgs keeps only -config/--config from args, for the first pass.
func configArgs(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-config" || a == "--config":
			if i+1 < len(args) {
				out = append(out, a, args[i+1])
			}
			i++
		case len(a) > 8 && (a[:8] == "-config=" || (len(a) > 9 && a[:9] == "--config=")):
			out = append(out, a)
		}
	}
	return out
}
