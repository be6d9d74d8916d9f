package monitor

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the monitor's configuration, the `monitor:` section of the
// YAML file. Zero durations and counts mean the default.
type Config struct {
	// Targets are the proxies to poll.
	Targets []Target `yaml:"targets"`
	// Interval is the time between poll rounds. Default 60s.
	Interval time.Duration `yaml:"interval"`
	// ConnectTimeout bounds the TCP connect. Default 5s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// ReadTimeout bounds reading the whole health text, from connect to
	// EOF. Default 10s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// Rules are the Not good rules.
	Rules Rules `yaml:"rules"`
	// Listen is the HTTP address of /metrics, /healthz and /readyz.
	// Default 127.0.0.1:9150; "none" turns it off.
	Listen string `yaml:"listen"`
	// MaxDevicesPerProxy bounds the per-device series of one proxy; the
	// devices past it are counted but not exported. Default 10000.
	MaxDevicesPerProxy int `yaml:"max_devices_per_proxy"`
	// MaxUnregisteredPerProxy bounds the unregistered sources exported
	// per proxy with their first-seen time. Default 100.
	MaxUnregisteredPerProxy int `yaml:"max_unregistered_per_proxy"`
	// Push sends every round as Influx line protocol; off without a URL.
	Push PushConfig `yaml:"push"`
	// Alerts are sent on confirmed state transitions.
	Alerts AlertConfig `yaml:"alerts"`
}

// Target is one proxy's health check.
type Target struct {
	Name string `yaml:"name"`
	IP   string `yaml:"ip"`
	// Port is the health check's TCP port (kproxy: the flow port + 1).
	Port int `yaml:"port"`
}

// Addr is the target's host:port.
func (t Target) Addr() string { return net.JoinHostPort(t.IP, strconv.Itoa(t.Port)) }

// Rules are the Not good rules: the health check answered, but one of
// them fires. docs/monitor.md explains each.
type Rules struct {
	// ProblemLine fires when the first line is not GOOD. Default on.
	ProblemLine *bool `yaml:"problem_line"`
	// NotForwarding fires when a device receives (In1 > 0) but forwards
	// nothing (Out1 == 0). Default on.
	NotForwarding *bool `yaml:"not_forwarding"`
	// StaleAfter fires when a device was last seen longer ago than this.
	// Default 5m; a negative value turns it off.
	StaleAfter time.Duration `yaml:"stale_after"`
	// HighwaterAtLeast fires when any Channel highwater value of a device
	// reaches it. The text does not carry the channels' capacity, which
	// differs between kproxy and netpulse (64 by default for netpulse's
	// socket queue), so it is off (0) by default.
	HighwaterAtLeast int `yaml:"highwater_at_least"`
	// Unregistered fires when unregistered sources are listed. Default
	// off.
	Unregistered bool `yaml:"unregistered"`
}

// PushConfig is the Influx line protocol push.
type PushConfig struct {
	// URL receives a POST of the lines, e.g. an InfluxDB or
	// VictoriaMetrics /write, or an NMS custom metrics endpoint.
	URL string `yaml:"url"`
	// Measurement and DeviceMeasurement name the two measurements.
	// Defaults "/testing/agent/kproxy/" and "/testing/agent/kproxy/devices".
	Measurement       string `yaml:"measurement"`
	DeviceMeasurement string `yaml:"device_measurement"`
	// Headers are added to each request. ${NAME} in a value is replaced
	// by the environment variable NAME, so tokens stay out of the file.
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds one request. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// Attempts bounds the tries of one push. Default 3.
	Attempts int `yaml:"attempts"`
	// Backoff is the wait after the first failure; it doubles after each
	// one. Default 1s.
	Backoff time.Duration `yaml:"backoff"`
}

// AlertConfig is where alerts go.
type AlertConfig struct {
	// Hold is how many consecutive polls a new state must hold before it
	// is alerted (flap damping). Default 2.
	Hold int `yaml:"hold"`
	// Webhook receives a JSON POST per alert; off when empty.
	Webhook string `yaml:"webhook"`
	// Syslog is host:port of an RFC 5424 syslog server over UDP; off
	// when empty.
	Syslog string `yaml:"syslog"`
	// Timeout bounds one webhook request. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// DefaultConfig returns the defaults, without targets.
func DefaultConfig() Config {
	on := true
	on2 := true
	return Config{
		Interval:                60 * time.Second,
		ConnectTimeout:          5 * time.Second,
		ReadTimeout:             10 * time.Second,
		Rules:                   Rules{ProblemLine: &on, NotForwarding: &on2, StaleAfter: 5 * time.Minute},
		Listen:                  "127.0.0.1:9150",
		MaxDevicesPerProxy:      10000,
		MaxUnregisteredPerProxy: 100,
		Push: PushConfig{
			Measurement:       "/testing/agent/kproxy/",
			DeviceMeasurement: "/testing/agent/kproxy/devices",
			Timeout:           10 * time.Second,
			Attempts:          3,
			Backoff:           time.Second,
		},
		Alerts: AlertConfig{Hold: 2, Timeout: 10 * time.Second},
	}
}

// fill sets the defaults of zero fields.
func (c *Config) fill() {
	d := DefaultConfig()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&c.Interval, d.Interval)
	setDur(&c.ConnectTimeout, d.ConnectTimeout)
	setDur(&c.ReadTimeout, d.ReadTimeout)
	setDur(&c.Rules.StaleAfter, d.Rules.StaleAfter)
	if c.Rules.ProblemLine == nil {
		c.Rules.ProblemLine = d.Rules.ProblemLine
	}
	if c.Rules.NotForwarding == nil {
		c.Rules.NotForwarding = d.Rules.NotForwarding
	}
	if c.Listen == "" {
		c.Listen = d.Listen
	}
	setInt(&c.MaxDevicesPerProxy, d.MaxDevicesPerProxy)
	setInt(&c.MaxUnregisteredPerProxy, d.MaxUnregisteredPerProxy)
	if c.Push.Measurement == "" {
		c.Push.Measurement = d.Push.Measurement
	}
	if c.Push.DeviceMeasurement == "" {
		c.Push.DeviceMeasurement = d.Push.DeviceMeasurement
	}
	setDur(&c.Push.Timeout, d.Push.Timeout)
	setInt(&c.Push.Attempts, d.Push.Attempts)
	setDur(&c.Push.Backoff, d.Push.Backoff)
	setInt(&c.Alerts.Hold, d.Alerts.Hold)
	setDur(&c.Alerts.Timeout, d.Alerts.Timeout)
}

