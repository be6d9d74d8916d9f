package collector

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netpulse/netpulse/alert"
	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/ifwatch"
	"github.com/netpulse/netpulse/ifwatch/sshpoll"
	"github.com/netpulse/netpulse/store"
)

// IfWatchConfig runs ifwatch inside the collector (docs/ifwatch.md): the
// flows and sFlow counters the collector stores are its sources, the
// outage ledger is kept in the flow store (a file in the data directory
// when the store has none), and events go to the log,
// a rotating events file, and optionally a syslog server and a webhook.
type IfWatchConfig struct {
	// Disabled turns ifwatch off.
	Disabled bool `yaml:"disabled"`
	// Rules are the state machine's settings (down_after, hold, …).
	Rules ifwatch.Config `yaml:"rules"`
	// Tick is how often silences are checked. Default 15s.
	Tick time.Duration `yaml:"tick"`
	// Events is the persistent, rotating file of down/up events, JSON
	// lines. Default path data_dir/ifwatch-events.log.
	Events alert.FileConfig `yaml:"events"`
	// Syslog sends events to a log server when its address is set.
	Syslog alert.SyslogConfig `yaml:"syslog"`
	// Webhook posts events as JSON when its URL is set.
	Webhook alert.WebhookConfig `yaml:"webhook"`
	// Remote polls other flow collectors' stats files over SSH/SFTP
	// (docs/ifwatch-sources.md) when collectors are listed.
	Remote sshpoll.Config `yaml:"remote"`
}

// flowSource and counterSource name the collector's own sources.
var (
	flowSource    = ifwatch.Source{Name: "flows", Kind: ifwatch.KindFlow}
	counterSource = ifwatch.Source{Name: "sflow-counters", Kind: ifwatch.KindCounters}
)

// ifw is ifwatch running in the collector.
type ifw struct {
	cfg    IfWatchConfig
	w      *ifwatch.Watcher
	ledger ifwatch.Ledger
	closeL func() error
	send   alert.Multi
	remote *sshpoll.Poller
	log    *slog.Logger
	now    func() time.Time

	mu     sync.Mutex
	errors uint64
}

// newIfw starts ifwatch on ledger, the flow store's (the store closes
// it), or without one on a file ledger in the data directory.
func newIfw(cfg IfWatchConfig, dataDir string, ledger ifwatch.Ledger, now func() time.Time, log *slog.Logger) (*ifw, error) {
	if cfg.Tick <= 0 {
		cfg.Tick = 15 * time.Second
	}
	closeL := func() error { return nil }
	if ledger == nil {
		fl, err := ifwatch.OpenFileLedger(filepath.Join(dataDir, "ifwatch-ledger.jsonl"))
		if err != nil {
			return nil, err
		}
		ledger, closeL = fl, fl.CloseFile
	}
	w, err := ifwatch.New(cfg.Rules, ifwatch.Deps{Ledger: ledger, Now: now})
	if err != nil {
		closeL()
		return nil, fmt.Errorf("collector.ifwatch.rules: %w", err)
	}
	if err := w.Restore(context.Background()); err != nil {
		closeL()
		return nil, err
	}
	x := &ifw{cfg: cfg, w: w, ledger: ledger, closeL: closeL, log: log, now: now}
	deps := alert.Deps{Log: log}
	if cfg.Events.Path == "" {
		cfg.Events.Path = filepath.Join(dataDir, "ifwatch-events.log")
	}
	f, err := alert.NewFile(cfg.Events, deps)
	if err != nil {
		return nil, fmt.Errorf("collector.ifwatch.events: %w", err)
	}
	x.send = append(x.send, f)
	if cfg.Syslog.Address != "" {
		s, err := alert.NewSyslog(cfg.Syslog, deps)
		if err != nil {
			return nil, fmt.Errorf("collector.ifwatch.syslog: %w", err)
		}
		x.send = append(x.send, s)
	}
	if cfg.Webhook.URL != "" {
		h, err := alert.NewWebhook(cfg.Webhook, deps)
		if err != nil {
			return nil, fmt.Errorf("collector.ifwatch.webhook: %w", err)
		}
		x.send = append(x.send, h)
	}
	if len(cfg.Remote.Collectors) > 0 {
		x.remote, err = sshpoll.New(cfg.Remote, sshpoll.Deps{Log: log, Now: now, Handle: x.fromRemote})
		if err != nil {
			return nil, fmt.Errorf("collector.ifwatch.remote: %w", err)
		}
	}
	return x, nil
}

// fromRemote feeds one poll of a remote collector's stats file.
func (x *ifw) fromRemote(p sshpoll.Poll) {
	obs, failing := sshpoll.Observations(p)
	x.w.SetSourceFailing(sshpoll.Source(p.Collector), failing)
	if len(obs) > 0 {
		ev, err := x.w.Observe(context.Background(), obs...)
		x.emit(ev, err)
	}
}

// observe feeds a stored batch: traffic per exporter and input and output
// interface, and the sFlow counters' oper status.
func (x *ifw) observe(ctx context.Context, recs []flow.Record) {
	type agg struct{ bytes uint64 }
	traffic := map[ifwatch.Key]*agg{}
	var obs []ifwatch.Observation
	now := x.now()
	for i := range recs {
		r := &recs[i]
		switch r.Kind {
		case flow.KindFlow:
			for _, idx := range [2]uint32{r.InIf, r.OutIf} {
				if idx == 0 {
					continue // interface unknown
				}
				k := ifwatch.Key{Exporter: r.Exporter, IfIndex: idx}
				a := traffic[k]
				if a == nil {
					a = &agg{}
					traffic[k] = a
				}
				a.bytes += r.Bytes * store.Scale(r)
			}
		case flow.KindCounters:
			oper := ifwatch.OperDown
			if r.Counters.IfOperUp {
				oper = ifwatch.OperUp
			}
			obs = append(obs, ifwatch.Observation{Source: counterSource, Time: now, Traffic: ifwatch.TrafficUnknown,
				Key: ifwatch.Key{Exporter: r.Exporter, IfIndex: r.Counters.IfIndex}, Oper: oper})
		}
	}
	for k, a := range traffic {
		obs = append(obs, ifwatch.Observation{Source: flowSource, Key: k, Time: now, Traffic: float64(a.bytes)})
	}
	if len(obs) == 0 {
		return
	}
	ev, err := x.w.Observe(ctx, obs...)
	x.emit(ev, err)
}

