package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netpulse/netpulse/internal/promtest"

	"github.com/netpulse/netpulse/health"
)

// TestClassify checks the errno mapping, as a dial error wraps it.
func TestClassify(t *testing.T) {
	op := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}
	}
	for _, tc := range []struct {
		err    error
		status Status
		state  string
	}{
		{op(syscall.ECONNREFUSED), Down, StateRefused},
		{op(syscall.EHOSTUNREACH), Error, StateNoRoute},
		{op(syscall.ENETUNREACH), Error, StateNoRoute},
		{op(syscall.ETIMEDOUT), Error, StateTimeout},
		{op(os.ErrDeadlineExceeded), Error, StateTimeout},
		{fmt.Errorf("health: read text: %w", os.ErrDeadlineExceeded), Error, StateTimeout},
		{context.DeadlineExceeded, Error, StateTimeout},
		{op(syscall.ECONNRESET), Error, StateOther},
		{op(syscall.EACCES), Error, StateOther},
		{health.ErrNotHealthText, Error, StateOther},
	} {
		s, st := classify(tc.err)
		if s != tc.status || st != tc.state {
			t.Errorf("classify(%v) = %d %q, want %d %q", tc.err, s, st, tc.status, tc.state)
		}
	}
}

// TestRules checks each Not good rule on its own and their defaults.
func TestRules(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	ok := health.Device{ID: 1, In1: 5, Out1: 5, LastSeen: now.Add(-time.Second), Highwater: []int{3, 0}}
	on := true
	def := DefaultConfig().Rules
	for _, tc := range []struct {
		name  string
		rules Rules
		st    health.Status
		want  []string
	}{
		{"good", def, health.Status{Devices: []health.Device{ok}}, nil},
		{"problem line", def, health.Status{Problem: "sink down: x"}, []string{RuleProblemLine}},
		{"problem line off", Rules{ProblemLine: new(bool)}, health.Status{Problem: "x"}, nil},
		{"not forwarding", def, health.Status{Devices: []health.Device{ok, {ID: 2, In1: 1, Out1: 0}}}, []string{RuleNotForwarding}},
		{"idle is fine", def, health.Status{Devices: []health.Device{{ID: 2}}}, nil},
		{"stale", def, health.Status{Devices: []health.Device{{ID: 2, LastSeen: now.Add(-6 * time.Minute)}}}, []string{RuleStale}},
		{"stale off", Rules{StaleAfter: -1}, health.Status{Devices: []health.Device{{ID: 2, LastSeen: now.Add(-6 * time.Minute)}}}, nil},
		{"highwater off by default", def, health.Status{Devices: []health.Device{{ID: 2, Highwater: []int{64}}}}, nil},
		{"highwater", Rules{HighwaterAtLeast: 58}, health.Status{Devices: []health.Device{{ID: 2, Highwater: []int{1, 60}}}}, []string{RuleHighwater}},
		{"unregistered off by default", def, health.Status{Unregistered: []health.Unregistered{{}}}, nil},
		{"unregistered", Rules{Unregistered: true}, health.Status{Unregistered: []health.Unregistered{{}}}, []string{RuleUnregistered}},
		{"several", Rules{ProblemLine: &on, StaleAfter: time.Minute}, health.Status{Problem: "x", Devices: []health.Device{{ID: 2, LastSeen: now.Add(-time.Hour)}}}, []string{RuleProblemLine, RuleStale}},
	} {
		if got := tc.rules.evaluate(&tc.st, now); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func res(name string, s Status, state string) Result {
	return Result{Target: Target{Name: name, IP: "192.0.2.1", Port: 9996}, Status: s, State: state}
}

// TestDamping checks that a state is alerted only after Hold polls, that
// a one-poll flap is not, and that a first Up is not announced.
func TestDamping(t *testing.T) {
	c := testConfig(Target{Name: "p", IP: "192.0.2.1", Port: 9996})
	c.Alerts.Hold = 2
	m := newMonitor(t, c, nil)
	seq := []Result{
		res("p", Up, StateOperational), res("p", Up, StateOperational), // confirmed Up, not alerted
		res("p", Error, StateTimeout), res("p", Up, StateOperational), // flap: nothing
		res("p", Down, StateRefused), res("p", Down, StateRefused), // alert Up -> Down
		res("p", Down, StateRefused), res("p", Up, StateOperational), res("p", Up, StateOperational), // alert Down -> Up
	}
	for _, r := range seq {
		m.alerts.observe(context.Background(), []Result{r})
	}
	got := m.Alerts()
	if len(got) != 2 || got[0].FromStatus != 1 || got[0].Status != 0 || got[1].FromState != StateRefused || got[1].State != StateOperational {
		t.Fatalf("alerts %+v", got)
	}
}

// TestAlertOutputs sends an alert to a webhook and a UDP syslog server.
func TestAlertOutputs(t *testing.T) {
	var mu sync.Mutex
	var hooks []Alert
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a Alert
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			t.Error(err)
		}
		mu.Lock()
		hooks = append(hooks, a)
		mu.Unlock()
	}))
	defer hook.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c := testConfig(Target{Name: "p", IP: "192.0.2.1", Port: 9996})
	c.Alerts.Webhook = hook.URL
	c.Alerts.Syslog = pc.LocalAddr().String()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	m := newMonitor(t, c, func() time.Time { return now })
	defer m.Stop(context.Background())
	m.alerts.observe(context.Background(), []Result{res("p", Error, StateNoRoute)})
	if len(hooks) != 1 || hooks[0].Proxy != "p" || hooks[0].State != StateNoRoute || hooks[0].FromStatus != -1 {
		t.Errorf("webhook got %+v", hooks)
	}
	buf := make([]byte, 2048)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	msg := string(buf[:n])
	if !strings.HasPrefix(msg, "<28>1 2026-11-22T10:00:00Z ") || !strings.Contains(msg, ` netpulse-monitor `) || !strings.Contains(msg, `2 "No route to host"`) {
		t.Errorf("syslog message %q", msg)
	}
}

