package device

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netpulse/netpulse/internal/tlsutil"
)

// PullerConfig configures a Puller. The zero value of a field means its
// default. Error messages name the keys under devices_api.
type PullerConfig struct {
	// URL is the collector, https://host:port; the path defaults to
	// APIPath. A query (such as ?proxy=NAME) is sent as given. Plain
	// http:// is refused unless the host is loopback and
	// AllowInsecureLoopback is set. Required.
	URL string `yaml:"url"`
	// AllowInsecureLoopback allows an http:// URL to a loopback host, for
	// a collector on the same machine.
	AllowInsecureLoopback bool `yaml:"allow_insecure_loopback"`
	// Token is the bearer token. It never comes from the configuration
	// file or the command line: the caller reads it from the environment
	// variable NETPULSE_API_TOKEN or from a file. Required.
	Token string `yaml:"-"`
	// CAFile is a PEM bundle of the CAs that sign the collector's
	// certificate. Default: the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate and key, for a
	// collector that requires mutual TLS. Both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Interval is the time between two fetches while they succeed.
	// Default 60s; each wait is jittered by ±10% so that many proxies do
	// not poll in step.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one fetch, connection included. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// BackoffMin and BackoffMax bound the wait after a failed fetch,
	// which doubles from BackoffMin with each failure in a row, with
	// jitter. Defaults 1s and 5m.
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
	// CacheFile keeps the last list fetched (with its ETag), so that a
	// proxy restarting while its collector is away starts with its
	// devices. It holds SNMP secrets and is written mode 0600. Default:
	// none.
	CacheFile string `yaml:"cache_file"`
	// MaxBytes bounds a list body. Default DefaultMaxListBytes.
	MaxBytes int64 `yaml:"max_bytes"`
	// LogEvery is the least time between two logged fetch errors; the
	// others are counted. Default 1m.
	LogEvery time.Duration `yaml:"-"`
	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time `yaml:"-"`
}

// DefaultPullerConfig returns the defaults documented on PullerConfig.
func DefaultPullerConfig() PullerConfig {
	return PullerConfig{
		Interval: 60 * time.Second, Timeout: 10 * time.Second,
		BackoffMin: time.Second, BackoffMax: 5 * time.Minute,
		MaxBytes: DefaultMaxListBytes, LogEvery: time.Minute, Now: time.Now,
	}
}

func (c PullerConfig) withDefaults() PullerConfig {
	d := DefaultPullerConfig()
	if c.Interval <= 0 {
		c.Interval = d.Interval
	}
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = d.BackoffMin
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = d.BackoffMax
	}
	c.BackoffMax = max(c.BackoffMax, c.BackoffMin)
	if c.MaxBytes <= 0 {
		c.MaxBytes = d.MaxBytes
	}
	if c.LogEvery <= 0 {
		c.LogEvery = d.LogEvery
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	return c
}

// endpoint checks the URL and returns the one to GET.
func (c PullerConfig) endpoint() (string, error) {
	return tlsutil.Endpoint("devices_api", c.URL, APIPath, c.AllowInsecureLoopback)
}

func (c PullerConfig) tlsConfig() (*tls.Config, error) {
	return tlsutil.ClientConfig("devices_api", c.CAFile, c.CertFile, c.KeyFile)
}

// PullerStats are a Puller's counters since NewPuller.
type PullerStats struct {
	// Fetches counts requests made, whatever their outcome.
	Fetches uint64
	// NotModified counts 304 answers: the list held is current.
	NotModified uint64
	// Updates counts lists accepted and swapped into the registry.
	Updates uint64
	// Errors counts failed fetches: no answer, an error status, or a
	// list refused by validation. The list held stays.
	Errors uint64
	// CacheErrors counts failures to write the cache file.
	CacheErrors uint64
	// LastSuccess is when a fetch last succeeded (200 or 304); zero if
	// none has.
	LastSuccess time.Time
	// LastError is the last fetch error, or "" after a success.
	LastError string
	// ETag is the entity tag of the list held ("" when none).
	ETag string
	// FromCache is set while the list held is the one the cache file
	// gave at start, not yet confirmed by the collector.
	FromCache bool
}

