package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netpulse/netpulse/health"
	"github.com/netpulse/netpulse/proxy"
)

// TestStatusesRealProxies reaches every status the loopback can give
// against real targets: two real netpulse proxies (one healthy with the
// null sink, one whose collector sink is down), a closed port and a
// listener that never answers.
func TestStatusesRealProxies(t *testing.T) {
	t.Setenv("NETPULSE_API_TOKEN", "test-token")
	upPort := startProxy(t, func(s *proxy.Settings) { s.Sinks.Null = true })
	badPort := startProxy(t, func(s *proxy.Settings) {
		s.Sinks.Collector.URL = fmt.Sprintf("http://127.0.0.1:%d", closedPort(t))
		s.Sinks.Collector.AllowInsecureLoopback = true
	})
	c := testConfig(
		Target{Name: "up", IP: "127.0.0.1", Port: upPort},
		Target{Name: "sink-down", IP: "127.0.0.1", Port: badPort},
		Target{Name: "refused", IP: "127.0.0.1", Port: closedPort(t)},
		Target{Name: "hangs", IP: "127.0.0.1", Port: silentListener(t)},
	)
	m := newMonitor(t, c, nil)
	got := m.Round(context.Background())
	want := []struct {
		status Status
		state  string
	}{
		{Up, StateOperational},
		{NotGood, "Not good: problem line"},
		{Down, StateRefused},
		{Error, StateTimeout},
	}
	for i, w := range want {
		r := got[i]
		if r.Status != w.status || r.State != w.state {
			t.Errorf("%s: got %d %q (err %q), want %d %q", r.Target.Name, r.Status, r.State, r.Err, w.status, w.state)
		}
	}
	if !strings.HasPrefix(got[1].Err, "sink down: ") {
		t.Errorf("sink-down: detail %q, want the proxy's problem line", got[1].Err)
	}
	if got[0].Health == nil || got[0].Health.ProxyName != "test-proxy" {
		t.Errorf("up: health %+v, want the proxy's name from its Proxy: line", got[0].Health)
	}
	// Every non-Up state is alerted at once (Hold 1); Up is not, being
	// the first state seen.
	if n := len(m.Alerts()); n != 3 {
		t.Errorf("%d alerts, want 3: %+v", n, m.Alerts())
	}

	// The exposition carries the statuses and the current states only.
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	body := get(t, srv.URL+"/metrics")
	for _, line := range []string{
		`netpulse_monitor_proxy_status{proxy="up"} 1`,
		`netpulse_monitor_proxy_status{proxy="sink-down"} 3`,
		`netpulse_monitor_proxy_status{proxy="refused"} 0`,
		`netpulse_monitor_proxy_status{proxy="hangs"} 2`,
		`netpulse_monitor_proxy_state_info{proxy="hangs",state="Timeout"} 1`,
		`netpulse_monitor_proxy_not_good_rule{proxy="sink-down",rule="problem line"} 1`,
		`netpulse_monitor_proxy_connected_devices{proxy="up"} 0`,
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("metrics lack %s", line)
		}
	}
	if get(t, srv.URL+"/readyz") != "ok\n" || get(t, srv.URL+"/healthz") != "ok\n" {
		t.Error("readyz/healthz not ok after a round")
	}
}

