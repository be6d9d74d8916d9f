package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"log/syslog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/netpulse/netpulse/device"
	"github.com/netpulse/netpulse/health"
	"github.com/netpulse/netpulse/ratelimit"
	"github.com/netpulse/netpulse/sink"
	"github.com/netpulse/netpulse/sink/collector"
	"github.com/netpulse/netpulse/sink/jsonl"
	"github.com/netpulse/netpulse/sink/kafka"
)

// Service is a proxy with its sinks, rate limiter and health server: what
// `netpulse proxy` runs.
type Service struct {
	Proxy  *Proxy
	Health *health.Server
	// Puller pulls the devices from a collector, when configured.
	Puller *device.Puller
	set    Settings
	log    *slog.Logger
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{}
}

// NewService builds every part from settings; it opens nothing.
func NewService(set Settings, log *slog.Logger) (*Service, error) {
	if err := set.Validate(); err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	sinks, err := buildSinks(set, log)
	if err != nil {
		return nil, err
	}
	var limiter Limiter
	if set.Max > 0 {
		rc := ratelimit.DefaultConfig()
		rc.Max, rc.Interval = set.Max, set.SampleInterval
		l, err := ratelimit.NewSet(rc, nil)
		if err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
		limiter = l
	}
	var reg *device.Registry
	var puller *device.Puller
	if set.DevicesAPI.URL != "" {
		pc := set.DevicesAPI
		if pc.Token, err = set.Sinks.Token(); err != nil {
			return nil, fmt.Errorf("proxy: devices api: %w", err)
		}
		if pc.CAFile == "" {
			pc.CAFile, pc.CertFile, pc.KeyFile = set.Sinks.Collector.CAFile, set.Sinks.Collector.CertFile, set.Sinks.Collector.KeyFile
		}
		if pc.CacheFile == "" && set.DataDir != "" {
			pc.CacheFile = filepath.Join(set.DataDir, "devices.json")
		}
		reg = device.NewRegistry(nil)
		if puller, err = device.NewPuller(pc, reg, log); err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
	}
	p, err := New(set.Config, Deps{Log: log, Sinks: sinks, Limiter: limiter, Registry: reg})
	if err != nil {
		return nil, err
	}
	promReg := prometheus.NewRegistry()
	promReg.MustRegister(p.Collector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	hc := health.DefaultConfig()
	hport := set.Port + 1
	if set.Port == 0 {
		hport = 0 // an ephemeral flow port (tests): any free health port
	}
	hc.Listen = net.JoinHostPort(set.Healthcheck, strconv.Itoa(hport))
	hs, err := health.New(hc, health.Deps{Status: p.Status, Ready: p.Ready, Gatherer: promReg, Log: log})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	promReg.MustRegister(hs)
	return &Service{Proxy: p, Health: hs, Puller: puller, set: set, log: log, reg: promReg, done: make(chan struct{})}, nil
}

func buildSinks(set Settings, log *slog.Logger) ([]sink.Sink, error) {
	k := set.Sinks
	var out []sink.Sink
	if k.Collector.URL != "" {
		c := k.Collector
		tok, err := k.Token()
		if err != nil {
			return nil, err
		}
		c.Token = tok
		if c.ProxyName == "" {
			c.ProxyName = set.Name
		}
		if c.SpoolDir == "" && set.DataDir != "" {
			c.SpoolDir = filepath.Join(set.DataDir, "spool")
		}
		s, err := collector.New(c, log)
		if err != nil {
			return nil, fmt.Errorf("proxy: collector sink: %w", err)
		}
		out = append(out, s)
	}
	if len(k.Kafka.Brokers) > 0 {
		c := k.Kafka
		c.SASL.Password = os.Getenv("NETPULSE_KAFKA_PASSWORD")
		s, err := kafka.New(c, log)
		if err != nil {
			return nil, fmt.Errorf("proxy: kafka sink: %w", err)
		}
		out = append(out, s)
	}
	if k.JSONL.Path != "" {
		s, err := jsonl.New(k.JSONL, log)
		if err != nil {
			return nil, fmt.Errorf("proxy: jsonl sink: %w", err)
		}
		out = append(out, s)
	}
	if k.Null {
		out = append(out, &sink.Null{})
	}
	return out, nil
}

// Start starts the proxy, then the health check, then the checkpoint.
func (s *Service) Start(ctx context.Context) error {
	if s.Puller != nil {
		// A cached list is in place at once; a first fetch is waited for
		// only when there is no cache.
		if err := s.Puller.Start(ctx); err != nil {
			return err
		}
	}
	if err := s.Proxy.Start(ctx); err != nil {
		return err
	}
	if err := s.Health.Start(ctx); err != nil {
		s.Proxy.Stop(ctx)
		return err
	}
	ctx, s.cancel = context.WithCancel(ctx)
	mt, _ := parseMetrics(s.set.Metrics)
	go func() {
		defer close(s.done)
		if mt.kind != "" {
			s.checkpoints(ctx, mt)
		}
	}()
	return nil
}

// Stop stops in reverse order; the proxy flushes its sinks until ctx ends.
func (s *Service) Stop(ctx context.Context) error {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	err := errors.Join(s.Health.Stop(ctx), s.Proxy.Stop(ctx))
	if s.Puller != nil {
		err = errors.Join(err, s.Puller.Stop(ctx))
	}
	return err
}

// Reload re-reads the device file, or fetches the list from the
// collector now (SIGHUP).
func (s *Service) Reload() error {
	if s.Puller != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return s.Puller.Refresh(ctx)
	}
	if s.set.Devices == "" {
		return nil
	}
	set, err := loadDevices(s.set.Devices)
	if err != nil {
		return err
	}
	s.Proxy.Registry().Set(set)
	s.Proxy.stats.forget(func(id uint64) bool { return set.ByID(id) != nil || id>>63 == 1 || s.bootstrap(id) })
	s.log.Info("devices reloaded", "devices", set.Len())
	return nil
}

