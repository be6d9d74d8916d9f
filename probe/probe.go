// Package probe is `netpulse probe`: one RSSAC047 vantage point. Every
// 5 minutes, after a random delay of up to a minute, it asks each target
// server (by default the 13 root server identities) for `. SOA` over UDP
// and TCP on each of its addresses, sends one correctness query, runs a
// traceroute to each address, and writes everything it saw as one
// versioned result document (package result) into a yyyymm/ folder. A
// queue on disk uploads each file to the collector until it is
// acknowledged, and a local watchdog alerts when a run left no file, an
// upload is overdue or the disk is filling up.
//
// The measurements follow RSSAC047 v2 §4: a 4 s timeout and no retries;
// UDP timed from the send, TCP from the start of the connection, to the
// full response; a connection error recorded as a timeout. The collector
// (package rssac) computes the metrics; the probe only measures.
package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/netpulse/netpulse/alert"
	"github.com/netpulse/netpulse/internal/diskusage"
	"github.com/netpulse/netpulse/internal/tlsutil"
	"github.com/netpulse/netpulse/probe/result"
)

// Deps are what the probe is given rather than builds.
type Deps struct {
	// Log receives run summaries, upload trouble and alerts. Default:
	// discard.
	Log *slog.Logger
	// Now is the clock of the schedule, of the run's slot, start and end
	// and of the watchdog. Default time.Now. The queries' send times and
	// response times always use the real clock.
	Now func() time.Time
	// Sleep waits d or until ctx ends (then it returns ctx's error).
	// Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand draws the random delay and the correctness queries. Default
	// a generator seeded from the system's entropy.
	Rand *rand.Rand
	// Disk reports the output folder's fullness. Default
	// diskusage.Statfs.
	Disk diskusage.Source
	// HTTPClient uploads the files. Default: a client trusting
	// upload.ca_file.
	HTTPClient *http.Client
	// Software names the writer in the result documents, e.g.
	// "netpulse 0.3.0".
	Software string
}

// Probe is one vantage point. Build it with New; RunOnce measures one
// slot; Start runs the schedule, the upload queue and the watchdog until
// Stop.
type Probe struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	sleep    func(context.Context, time.Duration) error
	software string

	rngMu sync.Mutex
	rng   *rand.Rand

	st     store
	tracer *tracer
	up     *uploader // nil without upload.url
	wd     *watchdog
	m      *metrics
	reg    *prometheus.Registry

	started  atomic.Bool
	lastFail atomic.Bool // the last run's file was not written

	srv    *http.Server
	ln     net.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New checks cfg and builds a probe; it opens nothing and sends nothing.
func New(cfg Config, deps Deps) (*Probe, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Probe{cfg: cfg, log: deps.Log, now: deps.Now, sleep: deps.Sleep, rng: deps.Rand, software: deps.Software,
		st: store{dir: cfg.OutputDir, vp: cfg.VP}, tracer: newTracer(cfg.Traceroute), m: newMetrics()}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.sleep == nil {
		p.sleep = sleepCtx
	}
	if p.rng == nil {
		p.rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	disk := deps.Disk
	if disk == nil {
		disk = diskusage.Statfs{}
	}
	if cfg.Upload.URL != "" {
		url, err := tlsutil.Endpoint("probe: upload", cfg.Upload.URL, UploadPath, cfg.Upload.AllowInsecureLoopback)
		if err != nil {
			return nil, err
		}
		token, err := cfg.Upload.token()
		if err != nil {
			return nil, err
		}
		client := deps.HTTPClient
		if client == nil {
			tc, err := tlsutil.ClientConfig("probe: upload", cfg.Upload.CAFile, "", "")
			if err != nil {
				return nil, err
			}
			client = &http.Client{Transport: tlsutil.Transport(tc, cfg.Upload.Timeout, 2)}
		}
		p.up = &uploader{url: url, token: token, client: client, st: p.st, cfg: cfg.Upload, log: p.log,
			sleep: p.sleep, m: p.m, kick: make(chan struct{}, 1)}
	}
	p.wd = newWatchdog(cfg.Alerts, cfg.VP, cfg.Interval, p.st, p.up != nil, disk, p.log)
	if cfg.Alerts.File != "" && cfg.Alerts.File != "none" {
		f, err := alert.NewFile(alert.FileConfig{Path: cfg.Alerts.File}, alert.Deps{Log: p.log, Now: p.now})
		if err != nil {
			return nil, fmt.Errorf("probe: alerts.%w", err)
		}
		p.wd.file = f
	}
	if cfg.Alerts.Syslog.Address != "" {
		sc := cfg.Alerts.Syslog
		if sc.AppName == "" {
			sc.AppName = "netpulse-probe"
		}
		s, err := alert.NewSyslog(sc, alert.Deps{Log: p.log, Now: p.now})
		if err != nil {
			return nil, fmt.Errorf("probe: alerts.%w", err)
		}
		p.wd.syslog = s
	}
	p.reg = prometheus.NewRegistry()
	p.reg.MustRegister(&collector{p: p})
	return p, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Config returns the configuration in force, defaults filled in.
func (p *Probe) Config() Config { return p.cfg }

// Registry is the probe's own Prometheus registry.
func (p *Probe) Registry() *prometheus.Registry { return p.reg }

// Addr is the HTTP listener's address once started, or nil.
func (p *Probe) Addr() net.Addr {
	if p.ln == nil {
		return nil
	}
	return p.ln.Addr()
}

// Handler serves /metrics, /healthz (the process runs) and /readyz (the
// probe is started and its last run, if any, wrote its file).
func (p *Probe) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case !p.started.Load():
			http.Error(w, "not started", http.StatusServiceUnavailable)
		case p.lastFail.Load():
			http.Error(w, "the last run's result file was not written", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ok")
		}
	})
	return mux
}

