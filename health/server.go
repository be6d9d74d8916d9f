package health

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config configures the health server. Zero values take the defaults.
type Config struct {
	// Listen is the TCP address, by kproxy's rule the flow port plus
	// one on -healthcheck's interface. Default 127.0.0.1:9996.
	Listen string `yaml:"listen"`
	// SniffTimeout is how long a new connection may stay silent before
	// it is taken for a kproxy-style client, which only connects and
	// reads, and gets the text. A client that sends an HTTP request
	// first gets HTTP. Default 150ms.
	SniffTimeout time.Duration `yaml:"sniff_timeout"`
	// MaxConns bounds the connections served at once; more wait in the
	// kernel's accept queue. Default 64.
	MaxConns int `yaml:"max_conns"`
	// IOTimeout bounds writing the text, and reading a request and
	// writing its response in HTTP, so that a stalled client frees its
	// slot. Default 5s.
	IOTimeout time.Duration `yaml:"io_timeout"`
	// IdleTimeout is how long an HTTP keep-alive connection may wait for
	// its next request. Default 30s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Listen:       "127.0.0.1:9996",
		SniffTimeout: 150 * time.Millisecond,
		MaxConns:     64,
		IOTimeout:    5 * time.Second,
		IdleTimeout:  30 * time.Second,
	}
}

// Validate checks the configuration; the messages name the key under
// the health section.
func (c Config) Validate() error {
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return fmt.Errorf("health.listen %q: want host:port (the flow port plus one): %w", c.Listen, err)
		}
	}
	for _, v := range []struct {
		key string
		bad bool
	}{
		{"health.sniff_timeout", c.SniffTimeout < 0},
		{"health.max_conns", c.MaxConns < 0},
		{"health.io_timeout", c.IOTimeout < 0},
		{"health.idle_timeout", c.IdleTimeout < 0},
	} {
		if v.bad {
			return fmt.Errorf("%s: must not be negative (0 takes the default)", v.key)
		}
	}
	return nil
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.Listen == "" {
		c.Listen = d.Listen
	}
	if c.SniffTimeout <= 0 {
		c.SniffTimeout = d.SniffTimeout
	}
	if c.MaxConns <= 0 {
		c.MaxConns = d.MaxConns
	}
	if c.IOTimeout <= 0 {
		c.IOTimeout = d.IOTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
}

// Deps are what the server reports, supplied by the proxy.
type Deps struct {
	// Status returns the current status; it is called once per text or
	// /status answer and must be safe for concurrent use. Required.
	Status func() *Status
	// Ready is /readyz: nil when the proxy can take flow, else why not.
	// When Ready is nil, the proxy is ready when Status has no Problem.
	Ready func() error
	// Gatherer is served on /metrics; nil leaves /metrics out. Give the
	// proxy's own registry, not prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// Now is the clock for ages in the text. Default time.Now.
	Now func() time.Time
	// Log receives accept errors. Default: discarded.
	Log *slog.Logger
}

// Stats are the server's counters.
type Stats struct {
	// TextConns are connections answered with the text, HTTPConns those
	// handed to HTTP.
	TextConns, HTTPConns uint64
	// Errors are connections that failed before an answer was written
	// (read or write errors, timeouts).
	Errors uint64
}

// Server is the health-check server: kproxy's text to a client that
// only reads, HTTP to one that sends a request.
type Server struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	ln    net.Listener
	httpl *chanListener
	hs    *http.Server
	slots chan struct{}
	done  chan struct{} // closed by Stop
	wg    sync.WaitGroup

	mu sync.Mutex
	// conns are the connections being sniffed or answered with the
	// text; true for those lingering after it.
	conns    map[net.Conn]bool
	stopOnce sync.Once

	textConns, httpConns, errs atomic.Uint64
}

// New checks the configuration; Start listens.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("health: %w", err)
	}
	cfg.fill()
	if deps.Status == nil {
		return nil, errors.New("health: Deps.Status is required")
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		cfg:   cfg,
		deps:  deps,
		log:   deps.Log,
		slots: make(chan struct{}, cfg.MaxConns),
		done:  make(chan struct{}),
		conns: make(map[net.Conn]bool),
	}, nil
}

