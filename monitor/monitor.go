// Package monitor watches a fleet of proxies through their health checks,
// as kproxy_monitor does: it polls each proxy's TCP health text (netpulse's
// or a real kproxy's), gives it the seed's status and state (1 Up, 0 Down,
// 2 Error, 3 Not good), exports proxy and per-device metrics to
// Prometheus, pushes them as Influx line protocol to any HTTP endpoint,
// and alerts on state transitions once they have held for a few polls.
package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Deps are what the monitor is given.
type Deps struct {
	// Log receives poll failures and alerts. Default: discard.
	Log *slog.Logger
	// Now is the clock of staleness, damping and timestamps. Default
	// time.Now.
	Now func() time.Time
	// HTTPClient sends pushes and webhooks. Default: a new client.
	HTTPClient *http.Client
}

// Monitor polls the targets. Build it with New, then Start and Stop.
type Monitor struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	client  *http.Client
	headers http.Header
	reg     *prometheus.Registry
	alerts  *alerter

	mu      sync.Mutex
	results map[string]Result // by target name, the last round

	rounds      atomic.Uint64
	pushOK      atomic.Uint64
	pushErrors  atomic.Uint64
	alertsSent  atomic.Uint64
	alertErrors atomic.Uint64

	srv    *http.Server
	ln     net.Listener
	cancel context.CancelFunc
	done   chan struct{}
}

// New checks cfg and builds a monitor; it opens nothing.
func New(cfg Config, deps Deps) (*Monitor, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Monitor{cfg: cfg, log: deps.Log, now: deps.Now, client: deps.HTTPClient, results: map[string]Result{}}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.client == nil {
		m.client = &http.Client{}
	}
	m.headers = http.Header{}
	for k, v := range cfg.Push.Headers {
		x, err := expandEnv(v)
		if err != nil {
			return nil, fmt.Errorf("monitor: push.headers.%s: %w", k, err)
		}
		m.headers.Set(k, x)
	}
	var err error
	if m.alerts, err = newAlerter(cfg.Alerts, m); err != nil {
		return nil, err
	}
	m.reg = prometheus.NewRegistry()
	m.reg.MustRegister(&collector{m: m})
	return m, nil
}

// Registry is the monitor's own Prometheus registry.
func (m *Monitor) Registry() *prometheus.Registry { return m.reg }

// Addr is the HTTP listener's address once started, or nil.
func (m *Monitor) Addr() net.Addr {
	if m.ln == nil {
		return nil
	}
	return m.ln.Addr()
}

// Start opens the HTTP listener and starts polling: a first round at
// once, then one every Interval.
func (m *Monitor) Start(ctx context.Context) error {
	if m.cfg.Listen != "none" {
		ln, err := net.Listen("tcp", m.cfg.Listen)
		if err != nil {
			return fmt.Errorf("monitor: listen %s: %w", m.cfg.Listen, err)
		}
		m.ln = ln
		m.srv = &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go m.srv.Serve(ln)
	}
	m.alerts.start()
	ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	m.done = make(chan struct{})
	go func() {
		defer close(m.done)
		t := time.NewTicker(m.cfg.Interval)
		defer t.Stop()
		for {
			m.Round(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

// Stop ends polling (a round in flight is cancelled) and closes the
// listener.
func (m *Monitor) Stop(ctx context.Context) error {
	if m.cancel != nil {
		m.cancel()
		select {
		case <-m.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	aerr := m.alerts.stop(ctx)
	if m.srv != nil {
		if err := m.srv.Shutdown(ctx); err != nil {
			return err
		}
	}
	return aerr
}

// Handler serves /metrics, /healthz (the process runs) and /readyz (a
// first round is done).
func (m *Monitor) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if m.rounds.Load() == 0 {
			http.Error(w, "no poll round done yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// Round polls every target concurrently, stores the results, then
// alerts and pushes. It returns the results in target order. Start's
// loop calls it every Interval; call it directly only without Start.
func (m *Monitor) Round(ctx context.Context) []Result {
	out := make([]Result, len(m.cfg.Targets))
	var wg sync.WaitGroup
	for i, t := range m.cfg.Targets {
		wg.Go(func() { out[i] = m.poll(ctx, t) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return out // cancelled: a half round is not recorded
	}
	m.mu.Lock()
	for _, r := range out {
		m.results[r.Target.Name] = r
	}
	m.mu.Unlock()
	m.rounds.Add(1)
	for _, r := range out {
		if r.Status != Up {
			m.log.Debug("monitor: poll", "proxy", r.Target.Name, "addr", r.Target.Addr(), "status", int(r.Status), "state", r.State, "err", r.Err)
		}
	}
	m.alerts.observe(ctx, out)
	if m.cfg.Push.URL != "" {
		if err := m.push(ctx, out); err != nil {
			m.log.Warn("monitor: push failed", "url", m.cfg.Push.URL, "err", err)
		}
	}
	return out
}

// Results returns the last round's results by target name.
func (m *Monitor) Results() map[string]Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]Result, len(m.results))
	for k, v := range m.results {
		out[k] = v
	}
	return out
}
