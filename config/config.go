// Package config reads netpulse's YAML configuration file. Unknown keys
// are rejected, so a typo stops start-up with a message that names it
// instead of being silently ignored. Every default is in Default, and
// docs/configuration.md is the reference page.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/netpulse/netpulse/collector"
	"github.com/netpulse/netpulse/decoder"
	"github.com/netpulse/netpulse/logging"
	"github.com/netpulse/netpulse/monitor"
	"github.com/netpulse/netpulse/probe"
	"github.com/netpulse/netpulse/proxy"
	"github.com/netpulse/netpulse/tcpstats"
)

// Config is the whole configuration file. Each component has a section.
type Config struct {
	Log     logging.Config `yaml:"log"`
	Decoder decoder.Config `yaml:"decoder"`
	// Proxy is `netpulse proxy`; its flags override it.
	Proxy proxy.Settings `yaml:"proxy"`
	// Monitor is `netpulse monitor` (docs/monitor.md).
	Monitor monitor.Config `yaml:"monitor"`
	// Probe is `netpulse probe` (docs/probe.md).
	Probe probe.Config `yaml:"probe"`
	// Collector is `netpulse collector` (docs/collector.md).
	Collector collector.Config `yaml:"collector"`
	// TCPStats is `netpulse tcpstats` (docs/tcpstats.md); its flags
	// override it.
	TCPStats tcpstats.FileConfig `yaml:"tcpstats"`
}

// Default returns the configuration used when a key is absent.
func Default() Config {
	return Config{Log: logging.DefaultConfig(), Decoder: decoder.DefaultConfig(), Proxy: proxy.DefaultSettings(), Monitor: monitor.DefaultConfig(), Probe: probe.DefaultConfig(), Collector: collector.DefaultConfig(), TCPStats: tcpstats.DefaultFileConfig()}
}

// Parse reads a configuration over the defaults and validates it.
func Parse(data []byte) (Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, friendly(err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Load reads and validates the configuration file at path.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Validate checks values that YAML types alone cannot.
func (c *Config) Validate() error {
	if err := c.Log.Validate(); err != nil {
		return err
	}
	// The proxy's own checks, less "no sink": a file may configure the
	// proxy's sinks on the command line, or not the proxy at all.
	if err := c.Proxy.Config.Validate(); err != nil {
		return fmt.Errorf("proxy.%w", err)
	}
	// A file without monitor targets configures something else.
	if len(c.Monitor.Targets) > 0 {
		if err := c.Monitor.Validate(); err != nil {
			return err
		}
	}
	// A file without a vantage point id configures something else.
	if c.Probe.VP != "" {
		if err := c.Probe.Validate(); err != nil {
			return err
		}
	}
	// A file without proxy tokens configures something else.
	if c.Collector.ProxyTokensFile != "" {
		if err := c.Collector.Validate(); err != nil {
			return err
		}
	}
	if err := c.TCPStats.Validate(); err != nil {
		return err
	}
	nf := c.Decoder.NetFlow
	for _, v := range []struct {
		key string
		bad bool
	}{
		{"decoder.netflow.max_templates", nf.MaxTemplates < 0},
		{"decoder.netflow.hold_time", nf.HoldTime < 0 || nf.HoldTime > 24*time.Hour},
		{"decoder.netflow.hold_sets", nf.HoldSets < 0},
		{"decoder.netflow.hold_bytes", nf.HoldBytes < 0},
		{"decoder.max_streams", c.Decoder.MaxStreams < 0},
	} {
		if v.bad {
			return fmt.Errorf("%s: out of range (see docs/configuration.md)", v.key)
		}
	}
	return nil
}

// Marshal returns c as YAML.
func (c Config) Marshal() ([]byte, error) { return yaml.Marshal(c) }

var notFound = regexp.MustCompile(`field (\S+) not found in type (\S+)`)

// friendly rewrites yaml.v3's Go-flavoured messages in the words of the
// file: "unknown key foo".
func friendly(err error) error {
	msg := notFound.ReplaceAllString(err.Error(), "unknown key $1 (in $2)")
	return errors.New(msg)
}
