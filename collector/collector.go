// Package collector is netpulse's central server: it receives batches of
// flow records from proxies over HTTPS (docs/wire-protocol.md), drops the
// copies that arrive through several proxies, stores them (package store:
// DuckDB or ClickHouse), keeps the proxy registry and the device registry,
// and answers the query API (docs/collector.md).
//
// Exactly-once delivery rests on two things: the proxy keeps a batch and
// its id until acknowledged, and the collector acknowledges only once the
// store has it, with the store refusing an id it already has
// (store.ErrDuplicate) — so a retry after a lost acknowledgement, even
// across a collector restart, is acknowledged and dropped.
package collector

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/netpulse/netpulse/device"
	"github.com/netpulse/netpulse/ifwatch"
	"github.com/netpulse/netpulse/store"
	"github.com/netpulse/netpulse/wire"
)

// Server is a running collector.
type Server struct {
	cfg     Config
	store   store.Store
	log     *slog.Logger
	now     func() time.Time
	dedup   *Dedup
	proxies *Proxies
	devices *device.FileStore
	ingest  *wire.Handler
	api     *api
	metrics *ingestMetrics
	mux     *http.ServeMux
	reg     *prometheus.Registry
	ifw     *ifw

	ln      net.Listener
	srv     *http.Server
	stop    chan struct{}
	wg      sync.WaitGroup
	started time.Time
}

// Options are what a Server needs besides its Config.
type Options struct {
	// ProxyTokens maps each proxy token to the proxy's name.
	ProxyTokens map[string]string
	// APITokens are operators' tokens: query API and device changes.
	APITokens []string
	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time
	// Ledger is the store's ifwatch outage ledger; nil keeps it in a file
	// in the data directory.
	Ledger ifwatch.Ledger
	// Extra mounts more handlers on the server's mux (pattern → handler),
	// for parts that live in the collector process.
	Extra map[string]http.Handler
}

// New builds a collector over st, which it does not close.
func New(cfg Config, st store.Store, opt Options, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if st == nil {
		return nil, errors.New("collector: no store")
	}
	if len(opt.ProxyTokens) == 0 {
		return nil, errors.New("collector: no proxy tokens: no proxy could send (collector.proxy_tokens_file)")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("collector: data dir: %w", err)
	}
	devs, err := device.OpenFileStore(cfg.DevicesFile)
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	s := &Server{
		cfg: cfg, store: st, log: log, now: opt.Now,
		dedup:   NewDedup(cfg.Dedup.Window, cfg.Dedup.MaxKeys, opt.Now()),
		proxies: newProxies(), devices: devs,
		metrics: newIngestMetrics(),
		stop:    make(chan struct{}),
	}
	if !cfg.IfWatch.Disabled {
		if s.ifw, err = newIfw(cfg.IfWatch, cfg.DataDir, opt.Ledger, opt.Now, log.With("component", "ifwatch")); err != nil {
			return nil, fmt.Errorf("collector: ifwatch: %w", err)
		}
	}
	if err := s.dedup.Load(s.dedupPath(), opt.Now()); err != nil {
		log.Warn("collector: de-duplication window not restored", "err", err)
	}
	hc := cfg.Ingest
	hc.Tokens = opt.ProxyTokens
	hc.Now = opt.Now
	if s.ingest, err = wire.NewHandler(hc, s.onBatch, log); err != nil {
		return nil, err
	}
	apiAuth := device.TokenAuth(opt.APITokens...)
	// Proxies pull the device list with their own tokens.
	readTokens := append([]string(nil), opt.APITokens...)
	for tok := range opt.ProxyTokens {
		readTokens = append(readTokens, tok)
	}
	readAuth := device.TokenAuth(readTokens...)
	devHandler, err := device.NewHandler(device.HandlerConfig{Read: readAuth, Write: apiAuth}, devs, log)
	if err != nil {
		return nil, err
	}
	s.api = &api{s: s, auth: apiAuth}
	s.reg = prometheus.NewRegistry()
	s.reg.MustRegister((*collectorMetrics)(s), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	mux := http.NewServeMux()
	mux.Handle(wire.Path, withRemote(s.ingest))
	mux.Handle(device.APIPath, devHandler)
	mux.Handle(device.APIPath+"/", devHandler)
	mux.Handle("/api/v1/query", http.HandlerFunc(s.api.query))
	mux.Handle("/api/v1/proxies", http.HandlerFunc(s.api.listProxies))
	mux.Handle("/api/v1/status", http.HandlerFunc(s.api.status))
	mux.Handle("/api/v1/dimensions", http.HandlerFunc(s.api.dimensions))
	mux.Handle("/api/v1/ifwatch/", http.HandlerFunc(s.api.ifwatch))
	gatherers := prometheus.Gatherers{s.reg}
	if s.ifw != nil && s.ifw.remote != nil {
		gatherers = append(gatherers, s.ifw.remote.Registry())
	}
	mux.Handle("/metrics", promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", s.readyz)
	for p, h := range opt.Extra {
		mux.Handle(p, h)
	}
	s.mux = mux
	return s, nil
}

// Handler is the collector's HTTP handler (ingest, APIs, metrics).
func (s *Server) Handler() http.Handler { return s.mux }

// Registry is the collector's Prometheus registry, for parts running in
// the same process to add their metrics.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Devices is the device registry.
func (s *Server) Devices() *device.FileStore { return s.devices }

// Proxies is the proxy registry.
func (s *Server) Proxies() []ProxyInfo { return s.proxies.List() }

func (s *Server) dedupPath() string { return filepath.Join(s.cfg.DataDir, "dedup.state") }

// Start listens and serves until Stop; retention runs every
// MaintainInterval.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	if !s.cfg.PlainHTTP {
		tc, err := s.tlsConfig()
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, tc)
	}
	s.ln = ln
	s.started = s.now()
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if s.ifw != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.ifw.run(ctx, s.stop)
		}()
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("collector: serving stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		s.maintainLoop(ctx)
	}()
	s.log.Info("collector listening", "addr", ln.Addr().String(), "tls", !s.cfg.PlainHTTP)
	return nil
}

// Addr is the listening address once started.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Stop stops accepting, waits for requests in flight (their batches are
// stored and acknowledged, or refused), and saves the de-duplication
// window for the next start.
func (s *Server) Stop(ctx context.Context) error {
	close(s.stop)
	err := s.srv.Shutdown(ctx)
	s.wg.Wait()
	if s.ifw != nil {
		s.ifw.close(ctx)
	}
	if serr := s.dedup.Save(s.dedupPath()); serr != nil {
		s.log.Warn("collector: de-duplication window not saved", "err", serr)
	}
	return err
}

func (s *Server) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(s.cfg.CertFile, s.cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("collector: TLS certificate: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if s.cfg.ClientCAFile != "" {
		pem, err := os.ReadFile(s.cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("collector: client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("collector: client CA %s: no PEM certificate", s.cfg.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

func (s *Server) maintainLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.MaintainInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		case <-t.C:
			if err := s.store.Maintain(ctx, s.now()); err != nil {
				s.log.Warn("collector: retention failed", "err", err)
			}
		}
	}
}

// readyz answers 200 once the store answers.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if _, err := s.store.Info(ctx); err != nil {
		http.Error(w, "store: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// withRemote passes the client's address to onBatch, for the proxy
// registry.
func withRemote(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), remoteKey{}, r.RemoteAddr)))
	})
}
