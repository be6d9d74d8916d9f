package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netpulse/netpulse/alert"
	"github.com/netpulse/netpulse/internal/diskusage"
	"github.com/netpulse/netpulse/probe/result"
)

// WatchdogConfig configures the collector's RSSAC watchdog, the seed's
// watch_collector.py. Zero fields take the defaults shown.
type WatchdogConfig struct {
	// Every is how often the checks run. Default 1m.
	Every time.Duration `yaml:"every"`
	// MissedRuns is how many 5-minute runs in a row a vantage point may
	// miss before it is reported silent. Default 3.
	MissedRuns int `yaml:"missed_runs"`
	// Forget is how long a vantage point that is not in the probe tokens
	// file stays expected after its last result. Default 168h (7 days).
	Forget time.Duration `yaml:"forget"`
	// ZoneStale is how long the root zone archive may go without a new
	// zone before it is reported stale. Default 24h.
	ZoneStale time.Duration `yaml:"zone_stale"`
	// DiskThreshold is the fraction (0 to 1) of the data directory's file
	// system in use above which the disk is reported full. Default 0.8.
	DiskThreshold float64 `yaml:"disk_threshold"`
	// Repeat is how often a problem that lasts is alerted again. Default
	// 24h.
	Repeat time.Duration `yaml:"repeat"`
}

// DefaultWatchdogConfig returns the documented defaults.
func DefaultWatchdogConfig() WatchdogConfig {
	return WatchdogConfig{Every: time.Minute, MissedRuns: 3, Forget: 7 * 24 * time.Hour, ZoneStale: 24 * time.Hour,
		DiskThreshold: 0.8, Repeat: 24 * time.Hour}
}

// WithDefaults fills zero fields.
func (c WatchdogConfig) WithDefaults() WatchdogConfig {
	d := DefaultWatchdogConfig()
	if c.Every == 0 {
		c.Every = d.Every
	}
	if c.MissedRuns == 0 {
		c.MissedRuns = d.MissedRuns
	}
	if c.Forget == 0 {
		c.Forget = d.Forget
	}
	if c.ZoneStale == 0 {
		c.ZoneStale = d.ZoneStale
	}
	if c.DiskThreshold == 0 {
		c.DiskThreshold = d.DiskThreshold
	}
	if c.Repeat == 0 {
		c.Repeat = d.Repeat
	}
	return c
}

// Validate checks the configuration; errors name the key under
// "watchdog.".
func (c WatchdogConfig) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Every < time.Second:
		return fmt.Errorf("watchdog.every: %v: want 1s or more", c.Every)
	case c.MissedRuns < 1:
		return fmt.Errorf("watchdog.missed_runs: %d: want 1 or more", c.MissedRuns)
	case c.Forget < result.Interval:
		return fmt.Errorf("watchdog.forget: %v: want 5m or more", c.Forget)
	case c.ZoneStale < time.Minute:
		return fmt.Errorf("watchdog.zone_stale: %v: want 1m or more", c.ZoneStale)
	case c.DiskThreshold <= 0 || c.DiskThreshold > 1:
		return fmt.Errorf("watchdog.disk_threshold: %g: want a fraction above 0, at most 1 (0.8 is 80 %%)", c.DiskThreshold)
	case c.Repeat < time.Minute:
		return fmt.Errorf("watchdog.repeat: %v: want 1m or more", c.Repeat)
	}
	return nil
}

// WatchdogDeps are what a Watchdog reads and where it sends alerts.
type WatchdogDeps struct {
	// LastSlots returns, per vantage point with a run at or after since,
	// the slot of its latest run (rstore.Store.Runs). Required.
	LastSlots func(ctx context.Context, since time.Time) (map[string]time.Time, error)
	// Expected are the vantage points that should send whether or not
	// they have sent lately: the probe tokens file's.
	Expected []string
	// ZoneLast returns when the root zone archive last grew (the newest
	// zone's first-seen time; zero while it is empty). Nil turns the
	// zone check off.
	ZoneLast func() time.Time
	// DiskPath is a path on the file system to watch (the data
	// directory); empty turns the disk check off. Disk reads it; nil is
	// diskusage.Statfs.
	DiskPath string
	Disk     diskusage.Source
	// Send delivers alerts (an alert.Multi of the alerts file and syslog);
	// nil sends none (the metrics and the log still tell).
	Send alert.Sender
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Log receives every alert and check failure; nil discards.
	Log *slog.Logger
}

