package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/netpulse/netpulse/logging"
	"github.com/netpulse/netpulse/probe"
	"github.com/netpulse/netpulse/probe/result"
)

const probeUsage = `usage: netpulse probe -config FILE [-check] [-once] [-log_level LEVEL]

One RSSAC047 vantage point (see docs/probe.md): every 5 minutes, after a
random delay of up to a minute, it queries the targets of the file's
probe: section, runs traceroutes, writes one result file into
output_dir/yyyymm/ and uploads it to the collector. It serves /metrics,
/healthz and /readyz on its listen address. SIGINT/SIGTERM stop it.

  -check   validate the configuration and exit
  -once    measure the current 5-minute slot now (no delay), write its
           file, try the upload queue once, print the queries and exit

Flags:
`

// cmdProbe runs `netpulse probe`.
func cmdProbe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "YAML configuration `file` (its probe: and log: sections)")
	check := fs.Bool("check", false, "validate the configuration and exit")
	once := fs.Bool("once", false, "measure the current slot now, write its file, try the uploads once and exit")
	logLevel := fs.String("log_level", "info", "debug|info|warn|error")
	if !parseFlags(fs, args, probeUsage, stderr, cfgPath) {
		return 2
	}
	cfg, err := probe.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	lc, err := probeLogSection(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if *check {
		addrs := 0
		for _, t := range cfg.Targets {
			if t.IPv4 != "" {
				addrs++
			}
			if t.IPv6 != "" {
				addrs++
			}
		}
		upload := "off"
		if cfg.Upload.URL != "" {
			upload = cfg.Upload.URL
		}
		fmt.Fprintf(stdout, "%s: probe: vp %s, %d targets (%d addresses), output %s, upload %s, ok\n",
			*cfgPath, cfg.VP, len(cfg.Targets), addrs, cfg.OutputDir, upload)
		return 0
	}
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
	defer logging.Close(log)
	if *once {
		cfg.Listen = "none"
	}
	p, err := probe.New(cfg, probe.Deps{Log: log, Software: "netpulse " + buildVersion()})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if *once {
		return probeOnce(ctx, p, stdout, stderr)
	}
	if err := p.Start(ctx); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if a := p.Addr(); a != nil {
		log.Info("probe: serving /metrics", "addr", a.String())
	}
	log.Info("probe: measuring", "vp", cfg.VP, "targets", len(cfg.Targets), "interval", cfg.Interval, "output", cfg.OutputDir)
	<-ctx.Done()
	sctx, scancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer scancel()
	if err := p.Stop(sctx); err != nil {
		log.Error("probe: stop", "err", err)
		return 1
	}
	return 0
}

// probeOnce measures the current slot, prints one line per query and
// trace, and tries the upload queue once. It exits 1 when the file was
// not written or not uploaded (it then stays queued in pending/).
func probeOnce(ctx context.Context, p *probe.Probe, stdout, stderr io.Writer) int {
	path, run, err := p.RunOnce(ctx, result.SlotOf(time.Now()))
	if path == "" {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, q := range run.Queries {
		outcome := "timeout"
		switch {
		case q.Response != nil:
			outcome = q.Response.RCodeName
		case q.Error != "":
			outcome = "error"
		}
		retry := ""
		if q.Retry {
			retry = " (retry)"
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s%d\t%s\t%s %s%s\t%s\t%.1fms\t%s\n", q.Target, q.Address, q.Transport, q.Family,
			q.Purpose, q.QName, q.QType, retry, outcome, q.RTTMS, q.Error)
	}
	for _, t := range run.Traces {
		fmt.Fprintf(stdout, "%s\t%s\ttrace %s\t%d hops\treached %v\t%s\n", t.Target, t.Address, t.Method, len(t.Hops), t.Reached, t.Error)
	}
	fmt.Fprintf(stdout, "wrote %s\n", path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := p.UploadPending(ctx); err != nil {
		fmt.Fprintf(stderr, "%v (the file stays queued in pending/)\n", err)
		return 1
	}
	return 0
}

// probeLogSection reads the file's log: section (level, format, file,
// syslog), rejecting unknown keys in it; other sections are left to
// their own readers.
func probeLogSection(path string) (logging.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return logging.Config{}, err
	}
	lc := logging.DefaultConfig()
	var file struct {
		Log  *logging.Config `yaml:"log"`
		Rest map[string]any  `yaml:",inline"`
	}
	file.Log = &lc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil && err != io.EOF {
		return logging.Config{}, fmt.Errorf("log: config: %w", err)
	}
	if err := lc.Validate(); err != nil {
		return logging.Config{}, err
	}
	return lc, nil
}
