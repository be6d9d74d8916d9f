package zone

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// FetchConfig is the fetcher's configuration. Zero values mean the
// default; DefaultFetchConfig lists them.
type FetchConfig struct {
	// Source is where the zone comes from:
	//   - "axfr://host:port": a zone transfer (AXFR over TCP) of the
	//     archive's origin from that server (port 53 when left out);
	//   - "http://…" or "https://…": a zone file, plain or gzip, such as
	//     https://www.internic.net/domain/root.zone.
	// Required.
	Source string `yaml:"source"`
	// Interval is the time between fetches. Default 15m.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one fetch. Default 2m.
	Timeout time.Duration `yaml:"timeout"`
}

// DefaultFetchConfig returns the defaults, without Source.
func DefaultFetchConfig() FetchConfig {
	return FetchConfig{Interval: 15 * time.Minute, Timeout: 2 * time.Minute}
}

// Validate checks the source.
func (c *FetchConfig) Validate() error {
	u, err := url.Parse(c.Source)
	if err != nil || c.Source == "" {
		return fmt.Errorf("zone: fetch: source %q: want axfr://host:port or an http(s) URL", c.Source)
	}
	switch u.Scheme {
	case "axfr":
		if u.Host == "" || u.Path != "" && u.Path != "/" {
			return fmt.Errorf("zone: fetch: source %q: want axfr://host:port", c.Source)
		}
	case "http", "https":
		if u.Host == "" {
			return fmt.Errorf("zone: fetch: source %q: no host", c.Source)
		}
	default:
		return fmt.Errorf("zone: fetch: source %q: scheme %q (want axfr, http or https)", c.Source, u.Scheme)
	}
	if c.Interval < 0 || c.Timeout < 0 {
		return errors.New("zone: fetch: interval and timeout must not be negative")
	}
	return nil
}

// FetcherDeps are what a fetcher is given.
type FetcherDeps struct {
	// Log receives failed fetches (Warn) and new serials (Info).
	// Default: discard.
	Log *slog.Logger
	// Now stamps new versions' first-seen time. Default time.Now.
	Now func() time.Time
	// Tick returns the schedule's channel and a function that stops it.
	// Default: a time.Ticker of Interval.
	Tick func(d time.Duration) (<-chan time.Time, func())
	// HTTP is the client of http(s) sources. Default: a client with
	// Timeout.
	HTTP *http.Client
}

// Fetch results, the values of the fetches metric's result label.
const (
	ResultNew       = "new"
	ResultUnchanged = "unchanged"
	ResultError     = "error"
)

// Fetcher fetches the zone on a schedule and adds it to an archive.
// Errors are logged and counted, never fatal: the next tick tries again.
type Fetcher struct {
	cfg     FetchConfig
	src     *url.URL
	archive *Archive
	log     *slog.Logger
	now     func() time.Time
	tick    func(time.Duration) (<-chan time.Time, func())
	http    *http.Client

	mu          sync.Mutex
	results     map[string]uint64
	lastSuccess time.Time
	lastErr     error

	cancel context.CancelFunc
	done   chan struct{}
}