func (x *ifw) run(ctx context.Context, stop <-chan struct{}) {
	if err := x.send.Start(ctx); err != nil {
		x.log.Error("ifwatch: alert senders", "err", err)
	}
	if x.remote != nil {
		if err := x.remote.Start(ctx); err != nil {
			x.log.Error("ifwatch: remote collectors", "err", err)
		}
	}
	t := time.NewTicker(x.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C:
			ev, err := x.w.Tick(ctx)
			x.emit(ev, err)
		}
	}
}

func (x *ifw) close(ctx context.Context) {
	if x.remote != nil {
		if err := x.remote.Stop(ctx); err != nil {
			x.log.Warn("ifwatch: remote collectors", "err", err)
		}
	}
	if err := x.send.Stop(ctx); err != nil {
		x.log.Warn("ifwatch: alert senders", "err", err)
	}
	x.closeL()
}

// emit logs each event and sends it as an alert.
func (x *ifw) emit(events []ifwatch.Event, err error) {
	if err != nil {
		x.mu.Lock()
		x.errors++
		x.mu.Unlock()
		x.log.Warn("ifwatch: ledger write failed; retried at the next observation", "err", err)
	}
	for _, e := range events {
		sev, msgID := alert.Notice, "IFUP"
		switch e.Kind {
		case ifwatch.EventDown:
			sev, msgID = alert.Warning, "IFDOWN"
		case ifwatch.EventFlapping:
			sev, msgID = alert.Warning, "IFFLAP"
		case ifwatch.EventStable:
			msgID = "IFSTABLE"
		}
		params := []alert.Param{
			{Name: "exporter", Value: e.Key.Exporter.String()},
			{Name: "ifindex", Value: strconv.FormatUint(uint64(e.Key.IfIndex), 10)},
			{Name: "event", Value: string(e.Kind)},
			{Name: "state", Value: e.State.String()},
			{Name: "since", Value: e.Since.UTC().Format(time.RFC3339)},
		}
		if e.Outage.ID != 0 {
			params = append(params,
				alert.Param{Name: "outage", Value: strconv.FormatUint(uint64(e.Outage.ID), 10)},
				alert.Param{Name: "cause", Value: string(e.Outage.Cause)},
				alert.Param{Name: "source", Value: e.Outage.Source.String()})
		}
		msg := fmt.Sprintf("interface %s %s (since %s)", e.Key, e.Kind, e.Since.UTC().Format(time.RFC3339))
		x.log.Info("ifwatch: "+msg, "exporter", e.Key.Exporter, "ifindex", e.Key.IfIndex, "event", e.Kind)
		x.send.Send(alert.Event{Time: e.Time, Severity: sev, MsgID: msgID, Message: msg,
			SD: map[string][]alert.Param{"ifwatch@32473": params}, Payload: e})
	}
}

// API: /api/v1/ifwatch/status, /recent, /downtime.
func (a *api) ifwatch(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r) {
		return
	}
	x := a.s.ifw
	if x == nil {
		writeError(w, http.StatusNotFound, "ifwatch is disabled (collector.ifwatch.disabled)")
		return
	}
	q := r.URL.Query()
	format := ifwatch.Format(q.Get("format"))
	if format == "" {
		format = "json"
	}
	if _, err := ifwatch.ParseFormat(string(format)); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	now := a.s.now()
	var rep *ifwatch.Report
	var err error
	switch strings.TrimPrefix(r.URL.Path, "/api/v1/ifwatch/") {
	case "status":
		writeJSON(w, http.StatusOK, map[string]any{"interfaces": x.w.Statuses(), "stats": x.w.Stats()})
		return
	case "recent":
		since := 10 * time.Minute
		if s := q.Get("since"); s != "" {
			if since, err = time.ParseDuration(s); err != nil || since <= 0 {
				writeError(w, http.StatusBadRequest, "since: want a duration like 10m")
				return
			}
		}
		rep, err = ifwatch.RecentReport(r.Context(), x.ledger, now, since)
	case "downtime":
		loc, lerr := time.LoadLocation(x.w.Config().TimeZone)
		if lerr != nil {
			loc = time.UTC
		}
		p := ifwatch.Last30Days(now)
		if m := q.Get("month"); m != "" {
			t, perr := time.ParseInLocation("2006-01", m, loc)
			if perr != nil {
				writeError(w, http.StatusBadRequest, "month: want YYYY-MM")
				return
			}
			p = ifwatch.Month(t.Year(), t.Month(), loc)
		}
		rep, err = ifwatch.DowntimeReport(r.Context(), x.ledger, p, now)
	default:
		writeError(w, http.StatusNotFound, "want /api/v1/ifwatch/status, /recent or /downtime")
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	ct := map[ifwatch.Format]string{"json": "application/json", "csv": "text/csv", "table": "text/plain; charset=utf-8"}[format]
	w.Header().Set("Content-Type", ct)
	if err := rep.Write(w, format); err != nil {
		a.s.log.Warn("ifwatch: report", "err", err)
	}
}