// Puller keeps a Registry in step with a collector's device list (GET
// APIPath): it fetches the list at start and every Interval, with
// If-None-Match so that an unchanged list costs a 304, validates a new
// list whole before swapping it in, and keeps the list it holds on any
// error. The list is cached on disk, so a proxy restarts without its
// collector.
type Puller struct {
	cfg    PullerConfig
	url    string
	reg    *Registry
	log    *slog.Logger
	client *http.Client

	// fetchMu serialises fetches (the loop and Refresh) and guards what
	// they share.
	fetchMu    sync.Mutex
	etag       string   // of the list held, sent as If-None-Match
	sum        [32]byte // SHA-256 of the canonical JSON of the list held
	failures   int      // fetch errors in a row
	lastLog    time.Time
	suppressed int // errors not logged since lastLog

	fetches, notModified, updates, errs, cacheErrs atomic.Uint64
	lastSuccess                                    atomic.Int64 // UnixNano, 0 for never
	fromCache                                      atomic.Bool
	statMu                                         sync.Mutex
	lastErr, heldETag                              string

	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

// NewPuller checks cfg and builds a Puller that swaps lists into reg;
// nothing runs before Start. log may be nil.
func NewPuller(cfg PullerConfig, reg *Registry, log *slog.Logger) (*Puller, error) {
	cfg = cfg.withDefaults()
	if reg == nil {
		return nil, errors.New("device: NewPuller: registry is nil")
	}
	ep, err := cfg.endpoint()
	if err != nil {
		return nil, err
	}
	if cfg.Token == "" {
		return nil, errors.New("devices_api: no API token: set NETPULSE_API_TOKEN or the token file")
	}
	tc, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := tlsutil.Transport(tc, cfg.Timeout, 1)
	client := &http.Client{
		Transport: tr,
		// The API has no redirects; following one could send the token
		// to another scheme or host.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Puller{cfg: cfg, url: ep, reg: reg, log: log.With("component", "device_puller"), client: client}, nil
}

// Start loads the cache file into the registry, if there is one, and
// starts fetching: in the background at once when the cache gave a list,
// or first here, bounded by Timeout, when it did not (the proxy has no
// device to serve before). A failed fetch is logged and retried; it does
// not fail Start.
func (p *Puller) Start(ctx context.Context) error {
	if p.done != nil {
		return errors.New("device puller: started twice")
	}
	loaded := p.loadCache()
	wait := time.Duration(0)
	if !loaded {
		_ = p.Refresh(ctx) // logged and counted
		p.fetchMu.Lock()
		wait = p.delay(p.failures)
		p.fetchMu.Unlock()
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel = cancel
	p.done = make(chan struct{})
	go p.run(runCtx, wait)
	return nil
}

// Stop ends the fetching, aborting a fetch under way, and waits for it
// until ctx ends. The registry keeps the last list.
func (p *Puller) Stop(ctx context.Context) error {
	if p.done == nil {
		return nil
	}
	p.stopOnce.Do(p.cancel)
	select {
	case <-p.done: // preferred when ctx has ended too
		p.client.CloseIdleConnections()
		return nil
	default:
	}
	select {
	case <-p.done:
		p.client.CloseIdleConnections()
		return nil
	case <-ctx.Done():
		return fmt.Errorf("device puller: stop: %w", ctx.Err())
	}
}

func (p *Puller) run(ctx context.Context, wait time.Duration) {
	defer close(p.done)
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_ = p.Refresh(ctx)
		p.fetchMu.Lock()
		wait = p.delay(p.failures)
		p.fetchMu.Unlock()
		t.Reset(wait)
	}
}

// delay is the wait before the next fetch after failures errors in a
// row: Interval ±10% while fetches succeed, else BackoffMin doubling up
// to BackoffMax, from half to all of it.
func (p *Puller) delay(failures int) time.Duration {
	if failures == 0 {
		j := p.cfg.Interval / 10
		if j <= 0 {
			return p.cfg.Interval
		}
		return p.cfg.Interval - j + rand.N(2*j+1)
	}
	d := p.cfg.BackoffMin
	for i := 1; i < failures && d < p.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, p.cfg.BackoffMax)
	return d/2 + rand.N(d/2+1)
}

// Refresh fetches the list now (on SIGHUP, say), after any fetch under
// way, and returns the outcome, which is also logged and counted.
func (p *Puller) Refresh(ctx context.Context) error {
	p.fetchMu.Lock()
	defer p.fetchMu.Unlock()
	err := p.fetch(ctx)
	now := p.cfg.Now()
	if err != nil {
		if ctx.Err() != nil {
			return err // stopped or given up by the caller: not a failure of the collector
		}
		p.errs.Add(1)
		p.failures++
		p.setLast(err.Error(), p.etag)
		if p.lastLog.IsZero() || now.Sub(p.lastLog) >= p.cfg.LogEvery {
			p.log.Warn("device list fetch failed; keeping the current list",
				"err", err, "failures_in_a_row", p.failures, "not_logged", p.suppressed,
				"devices", p.reg.Current().Len())
			p.lastLog, p.suppressed = now, 0
		} else {
			p.suppressed++
		}
		return err
	}
	if p.failures > 0 {
		p.log.Info("device list fetch recovered", "failed_before", p.failures)
	}
	p.failures, p.lastLog, p.suppressed = 0, time.Time{}, 0
	p.lastSuccess.Store(now.UnixNano())
	p.fromCache.Store(false)
	p.setLast("", p.etag)
	return nil
}

// setLast records the outcome for Stats. fetchMu is held.
func (p *Puller) setLast(errMsg, etag string) {
	p.statMu.Lock()
	p.lastErr, p.heldETag = errMsg, etag
	p.statMu.Unlock()
}

// fetch makes one request and applies its answer. fetchMu is held.
func (p *Puller) fetch(ctx context.Context) error {
	p.fetches.Add(1)
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return fmt.Errorf("device list: request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+p.cfg.Token)
	req.Header.Set("Accept", "application/json")
	if p.etag != "" {
		req.Header.Set("If-None-Match", p.etag)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("device list: get: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		if p.etag == "" {
			return errors.New("device list: 304 Not Modified to a request without If-None-Match")
		}
		p.notModified.Add(1)
		return nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("device list: token refused (%s): %s: check NETPULSE_API_TOKEN or the token file",
			resp.Status, errorText(resp.Body))
	default:
		return fmt.Errorf("device list: %s: %s", resp.Status, errorText(resp.Body))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.cfg.MaxBytes+1))
	if err != nil {
		return fmt.Errorf("device list: read: %w", err)
	}
	if int64(len(body)) > p.cfg.MaxBytes {
		return fmt.Errorf("device list: over %d bytes (devices_api.max_bytes)", p.cfg.MaxBytes)
	}
	set, version, err := ParseDevicesJSON(body)
	if err != nil {
		return fmt.Errorf("refused, keeping the current list: %w", err)
	}
	canon, err := CanonicalJSON(set)
	if err != nil {
		return err
	}
	etag := resp.Header.Get("ETag")
	sum := sha256.Sum256(canon)
	// A collector without ETags answers 200 each time: an unchanged list
	// is neither swapped nor rewritten to disk.
	if sum == p.sum && etag == p.etag {
		return nil
	}
	if sum != p.sum {
		p.reg.Set(set)
		p.updates.Add(1)
		p.log.Info("device list updated", "devices", set.Len(), "version", version)
	}
	p.sum, p.etag = sum, etag
	if err := p.saveCache(etag, version, canon); err != nil {
		p.cacheErrs.Add(1)
		p.log.Warn("device list cache not written; a restart without the collector would start without this list",
			"err", err)
	}
	return nil
}

// errorText returns the start of an error answer, its "error" field when
// it is the API's JSON.
func errorText(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 4<<10))
	var e apiError
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		s = "no detail"
	}
	return s
}

