package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Alert is one confirmed state transition of a proxy.
type Alert struct {
	Proxy      string    `json:"proxy"`
	IP         string    `json:"ip"`
	Port       int       `json:"port"`
	FromStatus int       `json:"from_status"`
	FromState  string    `json:"from_state"`
	Status     int       `json:"status"`
	State      string    `json:"state"`
	Detail     string    `json:"detail,omitempty"`
	Time       time.Time `json:"time"`
}

// track is the damping state of one proxy.
type track struct {
	alerted   bool // a state was confirmed
	status    Status
	state     string
	candState string
	candStat  Status
	count     int
}

// alerter confirms transitions (Hold consecutive polls in the new state)
// and sends them to the log, a webhook and a syslog server.
type alerter struct {
	cfg    AlertConfig
	m      *Monitor
	mu     sync.Mutex
	tracks map[string]*track
	syslog net.Conn
	host   string
	sent   []Alert // the last 100, for Alerts

	// queue feeds the delivery worker once started; before that (Round
	// called directly, -once) deliveries are synchronous.
	queue  chan Alert
	done   chan struct{}
	cancel context.CancelFunc
}

// queueSize bounds the alerts waiting for the webhook and syslog; more
// are dropped and counted as delivery errors.
const queueSize = 1024

// start runs the delivery worker, so that a slow webhook does not hold
// up the polls.
func (a *alerter) start() {
	if a.cfg.Webhook == "" && a.cfg.Syslog == "" {
		return
	}
	a.queue, a.done = make(chan Alert, queueSize), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() {
		defer close(a.done)
		for al := range a.queue {
			a.deliver(ctx, al)
		}
	}()
}

// stop lets the worker deliver what is queued, until ctx ends.
func (a *alerter) stop(ctx context.Context) error {
	defer a.close()
	if a.queue == nil {
		return nil
	}
	close(a.queue)
	select {
	case <-a.done:
		return nil
	case <-ctx.Done():
		a.cancel() // abort the request in flight; the rest fail at once
		<-a.done
		return fmt.Errorf("monitor: alerts not delivered: %w", ctx.Err())
	}
}

func newAlerter(cfg AlertConfig, m *Monitor) (*alerter, error) {
	a := &alerter{cfg: cfg, m: m, tracks: map[string]*track{}}
	a.host, _ = os.Hostname()
	if a.host == "" {
		a.host = "-"
	}
	return a, nil
}

// observe feeds one round. A proxy's first confirmed state is alerted
// only when it is not Up, so a restart of the monitor does not announce
// every healthy proxy.
func (a *alerter) observe(ctx context.Context, results []Result) {
	var out []Alert
	a.mu.Lock()
	for _, r := range results {
		t := a.tracks[r.Target.Name]
		if t == nil {
			t = &track{}
			a.tracks[r.Target.Name] = t
		}
		if t.alerted && r.Status == t.status && r.State == t.state {
			t.count = 0 // back to the confirmed state: the flap is forgotten
			continue
		}
		if r.Status == t.candStat && r.State == t.candState && t.count > 0 {
			t.count++
		} else {
			t.candStat, t.candState, t.count = r.Status, r.State, 1
		}
		if t.count < a.cfg.Hold {
			continue
		}
		al := Alert{Proxy: r.Target.Name, IP: r.Target.IP, Port: r.Target.Port, FromStatus: -1,
			Status: int(r.Status), State: r.State, Detail: r.Err, Time: a.m.now().UTC()}
		if t.alerted {
			al.FromStatus, al.FromState = int(t.status), t.state
		}
		first := !t.alerted
		t.alerted, t.status, t.state, t.count = true, r.Status, r.State, 0
		if first && r.Status == Up {
			continue
		}
		out = append(out, al)
	}
	a.sent = append(a.sent, out...)
	if n := len(a.sent); n > 100 {
		a.sent = a.sent[n-100:]
	}
	a.mu.Unlock()
	for _, al := range out {
		a.send(ctx, al)
	}
}

// Alerts returns the last alerts raised (at most 100), oldest first.
func (m *Monitor) Alerts() []Alert {
	m.alerts.mu.Lock()
	defer m.alerts.mu.Unlock()
	return append([]Alert(nil), m.alerts.sent...)
}

func (a *alerter) send(ctx context.Context, al Alert) {
	a.m.alertsSent.Add(1)
	level := a.m.log.Warn
	if al.Status == int(Up) {
		level = a.m.log.Info
	}
	level("monitor: proxy state changed", "proxy", al.Proxy, "addr", net.JoinHostPort(al.IP, fmt.Sprint(al.Port)),
		"from_status", al.FromStatus, "from_state", al.FromState, "status", al.Status, "state", al.State, "detail", al.Detail)
	if a.queue == nil {
		a.deliver(ctx, al)
		return
	}
	select {
	case a.queue <- al:
	default:
		a.m.alertErrors.Add(1)
		a.m.log.Error("monitor: alert queue full, alert not delivered", "proxy", al.Proxy, "state", al.State)
	}
}

// deliver sends one alert to the webhook and the syslog server.
func (a *alerter) deliver(ctx context.Context, al Alert) {
	if a.cfg.Webhook != "" {
		if err := a.webhook(ctx, al); err != nil {
			a.m.alertErrors.Add(1)
			a.m.log.Error("monitor: alert webhook", "url", a.cfg.Webhook, "err", err)
		}
	}
	if a.cfg.Syslog != "" {
		if err := a.sendSyslog(al); err != nil {
			a.m.alertErrors.Add(1)
			a.m.log.Error("monitor: alert syslog", "server", a.cfg.Syslog, "err", err)
		}
	}
}

func (a *alerter) webhook(ctx context.Context, al Alert) error {
	body, _ := json.Marshal(al)
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.Webhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.m.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

// sendSyslog writes one RFC 5424 message over UDP: facility daemon,
// severity warning (notice when back Up).
func (a *alerter) sendSyslog(al Alert) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.syslog == nil {
		c, err := net.Dial("udp", a.cfg.Syslog)
		if err != nil {
			return err
		}
		a.syslog = c
	}
	sev := 4 // warning
	if al.Status == int(Up) {
		sev = 5 // notice
	}
	const daemon = 3
	msg := fmt.Sprintf("proxy %s (%s:%d) status %d %q -> %d %q", al.Proxy, al.IP, al.Port, al.FromStatus, al.FromState, al.Status, al.State)
	if al.Detail != "" {
		msg += ": " + al.Detail
	}
	line := fmt.Sprintf("<%d>1 %s %s netpulse-monitor %d state - %s", daemon*8+sev,
		al.Time.Format(time.RFC3339Nano), sdName(a.host), os.Getpid(), msg)
	_, err := a.syslog.Write([]byte(line))
	return err
}

// sdName is s fit for an RFC 5424 header field: printable ASCII without
// spaces, "-" when empty.
func sdName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r <= 32 || r >= 127 {
			return -1
		}
		return r
	}, s)
	if s == "" {
		return "-"
	}
	return s
}

// close releases the syslog socket.
func (a *alerter) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.syslog != nil {
		a.syslog.Close()
		a.syslog = nil
	}
}