// Start checks the output folder, opens the alert outputs and the HTTP
// listener, and starts the schedule, the upload queue and the watchdog.
// The first run is at the next 5-minute boundary plus the random delay.
func (p *Probe) Start(ctx context.Context) error {
	if err := os.MkdirAll(p.cfg.OutputDir, 0o755); err != nil {
		return fmt.Errorf("probe: output_dir: %w", err)
	}
	var senders alert.Multi
	if p.wd.file != nil {
		senders = append(senders, p.wd.file)
	}
	if p.wd.syslog != nil {
		senders = append(senders, p.wd.syslog)
	}
	if err := senders.Start(ctx); err != nil {
		return fmt.Errorf("probe: alerts: %w", err)
	}
	if p.cfg.Listen != "none" {
		ln, err := net.Listen("tcp", p.cfg.Listen)
		if err != nil {
			_ = senders.Stop(ctx)
			return fmt.Errorf("probe: listen %s: %w", p.cfg.Listen, err)
		}
		p.ln = ln
		p.srv = &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go p.srv.Serve(ln)
	}
	now := p.now()
	p.wd.first = result.SlotOf(now).Truncate(p.cfg.Interval).Add(p.cfg.Interval)
	var lctx context.Context
	lctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.wg.Go(func() { p.scheduleLoop(lctx) })
	p.wg.Go(func() { p.watchdogLoop(lctx) })
	if p.up != nil {
		p.wg.Go(func() { p.up.loop(lctx) })
	}
	p.started.Store(true)
	return nil
}

