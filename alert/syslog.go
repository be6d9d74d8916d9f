package alert

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netpulse/netpulse/internal/tlsutil"
)

// SyslogConfig configures a Syslog sender. A zero value in any field
// takes the default shown.
type SyslogConfig struct {
	// Address is the server's host:port. Without a port, 514 (udp, tcp)
	// or 6514 (tls). Required.
	Address string `yaml:"address"`
	// Transport is udp (default, RFC 5426), tcp (RFC 6587 octet-counting
	// framing) or tls (RFC 5425, the same framing inside TLS 1.2+).
	Transport string `yaml:"transport"`
	// Format is rfc5424 (default) or rfc3164, the BSD format of older
	// servers and appliances.
	Format string `yaml:"format"`
	// Facility is a syslog.conf facility name. Default daemon.
	Facility string `yaml:"facility"`
	// AppName is the APP-NAME (RFC 3164: TAG). Default netpulse.
	AppName string `yaml:"app_name"`
	// Hostname is the HOSTNAME field. Default the machine's host name,
	// which in a container is a random id: set it there.
	Hostname string `yaml:"hostname"`
	// CAFile is the PEM bundle that signs the server's certificate (tls
	// only). Default the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate and its key in PEM,
	// for servers that require mutual TLS (tls only, both or neither).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// Timeout bounds a dial, a TLS handshake and a write. Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// Queue is how many messages wait for the server; more are dropped
	// and counted. Default 1024.
	Queue int `yaml:"queue"`
}

// Syslog defaults.
const (
	DefaultSyslogTimeout = 5 * time.Second
	DefaultSyslogQueue   = 1024
)

// DefaultSyslogConfig returns the documented defaults, without an
// address: syslog is off until one is set.
func DefaultSyslogConfig() SyslogConfig {
	return SyslogConfig{Transport: "udp", Format: "rfc5424", Facility: "daemon", AppName: "netpulse",
		Timeout: DefaultSyslogTimeout, Queue: DefaultSyslogQueue}
}

// withDefaults fills zero fields.
func (c SyslogConfig) withDefaults() SyslogConfig {
	d := DefaultSyslogConfig()
	if c.Transport == "" {
		c.Transport = d.Transport
	}
	if c.Format == "" {
		c.Format = d.Format
	}
	if c.Facility == "" {
		c.Facility = d.Facility
	}
	if c.AppName == "" {
		c.AppName = d.AppName
	}
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.Queue == 0 {
		c.Queue = d.Queue
	}
	return c
}

