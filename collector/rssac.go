package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netpulse/netpulse/alert"
	"github.com/netpulse/netpulse/device"
	"github.com/netpulse/netpulse/internal/diskusage"
	"github.com/netpulse/netpulse/probe/result"
	"github.com/netpulse/netpulse/rssac"
	"github.com/netpulse/netpulse/rssac/correct"
	"github.com/netpulse/netpulse/rssac/ingest"
	"github.com/netpulse/netpulse/rssac/rstore"
	"github.com/netpulse/netpulse/rssac/zone"
)

// RSSACConfig is the collector's rssac: section: the probes' RSSAC047
// results, loaded into the store and archived, the collector's RSSAC
// watchdog, and the runs and report API (docs/rssac-ingest.md).
type RSSACConfig struct {
	// Enabled turns the RSSAC part on. Default false.
	Enabled bool `yaml:"enabled"`
	// ProbeTokensFile lists the probes allowed to upload, "NAME TOKEN"
	// per line like proxy_tokens_file; NAME is the vantage point's id, and
	// a token uploads that vantage point's results only. Required when
	// enabled.
	ProbeTokensFile string `yaml:"probe_tokens_file"`
	// MaxUploadBytes bounds one compressed result document. Default
	// 67108864 (64 MiB).
	MaxUploadBytes int64 `yaml:"max_upload_bytes"`
	// ArchiveDir keeps every original, in yyyymm folders. Default
	// data_dir/rssac/originals.
	ArchiveDir string `yaml:"archive_dir"`
	// RejectDir receives drop-folder files that were refused. Default
	// data_dir/rssac/rejected.
	RejectDir string `yaml:"reject_dir"`
	// Import lists drop folders that probes fill by rsync or SFTP instead
	// of uploading (the seed's /sftp/transfer-nnn).
	Import []RSSACImportDir `yaml:"import"`
	// ImportInterval is how often the drop folders are emptied. Default 1m.
	ImportInterval time.Duration `yaml:"import_interval"`
	// ImportSettle is how long a drop-folder file must be left unchanged
	// before it is taken (SFTP writes in place). Default 30s.
	ImportSettle time.Duration `yaml:"import_settle"`
	// Watchdog alerts on silent vantage points, a stale zone archive and
	// a full disk.
	Watchdog ingest.WatchdogConfig `yaml:"watchdog"`
	// Alerts is the watchdog's alerts file (JSON lines). Default path
	// data_dir/rssac-alerts.log.
	Alerts alert.FileConfig `yaml:"alerts"`
	// Syslog sends the watchdog's alerts to a log server when its address
	// is set.
	Syslog alert.SyslogConfig `yaml:"syslog"`
	// Zone is the root zone archive the correctness check and the
	// publication latency use (docs/rssac-correctness.md).
	Zone RSSACZoneConfig `yaml:"zone"`
}

// RSSACZoneConfig is the zone archive and, when a source is set, its
// fetcher.
type RSSACZoneConfig struct {
	// Dir keeps each zone version by SOA serial with its first-seen
	// time. Default data_dir/rssac/zones.
	Dir string `yaml:"dir"`
	// Fetch: source (axfr://host:port or an http(s) URL of the zone
	// file), interval (default 15m), timeout (default 2m). Without a
	// source the archive only holds what was put there.
	Fetch zone.FetchConfig `yaml:"fetch"`
}

// RSSACImportDir is one drop folder.
type RSSACImportDir struct {
	// Dir is the folder.
	Dir string `yaml:"dir"`
	// VP, when set, is the only vantage point whose results the folder
	// may hold (as a token names one); empty takes any.
	VP string `yaml:"vp"`
}

// DefaultRSSACConfig returns the defaults that do not depend on the data
// directory.
func DefaultRSSACConfig() RSSACConfig {
	return RSSACConfig{
		MaxUploadBytes: result.MaxFileBytes,
		ImportInterval: time.Minute,
		ImportSettle:   ingest.DefaultSettle,
		Watchdog:       ingest.DefaultWatchdogConfig(),
		Alerts:         alert.DefaultFileConfig(),
	}
}

