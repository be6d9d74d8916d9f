package sshpoll

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/netpulse/netpulse/ifwatch/statsfile"
)

// DefaultPath is where a Stealthwatch Flow Collector writes its exporter
// statistics, every 1 to 5 minutes.
const DefaultPath = "/lancope/var/sw/today/data/exporter_device_stats.txt"

// Config is the configuration of the remote-collector source. Zero
// durations and counts mean the default; DefaultConfig lists them.
type Config struct {
	// Collectors are the remote flow collectors to poll.
	Collectors []Collector `yaml:"collectors"`
	// Interval is the time between polls of every collector. The
	// collectors rewrite their file every 1 to 5 minutes. Default 1m.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds the TCP connect and the SSH handshake, login
	// included, of one attempt. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// ReadTimeout bounds the SFTP session of one attempt after login:
	// open, stat and read of the file. Default 30s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// Attempts bounds the tries of one poll of one collector. Only
	// transport failures (connect, handshake, read) are tried again; a
	// refused host key or login, a missing file or a file that does not
	// parse are not. Default 3.
	Attempts int `yaml:"attempts"`
	// Backoff is the wait after the first failed attempt; it doubles
	// after each one, up to MaxBackoff. Default 2s.
	Backoff time.Duration `yaml:"backoff"`
	// MaxBackoff caps the wait between attempts. Default 30s.
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// Concurrency bounds how many collectors are polled at once.
	// Default 8.
	Concurrency int `yaml:"concurrency"`

	// User is the login of collectors that do not set their own. The
	// Flow Collectors are polled as root. Default "root".
	User string `yaml:"user"`
	// KeyFile is a private key in OpenSSH or PEM format. At least one of
	// KeyFile and Agent is required.
	KeyFile string `yaml:"key_file"`
	// PassphraseEnv names an environment variable holding the key's
	// passphrase, for an encrypted KeyFile.
	PassphraseEnv string `yaml:"passphrase_env"`
	// PassphraseFile is a file holding the key's passphrase (a final
	// newline is dropped), for an encrypted KeyFile.
	PassphraseFile string `yaml:"passphrase_file"`
	// Agent uses the keys of the SSH agent at AgentSocket, after the
	// KeyFile's key when both are set.
	Agent bool `yaml:"agent"`
	// AgentSocket is the SSH agent's socket. Default: the SSH_AUTH_SOCK
	// environment variable when the poller is built.
	AgentSocket string `yaml:"agent_socket"`
	// KnownHosts are OpenSSH known_hosts files holding the collectors'
	// host keys; a collector whose key is not there, or differs, is
	// refused. They are read again at every connection, so an edit
	// needs no restart. Default ~/.ssh/known_hosts.
	// One file may be given as a string, several as a list.
	KnownHosts Paths `yaml:"known_hosts"`
	// InsecureIgnoreHostKey accepts any host key. It exists for tests
	// and lab set-ups only: it lets anyone on the path impersonate a
	// collector and read the login. Default false.
	InsecureIgnoreHostKey bool `yaml:"insecure_ignore_host_key"`

	// MaxFileSize is the largest stats file read, in bytes; a larger
	// one is a source error. Default 32 MiB.
	MaxFileSize int64 `yaml:"max_file_size"`
	// MaxRows is the most rows of one file; more is a source error.
	// Default 200000.
	MaxRows int `yaml:"max_rows"`
}

// Collector is one remote flow collector.
type Collector struct {
	// Name identifies the collector in polls, logs and metrics; unique
	// and required.
	Name string `yaml:"name"`
	// Address is host:port of its SSH server; the port defaults to 22.
	Address string `yaml:"address"`
	// User is the login. Default Config.User.
	User string `yaml:"user"`
	// Path is the stats file. Default DefaultPath.
	Path string `yaml:"path"`
	// Columns maps the file's header names; empty names take the
	// defaults of statsfile.DefaultColumns (a per-exporter file).
	Columns statsfile.Columns `yaml:"columns"`
}