// CheckName names one of the watchdog's checks.
type CheckName string

// The checks.
const (
	CheckVPSilent  CheckName = "vp_silent"
	CheckZoneStale CheckName = "zone_stale"
	CheckDiskFull  CheckName = "disk_full"
)

var checkNames = [...]CheckName{CheckVPSilent, CheckZoneStale, CheckDiskFull}

// Problem is something the watchdog reports.
type Problem struct {
	Check CheckName `json:"check"`
	// Subject is what it is about: the vantage point, "root zone", or
	// the disk path.
	Subject string `json:"subject"`
	// Since is when the watchdog first found it.
	Since   time.Time `json:"since"`
	Message string    `json:"message"`
}

type problemKey struct {
	check   CheckName
	subject string
}

type problemState struct {
	p         Problem
	lastAlert time.Time
}

// Watchdog checks that results keep arriving from every vantage point,
// that the zone archive keeps growing and that the disk has room, and
// alerts when one stops: once when a problem appears, again every
// Repeat while it lasts, and once more (a notice) when it is over.
type Watchdog struct {
	cfg     WatchdogConfig
	deps    WatchdogDeps
	started time.Time

	mu        sync.Mutex
	active    map[problemKey]*problemState
	zoneAge   float64 // seconds; -1 unknown
	diskUsed  float64 // fraction; -1 unknown
	lastCheck time.Time

	alerts [len(checkNames)]atomic.Uint64
	errors atomic.Uint64
}