func (c RSSACConfig) withDefaults(dataDir string) RSSACConfig {
	d := DefaultRSSACConfig()
	if c.MaxUploadBytes <= 0 {
		c.MaxUploadBytes = d.MaxUploadBytes
	}
	if c.ArchiveDir == "" {
		c.ArchiveDir = filepath.Join(dataDir, "rssac", "originals")
	}
	if c.RejectDir == "" {
		c.RejectDir = filepath.Join(dataDir, "rssac", "rejected")
	}
	if c.ImportInterval <= 0 {
		c.ImportInterval = d.ImportInterval
	}
	if c.ImportSettle <= 0 {
		c.ImportSettle = d.ImportSettle
	}
	c.Watchdog = c.Watchdog.WithDefaults()
	if c.Alerts.Path == "" {
		c.Alerts.Path = filepath.Join(dataDir, "rssac-alerts.log")
	}
	if c.Zone.Dir == "" {
		c.Zone.Dir = filepath.Join(dataDir, "rssac", "zones")
	}
	fd := zone.DefaultFetchConfig()
	if c.Zone.Fetch.Interval <= 0 {
		c.Zone.Fetch.Interval = fd.Interval
	}
	if c.Zone.Fetch.Timeout <= 0 {
		c.Zone.Fetch.Timeout = fd.Timeout
	}
	return c
}

// validate checks the section (after withDefaults); errors name the key.
// tokensGiven says the probe tokens come from elsewhere than the file.
func (c RSSACConfig) validate(tokensGiven bool) error {
	if !c.Enabled {
		return nil
	}
	if c.ProbeTokensFile == "" && !tokensGiven {
		return errors.New("collector.rssac.probe_tokens_file: required when rssac is enabled (\"NAME TOKEN\" per vantage point)")
	}
	if c.MaxUploadBytes > result.MaxFileBytes {
		return fmt.Errorf("collector.rssac.max_upload_bytes: %d: at most %d, the result document's limit", c.MaxUploadBytes, result.MaxFileBytes)
	}
	seen := map[string]bool{}
	for i, d := range c.Import {
		switch {
		case d.Dir == "":
			return fmt.Errorf("collector.rssac.import[%d].dir: empty", i)
		case seen[filepath.Clean(d.Dir)]:
			return fmt.Errorf("collector.rssac.import[%d].dir: %s listed twice", i, d.Dir)
		case d.VP != "" && !ingest.ValidVP(d.VP):
			return fmt.Errorf("collector.rssac.import[%d].vp: %q is not a vantage point name (letters, digits, '.', '_', '-')", i, d.VP)
		}
		seen[filepath.Clean(d.Dir)] = true
	}
	if err := c.Watchdog.Validate(); err != nil {
		return fmt.Errorf("collector.rssac.%w", err)
	}
	if err := c.Alerts.Validate(); err != nil {
		return fmt.Errorf("collector.rssac.alerts: %w", err)
	}
	if c.Syslog.Address != "" {
		if err := c.Syslog.Validate(); err != nil {
			return fmt.Errorf("collector.rssac.syslog: %w", err)
		}
	}
	if c.Zone.Fetch.Source != "" {
		if err := c.Zone.Fetch.Validate(); err != nil {
			return fmt.Errorf("collector.rssac.zone.fetch: %w", err)
		}
	}
	return nil
}

// RSSACReporter produces the RSSAC047 report of a period. The default
// (nil in RSSACDeps) runs rssac.Compute over the store's observations,
// with the zone archive's serials as the genuine ones.
type RSSACReporter func(ctx context.Context, p rssac.Period) (*rssac.Report, error)

// RSSACDeps are what the RSSAC part uses and does not own.
type RSSACDeps struct {
	// Store keeps the observations: the flow store's (DuckDB or
	// ClickHouse RSSAC()), or rstore.NewMemory. Required.
	Store rstore.Store
	// ProbeTokens maps probe tokens to vantage points; nil reads
	// probe_tokens_file.
	ProbeTokens map[string]string
	// APITokens are the operators' tokens, for the runs and report API.
	APITokens []string
	// Checker decides correctness queries; nil is rssac/correct over the
	// part's zone archive.
	Checker ingest.Checker
	// Reporter answers /api/v1/rssac/report; nil computes the report from
	// the store (rssac.Compute).
	Reporter RSSACReporter
	// ZoneLast tells when the root zone archive last grew; nil is the
	// part's zone archive.
	ZoneLast func() time.Time
	// Disk reads the data directory's fullness; nil is statfs.
	Disk diskusage.Source
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Log; nil discards.
	Log *slog.Logger
}