// Start listens on the configured address and serves until Stop. The
// context bounds only the start.
func (s *Server) Start(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("health: listen %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	s.httpl = &chanListener{addr: ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{})}
	s.hs = &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: s.cfg.IOTimeout,
		ReadTimeout:       s.cfg.IOTimeout,
		WriteTimeout:      s.cfg.IOTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		_ = s.hs.Serve(s.httpl) // returns when httpl is closed
	}()
	go func() {
		defer s.wg.Done()
		s.acceptLoop()
	}()
	return nil
}

// Addr returns the bound address after Start, nil before.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Stop stops accepting, lets HTTP requests in flight finish and closes
// everything; when ctx ends first, it closes the remaining connections.
func (s *Server) Stop(ctx context.Context) error {
	if s.ln == nil {
		return nil
	}
	var err error
	s.stopOnce.Do(func() { err = s.stop(ctx) })
	return err
}

func (s *Server) stop(ctx context.Context) error {
	s.mu.Lock()
	close(s.done)
	for c, lingering := range s.conns {
		if lingering {
			c.Close()
		}
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.httpl.close()
	if herr := s.hs.Shutdown(ctx); herr != nil {
		_ = s.hs.Close()
	}
	waited := make(chan struct{})
	go func() { s.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-waited
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("health: stop: %w", err)
	}
	return nil
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{TextConns: s.textConns.Load(), HTTPConns: s.httpConns.Load(), Errors: s.errs.Load()}
}

var (
	connsDesc = prometheus.NewDesc("netpulse_health_connections_total",
		"Connections to the health port, by how they were answered: text (kproxy style) or http.",
		[]string{"mode"}, nil)
	errorsDesc = prometheus.NewDesc("netpulse_health_connection_errors_total",
		"Health connections that failed before their answer was written.", nil, nil)
)

// Describe implements prometheus.Collector, so that the proxy can
// register the server in its own registry.
func (s *Server) Describe(ch chan<- *prometheus.Desc) {
	ch <- connsDesc
	ch <- errorsDesc
}

// Collect implements prometheus.Collector.
func (s *Server) Collect(ch chan<- prometheus.Metric) {
	st := s.Stats()
	ch <- prometheus.MustNewConstMetric(connsDesc, prometheus.CounterValue, float64(st.TextConns), "text")
	ch <- prometheus.MustNewConstMetric(connsDesc, prometheus.CounterValue, float64(st.HTTPConns), "http")
	ch <- prometheus.MustNewConstMetric(errorsDesc, prometheus.CounterValue, float64(st.Errors))
}

// acceptLoop takes a slot, then accepts, so that at most MaxConns
// connections are served at once.
func (s *Server) acceptLoop() {
	var backoff time.Duration
	for {
		select {
		case s.slots <- struct{}{}:
		case <-s.done:
			return
		}
		c, err := s.ln.Accept()
		if err != nil {
			<-s.slots
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("health: accept", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.done:
				return
			}
			continue
		}
		backoff = 0
		s.track(c, true)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
		}()
	}
}

func (s *Server) track(c net.Conn, on bool) {
	s.mu.Lock()
	if on {
		s.conns[c] = false
	} else {
		delete(s.conns, c)
	}
	s.mu.Unlock()
}

// httpMethods are the request starts that make a connection HTTP.
var httpMethods = [...]string{"GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "}

// sniff tells an HTTP request from anything else by its first bytes:
// isHTTP when they start with a method, more when they are still a
// prefix of one.
func sniff(b []byte) (isHTTP, more bool) {
	for _, m := range httpMethods {
		if len(b) >= len(m) {
			if string(b[:len(m)]) == m {
				return true, false
			}
		} else if string(b) == m[:len(b)] {
			more = true
		}
	}
	return false, more
}