// NewWatchdog checks cfg and returns a Watchdog; the time it is made is
// the reference of vantage points and a zone archive not heard from yet.
func NewWatchdog(cfg WatchdogConfig, deps WatchdogDeps) (*Watchdog, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.LastSlots == nil {
		return nil, errors.New("rssac watchdog: no LastSlots")
	}
	if deps.Disk == nil {
		deps.Disk = diskusage.Statfs{}
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	return &Watchdog{cfg: cfg.WithDefaults(), deps: deps, started: deps.Now(), active: map[problemKey]*problemState{}, zoneAge: -1, diskUsed: -1}, nil
}

// Run checks every Every until ctx ends, the first time at once.
func (w *Watchdog) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.Every)
	defer t.Stop()
	for {
		w.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check runs every check once, alerts on what changed, and returns the
// problems now active. A check that cannot run (the store does not
// answer, the disk usage cannot be read) is logged and counted, and its
// problems are left as they were.
func (w *Watchdog) Check(ctx context.Context) []Problem {
	now := w.deps.Now()
	found := map[problemKey]Problem{}
	evaluated := map[CheckName]bool{}
	// keep lists subjects of a check still in scope; a problem of a
	// subject out of scope (a vantage point forgotten) ends without a
	// recovery notice.
	keep := map[problemKey]bool{}

	if last, err := w.deps.LastSlots(ctx, now.Add(-w.cfg.Forget)); err != nil {
		w.fail("vantage points", err)
	} else {
		evaluated[CheckVPSilent] = true
		known := map[string]bool{}
		for _, vp := range w.deps.Expected {
			known[vp] = true
		}
		for vp := range last {
			known[vp] = true
		}
		for vp := range known {
			k := problemKey{CheckVPSilent, vp}
			keep[k] = true
			slot, ok := last[vp]
			var missed int64
			var msg string
			if ok {
				// The run of slot S is due by S+5m; every slot after the
				// last stored one that is due is a missed run.
				missed = int64(now.Sub(slot)/result.Interval) - 1
				msg = fmt.Sprintf("vantage point %s silent: no result for %d runs (last slot %s)", vp, missed, slot.UTC().Format(time.RFC3339))
			} else {
				missed = int64(now.Sub(w.started) / result.Interval)
				msg = fmt.Sprintf("vantage point %s silent: no result for %d runs (none since the collector started at %s)", vp, missed, w.started.UTC().Format(time.RFC3339))
			}
			if missed >= int64(w.cfg.MissedRuns) {
				found[k] = Problem{Check: CheckVPSilent, Subject: vp, Message: msg}
			}
		}
	}

	zoneAge := -1.0
	if w.deps.ZoneLast != nil {
		evaluated[CheckZoneStale] = true
		k := problemKey{CheckZoneStale, "root zone"}
		keep[k] = true
		last := w.deps.ZoneLast()
		// Before the collector has run ZoneStale, an old archive is not
		// yet a stopped one: count from the start.
		ref := last
		if ref.Before(w.started) {
			ref = w.started
		}
		zoneAge = now.Sub(ref).Seconds()
		if age := now.Sub(ref); age >= w.cfg.ZoneStale {
			msg := fmt.Sprintf("root zone archive stale: no new zone for %v", age.Round(time.Minute))
			if !last.IsZero() {
				msg += " (newest first seen " + last.UTC().Format(time.RFC3339) + ")"
			}
			found[k] = Problem{Check: CheckZoneStale, Subject: "root zone", Message: msg}
		}
	}

	diskUsed := -1.0
	if w.deps.DiskPath != "" {
		if used, err := w.deps.Disk.Used(w.deps.DiskPath); err != nil {
			w.fail("disk usage", err)
		} else {
			evaluated[CheckDiskFull] = true
			diskUsed = used
			k := problemKey{CheckDiskFull, w.deps.DiskPath}
			keep[k] = true
			if used >= w.cfg.DiskThreshold {
				found[k] = Problem{Check: CheckDiskFull, Subject: w.deps.DiskPath,
					Message: fmt.Sprintf("disk holding %s %.0f %% full (threshold %.0f %%)", w.deps.DiskPath, used*100, w.cfg.DiskThreshold*100)}
			}
		}
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastCheck = now
	if zoneAge >= 0 {
		w.zoneAge = zoneAge
	}
	if diskUsed >= 0 {
		w.diskUsed = diskUsed
	}
	for k, p := range found {
		st := w.active[k]
		switch {
		case st == nil:
			p.Since = now
			st = &problemState{p: p, lastAlert: now}
			w.active[k] = st
			w.alert(alert.Warning, st.p, "")
		case now.Sub(st.lastAlert) >= w.cfg.Repeat:
			st.p.Message, st.lastAlert = p.Message, now
			w.alert(alert.Warning, st.p, "")
		default:
			st.p.Message = p.Message
		}
	}
	for k, st := range w.active {
		if _, still := found[k]; still || !evaluated[k.check] {
			continue
		}
		delete(w.active, k)
		if keep[k] {
			w.alert(alert.Notice, st.p, "recovered")
		} else {
			w.deps.Log.Info("rssac watchdog: vantage point no longer expected", "vp", k.subject)
		}
	}
	return w.problemsLocked()
}

func (w *Watchdog) fail(what string, err error) {
	w.errors.Add(1)
	w.deps.Log.Warn("rssac watchdog: check failed; its alerts are left as they were", "check", what, "err", err)
}

var msgIDs = map[CheckName]string{CheckVPSilent: "RSSAC-VP-SILENT", CheckZoneStale: "RSSAC-ZONE-STALE", CheckDiskFull: "RSSAC-DISK-FULL"}

// alert logs and sends one problem; state "recovered" says it is over.
func (w *Watchdog) alert(sev alert.Severity, p Problem, state string) {
	msg, msgID := p.Message, msgIDs[p.Check]
	if state != "" {
		msg = fmt.Sprintf("%s: %s (since %s)", state, p.Message, p.Since.UTC().Format(time.RFC3339))
		msgID += "-OK"
	} else {
		for i, c := range checkNames {
			if c == p.Check {
				w.alerts[i].Add(1)
			}
		}
	}
	if sev == alert.Warning {
		w.deps.Log.Warn("rssac watchdog: "+msg, "check", p.Check, "subject", p.Subject)
	} else {
		w.deps.Log.Info("rssac watchdog: "+msg, "check", p.Check, "subject", p.Subject)
	}
	if w.deps.Send == nil {
		return
	}
	w.deps.Send.Send(alert.Event{Time: w.deps.Now(), Severity: sev, MsgID: msgID, Message: msg,
		SD: map[string][]alert.Param{"rssac@32473": {
			{Name: "check", Value: string(p.Check)},
			{Name: "subject", Value: p.Subject},
			{Name: "since", Value: p.Since.UTC().Format(time.RFC3339)},
		}},
		Payload: struct {
			Problem
			State string `json:"state,omitempty"`
		}{p, state}})
}

// Problems returns the problems found by the last Check, sorted.
func (w *Watchdog) Problems() []Problem {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.problemsLocked()
}

func (w *Watchdog) problemsLocked() []Problem {
	out := make([]Problem, 0, len(w.active))
	for _, st := range w.active {
		out = append(out, st.p)
	}
	slices.SortFunc(out, func(a, b Problem) int {
		if c := strings.Compare(string(a.Check), string(b.Check)); c != 0 {
			return c
		}
		return strings.Compare(a.Subject, b.Subject)
	})
	return out
}

var (
	descProblems = prometheus.NewDesc("netpulse_rssac_watchdog_problems",
		"Problems the RSSAC watchdog reports now, by check (vp_silent counts silent vantage points).", []string{"check"}, nil)
	descAlerts = prometheus.NewDesc("netpulse_rssac_watchdog_alerts_total",
		"Alerts the RSSAC watchdog raised (first and repeated, not recoveries), by check.", []string{"check"}, nil)
	descErrors = prometheus.NewDesc("netpulse_rssac_watchdog_errors_total",
		"RSSAC watchdog checks that could not run (store or disk usage unreadable).", nil, nil)
	descZoneAge = prometheus.NewDesc("netpulse_rssac_watchdog_zone_age_seconds",
		"Time since the root zone archive last grew (or since the collector started, if later).", nil, nil)
	descDiskUsed = prometheus.NewDesc("netpulse_rssac_watchdog_disk_used_ratio",
		"Fraction of the data directory's file system in use.", nil, nil)
	descLastCheck = prometheus.NewDesc("netpulse_rssac_watchdog_last_check_timestamp_seconds",
		"When the RSSAC watchdog last ran its checks, Unix time.", nil, nil)
)

// Describe implements prometheus.Collector.
func (w *Watchdog) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descProblems, descAlerts, descErrors, descZoneAge, descDiskUsed, descLastCheck} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (w *Watchdog) Collect(ch chan<- prometheus.Metric) {
	w.mu.Lock()
	defer w.mu.Unlock()
	count := map[CheckName]int{}
	for k := range w.active {
		count[k.check]++
	}
	for i, c := range checkNames {
		ch <- prometheus.MustNewConstMetric(descProblems, prometheus.GaugeValue, float64(count[c]), string(c))
		ch <- prometheus.MustNewConstMetric(descAlerts, prometheus.CounterValue, float64(w.alerts[i].Load()), string(c))
	}
	ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(w.errors.Load()))
	if w.zoneAge >= 0 {
		ch <- prometheus.MustNewConstMetric(descZoneAge, prometheus.GaugeValue, w.zoneAge)
	}
	if w.diskUsed >= 0 {
		ch <- prometheus.MustNewConstMetric(descDiskUsed, prometheus.GaugeValue, w.diskUsed)
	}
	if !w.lastCheck.IsZero() {
		ch <- prometheus.MustNewConstMetric(descLastCheck, prometheus.GaugeValue, float64(w.lastCheck.UnixNano())/1e9)
	}
}