// DefaultConfig returns the defaults, without collectors.
func DefaultConfig() Config {
	lim := statsfile.DefaultLimits()
	return Config{
		Interval:    time.Minute,
		Timeout:     10 * time.Second,
		ReadTimeout: 30 * time.Second,
		Attempts:    3,
		Backoff:     2 * time.Second,
		MaxBackoff:  30 * time.Second,
		Concurrency: 8,
		User:        "root",
		KnownHosts:  Paths{"~/.ssh/known_hosts"},
		MaxFileSize: lim.MaxFileSize,
		MaxRows:     lim.MaxRows,
	}
}

// fill sets the defaults of zero fields, collectors included.
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
	setDur(&c.Timeout, d.Timeout)
	setDur(&c.ReadTimeout, d.ReadTimeout)
	setInt(&c.Attempts, d.Attempts)
	setDur(&c.Backoff, d.Backoff)
	setDur(&c.MaxBackoff, d.MaxBackoff)
	setInt(&c.Concurrency, d.Concurrency)
	setInt(&c.MaxRows, d.MaxRows)
	if c.MaxFileSize == 0 {
		c.MaxFileSize = d.MaxFileSize
	}
	if c.User == "" {
		c.User = d.User
	}
	if len(c.KnownHosts) == 0 {
		c.KnownHosts = d.KnownHosts
	}
	c.Collectors = append([]Collector(nil), c.Collectors...)
	for i := range c.Collectors {
		col := &c.Collectors[i]
		if col.User == "" {
			col.User = c.User
		}
		if col.Path == "" {
			col.Path = DefaultPath
		}
		if _, _, err := net.SplitHostPort(col.Address); err != nil && col.Address != "" {
			// A host, a bracketed or a bare IPv6 address: add port 22.
			col.Address = net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(col.Address, "["), "]"), "22")
		}
	}
}

// Validate checks a filled configuration; each error names the key.
func (c *Config) Validate() error {
	if len(c.Collectors) == 0 {
		return errors.New("sshpoll: collectors: give at least one {name, address}")
	}
	seen := map[string]bool{}
	for i, col := range c.Collectors {
		key := fmt.Sprintf("collectors[%d]", i)
		if col.Name == "" {
			return fmt.Errorf("sshpoll: %s: name is required", key)
		}
		if seen[col.Name] {
			return fmt.Errorf("sshpoll: %s: name %q used twice; names must be unique", key, col.Name)
		}
		seen[col.Name] = true
		host, port, err := net.SplitHostPort(col.Address)
		if err != nil || host == "" {
			return fmt.Errorf("sshpoll: %s (%s): address %q: want host or host:port", key, col.Name, col.Address)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("sshpoll: %s (%s): address %q: port: want 1-65535", key, col.Name, col.Address)
		}
		if !strings.HasPrefix(col.Path, "/") {
			return fmt.Errorf("sshpoll: %s (%s): path %q: want an absolute path", key, col.Name, col.Path)
		}
		if err := col.Columns.Validate(); err != nil {
			return fmt.Errorf("sshpoll: %s (%s): %w", key, col.Name, err)
		}
	}
	for k, v := range map[string]time.Duration{"interval": c.Interval, "timeout": c.Timeout, "read_timeout": c.ReadTimeout, "backoff": c.Backoff, "max_backoff": c.MaxBackoff} {
		if v < 0 {
			return fmt.Errorf("sshpoll: %s %v: want a positive duration", k, v)
		}
	}
	if c.Attempts < 0 || c.Concurrency < 0 || c.MaxRows < 0 || c.MaxFileSize < 0 {
		return errors.New("sshpoll: attempts, concurrency, max_rows and max_file_size: want 0 (default) or more")
	}
	if c.KeyFile == "" && !c.Agent {
		return errors.New("sshpoll: no authentication: set key_file (a private key) or agent: true (the SSH agent at SSH_AUTH_SOCK)")
	}
	if c.PassphraseEnv != "" && c.PassphraseFile != "" {
		return errors.New("sshpoll: passphrase_env and passphrase_file: set one, not both")
	}
	return nil
}

// Paths is a list of files that YAML may also give as one string.
type Paths []string

// UnmarshalYAML takes a string or a list of strings.
func (p *Paths) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var s string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*p = Paths{s}
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return fmt.Errorf("want a file or a list of files: %w", err)
	}
	*p = l
	return nil
}