func get(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestKproxyText polls a fake TCP server that answers with a real
// kproxy's health text.
func TestKproxyText(t *testing.T) {
	text, err := os.ReadFile("../health/testdata/kproxy.txt")
	if err != nil {
		t.Fatal(err)
	}
	port := textServer(t, text)
	seen := time.Date(2024, 10, 6, 19, 25, 37, 233040000, time.UTC)
	now := seen.Add(20 * time.Second)
	m := newMonitor(t, testConfig(Target{Name: "kp", IP: "127.0.0.1", Port: port}), func() time.Time { return now })
	r := m.Round(context.Background())[0]
	if r.Status != Up || r.State != StateOperational {
		t.Fatalf("got %d %q (%s), want Up", r.Status, r.State, r.Err)
	}
	if len(r.Health.Devices) != 1 {
		t.Fatalf("%d devices, want 1", len(r.Health.Devices))
	}
	d := r.Health.Devices[0]
	if d.ID != 29118 || d.Name != "mgr-skg-cr01" || d.In1 != 0.092757 || d.Out15 != 0.145759 || d.FlowType != "ipfix" {
		t.Errorf("device %+v", d)
	}
	lines := string(m.Lines([]Result{r}))
	wantDev := `/testing/agent/kproxy/devices,proxy_name=kp,proxy_ip=127.0.0.1,device_id=29118,device_name=mgr-skg-cr01,device_ip=192.168.255.2,flow=ipfix In1=0.092757,In15=0.090289,Out1=0.118906,Out15=0.145759,LastSeenAge=20 `
	if !strings.Contains(lines, wantDev) {
		t.Errorf("lines:\n%s\nwant a line starting\n%s", lines, wantDev)
	}
	wantProxy := fmt.Sprintf("/testing/agent/kproxy/,name=kp,ip=127.0.0.1,port=%d,state=Operational status=1,connected=1,unregistered=0 %d\n", port, now.UnixNano())
	if !strings.Contains(lines, wantProxy) {
		t.Errorf("lines:\n%s\nwant\n%s", lines, wantProxy)
	}

	// An hour later the device is stale.
	now = seen.Add(time.Hour)
	r = m.Round(context.Background())[0]
	if r.Status != NotGood || r.State != "Not good: stale device" {
		t.Errorf("an hour later: got %d %q, want Not good: stale device", r.Status, r.State)
	}
}

// TestReadsPast4K checks that a long health text is read to its end,
// where kproxy's monitor stops at 4 KB.
func TestReadsPast4K(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	st := &health.Status{}
	for i := range 500 {
		st.Devices = append(st.Devices, health.Device{ID: uint64(i + 1), Name: fmt.Sprintf("dev-%d", i), In1: 1, Out1: 1, LastSeen: now})
	}
	text := health.AppendText(nil, st, now)
	if len(text) < 40<<10 {
		t.Fatalf("text is only %d bytes", len(text))
	}
	m := newMonitor(t, testConfig(Target{Name: "big", IP: "127.0.0.1", Port: textServer(t, text)}), func() time.Time { return now })
	r := m.Round(context.Background())[0]
	if r.Status != Up || len(r.Health.Devices) != 500 {
		t.Fatalf("got %d %q with %d devices, want Up with 500", r.Status, r.State, len(r.Health.Devices))
	}
}

// TestGarbageIsOther: a listener that answers with something that is not
// a health text is Error/Other.
func TestGarbageIsOther(t *testing.T) {
	m := newMonitor(t, testConfig(Target{Name: "g", IP: "127.0.0.1", Port: textServer(t, []byte("\x00\x01\x02"))}), nil)
	r := m.Round(context.Background())[0]
	if r.Status != Error || r.State != StateOther {
		t.Fatalf("got %d %q, want Error Other", r.Status, r.State)
	}
}

// TestStartStop runs the loop with its HTTP listener and stops it.
func TestStartStop(t *testing.T) {
	c := testConfig(Target{Name: "r", IP: "127.0.0.1", Port: closedPort(t)})
	c.Listen = "127.0.0.1:0"
	c.Interval = time.Hour
	m := newMonitor(t, c, nil)
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	url := "http://" + m.Addr().String()
	deadline := time.Now().Add(5 * time.Second)
	for get(t, url+"/readyz") != "ok\n" {
		if time.Now().After(deadline) {
			t.Fatal("not ready after 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(get(t, url+"/metrics"), `netpulse_monitor_proxy_status{proxy="r"} 0`) {
		t.Error("metrics lack the refused proxy")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestAlertsWhileRunning checks that the running monitor delivers its
// alerts to the webhook from its worker, and that Stop drains it.
func TestAlertsWhileRunning(t *testing.T) {
	got := make(chan Alert, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a Alert
		json.NewDecoder(r.Body).Decode(&a)
		got <- a
	}))
	defer hook.Close()
	c := testConfig(Target{Name: "r", IP: "127.0.0.1", Port: closedPort(t)})
	c.Interval = time.Hour
	c.Alerts.Webhook = hook.URL
	m := newMonitor(t, c, nil)
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-got:
		if a.Proxy != "r" || a.Status != int(Down) {
			t.Errorf("alert %+v", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook call after 10s")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}
