package probe

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/netpulse/netpulse/alert"
	"github.com/netpulse/netpulse/internal/tlsutil"
	"github.com/netpulse/netpulse/probe/result"
)

// TokenEnv is the environment variable that carries the upload token; it
// wins over upload.token_file.
const TokenEnv = "NETPULSE_PROBE_TOKEN"

// Config is the probe's configuration, the `probe:` section of the YAML
// file (docs/probe.md). Zero values take the defaults of DefaultConfig.
type Config struct {
	// VP is the vantage point's id, e.g. "001" (the seed names VPs
	// nnn.mtric.net). Required.
	VP string `yaml:"vp"`
	// Targets are the servers measured. Default: the 13 root server
	// identities with their IPv4 and IPv6 addresses (RootServers).
	Targets []Target `yaml:"targets"`
	// OutputDir keeps the result files in yyyymm/ folders, and the
	// upload queue in pending/. Required.
	OutputDir string `yaml:"output_dir"`
	// Interval is the time between runs, a multiple of 5 minutes; each
	// run starts on the boundary plus a random delay. Default 5m.
	Interval time.Duration `yaml:"interval"`
	// MaxDelay bounds the random delay after the boundary. Default 60s;
	// a negative value means no delay.
	MaxDelay time.Duration `yaml:"max_delay"`
	// Timeout bounds one DNS query: UDP from send, TCP from the start of
	// the connection, to the full response. Default 4s (RSSAC047).
	Timeout time.Duration `yaml:"timeout"`
	// Concurrency is how many targets are measured at once. Default 13.
	Concurrency int `yaml:"concurrency"`
	// TLDs are the names the correctness queries ask NS and DS for.
	// Default DefaultTLDs(). They must be delegated in the targets' zone.
	TLDs []string `yaml:"tlds"`
	// Traceroute is the per-address traceroute of each run.
	Traceroute TraceConfig `yaml:"traceroute"`
	// Upload sends each result file to the collector; off without a URL.
	Upload UploadConfig `yaml:"upload"`
	// Alerts configures the local watchdog.
	Alerts AlertConfig `yaml:"alerts"`
	// Listen is the HTTP address of /metrics, /healthz and /readyz.
	// Default 127.0.0.1:9155; "none" turns it off.
	Listen string `yaml:"listen"`
}

// Target is one server identity and its addresses.
type Target struct {
	// Name is the server's identity, e.g. "a.root-servers.net"; the
	// metrics are per name.
	Name string `yaml:"name"`
	// IPv4 and IPv6 are its addresses; at least one is required.
	IPv4 string `yaml:"ipv4"`
	IPv6 string `yaml:"ipv6"`
	// Port is the DNS port. Default 53.
	Port int `yaml:"port"`
}

