package sshpoll

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/netpulse/netpulse/ifwatch/statsfile"
	"github.com/netpulse/netpulse/internal/promtest"
)

// gauge returns the value of a metric of the collector, or -1.
func gauge(t *testing.T, p *Poller, metric, collector string) float64 {
	t.Helper()
	mfs, err := p.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "collector" && l.GetValue() == collector {
					if g := m.GetGauge(); g != nil {
						return g.GetValue()
					}
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// insecure is a configuration that needs no key file on disk beyond a
// throwaway one and no known_hosts, for tests that never log in.
func insecure(t *testing.T, cs ...Collector) Config {
	t.Helper()
	_, pem := newKey(t)
	return Config{
		Collectors:            cs,
		KeyFile:               writeFile(t, filepath.Join(t.TempDir(), "id"), pem, 0o600),
		InsecureIgnoreHostKey: true,
	}
}

func TestConfigYAML(t *testing.T) {
	const doc = `
collectors:
  - name: fc-1
    address: 192.0.2.1
  - name: fc-2
    address: "[2001:db8::2]:2222"
    user: admin
    path: /data/interfaces.tsv
    columns: {exporter: Router, ifindex: ifIndex, last_active: Seen, bps: Rate}
  - name: fc-3
    address: 2001:db8::3
interval: 5m
timeout: 3s
key_file: /etc/netpulse/id_ed25519
known_hosts: /etc/netpulse/known_hosts
`
	var cfg Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []Collector{
		{Name: "fc-1", Address: "192.0.2.1:22", User: "root", Path: DefaultPath},
		{Name: "fc-2", Address: "[2001:db8::2]:2222", User: "admin", Path: "/data/interfaces.tsv", Columns: statsfile.Columns{Exporter: "Router", IfIndex: "ifIndex", LastActive: "Seen", BPS: "Rate"}},
		{Name: "fc-3", Address: "[2001:db8::3]:22", User: "root", Path: DefaultPath},
	}
	for i, w := range want {
		if cfg.Collectors[i] != w {
			t.Errorf("collectors[%d] = %+v, want %+v", i, cfg.Collectors[i], w)
		}
	}
	if len(cfg.KnownHosts) != 1 || cfg.KnownHosts[0] != "/etc/netpulse/known_hosts" {
		t.Errorf("known_hosts = %q", cfg.KnownHosts)
	}
	var list Config
	if err := yaml.Unmarshal([]byte("known_hosts: [/a, /b]"), &list); err != nil || len(list.KnownHosts) != 2 {
		t.Errorf("known_hosts as a list: %q, %v", list.KnownHosts, err)
	}
	if cfg.Interval != 5*time.Minute || cfg.Timeout != 3*time.Second || cfg.ReadTimeout != 30*time.Second || cfg.Attempts != 3 || cfg.MaxFileSize != 32<<20 {
		t.Errorf("durations and defaults: %+v", cfg)
	}
}

func TestConfigErrors(t *testing.T) {
	ok := func() Config {
		return Config{Collectors: []Collector{{Name: "fc", Address: "192.0.2.1"}}, KeyFile: "/k"}
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no collectors", func(c *Config) { c.Collectors = nil }, "collectors: give at least one"},
		{"no name", func(c *Config) { c.Collectors[0].Name = "" }, "collectors[0]: name is required"},
		{"same name", func(c *Config) { c.Collectors = append(c.Collectors, c.Collectors[0]) }, `name "fc" used twice`},
		{"no address", func(c *Config) { c.Collectors[0].Address = "" }, "address"},
		{"bad port", func(c *Config) { c.Collectors[0].Address = "192.0.2.1:99999" }, "port: want 1-65535"},
		{"relative path", func(c *Config) { c.Collectors[0].Path = "data/x.txt" }, "absolute path"},
		{"same column twice", func(c *Config) { c.Collectors[0].Columns.IfIndex = "Exporter Address" }, "columns.exporter and columns.ifindex"},
		{"no auth", func(c *Config) { c.KeyFile = "" }, "set key_file"},
		{"two passphrases", func(c *Config) { c.PassphraseEnv, c.PassphraseFile = "X", "/p" }, "set one, not both"},
		{"negative", func(c *Config) { c.Timeout = -time.Second }, "timeout -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok()
			tt.change(&c)
			c.fill()
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	cfg := insecure(t, Collector{Name: "fc", Address: "127.0.0.1:1"})
	cfg.KeyFile = filepath.Join(t.TempDir(), "missing")
	if _, err := New(cfg, Deps{}); err == nil || !strings.Contains(err.Error(), "key_file") {
		t.Errorf("missing key file: %v", err)
	}
	cfg = insecure(t, Collector{Name: "fc", Address: "127.0.0.1:1"})
	cfg.InsecureIgnoreHostKey = false
	cfg.KnownHosts = []string{filepath.Join(t.TempDir(), "missing")}
	if _, err := New(cfg, Deps{}); err == nil || !strings.Contains(err.Error(), "known_hosts") {
		t.Errorf("missing known_hosts: %v", err)
	}
	cfg = insecure(t, Collector{Name: "fc", Address: "127.0.0.1:1"})
	cfg.KeyFile, cfg.Agent = "", true
	t.Setenv("SSH_AUTH_SOCK", "")
	if _, err := New(cfg, Deps{}); err == nil || !strings.Contains(err.Error(), "SSH_AUTH_SOCK") {
		t.Errorf("agent without a socket: %v", err)
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestUnreachableIsRetriedThenASourceError(t *testing.T) {
	cfg := insecure(t, Collector{Name: "fc", Address: closedPort(t)})
	cfg.Attempts, cfg.Backoff = 3, time.Millisecond
	now := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	p, err := New(cfg, Deps{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	pl := p.PollAll(context.Background())[0]
	var se *SourceError
	if !errors.As(pl.Err, &se) || se.Kind != KindUnreachable || se.Collector != "fc" {
		t.Fatalf("err = %v, want an unreachable source error", pl.Err)
	}
	if pl.Attempts != 3 || pl.Rows != nil || !pl.Time.Equal(now) {
		t.Errorf("attempts %d, rows %v, time %v; want 3, nil, %v", pl.Attempts, pl.Rows, pl.Time, now)
	}
	if up := gauge(t, p, "netpulse_ifwatch_sshpoll_up", "fc"); up != 0 {
		t.Errorf("up = %v, want 0", up)
	}
	promtest.Lint(t, p.Registry(), "netpulse_ifwatch_sshpoll_",
		"netpulse_ifwatch_sshpoll_polls_total", "netpulse_ifwatch_sshpoll_bad_rows_total",
		"netpulse_ifwatch_sshpoll_up", "netpulse_ifwatch_sshpoll_poll_duration_seconds",
		"netpulse_ifwatch_sshpoll_rounds_total")
}

// TestHandshakeTimeout talks to a server that accepts and never speaks,
// as a hung collector would.
func TestHandshakeTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	cfg := insecure(t, Collector{Name: "hung", Address: ln.Addr().String()})
	cfg.Timeout, cfg.Attempts = 200*time.Millisecond, 1
	p, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	pl := p.PollAll(context.Background())[0]
	if KindOf(pl.Err) != KindUnreachable {
		t.Errorf("err = %v, want unreachable", pl.Err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("poll took %v with a 200ms timeout", d)
	}
	ln.Close()
	<-done
}

// TestCancelEndsPoll cancels a poll stuck on a hung server.
func TestCancelEndsPoll(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	cfg := insecure(t, Collector{Name: "hung", Address: ln.Addr().String()})
	cfg.Timeout, cfg.Attempts = time.Minute, 1
	p, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan Poll)
	go func() { res <- p.PollAll(ctx)[0] }()
	c := <-accepted
	defer c.Close()
	cancel()
	select {
	case pl := <-res:
		if pl.Err == nil {
			t.Error("cancelled poll without error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancel did not end the poll")
	}
	if len(p.Last()) != 0 {
		t.Error("a cancelled poll was recorded")
	}
}
