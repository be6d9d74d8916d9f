// Package logging builds the log/slog logger every netpulse component
// writes to: stderr always, and when configured a rotating file (for a
// log that outlives the container or the terminal) and a syslog server
// (for the site's central log). Each record goes once to each.
package logging

import (
	"context"
	"encoding"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/netpulse/netpulse/alert"
)

// Config selects the log level and format, and where the log goes
// besides stderr.
type Config struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text. The file gets the same.
	Format string `yaml:"format"`
	// File, when its path is set, also writes the log to a file rotated
	// by size (max_size bytes, max_files kept).
	File alert.FileConfig `yaml:"file"`
	// Syslog, when its address is set, also ships each record to a
	// syslog server: the level gives the severity, the attributes go
	// into structured data under SDID.
	Syslog alert.SyslogConfig `yaml:"syslog"`
}

// SDID is the SD-ID under which a record's attributes travel in RFC 5424
// structured data. 32473 is the Private Enterprise Number IANA reserves
// for examples and documentation (RFC 5612); netpulse has no number of
// its own, and a receiver keys on the whole "netpulse@32473" anyway.
const SDID = "netpulse@32473"

// DefaultConfig returns the documented defaults: stderr only.
func DefaultConfig() Config {
	return Config{Level: "info", Format: "text", File: alert.DefaultFileConfig(), Syslog: alert.DefaultSyslogConfig()}
}

// ParseLevel parses a level name as kproxy's -log_level spells it.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug", "access":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if _, err := ParseLevel(c.Level); err != nil {
		return fmt.Errorf("log.level: %w", err)
	}
	if c.Format != "" && c.Format != "text" && c.Format != "json" {
		return fmt.Errorf("log.format: %q: want text or json", c.Format)
	}
	if c.File.Path != "" {
		if err := c.File.Validate(); err != nil {
			return fmt.Errorf("log.%w", err)
		}
	} else if c.File != (alert.FileConfig{}) && c.File != alert.DefaultFileConfig() {
		return errors.New("log.file.path: empty: set it to write the log to a file, or remove the log.file keys")
	}
	if c.Syslog.Address != "" {
		if err := c.Syslog.Validate(); err != nil {
			return fmt.Errorf("log.%w", err)
		}
	} else if c.Syslog != (alert.SyslogConfig{}) && c.Syslog != alert.DefaultSyslogConfig() {
		return errors.New("log.syslog.address: empty: set the server's host:port to ship the log, or remove the log.syslog keys")
	}
	return nil
}

// New returns a logger writing to w, and to the file and the syslog
// server when they are configured. It opens the file now, so a path it
// cannot write stops start-up. With either configured, Close the logger
// at exit: it delivers the syslog messages still queued and syncs the
// file.
func New(c Config, w io.Writer) (*slog.Logger, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	lvl, _ := ParseLevel(c.Level)
	opts := &slog.HandlerOptions{Level: lvl}
	stderr := newHandler(c.Format, w, opts)
	if c.File.Path == "" && c.Syslog.Address == "" {
		return slog.New(stderr), nil
	}
	out := &outputs{timeout: c.Syslog.Timeout}
	if out.timeout <= 0 {
		out.timeout = alert.DefaultSyslogTimeout
	}
	hs := []slog.Handler{stderr}
	// The senders report their own trouble (rotation failed, server
	// unreachable) to outputs that cannot be the one in trouble.
	if c.File.Path != "" {
		f, err := alert.NewFile(c.File, alert.Deps{Log: slog.New(stderr)})
		if err == nil {
			err = f.Start(context.Background())
		}
		if err != nil {
			return nil, fmt.Errorf("log.%w", err)
		}
		out.file = f
		hs = append(hs, newHandler(c.Format, f, opts))
	}
	if c.Syslog.Address != "" {
		s, err := alert.NewSyslog(c.Syslog, alert.Deps{Log: slog.New(&fanout{hs: slices.Clone(hs), level: lvl})})
		if err == nil {
			err = s.Start(context.Background())
		}
		if err != nil {
			out.close()
			return nil, fmt.Errorf("log.%w", err)
		}
		out.syslog = s
		hs = append(hs, &syslogHandler{s: s, level: lvl})
	}
	return slog.New(&fanout{hs: hs, level: lvl, out: out}), nil
}