// serveConn waits up to SniffTimeout for the client's first bytes. An
// HTTP request goes to the HTTP server with the bytes read so far;
// silence, a half-close or anything else gets the text.
func (s *Server) serveConn(c net.Conn) {
	slotHeld := true
	defer func() {
		s.track(c, false)
		if slotHeld {
			<-s.slots
		}
	}()

	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(s.cfg.SniffTimeout))
	var isHTTP, sent bool
	for {
		// Wait for one byte more than we have, then judge all we have.
		_, err := br.Peek(br.Buffered() + 1)
		b, _ := br.Peek(br.Buffered())
		sent = len(b) > 0
		var more bool
		if isHTTP, more = sniff(b); isHTTP || (sent && !more) {
			break
		}
		if err != nil {
			var ne net.Error
			if errors.Is(err, io.EOF) || (errors.As(err, &ne) && ne.Timeout()) {
				break // silence or half-close: a kproxy-style client
			}
			s.errs.Add(1)
			c.Close()
			return
		}
	}

	if isHTTP {
		_ = c.SetReadDeadline(time.Time{})
		s.httpConns.Add(1)
		pc := &peekedConn{Conn: c, r: br, release: func() { <-s.slots }}
		s.track(c, false)
		if s.httpl.deliver(pc, s.done) {
			slotHeld = false // released when HTTP closes the connection
			return
		}
		c.Close()
		return
	}

	s.textConns.Add(1)
	_ = c.SetWriteDeadline(time.Now().Add(s.cfg.IOTimeout))
	if _, err := c.Write(AppendText(nil, s.status(), s.deps.Now())); err != nil {
		s.errs.Add(1)
		c.Close()
		return
	}
	if sent && s.linger(c) {
		lingerClose(c, min(s.cfg.IOTimeout, maxLinger))
		return
	}
	c.Close()
}

// maxLinger bounds how long a text connection is kept open after the text
// to drain what the client sent.
const maxLinger = time.Second

// linger marks c as lingering, so that Stop closes it at once; false when
// the server is stopping.
func (s *Server) linger(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return false
	default:
	}
	s.conns[c] = true
	return true
}

// lingerClose half-closes c and discards what the client still sends, for
// at most d, before closing: closing with unread input makes the kernel
// reset the connection, and the client could lose the text it has not
// read yet.
func lingerClose(c net.Conn, d time.Duration) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	var buf [512]byte
	for n := 0; n < 64<<10; {
		k, err := c.Read(buf[:])
		n += k
		if err != nil {
			break
		}
	}
	c.Close()
}

// status returns the source's status, or a problem when it has none.
func (s *Server) status() *Status {
	if st := s.deps.Status(); st != nil {
		return st
	}
	return &Status{Problem: "status unavailable"}
}

func (s *Server) ready() error {
	if s.deps.Ready != nil {
		return s.deps.Ready()
	}
	if st := s.status(); st.Problem != "" {
		return errors.New(st.Problem)
	}
	return nil
}

// handler routes the HTTP side.
func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writePlain(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.ready(); err != nil {
			writePlain(w, http.StatusServiceUnavailable, "not ready: "+err.Error()+"\n")
			return
		}
		writePlain(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		st := *s.status()
		if st.Devices == nil {
			st.Devices = []Device{}
		}
		if st.Unregistered == nil {
			st.Unregistered = []Unregistered{}
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		if err := enc.Encode(&st); err != nil {
			writePlain(w, http.StatusInternalServerError, "health: encode status: "+err.Error()+"\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(buf.Bytes())
	})
	if s.deps.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.deps.Gatherer, promhttp.HandlerOpts{
			ErrorHandling: promhttp.ContinueOnError,
			ErrorLog:      slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		}))
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(AppendText(nil, s.status(), s.deps.Now()))
	})
	return mux
}

func writePlain(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

// peekedConn is a connection whose first bytes were read into r during
// the sniff; Read returns them first. Close gives back the server slot.
type peekedConn struct {
	net.Conn
	r       *bufio.Reader
	once    sync.Once
	release func()
}

func (c *peekedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// CloseWrite half-closes, as net/http does before closing after an
// error response.
func (c *peekedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *peekedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// chanListener is the net.Listener the HTTP server accepts from: the
// sniffer delivers the connections that turned out to be HTTP, so that
// http.Server runs them with keep-alive and its own timeouts.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// deliver hands c to Accept; false when the listener or the server is
// closed first.
func (l *chanListener) deliver(c net.Conn, stop <-chan struct{}) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	case <-stop:
		return false
	}
}

func (l *chanListener) close() { l.once.Do(func() { close(l.done) }) }

func (l *chanListener) Close() error { l.close(); return nil }

func (l *chanListener) Addr() net.Addr { return l.addr }