func (s *Service) bootstrap(id uint64) bool {
	for _, b := range s.set.BootstrapDevices {
		if b == id {
			return true
		}
	}
	return false
}

// checkpoints writes kproxy's one-line checkpoint every minute: what came
// in and went out, so an operator sees at a glance that flow arrives.
func (s *Service) checkpoints(ctx context.Context, mt metricsTarget) {
	var write func(line string) error
	switch mt.kind {
	case "stderr":
		write = func(l string) error { _, err := fmt.Fprintln(os.Stderr, l); return err }
	case "syslog":
		w, err := syslog.New(syslog.LOG_INFO|syslog.LOG_DAEMON, "netpulse-proxy")
		if err != nil {
			s.log.Error("metrics: syslog", "err", err)
			return
		}
		defer w.Close()
		write = func(l string) error { return w.Info(l) }
	case "graphite":
		write = func(l string) error { return s.graphite(mt.addr) }
	}
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := write(s.checkpointLine()); err != nil {
				s.log.Warn("metrics checkpoint not written", "err", err)
			}
		}
	}
}

func (s *Service) checkpointLine() string {
	p := s.Proxy
	var dropped uint64
	for i := range p.dropped {
		dropped += p.dropped[i].Load()
	}
	return fmt.Sprintf("netpulse-proxy checkpoint: datagrams=%d flows_in=%d flows_out=%d dropped=%d dropped_datagrams=%d devices=%d unregistered=%d",
		p.datagrams.Load(), p.flowsIn.Load(), p.flowsOut.Load(), dropped, p.droppedDatagrams.Load(),
		p.registry.Current().Len(), len(p.registry.UnregisteredList(p.now())))
}

// graphite sends the counters in Graphite's plaintext protocol.
func (s *Service) graphite(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	p := s.Proxy
	ts := p.now().Unix()
	prefix := "netpulse.proxy." + graphiteName(p.cfg.Name)
	for _, m := range []struct {
		k string
		v uint64
	}{{"datagrams", p.datagrams.Load()}, {"flows_in", p.flowsIn.Load()}, {"flows_out", p.flowsOut.Load()},
		{"dropped_datagrams", p.droppedDatagrams.Load()}} {
		if _, err := fmt.Fprintf(c, "%s.%s %d %d\n", prefix, m.k, m.v, ts); err != nil {
			return err
		}
	}
	return nil
}

func graphiteName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}