// Validate checks the configuration. Errors name the key under
// "syslog.", for the owner to prefix with its section ("log.").
func (c SyslogConfig) Validate() error {
	c = c.withDefaults()
	if _, err := c.address(); err != nil {
		return err
	}
	switch c.Transport {
	case "udp", "tcp", "tls":
	default:
		return fmt.Errorf("syslog.transport: %q: want udp, tcp or tls", c.Transport)
	}
	if c.Format != "rfc5424" && c.Format != "rfc3164" {
		return fmt.Errorf("syslog.format: %q: want rfc5424 or rfc3164", c.Format)
	}
	if _, err := ParseFacility(c.Facility); err != nil {
		return fmt.Errorf("syslog.facility: %w", err)
	}
	if c.Transport != "tls" {
		for _, f := range []struct{ key, v string }{{"ca_file", c.CAFile}, {"cert_file", c.CertFile}, {"key_file", c.KeyFile}} {
			if f.v != "" {
				return fmt.Errorf("syslog.%s: set only with transport: tls (transport is %s)", f.key, c.Transport)
			}
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("syslog.cert_file/key_file: set both for mutual TLS, or neither")
	}
	if c.Timeout < 0 {
		return fmt.Errorf("syslog.timeout: %s: must be positive", c.Timeout)
	}
	if c.Queue < 0 {
		return fmt.Errorf("syslog.queue: %d: must be positive", c.Queue)
	}
	return nil
}

// address returns Address with the transport's default port added.
func (c SyslogConfig) address() (string, error) {
	if c.Address == "" {
		return "", errors.New("syslog.address: empty: set the server's host:port")
	}
	host, port, err := net.SplitHostPort(c.Address)
	if err != nil {
		// No port: "host", "10.0.0.1", "[::1]" or a bare "::1".
		host, port = c.Address, "514"
		if c.Transport == "tls" {
			port = "6514"
		}
		if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
			host = host[1 : len(host)-1]
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("syslog.address: %q: port %q: want 1-65535", c.Address, port)
	}
	if host == "" {
		return "", fmt.Errorf("syslog.address: %q: no host", c.Address)
	}
	return net.JoinHostPort(host, port), nil
}

// maxDatagram is the largest UDP payload over IPv4; longer messages are
// cut (RFC 5426 §3.2 lets a sender truncate). Receivers may cut sooner:
// rsyslog keeps 8 KiB unless its maxMessageSize is raised.
const maxDatagram = 65507

// maxAttempts is how many writes a message gets before it is given up, so
// that one message a server refuses cannot hold up the queue. Failed dials
// do not count: the server being down is not the message's fault.
const maxAttempts = 3

// Syslog sends events to a syslog server from a worker goroutine,
// reconnecting with a backoff when the connection fails.
type Syslog struct {
	cfg     SyslogConfig
	deps    Deps
	addr    string
	network string
	tls     *tls.Config
	h       header
	rfc3164 bool

	// mu orders Send against Stop, so that no message enters the queue
	// after Stop counted what was left.
	mu      sync.RWMutex
	started bool
	stopped bool
	queue   chan []byte
	quit    chan struct{} // closed by Stop: drain the queue, then return
	done    chan struct{} // closed by the worker when it returns
	ctx     context.Context
	abort   context.CancelFunc // Stop's deadline passed: give up now

	sent, dropped, failed, errs atomic.Uint64
	peerClosed                  atomic.Uint64 // streams the server closed, for tests

	// Owned by the worker.
	conn       net.Conn
	connGone   chan struct{} // closed when the server closes a stream
	goneErr    error         // why, written before connGone is closed
	connStop   func() bool
	failing    bool      // a warning was logged and no success since
	lastWarn   time.Time // rate-limits the warnings: UDP "succeeds" between failures
	backoffMin time.Duration
	backoffMax time.Duration
}

// NewSyslog builds a sender; Start starts its worker. It reads the TLS
// files now, so a wrong path stops start-up rather than the first alert.
func NewSyslog(cfg SyslogConfig, deps Deps) (*Syslog, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	addr, _ := cfg.address()
	fac, _ := ParseFacility(cfg.Facility)
	host := cfg.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	s := &Syslog{
		cfg: cfg, deps: deps, addr: addr, network: cfg.Transport,
		h:          newHeader(fac, host, cfg.AppName, os.Getpid()),
		rfc3164:    cfg.Format == "rfc3164",
		queue:      make(chan []byte, cfg.Queue),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
		backoffMin: 100 * time.Millisecond,
		backoffMax: 30 * time.Second,
	}
	s.ctx, s.abort = context.WithCancel(context.Background())
	if cfg.Transport == "tls" {
		tc, err := tlsutil.ClientConfig("syslog", cfg.CAFile, cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, err
		}
		s.tls, s.network = tc, "tcp"
	}
	return s, nil
}

// Start starts the worker. Messages sent before Start wait in the queue.
func (s *Syslog) Start(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return errors.New("syslog: already started")
	}
	s.started = true
	go s.run()
	return nil
}

// Send formats ev and queues it; when the queue is full it drops it and
// counts the drop. It never blocks on the network.
func (s *Syslog) Send(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = s.deps.now()
	}
	msg := s.format(ev)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.stopped {
		s.dropped.Add(1)
		return
	}
	select {
	case s.queue <- msg:
	default:
		s.dropped.Add(1)
	}
}

// format returns ev as one message, framed for its transport.
func (s *Syslog) format(ev Event) []byte {
	f := appendRFC5424
	if s.rfc3164 {
		f = appendRFC3164
	}
	msg := f(nil, s.h, ev)
	if s.cfg.Transport == "udp" {
		if len(msg) > maxDatagram {
			ev.Message = truncateMessage(ev.Message, len(msg)-maxDatagram)
			msg = f(msg[:0], s.h, ev)
		}
		if len(msg) > maxDatagram { // the structured data alone is too long
			msg = msg[:maxDatagram]
		}
		return msg
	}
	return appendOctetCounted(make([]byte, 0, len(msg)+8), msg)
}