// addrs returns the target's addresses, IPv4 first.
func (t Target) addrs() []netip.Addr {
	var out []netip.Addr
	for _, s := range []string{t.IPv4, t.IPv6} {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// TraceConfig configures the traceroutes.
type TraceConfig struct {
	// Method is auto (default: the built-in ICMP traceroute when the
	// process may open a raw socket, else scamper when installed), icmp,
	// scamper or off.
	Method string `yaml:"method"`
	// Scamper is the scamper program. Default "scamper" (from PATH).
	Scamper string `yaml:"scamper"`
	// MaxHops bounds the TTL. Default 30.
	MaxHops int `yaml:"max_hops"`
	// Attempts is how many probes are sent to a hop until one is
	// answered (scamper's -q). Default 2.
	Attempts int `yaml:"attempts"`
	// Wait is how long to wait for a probe's reply. Default 1s.
	Wait time.Duration `yaml:"wait"`
	// GapLimit stops a trace after this many consecutive silent hops
	// (scamper's -g). Default 5.
	GapLimit int `yaml:"gap_limit"`
}

// UploadConfig is the upload of result files to the collector.
type UploadConfig struct {
	// URL is the collector, https://host:port; the path defaults to
	// /api/v1/rssac/results. Off when empty.
	URL string `yaml:"url"`
	// TokenFile holds the bearer token when NETPULSE_PROBE_TOKEN is not
	// set.
	TokenFile string `yaml:"token_file"`
	// CAFile is the PEM bundle that signs the collector's certificate.
	// Default the system's roots.
	CAFile string `yaml:"ca_file"`
	// AllowInsecureLoopback allows plain http to a loopback collector
	// (tests, a collector on the same host).
	AllowInsecureLoopback bool `yaml:"allow_insecure_loopback"`
	// Timeout bounds one upload. Default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// Retry is the wait after the first failed upload; it doubles after
	// each failure up to MaxRetry. Defaults 10s and 5m.
	Retry    time.Duration `yaml:"retry"`
	MaxRetry time.Duration `yaml:"max_retry"`
}

// AlertConfig configures the local watchdog and where its alerts go.
type AlertConfig struct {
	// File receives one text line per alert. Default
	// <output_dir>/<vp>-alerts.txt; "none" turns it off.
	File string `yaml:"file"`
	// Syslog, when its address is set, also receives each alert.
	Syslog alert.SyslogConfig `yaml:"syslog"`
	// CheckAfter is when, after each slot's boundary, the watchdog looks
	// for that slot's file (the seed checks at 4, 9, …). Default 4m; it
	// must leave room for the random delay and the run.
	CheckAfter time.Duration `yaml:"check_after"`
	// UploadOverdue alerts when the oldest file not yet acknowledged by
	// the collector is older than this. Default 15m.
	UploadOverdue time.Duration `yaml:"upload_overdue"`
	// DiskUsed alerts when the file system holding output_dir is fuller
	// than this fraction. Default 0.8.
	DiskUsed float64 `yaml:"disk_used"`
	// Repeat re-sends an alert that is still active after this long.
	// Default 1h.
	Repeat time.Duration `yaml:"repeat"`
}

// DefaultTLDs returns the TLDs the correctness queries pick from by
// default: long-lived delegations of the root zone.
func DefaultTLDs() []string {
	return []string{"arpa", "com", "net", "org", "int", "edu", "gov", "uk", "de", "nl", "jp", "br", "fr", "se", "ch", "au"}
}

// DefaultConfig returns the defaults, without vp and output_dir.
func DefaultConfig() Config {
	return Config{
		Targets:     RootServers(),
		Interval:    result.Interval,
		MaxDelay:    60 * time.Second,
		Timeout:     4 * time.Second,
		Concurrency: 13,
		TLDs:        DefaultTLDs(),
		Traceroute:  TraceConfig{Method: "auto", Scamper: "scamper", MaxHops: 30, Attempts: 2, Wait: time.Second, GapLimit: 5},
		Upload:      UploadConfig{Timeout: 30 * time.Second, Retry: 10 * time.Second, MaxRetry: 5 * time.Minute},
		Alerts:      AlertConfig{CheckAfter: 4 * time.Minute, UploadOverdue: 15 * time.Minute, DiskUsed: 0.8, Repeat: time.Hour},
		Listen:      "127.0.0.1:9155",
	}
}

// fill sets the defaults of zero fields.
func (c *Config) fill() {
	d := DefaultConfig()
	dur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	num := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	str := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	if len(c.Targets) == 0 {
		c.Targets = d.Targets
	}
	for i := range c.Targets {
		num(&c.Targets[i].Port, 53)
	}
	dur(&c.Interval, d.Interval)
	dur(&c.MaxDelay, d.MaxDelay)
	if c.MaxDelay < 0 {
		c.MaxDelay = 0
	}
	dur(&c.Timeout, d.Timeout)
	num(&c.Concurrency, d.Concurrency)
	if len(c.TLDs) == 0 {
		c.TLDs = d.TLDs
	}
	tr := &c.Traceroute
	str(&tr.Method, d.Traceroute.Method)
	str(&tr.Scamper, d.Traceroute.Scamper)
	num(&tr.MaxHops, d.Traceroute.MaxHops)
	num(&tr.Attempts, d.Traceroute.Attempts)
	dur(&tr.Wait, d.Traceroute.Wait)
	num(&tr.GapLimit, d.Traceroute.GapLimit)
	dur(&c.Upload.Timeout, d.Upload.Timeout)
	dur(&c.Upload.Retry, d.Upload.Retry)
	dur(&c.Upload.MaxRetry, d.Upload.MaxRetry)
	a := &c.Alerts
	if a.File == "" && c.OutputDir != "" && c.VP != "" {
		a.File = filepath.Join(c.OutputDir, c.VP+"-alerts.txt")
	}
	dur(&a.CheckAfter, d.Alerts.CheckAfter)
	dur(&a.UploadOverdue, d.Alerts.UploadOverdue)
	if a.DiskUsed == 0 {
		a.DiskUsed = d.Alerts.DiskUsed
	}
	dur(&a.Repeat, d.Alerts.Repeat)
	str(&c.Listen, d.Listen)
}

var (
	vpRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	tldRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// Validate checks the configuration; each error names the key and says
// what to write instead.
func (c *Config) Validate() error {
	if !vpRE.MatchString(c.VP) {
		return fmt.Errorf("probe: vp %q: want the vantage point's id, 1-64 letters, digits, '.', '_' or '-' (e.g. \"001\")", c.VP)
	}
	if c.OutputDir == "" {
		return errors.New("probe: output_dir: empty: set the folder that keeps the result files")
	}
	if len(c.Targets) == 0 {
		return errors.New("probe: targets: give at least one {name, ipv4, ipv6, port}")
	}
	seen := map[string]bool{}
	for i, t := range c.Targets {
		if t.Name == "" || len(t.Name) > 255 {
			return fmt.Errorf("probe: targets[%d]: name is required (at most 255 bytes)", i)
		}
		if seen[t.Name] {
			return fmt.Errorf("probe: targets[%d]: name %q used twice; names must be unique", i, t.Name)
		}
		seen[t.Name] = true
		if t.IPv4 == "" && t.IPv6 == "" {
			return fmt.Errorf("probe: targets[%d] (%s): give ipv4, ipv6 or both", i, t.Name)
		}
		if t.IPv4 != "" {
			if a, err := netip.ParseAddr(t.IPv4); err != nil || !a.Is4() {
				return fmt.Errorf("probe: targets[%d] (%s): ipv4 %q is not an IPv4 address", i, t.Name, t.IPv4)
			}
		}
		if t.IPv6 != "" {
			if a, err := netip.ParseAddr(t.IPv6); err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
				return fmt.Errorf("probe: targets[%d] (%s): ipv6 %q is not an IPv6 address (no zone, no mapped IPv4)", i, t.Name, t.IPv6)
			}
		}
		if t.Port < 1 || t.Port > 65535 {
			return fmt.Errorf("probe: targets[%d] (%s): port %d: want 1-65535", i, t.Name, t.Port)
		}
	}
	if c.Interval < result.Interval || c.Interval%result.Interval != 0 {
		return fmt.Errorf("probe: interval %s: want a multiple of 5m (runs start on 5-minute boundaries)", c.Interval)
	}
	if c.MaxDelay >= c.Interval {
		return fmt.Errorf("probe: max_delay %s: want less than interval (%s)", c.MaxDelay, c.Interval)
	}
	if c.Timeout < 0 || c.Timeout > time.Minute {
		return fmt.Errorf("probe: timeout %s: want a positive duration up to 1m (RSSAC047 uses 4s)", c.Timeout)
	}
	if c.Concurrency < 1 || c.Concurrency > 1000 {
		return fmt.Errorf("probe: concurrency %d: want 1-1000", c.Concurrency)
	}
	for i, t := range c.TLDs {
		if !tldRE.MatchString(t) {
			return fmt.Errorf("probe: tlds[%d] %q: want a lowercase TLD label without dots, e.g. com", i, t)
		}
	}
	tr := c.Traceroute
	switch tr.Method {
	case "auto", MethodICMP, MethodScamper, "off":
	default:
		return fmt.Errorf("probe: traceroute.method %q: want auto, icmp, scamper or off", tr.Method)
	}
	if tr.MaxHops < 1 || tr.MaxHops > 255 {
		return fmt.Errorf("probe: traceroute.max_hops %d: want 1-255", tr.MaxHops)
	}
	if tr.Attempts < 1 || tr.Attempts > 10 {
		return fmt.Errorf("probe: traceroute.attempts %d: want 1-10", tr.Attempts)
	}
	if tr.Wait < 0 || tr.Wait > 10*time.Second {
		return fmt.Errorf("probe: traceroute.wait %s: want a positive duration up to 10s", tr.Wait)
	}
	if tr.GapLimit < 1 || tr.GapLimit > 255 {
		return fmt.Errorf("probe: traceroute.gap_limit %d: want 1-255", tr.GapLimit)
	}
	if c.Upload.URL != "" {
		if _, err := tlsutil.Endpoint("probe: upload", c.Upload.URL, UploadPath, c.Upload.AllowInsecureLoopback); err != nil {
			return err
		}
		if _, err := c.Upload.token(); err != nil {
			return err
		}
		if c.Upload.CAFile != "" {
			if _, err := tlsutil.ClientConfig("probe: upload", c.Upload.CAFile, "", ""); err != nil {
				return err
			}
		}
	}
	for k, v := range map[string]time.Duration{"upload.timeout": c.Upload.Timeout, "upload.retry": c.Upload.Retry,
		"upload.max_retry": c.Upload.MaxRetry, "alerts.check_after": c.Alerts.CheckAfter,
		"alerts.upload_overdue": c.Alerts.UploadOverdue, "alerts.repeat": c.Alerts.Repeat} {
		if v < 0 {
			return fmt.Errorf("probe: %s %s: want a positive duration", k, v)
		}
	}
	if c.Upload.MaxRetry < c.Upload.Retry {
		return fmt.Errorf("probe: upload.max_retry %s: want at least upload.retry (%s)", c.Upload.MaxRetry, c.Upload.Retry)
	}
	if c.Alerts.CheckAfter <= c.MaxDelay || c.Alerts.CheckAfter >= c.Interval {
		return fmt.Errorf("probe: alerts.check_after %s: want more than max_delay (%s) and less than interval (%s)", c.Alerts.CheckAfter, c.MaxDelay, c.Interval)
	}
	if c.Alerts.DiskUsed <= 0 || c.Alerts.DiskUsed > 1 {
		return fmt.Errorf("probe: alerts.disk_used %g: want a fraction in (0, 1], e.g. 0.8", c.Alerts.DiskUsed)
	}
	if c.Alerts.Syslog.Address != "" {
		if err := c.Alerts.Syslog.Validate(); err != nil {
			return fmt.Errorf("probe: alerts.%w", err)
		}
	}
	if c.Listen != "none" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return fmt.Errorf("probe: listen %q: want host:port or none", c.Listen)
		}
	}
	return nil
}