// Validate checks the configuration; each error names the key.
func (c *Config) Validate() error {
	if len(c.Targets) == 0 {
		return errors.New("monitor: targets: give at least one {name, ip, port}")
	}
	seen := map[string]bool{}
	for i, t := range c.Targets {
		if t.Name == "" {
			return fmt.Errorf("monitor: targets[%d]: name is required", i)
		}
		if seen[t.Name] {
			return fmt.Errorf("monitor: targets[%d]: name %q used twice; names must be unique", i, t.Name)
		}
		seen[t.Name] = true
		if t.IP == "" {
			return fmt.Errorf("monitor: targets[%d] (%s): ip is required", i, t.Name)
		}
		if t.Port < 1 || t.Port > 65535 {
			return fmt.Errorf("monitor: targets[%d] (%s): port %d: want 1-65535 (the health check port)", i, t.Name, t.Port)
		}
	}
	for k, v := range map[string]time.Duration{"interval": c.Interval, "connect_timeout": c.ConnectTimeout, "read_timeout": c.ReadTimeout} {
		if v < 0 {
			return fmt.Errorf("monitor: %s %v: want a positive duration", k, v)
		}
	}
	if c.Rules.HighwaterAtLeast < 0 {
		return fmt.Errorf("monitor: rules.highwater_at_least %d: want 0 (off) or more", c.Rules.HighwaterAtLeast)
	}
	if c.MaxDevicesPerProxy < 0 || c.MaxUnregisteredPerProxy < 0 {
		return errors.New("monitor: max_devices_per_proxy and max_unregistered_per_proxy: want 0 (default) or more")
	}
	if c.Push.URL != "" {
		u, err := url.Parse(c.Push.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("monitor: push.url %q: want http(s)://host[:port]/path", c.Push.URL)
		}
		for k, v := range c.Push.Headers {
			if _, err := expandEnv(v); err != nil {
				return fmt.Errorf("monitor: push.headers.%s: %w", k, err)
			}
		}
	}
	if c.Push.Attempts < 0 || c.Alerts.Hold < 0 {
		return errors.New("monitor: push.attempts and alerts.hold: want 1 or more")
	}
	if c.Alerts.Webhook != "" {
		u, err := url.Parse(c.Alerts.Webhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("monitor: alerts.webhook %q: want http(s)://host[:port]/path", c.Alerts.Webhook)
		}
	}
	if c.Alerts.Syslog != "" {
		if _, _, err := net.SplitHostPort(c.Alerts.Syslog); err != nil {
			return fmt.Errorf("monitor: alerts.syslog %q: want host:port", c.Alerts.Syslog)
		}
	}
	return nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${NAME} by the environment variable NAME; an unset
// variable is an error, so that a missing token is found at start-up.
// A lone $ is kept as is.
func expandEnv(s string) (string, error) {
	var missing string
	out := envRef.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := os.LookupEnv(name)
		if !ok && missing == "" {
			missing = name
		}
		return v
	})
	if missing != "" {
		return "", fmt.Errorf("environment variable %s is not set", missing)
	}
	return out, nil
}

// Load reads the `monitor:` section of a YAML file, rejecting unknown
// keys in it (other sections are left to their own loaders), fills the
// defaults and validates.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("monitor: %w", err)
	}
	return Parse(data)
}

// Parse is Load on the file's bytes.
func Parse(data []byte) (Config, error) {
	// The other top-level sections go to Rest; unknown keys inside
	// monitor: are refused, with the file's line numbers.
	var file struct {
		Monitor *Config        `yaml:"monitor"`
		Rest    map[string]any `yaml:",inline"`
	}
	c := DefaultConfig()
	file.Monitor = &c
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		return Config{}, fmt.Errorf("monitor: config: %w", err)
	}
	var top map[string]any
	if err := yaml.Unmarshal(data, &top); err != nil || top["monitor"] == nil {
		return Config{}, errors.New("monitor: config: no monitor: section (see docs/monitor.md)")
	}
	c.fill()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}