// Stop delivers the queued messages until ctx ends, then drops the rest
// and returns an error that counts them.
func (s *Syslog) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	started := s.started
	s.mu.Unlock()
	before := s.dropped.Load()
	var err error
	if started {
		close(s.quit)
		select {
		case <-s.done:
		case <-ctx.Done():
			s.abort()
			<-s.done
			err = ctx.Err()
		}
	}
	s.abort()
	for range len(s.queue) {
		<-s.queue
		s.dropped.Add(1)
	}
	if err != nil {
		return fmt.Errorf("syslog %s: %d messages not delivered: %w", s.addr, s.dropped.Load()-before, err)
	}
	return nil
}

// Stats returns the counts so far.
func (s *Syslog) Stats() Stats {
	return Stats{Sent: s.sent.Load(), Dropped: s.dropped.Load(), Failed: s.failed.Load(), Errors: s.errs.Load()}
}

// run delivers the queue, one message at a time, until Stop.
func (s *Syslog) run() {
	defer close(s.done)
	defer s.closeConn()
	var (
		msg      []byte
		attempts int
		delay    time.Duration
	)
	for {
		if msg == nil {
			select {
			case msg = <-s.queue:
			case <-s.quit:
				select {
				case msg = <-s.queue:
				default:
					return // drained
				}
			}
			attempts = 0
		}
		if s.ctx.Err() != nil {
			s.dropped.Add(1)
			return
		}
		wrote, err := s.write(msg)
		if err == nil {
			s.sent.Add(1)
			msg, delay = nil, 0
			if s.failing {
				s.failing = false
				s.deps.log().Info("syslog: delivering again", "address", s.addr)
			}
			continue
		}
		if s.ctx.Err() != nil { // Stop gave up while we wrote
			s.dropped.Add(1)
			return
		}
		s.errs.Add(1)
		if now := time.Now(); !s.failing && now.Sub(s.lastWarn) >= time.Minute {
			s.failing, s.lastWarn = true, now
			s.deps.log().Warn("syslog: delivery failing, retrying with backoff; messages are dropped while the queue is full",
				"address", s.addr, "transport", s.cfg.Transport, "err", err)
		}
		if wrote {
			if attempts++; attempts >= maxAttempts {
				s.failed.Add(1)
				msg = nil
			}
		}
		delay = min(max(2*delay, s.backoffMin), s.backoffMax)
		t := time.NewTimer(delay/2 + rand.N(delay/2+1))
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			if msg != nil {
				s.dropped.Add(1)
			}
			return
		}
	}
}

// write sends one message, dialling first when there is no connection.
// wrote says whether the message reached a write, for the attempt count.
func (s *Syslog) write(msg []byte) (wrote bool, err error) {
	if s.conn != nil && s.connGone != nil {
		select {
		case <-s.connGone:
			err := s.goneErr
			s.closeConn()
			if err != nil { // not a plain close: say why, and back off
				return false, fmt.Errorf("server closed the connection: %w", err)
			}
		default:
		}
	}
	if s.conn == nil {
		if err := s.dial(); err != nil {
			return false, err
		}
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.cfg.Timeout))
	if _, err := s.conn.Write(msg); err != nil {
		s.closeConn()
		return true, fmt.Errorf("write: %w", err)
	}
	return true, nil
}

func (s *Syslog) dial() error {
	nd := &net.Dialer{Timeout: s.cfg.Timeout}
	var (
		c   net.Conn
		err error
	)
	if s.tls != nil {
		c, err = (&tls.Dialer{NetDialer: nd, Config: s.tls}).DialContext(s.ctx, s.network, s.addr)
	} else {
		c, err = nd.DialContext(s.ctx, s.network, s.addr)
	}
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	s.conn = c
	// Stop's deadline unblocks a write in progress.
	s.connStop = context.AfterFunc(s.ctx, func() { _ = c.SetDeadline(time.Now()) })
	if s.network == "tcp" {
		// A syslog server never writes: a read that returns means it
		// closed the stream, and the next message goes to a new one
		// instead of vanishing into a socket the peer has left.
		// TLS 1.3 also needs it to learn that the server refused our
		// certificate, which it says after the client's handshake is over.
		gone := make(chan struct{})
		s.connGone, s.goneErr = gone, nil
		go func() {
			_, err := io.Copy(io.Discard, c)
			if !errors.Is(err, net.ErrClosed) {
				s.goneErr = err
				s.peerClosed.Add(1)
			}
			close(gone)
		}()
	}
	return nil
}

func (s *Syslog) closeConn() {
	if s.conn == nil {
		return
	}
	s.connStop()
	_ = s.conn.Close()
	if s.connGone != nil {
		<-s.connGone
	}
	s.conn, s.connGone, s.connStop = nil, nil, nil
}