// NewFetcher checks cfg and builds a fetcher; it fetches nothing.
func NewFetcher(cfg FetchConfig, a *Archive, deps FetcherDeps) (*Fetcher, error) {
	d := DefaultFetchConfig()
	if cfg.Interval == 0 {
		cfg.Interval = d.Interval
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = d.Timeout
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if a == nil {
		return nil, errors.New("zone: fetch: no archive")
	}
	src, _ := url.Parse(cfg.Source)
	f := &Fetcher{cfg: cfg, src: src, archive: a, log: deps.Log, now: deps.Now, tick: deps.Tick, http: deps.HTTP,
		results: map[string]uint64{}}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.tick == nil {
		f.tick = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	if f.http == nil {
		f.http = &http.Client{Timeout: cfg.Timeout}
	}
	return f, nil
}

// Start fetches at once, then at every tick, until Stop.
func (f *Fetcher) Start(ctx context.Context) error {
	if f.cancel != nil {
		return errors.New("zone: fetch: already started")
	}
	ctx, f.cancel = context.WithCancel(context.WithoutCancel(ctx))
	f.done = make(chan struct{})
	c, stop := f.tick(f.cfg.Interval)
	go func() {
		defer close(f.done)
		defer stop()
		for {
			f.FetchOnce(ctx)
			select {
			case <-ctx.Done():
				return
			case <-c:
			}
		}
	}()
	return nil
}

// Stop ends the schedule and waits for a fetch under way to end.
func (f *Fetcher) Stop(ctx context.Context) error {
	if f.cancel == nil {
		return nil
	}
	f.cancel()
	select {
	case <-f.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// FetchOnce fetches the zone and adds it to the archive. It returns the
// version's entry and whether it was new; an error is also logged and
// counted.
func (f *Fetcher) FetchOnce(ctx context.Context) (Entry, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	var (
		e     Entry
		isNew bool
		err   error
	)
	seen := f.now()
	if f.src.Scheme == "axfr" {
		var rrs []dns.RR
		if rrs, err = f.transfer(ctx); err == nil {
			e, isNew, err = f.archive.AddRRs(rrs, seen)
		}
	} else {
		var text []byte
		if text, err = f.get(ctx); err == nil {
			e, isNew, err = f.archive.Add(text, seen)
		}
	}
	result := ResultUnchanged
	switch {
	case err != nil:
		result = ResultError
		f.log.Warn("zone: fetch failed", "source", f.cfg.Source, "err", err)
	case isNew:
		result = ResultNew
		f.log.Info("zone: new serial", "source", f.cfg.Source, "serial", e.Serial)
	}
	f.mu.Lock()
	f.results[result]++
	if err == nil {
		f.lastSuccess = seen
	}
	f.lastErr = err
	f.mu.Unlock()
	return e, isNew, err
}

// LastError is the error of the last fetch, nil after a success.
func (f *Fetcher) LastError() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}

// Results returns the fetches counted so far by result.
func (f *Fetcher) Results() map[string]uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]uint64, len(f.results))
	for k, v := range f.results {
		out[k] = v
	}
	return out
}

// get fetches an http(s) source, bounded, gunzipping a gzip body.
func (f *Fetcher) get(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.cfg.Source, nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("zone: fetch: %s: %s", f.cfg.Source, resp.Status)
	}
	max := f.archive.cfg.MaxBytes
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("zone: fetch: %s: %w", f.cfg.Source, err)
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrTooLarge, f.cfg.Source, max)
	}
	if len(body) >= 2 && body[0] == 0x1f && body[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("zone: fetch: %s: %w", f.cfg.Source, err)
		}
		if body, err = io.ReadAll(io.LimitReader(zr, max+1)); err != nil {
			return nil, fmt.Errorf("zone: fetch: %s: %w", f.cfg.Source, err)
		}
		if int64(len(body)) > max {
			return nil, fmt.Errorf("%w: %s is over %d bytes", ErrTooLarge, f.cfg.Source, max)
		}
	}
	return body, nil
}

