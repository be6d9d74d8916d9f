package ifwatch

import (
	"fmt"
	"time"
)

// Config is ifwatch's configuration, the `ifwatch:` section of the YAML
// file. Zero values mean the default; docs/ifwatch.md explains each rule.
type Config struct {
	// DownAfter is the silence after which a key is down: no source has
	// reported traffic on it for this long. It must be longer than the
	// slowest source's reporting interval (a stats file rewritten every
	// 5 minutes needs more than 5m), or a healthy key goes down between
	// two reports. Default 5m.
	DownAfter time.Duration `yaml:"down_after"`
	// Hold is how long a new state must last before it is confirmed;
	// for down by silence it runs after down_after. An oper-down is
	// confirmed at once. Default 0.
	Hold time.Duration `yaml:"hold"`
	// HoldObservations is how many observations with traffic, without a
	// silence of down_after between them, a down (or new) key needs
	// before it is confirmed up; 1 takes the first one. Default 2.
	HoldObservations int `yaml:"hold_observations"`
	// FlapCount and FlapWindow: a key whose confirmed state changes more
	// than FlapCount times within FlapWindow is flapping: one
	// EventFlapping instead of an event per change, until it holds one
	// state for a whole FlapWindow (EventStable). Defaults 4 and 1h.
	FlapCount  int           `yaml:"flap_count"`
	FlapWindow time.Duration `yaml:"flap_window"`
	// MaxKeys bounds the keys tracked; observations of new keys past it
	// are dropped and counted (Stats.DroppedMaxKeys). Default 1000000.
	MaxKeys int `yaml:"max_keys"`
	// TimeZone is the IANA zone of calendar months in reports, e.g.
	// "Europe/Amsterdam". Default "UTC".
	TimeZone string `yaml:"time_zone"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		DownAfter:        5 * time.Minute,
		HoldObservations: 2,
		FlapCount:        4,
		FlapWindow:       time.Hour,
		MaxKeys:          1_000_000,
		TimeZone:         "UTC",
	}
}

// fill sets the defaults of zero fields.
func (c *Config) fill() {
	d := DefaultConfig()
	if c.DownAfter == 0 {
		c.DownAfter = d.DownAfter
	}
	if c.HoldObservations == 0 {
		c.HoldObservations = d.HoldObservations
	}
	if c.FlapCount == 0 {
		c.FlapCount = d.FlapCount
	}
	if c.FlapWindow == 0 {
		c.FlapWindow = d.FlapWindow
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = d.MaxKeys
	}
	if c.TimeZone == "" {
		c.TimeZone = d.TimeZone
	}
}

// Validate checks the configuration after defaults; each error names the
// key and the fix.
func (c *Config) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"down_after", c.DownAfter}, {"hold", c.Hold}, {"flap_window", c.FlapWindow}} {
		if d.v < 0 {
			return fmt.Errorf("ifwatch: %s %v: want a positive duration (0 for the default)", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"hold_observations", c.HoldObservations}, {"flap_count", c.FlapCount}, {"max_keys", c.MaxKeys}} {
		if n.v < 0 {
			return fmt.Errorf("ifwatch: %s %d: want a positive number (0 for the default)", n.name, n.v)
		}
	}
	if _, err := c.Location(); err != nil {
		return err
	}
	return nil
}

// Location loads TimeZone ("" is UTC).
func (c *Config) Location() (*time.Location, error) {
	if c.TimeZone == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("ifwatch: time_zone %q: %w (want an IANA name such as Europe/Amsterdam; is tzdata installed?)", c.TimeZone, err)
	}
	return loc, nil
}