// RSSAC is the collector's RSSAC part: upload handler, drop-folder
// importer, watchdog and API. Mount Handlers through Options.Extra,
// register its metrics on the collector's registry (Register), and Start
// and Stop it with the collector.
type RSSAC struct {
	cfg      RSSACConfig
	deps     RSSACDeps
	in       *ingest.Ingester
	watchdog *ingest.Watchdog
	send     alert.Multi
	api      *api
	zones    *zone.Archive
	fetcher  *zone.Fetcher // nil without a source

	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewRSSAC builds the RSSAC part of the collector configured by cfg
// (its rssac: section, its data directory).
func NewRSSAC(cfg Config, deps RSSACDeps) (*RSSAC, error) {
	cfg = cfg.WithDefaults()
	rc := cfg.RSSAC
	if err := rc.validate(deps.ProbeTokens != nil); err != nil {
		return nil, err
	}
	if deps.Store == nil {
		return nil, errors.New("collector: rssac: no store")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.ProbeTokens == nil {
		toks, err := ingest.ReadTokens(rc.ProbeTokensFile)
		if err != nil {
			return nil, fmt.Errorf("collector.rssac.probe_tokens_file: %w", err)
		}
		deps.ProbeTokens = toks
	}
	r := &RSSAC{cfg: rc, deps: deps, api: &api{auth: device.TokenAuth(deps.APITokens...)}}
	zc := zone.DefaultConfig()
	zc.Dir = rc.Zone.Dir
	var err error
	if r.zones, err = zone.Open(zc, deps.Log); err != nil {
		return nil, fmt.Errorf("collector.rssac.zone.dir: %w", err)
	}
	if rc.Zone.Fetch.Source != "" {
		if r.fetcher, err = zone.NewFetcher(rc.Zone.Fetch, r.zones, zone.FetcherDeps{Log: deps.Log, Now: deps.Now}); err != nil {
			return nil, fmt.Errorf("collector.rssac.zone.fetch: %w", err)
		}
	}
	if deps.Checker == nil {
		deps.Checker = &correct.Checker{Source: r.zones, Log: deps.Log}
	}
	if deps.ZoneLast == nil {
		deps.ZoneLast = r.zones.LastGrowth
	}
	if deps.Reporter == nil {
		deps.Reporter = r.report
	}
	r.deps = deps
	r.in, err = ingest.New(ingest.Config{ArchiveDir: rc.ArchiveDir, RejectDir: rc.RejectDir, MaxBytes: rc.MaxUploadBytes, Settle: rc.ImportSettle},
		ingest.Deps{Store: deps.Store, Tokens: deps.ProbeTokens, Checker: deps.Checker, Now: deps.Now, Log: deps.Log})
	if err != nil {
		return nil, fmt.Errorf("collector: rssac: %w", err)
	}
	adeps := alert.Deps{Log: deps.Log, Now: deps.Now}
	f, err := alert.NewFile(rc.Alerts, adeps)
	if err != nil {
		return nil, fmt.Errorf("collector.rssac.alerts: %w", err)
	}
	r.send = alert.Multi{f}
	if rc.Syslog.Address != "" {
		s, err := alert.NewSyslog(rc.Syslog, adeps)
		if err != nil {
			return nil, fmt.Errorf("collector.rssac.syslog: %w", err)
		}
		r.send = append(r.send, s)
	}
	var expected []string
	seen := map[string]bool{}
	for _, vp := range deps.ProbeTokens {
		if !seen[vp] {
			expected, seen[vp] = append(expected, vp), true
		}
	}
	for _, d := range rc.Import {
		if d.VP != "" && !seen[d.VP] {
			expected, seen[d.VP] = append(expected, d.VP), true
		}
	}
	r.watchdog, err = ingest.NewWatchdog(rc.Watchdog, ingest.WatchdogDeps{
		LastSlots: r.lastSlots, Expected: expected, ZoneLast: deps.ZoneLast,
		DiskPath: cfg.DataDir, Disk: deps.Disk, Send: r.send, Now: deps.Now, Log: deps.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("collector.rssac.%w", err)
	}
	return r, nil
}

// lastSlots is the watchdog's view of the store: each vantage point's
// latest slot since since (and up to a day ahead, for a fast clock).
func (r *RSSAC) lastSlots(ctx context.Context, since time.Time) (map[string]time.Time, error) {
	runs, err := r.deps.Store.Runs(ctx, since, r.deps.Now().Add(24*time.Hour))
	if err != nil {
		return nil, err
	}
	out := make(map[string]time.Time, len(runs))
	for _, v := range runs {
		out[v.VP] = v.Last
	}
	return out, nil
}

// RSSAC API paths.
const (
	RSSACRunsPath   = "/api/v1/rssac/runs"
	RSSACReportPath = "/api/v1/rssac/report"
)

// Handlers are the part's HTTP handlers by pattern, for Options.Extra:
// the probes' upload (their tokens) and the runs and report API
// (operators' tokens).
func (r *RSSAC) Handlers() map[string]http.Handler {
	return map[string]http.Handler{
		ingest.Path:     r.in,
		RSSACRunsPath:   http.HandlerFunc(r.serveRuns),
		RSSACReportPath: http.HandlerFunc(r.serveReport),
	}
}

// Register adds the part's metrics to reg (the collector's Registry).
func (r *RSSAC) Register(reg prometheus.Registerer) error {
	cs := []prometheus.Collector{r.in, r.watchdog, r.zones.Collector()}
	if r.fetcher != nil {
		cs = append(cs, r.fetcher.Collector())
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("collector: rssac metrics: %w", err)
		}
	}
	return nil
}

// Ingester is the upload handler and drop-folder importer.
func (r *RSSAC) Ingester() *ingest.Ingester { return r.in }

// Zones is the root zone archive.
func (r *RSSAC) Zones() *zone.Archive { return r.zones }

// report is the default Reporter: rssac.Compute over the period's
// observations (and the history before it that publication latency
// needs), with the archive's first-seen times as the genuine serials.
func (r *RSSAC) report(ctx context.Context, p rssac.Period) (*rssac.Report, error) {
	cfg := rssac.DefaultConfig()
	if entries := r.zones.Entries(); len(entries) > 0 {
		cfg.FirstSeen = make(map[uint32]time.Time, len(entries))
		for _, e := range entries {
			cfg.FirstSeen[e.Serial] = e.FirstSeen
		}
		cfg.StrictSerials = true
	}
	var iterErr error
	obs := func(yield func(rssac.Observation) bool) {
		for o, err := range r.deps.Store.Observations(ctx, p.From.Add(-cfg.History), p.To) {
			if err != nil {
				iterErr = err
				return
			}
			if !yield(o) {
				return
			}
		}
	}
	rep, err := rssac.Compute(p, cfg, obs)
	if err == nil {
		err = iterErr
	}
	return rep, err
}

// Watchdog is the part's watchdog.
func (r *RSSAC) Watchdog() *ingest.Watchdog { return r.watchdog }

// Start starts the alert senders, the watchdog and the drop-folder
// importer. They run until Stop.
func (r *RSSAC) Start(ctx context.Context) error {
	if err := r.send.Start(ctx); err != nil {
		return fmt.Errorf("collector: rssac alerts: %w", err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.mu.Lock()
	r.cancel = cancel
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.watchdog.Run(ctx)
	}()
	if r.fetcher != nil {
		if err := r.fetcher.Start(ctx); err != nil {
			return fmt.Errorf("collector: rssac zone fetcher: %w", err)
		}
	}
	if len(r.cfg.Import) > 0 {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.importLoop(ctx)
		}()
	}
	return nil
}

// Stop stops the loops, then delivers the queued alerts until ctx ends.
func (r *RSSAC) Stop(ctx context.Context) error {
	r.mu.Lock()
	cancel := r.cancel
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	r.wg.Wait()
	if r.fetcher != nil {
		if err := r.fetcher.Stop(ctx); err != nil {
			r.deps.Log.Warn("rssac: stop zone fetcher", "err", err)
		}
	}
	return r.send.Stop(ctx)
}

func (r *RSSAC) importLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.ImportInterval)
	defer t.Stop()
	for {
		r.ImportOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ImportOnce empties every drop folder once.
func (r *RSSAC) ImportOnce(ctx context.Context) {
	for _, d := range r.cfg.Import {
		st, err := r.in.ImportDir(ctx, d.Dir, d.VP)
		if err != nil {
			r.deps.Log.Warn("rssac: drop folder import incomplete; retried next pass", "dir", d.Dir, "err", err)
		}
		if st.Stored+st.Duplicates+st.Rejected+st.Failed > 0 {
			r.deps.Log.Info("rssac: drop folder imported", "dir", d.Dir, "stored", st.Stored, "duplicates", st.Duplicates,
				"rejected", st.Rejected, "failed", st.Failed, "waiting", st.Waiting)
		}
	}
}

// RSSACRuns is the answer of GET /api/v1/rssac/runs.
type RSSACRuns struct {
	From     time.Time        `json:"from"`
	To       time.Time        `json:"to"`
	VPs      []rstore.VPRuns  `json:"vps"`
	Problems []ingest.Problem `json:"problems"`
}

// serveRuns answers GET /api/v1/rssac/runs: per vantage point, the runs
// stored in a range (default the last 24 hours; from and to in RFC 3339,
// or month=YYYY-MM) and the watchdog's current problems.
func (r *RSSAC) serveRuns(w http.ResponseWriter, req *http.Request) {
	if !r.api.allow(w, req) {
		return
	}
	q := req.URL.Query()
	to := r.deps.Now().UTC()
	from := to.Add(-24 * time.Hour)
	var err error
	switch {
	case q.Get("month") != "":
		var p rssac.Period
		if p, err = ParseRSSACPeriod(q.Get("month"), ""); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		from, to = p.From, p.To
	case q.Get("from") != "" || q.Get("to") != "":
		if from, err = time.Parse(time.RFC3339, q.Get("from")); err != nil {
			writeError(w, http.StatusBadRequest, "from: want an RFC 3339 time, like 2026-10-01T00:00:00Z")
			return
		}
		if q.Get("to") != "" {
			if to, err = time.Parse(time.RFC3339, q.Get("to")); err != nil {
				writeError(w, http.StatusBadRequest, "to: want an RFC 3339 time, like 2026-11-01T00:00:00Z")
				return
			}
		}
		if !from.Before(to) {
			writeError(w, http.StatusBadRequest, "want from before to")
			return
		}
	}
	ctx, cancel := context.WithTimeout(req.Context(), time.Minute)
	defer cancel()
	vps, err := r.deps.Store.Runs(ctx, from, to)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "rssac runs: "+err.Error())
		return
	}
	if vps == nil {
		vps = []rstore.VPRuns{}
	}
	writeJSON(w, http.StatusOK, RSSACRuns{From: from.UTC(), To: to.UTC(), VPs: vps, Problems: r.watchdog.Problems()})
}