// transfer runs an AXFR of the archive's origin and returns its records
// without the closing SOA.
func (f *Fetcher) transfer(ctx context.Context) ([]dns.RR, error) {
	addr := f.src.Host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "53")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("zone: axfr %s: %w", addr, err)
	}
	// Closing the connection ends the transfer's reader goroutine, which
	// then closes the envelope channel: on cancellation, and when the
	// zone is past the limits.
	stopAfter := context.AfterFunc(ctx, func() { conn.Close() })
	defer stopAfter()
	defer conn.Close()
	t := &dns.Transfer{Conn: &dns.Conn{Conn: conn}, ReadTimeout: f.cfg.Timeout}
	m := new(dns.Msg)
	m.SetAxfr(f.archive.cfg.Origin)
	env, err := t.In(m, addr)
	if err != nil {
		return nil, fmt.Errorf("zone: axfr %s: %w", addr, err)
	}
	var (
		rrs      []dns.RR
		firstErr error
		max      = f.archive.cfg.MaxRRs
	)
	for e := range env {
		if firstErr != nil {
			continue // drain
		}
		if e.Error != nil {
			firstErr = e.Error
			continue
		}
		rrs = append(rrs, e.RR...)
		if len(rrs) > max+1 {
			firstErr = fmt.Errorf("%w: more than %d records", ErrTooLarge, max)
			conn.Close()
		}
	}
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return nil, fmt.Errorf("zone: axfr %s: %w", addr, firstErr)
	}
	// A complete transfer starts and ends with the SOA.
	if len(rrs) < 2 {
		return nil, fmt.Errorf("zone: axfr %s: %d records: incomplete transfer", addr, len(rrs))
	}
	first, ok1 := rrs[0].(*dns.SOA)
	last, ok2 := rrs[len(rrs)-1].(*dns.SOA)
	if !ok1 || !ok2 || first.Serial != last.Serial {
		return nil, fmt.Errorf("zone: axfr %s: does not start and end with the same SOA", addr)
	}
	return rrs[:len(rrs)-1], nil
}

// The metrics, built at scrape time; result is one of three values.
var (
	descFetches = prometheus.NewDesc("netpulse_rssac_zone_fetches_total",
		"Root-zone fetches, by result: new (a serial not seen before), unchanged, error.", []string{"result"}, nil)
	descLastSuccess = prometheus.NewDesc("netpulse_rssac_zone_last_fetch_success_timestamp_seconds",
		"When the last fetch that got a valid zone ended, Unix time.", nil, nil)
	descSerials = prometheus.NewDesc("netpulse_rssac_zone_serials",
		"Zone versions (serials) stored in the archive.", nil, nil)
	descLastGrowth = prometheus.NewDesc("netpulse_rssac_zone_last_new_serial_timestamp_seconds",
		"When the archive last stored a new serial, Unix time.", nil, nil)
	descLatest = prometheus.NewDesc("netpulse_rssac_zone_latest_serial",
		"SOA serial of the version first seen last.", nil, nil)
)

// Collector returns the archive's metrics: versions stored, the last
// growth and the latest serial.
func (a *Archive) Collector() prometheus.Collector { return archiveMetrics{a} }

type archiveMetrics struct{ a *Archive }

func (m archiveMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSerials
	ch <- descLastGrowth
	ch <- descLatest
}

func (m archiveMetrics) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descSerials, prometheus.GaugeValue, float64(m.a.Count()))
	if g := m.a.LastGrowth(); !g.IsZero() {
		ch <- prometheus.MustNewConstMetric(descLastGrowth, prometheus.GaugeValue, float64(g.UnixNano())/1e9)
	}
	if e, ok := m.a.Latest(); ok {
		ch <- prometheus.MustNewConstMetric(descLatest, prometheus.GaugeValue, float64(e.Serial))
	}
}

// Collector returns the fetcher's metrics: fetches by result and the
// last success.
func (f *Fetcher) Collector() prometheus.Collector { return fetchMetrics{f} }

type fetchMetrics struct{ f *Fetcher }

func (m fetchMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- descFetches
	ch <- descLastSuccess
}

func (m fetchMetrics) Collect(ch chan<- prometheus.Metric) {
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	for _, r := range []string{ResultNew, ResultUnchanged, ResultError} {
		ch <- prometheus.MustNewConstMetric(descFetches, prometheus.CounterValue, float64(m.f.results[r]), r)
	}
	if !m.f.lastSuccess.IsZero() {
		ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue, float64(m.f.lastSuccess.UnixNano())/1e9)
	}
}
