// Package sshpoll is ifwatch's remote-collector source: it polls the
// stats files that remote flow collectors (Stealthwatch Flow Collectors
// and the like) rewrite every few minutes, over SSH and SFTP, and hands
// each poll's rows to ifwatch.
//
// Each poll of each collector yields a Poll: the collector's name, the
// file's modification time, the parsed rows, the bad rows counted, and
// an error. An error is always a source error (the collector could not
// tell): an unreachable collector, a refused host key or login, and a
// missing file never mean that an exporter is down.
//
// Logins use a private key file (optionally encrypted, with the
// passphrase from the environment or a file) or the SSH agent; host keys
// are checked against known_hosts files. See docs/ifwatch-sources.md.
package sshpoll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ssh"

	"github.com/netpulse/netpulse/ifwatch/statsfile"
)

// Poll is the outcome of one poll of one collector.
type Poll struct {
	// Collector is the collector's configured name.
	Collector string
	// Address and Path say where the file was read.
	Address string
	Path    string
	// Time is when the poll ended, by Deps.Now.
	Time time.Time
	// Duration is how long the poll took, retries included.
	Duration time.Duration
	// Attempts is how many connections were tried.
	Attempts int
	// ModTime is the file's modification time by the collector's clock
	// (SFTP gives whole seconds). A file whose ModTime does not change
	// across polls is stale; telling is left to the caller, since the
	// two clocks may differ.
	ModTime time.Time
	// Size is the file's size in bytes.
	Size int64
	// Rows are the file's good rows; nil when Err is set.
	Rows []statsfile.Row
	// BadRows counts the rows skipped; BadSamples are the first few.
	BadRows    int
	BadSamples []statsfile.BadRow
	// Err is nil, or a *SourceError: the collector could not tell, which
	// says nothing about the exporters.
	Err error
}

// Deps are what the poller is given.
type Deps struct {
	// Log receives failed polls (at Warn) and bad rows (at Info).
	// Default: discard.
	Log *slog.Logger
	// Now stamps the polls. Default time.Now.
	Now func() time.Time
	// Handle receives every poll of Start's loop, from one goroutine, in
	// collector order; a round cancelled by Stop is not handed over.
	// It should not block for long: the next round waits for it.
	Handle func(Poll)
}

// collector is one collector's configuration and state.
type collector struct {
	cfg    Collector
	parser *statsfile.Parser

	// Guarded by Poller.mu.
	last    *Poll
	results map[Kind]uint64 // polls by result; "" is ok
	badRows uint64
}

// Poller polls the collectors. Build it with New; then either call
// PollAll, or Start a loop that polls every Interval, and Stop it.
type Poller struct {
	cfg         Config
	log         *slog.Logger
	now         func() time.Time
	handle      func(Poll)
	key         ssh.Signer // nil without key_file
	agentSocket string
	knownHosts  []string
	probe       ssh.PublicKey
	collectors  []*collector
	reg         *prometheus.Registry

	mu     sync.Mutex
	rounds uint64

	cancel context.CancelFunc
	done   chan struct{}
}

// New checks cfg, reads the key file and checks that the known_hosts
// files can be read; it opens no connection.
func New(cfg Config, deps Deps) (*Poller, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Poller{cfg: cfg, log: deps.Log, now: deps.Now, handle: deps.Handle}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	if cfg.KeyFile != "" {
		k, err := loadKey(&cfg)
		if err != nil {
			return nil, err
		}
		p.key = k
	}
	if cfg.Agent {
		p.agentSocket = cfg.AgentSocket
		if p.agentSocket == "" {
			p.agentSocket = os.Getenv("SSH_AUTH_SOCK")
		}
		if p.agentSocket == "" && p.key == nil {
			return nil, errors.New("sshpoll: agent: SSH_AUTH_SOCK is not set; set agent_socket, or key_file")
		}
	}
	if !cfg.InsecureIgnoreHostKey {
		for _, f := range cfg.KnownHosts {
			path, err := expandHome(f)
			if err != nil {
				return nil, fmt.Errorf("sshpoll: known_hosts %s: %w", f, err)
			}
			p.knownHosts = append(p.knownHosts, path)
		}
		if _, err := p.hostKeys(); err != nil {
			return nil, fmt.Errorf("sshpoll: %w (list the collectors' host keys there, or set known_hosts)", err)
		}
	}
	var err error
	if p.probe, err = newProbeKey(); err != nil {
		return nil, fmt.Errorf("sshpoll: %w", err)
	}
	lim := statsfile.Limits{MaxFileSize: cfg.MaxFileSize, MaxRows: cfg.MaxRows}
	for _, c := range cfg.Collectors {
		p.collectors = append(p.collectors, &collector{cfg: c, parser: statsfile.New(c.Columns, lim), results: map[Kind]uint64{}})
	}
	p.reg = prometheus.NewRegistry()
	p.reg.MustRegister(&metrics{p: p})
	return p, nil
}