// Close delivers what the logger's syslog sender has queued (for at most
// its timeout) and syncs and closes its file; records logged after Close
// reach stderr only. It returns nil for a logger New did not build with
// a file or syslog, so every caller may defer it.
func Close(l *slog.Logger) error {
	if l == nil {
		return nil
	}
	if f, ok := l.Handler().(*fanout); ok && f.out != nil {
		return f.out.close()
	}
	return nil
}

func newHandler(format string, w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	if format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// outputs are the file and syslog sender behind a logger and all the
// loggers derived from it with With.
type outputs struct {
	file    *alert.File
	syslog  *alert.Syslog
	timeout time.Duration
	once    sync.Once
	err     error
}

func (o *outputs) close() error {
	o.once.Do(func() {
		if o.syslog != nil {
			ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
			o.err = o.syslog.Stop(ctx)
			cancel()
		}
		if o.file != nil {
			o.err = errors.Join(o.err, o.file.Stop(context.Background()))
		}
		if o.err != nil {
			o.err = fmt.Errorf("logging: %w", o.err)
		}
	})
	return o.err
}

// fanout hands each record to every handler once: stderr, the file, the
// syslog server.
type fanout struct {
	hs    []slog.Handler
	level slog.Level
	out   *outputs // nil for the senders' own logger
}

func (f *fanout) Enabled(_ context.Context, l slog.Level) bool { return l >= f.level }

// Handle gives r to each handler, even when one fails (stderr closed must
// not cost the file), and joins their errors.
func (f *fanout) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range f.hs {
		if err := h.Handle(ctx, r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (f *fanout) WithAttrs(as []slog.Attr) slog.Handler {
	g := *f
	g.hs = make([]slog.Handler, len(f.hs))
	for i, h := range f.hs {
		g.hs[i] = h.WithAttrs(as)
	}
	return &g
}

func (f *fanout) WithGroup(name string) slog.Handler {
	g := *f
	g.hs = make([]slog.Handler, len(f.hs))
	for i, h := range f.hs {
		g.hs[i] = h.WithGroup(name)
	}
	return &g
}

// syslogHandler turns records into syslog events: the message as MSG,
// the attributes as SD-PARAMs under SDID, group names joined to keys with
// dots as slog's text handler does ("req.method").
type syslogHandler struct {
	s      *alert.Syslog
	level  slog.Level
	attrs  []alert.Param // from WithAttrs, keys already qualified
	prefix string        // the open groups, "g." per group
}

func (h *syslogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *syslogHandler) Handle(_ context.Context, r slog.Record) error {
	ev := alert.Event{Time: r.Time, Severity: Severity(r.Level), Message: r.Message}
	ps := slices.Clone(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		ps = appendAttr(ps, h.prefix, a)
		return true
	})
	if len(ps) > 0 {
		ev.SD = map[string][]alert.Param{SDID: ps}
	}
	h.s.Send(ev)
	return nil
}

func (h *syslogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	g := *h
	g.attrs = slices.Clip(h.attrs) // appends copy, so siblings do not share
	for _, a := range as {
		g.attrs = appendAttr(g.attrs, h.prefix, a)
	}
	return &g
}

func (h *syslogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	g := *h
	g.prefix += name + "."
	return &g
}

// appendAttr flattens a into params, following slog's rules: empty
// attributes and empty groups vanish, a group without a key inlines.
func appendAttr(ps []alert.Param, prefix string, a slog.Attr) []alert.Param {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return ps
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, g := range a.Value.Group() {
			ps = appendAttr(ps, prefix, g)
		}
		return ps
	}
	return append(ps, alert.Param{Name: prefix + a.Key, Value: valueString(a.Value)})
}

// valueString writes a value as the text handler would.
func valueString(v slog.Value) string {
	switch v.Kind() {
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return x.Error()
		case encoding.TextMarshaler:
			if b, err := x.MarshalText(); err == nil {
				return string(b)
			}
		}
	}
	return v.String()
}

// Severity maps a slog level to a syslog severity: error and above
// error (3), warn warning (4), info informational (6), below it debug
// (7). slog has no level for notice or worse than error.
func Severity(l slog.Level) alert.Severity {
	switch {
	case l >= slog.LevelError:
		return alert.Error
	case l >= slog.LevelWarn:
		return alert.Warning
	case l >= slog.LevelInfo:
		return alert.Info
	}
	return alert.Debug
}