// token returns the upload token: NETPULSE_PROBE_TOKEN, else the first
// line of token_file.
func (u UploadConfig) token() (string, error) {
	if v := strings.TrimSpace(os.Getenv(TokenEnv)); v != "" {
		return v, nil
	}
	if u.TokenFile == "" {
		return "", fmt.Errorf("probe: upload: no token: set %s or upload.token_file", TokenEnv)
	}
	b, err := os.ReadFile(u.TokenFile)
	if err != nil {
		return "", fmt.Errorf("probe: upload.token_file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	tok := strings.TrimSpace(line)
	if tok == "" {
		return "", fmt.Errorf("probe: upload.token_file: %s: empty", u.TokenFile)
	}
	return tok, nil
}

// Load reads the `probe:` section of a YAML file, rejecting unknown keys
// in it (other sections are left to their own loaders), fills the
// defaults and validates.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("probe: %w", err)
	}
	return Parse(data)
}

// Parse is Load on the file's bytes.
func Parse(data []byte) (Config, error) {
	var file struct {
		Probe *Config        `yaml:"probe"`
		Rest  map[string]any `yaml:",inline"`
	}
	// Targets start empty so that a file's list replaces the default
	// one instead of being merged into it.
	c := DefaultConfig()
	c.Targets, c.TLDs = nil, nil
	file.Probe = &c
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		return Config{}, fmt.Errorf("probe: config: %w", err)
	}
	var top map[string]any
	if err := yaml.Unmarshal(data, &top); err != nil || top["probe"] == nil {
		return Config{}, errors.New("probe: config: no probe: section (see docs/probe.md)")
	}
	c.fill()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}