// serveReport answers GET /api/v1/rssac/report?month=YYYY-MM or
// ?week=YYYY-Www with the period's report, as JSON (default) or
// format=markdown.
func (r *RSSAC) serveReport(w http.ResponseWriter, req *http.Request) {
	if !r.api.allow(w, req) {
		return
	}
	q := req.URL.Query()
	p, err := ParseRSSACPeriod(q.Get("month"), q.Get("week"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	format := q.Get("format")
	if format != "" && format != "json" && format != "markdown" {
		writeError(w, http.StatusBadRequest, "format "+strconv.Quote(format)+": want json or markdown")
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Minute)
	defer cancel()
	rep, err := r.deps.Reporter(ctx, p)
	if err != nil {
		r.deps.Log.Warn("rssac: report failed", "period", p.Name(), "err", err)
		writeError(w, http.StatusInternalServerError, "rssac report: "+err.Error())
		return
	}
	if format == "markdown" {
		w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
		if err := rep.WriteMarkdown(w); err != nil {
			r.deps.Log.Warn("rssac: write report", "err", err)
		}
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// ParseRSSACPeriod reads a report period from the API's parameters: a
// month ("2026-10", the calendar month in UTC) or an ISO 8601 week
// ("2026-W43", Monday 00:00 UTC to the next Monday). Exactly one must be
// given.
func ParseRSSACPeriod(month, week string) (rssac.Period, error) {
	switch {
	case month != "" && week != "":
		return rssac.Period{}, errors.New("give month or week, not both")
	case month != "" && !strings.Contains(month, "W"):
		return rssac.ParsePeriod(month)
	case week != "" && strings.Contains(week, "W"):
		return rssac.ParsePeriod(week)
	case month != "":
		return rssac.Period{}, fmt.Errorf("month %q: want YYYY-MM, like 2026-10", month)
	case week != "":
		return rssac.Period{}, fmt.Errorf("week %q: want YYYY-Www, like 2026-W43", week)
	}
	return rssac.Period{}, errors.New("want month=YYYY-MM or week=YYYY-Www")
}