// Config is the configuration in use, defaults filled.
func (p *Poller) Config() Config { return p.cfg }

// Registry is the poller's own Prometheus registry.
func (p *Poller) Registry() *prometheus.Registry { return p.reg }

// Start polls every collector at once, then every Interval, handing the
// polls to Deps.Handle, until Stop.
func (p *Poller) Start(ctx context.Context) error {
	if p.cancel != nil {
		return errors.New("sshpoll: already started")
	}
	ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(p.cfg.Interval)
		defer t.Stop()
		for {
			polls := p.PollAll(ctx)
			if ctx.Err() != nil {
				return
			}
			if p.handle != nil {
				for _, pl := range polls {
					p.handle(pl)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// Stop ends the loop; a round in flight is cancelled, which closes its
// connections.
func (p *Poller) Stop(ctx context.Context) error {
	if p.cancel == nil {
		return nil
	}
	p.cancel()
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PollAll polls every collector, Concurrency at a time, and returns the
// polls in collector order. Start's loop calls it; call it directly only
// without Start.
func (p *Poller) PollAll(ctx context.Context) []Poll {
	out := make([]Poll, len(p.collectors))
	sem := make(chan struct{}, p.cfg.Concurrency)
	var wg sync.WaitGroup
	for i, c := range p.collectors {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i] = p.poll(ctx, c)
		})
	}
	wg.Wait()
	if ctx.Err() == nil {
		p.mu.Lock()
		p.rounds++
		p.mu.Unlock()
	}
	return out
}

// Last returns the last poll of each collector, in collector order;
// collectors not polled yet are left out.
func (p *Poller) Last() []Poll {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Poll
	for _, c := range p.collectors {
		if c.last != nil {
			out = append(out, *c.last)
		}
	}
	return out
}

// poll polls one collector, trying again after transport failures.
func (p *Poller) poll(ctx context.Context, c *collector) Poll {
	start := time.Now()
	pl := Poll{Collector: c.cfg.Name, Address: c.cfg.Address, Path: c.cfg.Path}
	var f *fetched
	var fl *failure
	backoff := p.cfg.Backoff
	for pl.Attempts < p.cfg.Attempts {
		pl.Attempts++
		f, fl = p.fetch(ctx, c)
		if fl == nil || !fl.kind.retryable() || pl.Attempts == p.cfg.Attempts || ctx.Err() != nil {
			break
		}
		p.log.Debug("sshpoll: attempt failed, trying again", "collector", c.cfg.Name, "attempt", pl.Attempts, "in", backoff, "err", fl.err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		backoff = min(2*backoff, p.cfg.MaxBackoff)
	}
	if fl == nil {
		pl.ModTime, pl.Size = f.modTime, f.size
		res, err := c.parser.Parse(f.data)
		if err != nil {
			fl = &failure{kind: KindParse, err: fmt.Errorf("%s: %w", c.cfg.Path, err)}
		} else {
			pl.Rows, pl.BadRows, pl.BadSamples = res.Rows, res.BadRows, res.BadSamples
		}
	}
	if fl != nil {
		pl.Err = &SourceError{Collector: c.cfg.Name, Kind: fl.kind, Err: fl.err}
	}
	pl.Time = p.now()
	pl.Duration = time.Since(start)

	if ctx.Err() != nil {
		return pl // cancelled: not recorded
	}
	switch {
	case pl.Err != nil:
		p.log.Warn("sshpoll: poll failed", "collector", c.cfg.Name, "address", c.cfg.Address, "path", c.cfg.Path, "kind", string(fl.kind), "attempts", pl.Attempts, "err", pl.Err)
	case pl.BadRows > 0:
		p.log.Info("sshpoll: bad rows skipped", "collector", c.cfg.Name, "path", c.cfg.Path, "bad_rows", pl.BadRows, "first", pl.BadSamples[0].String())
	}
	p.mu.Lock()
	c.last = &pl
	c.results[KindOf(pl.Err)]++
	c.badRows += uint64(pl.BadRows)
	p.mu.Unlock()
	return pl
}