// TestPushRetries checks headers with ${ENV}, retries on 5xx and the
// 2xx that ends them.
func TestPushRetries(t *testing.T) {
	t.Setenv("NP_TEST_TOKEN", "s3cret")
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if r.Header.Get("X-CH-Auth-API-Token") != "s3cret" || r.Header.Get("X-CH-Auth-Email") != "ops@example.com" {
			t.Errorf("headers %v", r.Header)
		}
		if calls < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c := testConfig(Target{Name: "p", IP: "127.0.0.1", Port: 9996})
	c.Push.URL = srv.URL
	c.Push.Backoff = time.Millisecond
	c.Push.Headers = map[string]string{"X-CH-Auth-Email": "ops@example.com", "X-CH-Auth-API-Token": "${NP_TEST_TOKEN}"}
	m := newMonitor(t, c, nil)
	if err := m.push(context.Background(), []Result{res("p", Up, StateOperational)}); err != nil {
		t.Fatal(err)
	}
	if calls != 3 {
		t.Errorf("%d calls, want 3", calls)
	}
	c.Push.Attempts = 2
	calls = -10
	m = newMonitor(t, c, nil)
	if err := m.push(context.Background(), nil); err == nil || calls != -8 {
		t.Errorf("err %v after %d calls, want a failure after 2", err, calls+10)
	}
}

// TestConfig checks the loader: its section only, unknown keys refused,
// defaults filled, env references checked.
func TestConfig(t *testing.T) {
	c, err := Parse([]byte(`
proxy: {port: 9995}
monitor:
  interval: 30s
  targets:
    - {name: a, ip: 192.0.2.1, port: 9996}
  rules: {stale_after: 10m, unregistered: true}
  push: {url: "https://nms.example/write", headers: {X-CH-Auth-Email: "${HOME}"}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Interval != 30*time.Second || c.ReadTimeout != 10*time.Second || c.Rules.StaleAfter != 10*time.Minute ||
		!c.Rules.Unregistered || !*c.Rules.ProblemLine || c.Push.Measurement != "/testing/agent/kproxy/" || c.Alerts.Hold != 2 {
		t.Errorf("config %+v", c)
	}
	for _, bad := range []string{
		"monitor:\n  targets: [{name: a, ip: 192.0.2.1, port: 9996}]\n  intervall: 1s\n",
		"monitor:\n  targets: [{name: a, ip: 192.0.2.1}]\n",
		"monitor:\n  targets: [{name: a, ip: 192.0.2.1, port: 1}, {name: a, ip: 192.0.2.2, port: 1}]\n",
		"monitor:\n  targets: [{name: a, ip: 192.0.2.1, port: 1}]\n  push: {url: x, headers: {A: b}}\n",
		"monitor:\n  targets: [{name: a, ip: 192.0.2.1, port: 1}]\n  push: {url: 'http://x/', headers: {A: '${NP_SURELY_UNSET_VAR}'}}\n",
		"proxy: {}\n",
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

// TestPromlint lints every metric the monitor exports, with every
// status and a device present.
func TestPromlint(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	st := &health.Status{Devices: []health.Device{{ID: 1, Name: "r1", In1: 1, LastSeen: now}}, Unregistered: []health.Unregistered{{FirstSeen: now}}}
	m := newMonitor(t, testConfig(Target{Name: "p", IP: "127.0.0.1", Port: 1}), nil)
	r := res("p", NotGood, "Not good: not forwarding")
	r.Health, r.Rules = st, []string{RuleNotForwarding}
	m.results["p"] = r
	promtest.Lint(t, m.Registry(), "netpulse_monitor_", "netpulse_monitor_device_last_seen_age_seconds",
		"netpulse_monitor_unregistered_first_seen_timestamp_seconds", "netpulse_monitor_device_received_flows_per_second")
}