// Stop ends the loops (a run in flight is cancelled and still written),
// closes the alert outputs and the listener.
func (p *Probe) Stop(ctx context.Context) error {
	if p.cancel != nil {
		p.cancel()
		done := make(chan struct{})
		go func() { p.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var errs []error
	if p.wd.syslog != nil {
		errs = append(errs, p.wd.syslog.Stop(ctx))
	}
	if p.wd.file != nil {
		errs = append(errs, p.wd.file.Stop(ctx))
	}
	if p.srv != nil {
		errs = append(errs, p.srv.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// nextRun returns the slot of the next run after now and when it starts:
// the next boundary of the interval plus a random delay in [0, MaxDelay].
func (p *Probe) nextRun(now time.Time) (slot, at time.Time) {
	slot = now.UTC().Truncate(p.cfg.Interval).Add(p.cfg.Interval)
	var delay time.Duration
	if p.cfg.MaxDelay > 0 {
		p.rngMu.Lock()
		delay = time.Duration(p.rng.Int64N(int64(p.cfg.MaxDelay) + 1))
		p.rngMu.Unlock()
	}
	return slot, slot.Add(delay)
}

func (p *Probe) scheduleLoop(ctx context.Context) {
	for {
		now := p.now()
		slot, at := p.nextRun(now)
		if p.sleep(ctx, at.Sub(now)) != nil {
			return
		}
		if _, _, err := p.RunOnce(ctx, slot); err != nil {
			p.log.Error("probe: run", "slot", slot, "err", err)
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func (p *Probe) watchdogLoop(ctx context.Context) {
	for {
		now := p.now()
		at := p.wd.nextCheck(now)
		if p.sleep(ctx, at.Sub(now)) != nil {
			return
		}
		p.wd.check(p.now())
	}
}

// CheckAlerts runs the watchdog's checks now (the loop does it a few
// minutes after each slot) and returns the alerts raised or cleared.
func (p *Probe) CheckAlerts() []Alert { return p.wd.check(p.now()) }

// UploadPending tries once to upload every queued file, oldest first.
// Start's queue does it on its own; this is for -once.
func (p *Probe) UploadPending(ctx context.Context) error {
	if p.up == nil {
		return nil
	}
	return p.up.drain(ctx)
}

// runBudget bounds a run so that it ends before the next one starts.
func (p *Probe) runBudget() time.Duration {
	return max(p.cfg.Interval-p.cfg.MaxDelay-10*time.Second, 30*time.Second)
}

// RunOnce measures slot now: every query and traceroute of a run, then
// writes the result file and queues it for upload. It returns the file's
// path and the run. A run cancelled by ctx is still written with what it
// has (its queries cut short are recorded as such).
func (p *Probe) RunOnce(ctx context.Context, slot time.Time) (string, *result.Run, error) {
	slot = slot.UTC().Truncate(result.Interval)
	began := time.Now()
	rctx, cancel := context.WithTimeout(ctx, p.runBudget())
	defer cancel()
	run := p.measure(rctx, slot)
	p.m.runs.Add(1)
	path, err := p.st.save(run, p.up != nil)
	p.m.observe(run, time.Since(began))
	if err != nil && path == "" {
		p.m.writeErrors.Add(1)
		p.lastFail.Store(true)
		return "", run, err
	}
	p.lastFail.Store(false)
	if p.up != nil {
		p.up.notify()
	}
	answered := 0
	for i := range run.Queries {
		if run.Queries[i].Available() {
			answered++
		}
	}
	p.log.Info("probe: run done", "slot", slot.Format(time.RFC3339), "file", path, "queries", len(run.Queries),
		"available", answered, "traces", len(run.Traces), "took", time.Since(began).Round(time.Millisecond))
	return path, run, err
}

// measure runs the queries and traceroutes of one slot. Targets are
// measured in parallel, at most Concurrency at once; each target's
// queries go one after the other (so they do not compete for the path),
// SOA over UDP and TCP on each address, then the correctness query, then
// the traceroutes.
func (p *Probe) measure(ctx context.Context, slot time.Time) *result.Run {
	run := &result.Run{Version: result.Version, VP: p.cfg.VP, Slot: slot, Start: p.now().UTC(), Clock: readClock(), Software: p.software}
	targets := p.cfg.Targets
	// The random choices are drawn up front, in target order, so a
	// seeded generator gives the same run whatever the scheduling.
	picks := make([]correctnessQuery, len(targets))
	p.rngMu.Lock()
	for i, t := range targets {
		picks[i] = pickCorrectness(p.rng, t, p.cfg.TLDs)
	}
	p.rngMu.Unlock()
	queries := make([][]result.Query, len(targets))
	traces := make([][]result.Trace, len(targets))
	sem := make(chan struct{}, p.cfg.Concurrency)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			queries[i], traces[i] = p.measureTarget(ctx, t, picks[i])
		})
	}
	wg.Wait()
	for i := range targets {
		run.Queries = append(run.Queries, queries[i]...)
		run.Traces = append(run.Traces, traces[i]...)
	}
	run.End = p.now().UTC()
	return run
}

func (p *Probe) measureTarget(ctx context.Context, t Target, pick correctnessQuery) ([]result.Query, []result.Trace) {
	var qs []result.Query
	for _, a := range t.addrs() {
		for _, tr := range []string{result.UDP, result.TCP} {
			qs = append(qs, exchange(ctx, querySpec{target: t.Name, addr: a, port: t.Port, transport: tr,
				purpose: result.PurposeSOA, qname: ".", qtype: dns.TypeSOA, bufSize: soaBufSize}, p.cfg.Timeout))
		}
	}
	qs = append(qs, correctness(ctx, t, pick, p.cfg.Timeout)...)
	if p.cfg.Traceroute.Method == "off" {
		return qs, nil
	}
	var trs []result.Trace
	for _, a := range t.addrs() {
		trs = append(trs, p.tracer.trace(ctx, t.Name, a))
	}
	return qs, trs
}