// Stats returns the puller's counters.
func (p *Puller) Stats() PullerStats {
	s := PullerStats{
		Fetches: p.fetches.Load(), NotModified: p.notModified.Load(), Updates: p.updates.Load(),
		Errors: p.errs.Load(), CacheErrors: p.cacheErrs.Load(), FromCache: p.fromCache.Load(),
	}
	if ns := p.lastSuccess.Load(); ns != 0 {
		s.LastSuccess = time.Unix(0, ns)
	}
	p.statMu.Lock()
	s.LastError, s.ETag = p.lastErr, p.heldETag
	p.statMu.Unlock()
	return s
}

// cacheFile is the cache's content: a Listing (so ParseDevicesJSON reads
// it) with the ETag it came with.
type cacheFile struct {
	ETag    string          `json:"etag"`
	SavedAt time.Time       `json:"saved_at"`
	Version string          `json:"version"`
	Devices json.RawMessage `json:"devices"`
}

// loadCache puts the cached list in the registry and reports whether it
// did. A missing cache is normal; a bad one is logged and ignored, since
// the collector will give the list again.
func (p *Puller) loadCache() bool {
	path := p.cfg.CacheFile
	if path == "" {
		return false
	}
	// Leftovers of a write cut by a crash.
	if olds, _ := filepath.Glob(path + ".tmp-*"); len(olds) > 0 {
		for _, o := range olds {
			_ = os.Remove(o)
		}
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if err != nil {
		p.log.Warn("device list cache unreadable, ignored", "file", path, "err", err)
		return false
	}
	var c cacheFile
	if err := json.Unmarshal(data, &c); err != nil {
		p.log.Warn("device list cache corrupt, ignored", "file", path, "err", err)
		return false
	}
	set, _, err := ParseDevicesJSON(data)
	if err != nil {
		p.log.Warn("device list cache refused, ignored", "file", path, "err", err)
		return false
	}
	canon, err := CanonicalJSON(set)
	if err != nil {
		return false
	}
	p.fetchMu.Lock()
	p.reg.Set(set)
	p.etag, p.sum = c.ETag, sha256.Sum256(canon)
	p.setLast("", c.ETag)
	p.fetchMu.Unlock()
	p.fromCache.Store(true)
	p.log.Info("device list loaded from cache", "file", path, "devices", set.Len(), "saved_at", c.SavedAt)
	return true
}

// saveCache writes the cache file atomically: a temporary file in the same
// directory, synced, then renamed over the old one, so that a crash
// leaves the old list or the new one, never a torn file.
func (p *Puller) saveCache(etag, version string, canon []byte) error {
	path := p.cfg.CacheFile
	if path == "" {
		return nil
	}
	b, err := json.Marshal(cacheFile{ETag: etag, SavedAt: p.cfg.Now().UTC(), Version: version, Devices: canon})
	if err != nil {
		return fmt.Errorf("devices_api.cache_file: encode: %w", err)
	}
	var buf bytes.Buffer
	_ = json.Indent(&buf, b, "", " ")
	buf.WriteByte('\n')
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return fmt.Errorf("devices_api.cache_file: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(buf.Bytes())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("devices_api.cache_file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable; best effort
		_ = d.Close()
	}
	return nil
}
