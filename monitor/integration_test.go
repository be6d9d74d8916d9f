package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netpulse/netpulse/internal/integration"
)

// startDaemon runs a server binary until the test ends and waits until
// url answers 200.
func startDaemon(t *testing.T, ready string, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		logf.Close()
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("%s exited: %s", bin, b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("%s not ready after 15s: %s", bin, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPushVictoriaMetrics pushes a round of real kproxy text to a
// VictoriaMetrics the test starts, over Influx line protocol, and reads
// the values back.
func TestPushVictoriaMetrics(t *testing.T) {
	vm := integration.Tool(t, "victoria-metrics")
	port := closedPort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	startDaemon(t, base+"/health", vm, "-storageDataPath", t.TempDir(), "-httpListenAddr", fmt.Sprintf("127.0.0.1:%d", port),
		"-retentionPeriod", "100y", "-search.disableCache")

	text, err := os.ReadFile("../health/testdata/kproxy.txt")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Millisecond)
	c := testConfig(Target{Name: "kp", IP: "127.0.0.1", Port: textServer(t, text)},
		Target{Name: "gone", IP: "127.0.0.1", Port: closedPort(t)})
	c.Push.URL = base + "/write"
	c.Push.Headers = map[string]string{"X-CH-Auth-Email": "ops@example.com"}
	c.Rules.StaleAfter = -1 // the capture's time is old
	m := newMonitor(t, c, func() time.Time { return now })
	m.Round(context.Background())
	if m.pushOK.Load() != 1 {
		t.Fatalf("push failed: %d errors", m.pushErrors.Load())
	}

	// /internal/force_flush makes the data searchable at once, instead
	// of after VictoriaMetrics' periodic flushes.
	want := map[string]float64{
		`/testing/agent/kproxy/_status{name="kp"}`:               1,
		`/testing/agent/kproxy/_connected{name="kp"}`:            1,
		`/testing/agent/kproxy/_status{name="gone"}`:             0,
		`/testing/agent/kproxy/devices_In1{device_id="29118"}`:   0.092757,
		`/testing/agent/kproxy/devices_Out15{device_id="29118"}`: 0.145759,
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, err := http.Get(base + "/internal/force_flush"); err == nil {
			resp.Body.Close()
		}
		got, missing := exportVM(t, base, want), ""
		for k, v := range want {
			if g, ok := got[k]; !ok {
				missing = k
			} else if g != v {
				t.Fatalf("%s = %v, want %v", k, g, v)
			}
		}
		if missing == "" {
			t.Logf("read back after %v", time.Since(deadline.Add(-10*time.Second)))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not found in VictoriaMetrics after 10s; got %v", missing, got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// exportVM reads /api/v1/export for the series in want (keyed by name
// and one label) and returns their last values.
func exportVM(t *testing.T, base string, want map[string]float64) map[string]float64 {
	got := map[string]float64{}
	q := url.Values{"match[]": {`{__name__=~"/testing/agent/kproxy/.*"}`}}
	resp, err := http.Get(base + "/api/v1/export?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for dec.More() {
		var line struct {
			Metric map[string]string `json:"metric"`
			Values []float64         `json:"values"`
		}
		if err := dec.Decode(&line); err != nil {
			t.Fatal(err)
		}
		for k := range want {
			name, lbl, _ := strings.Cut(strings.TrimSuffix(k, "}"), "{")
			ln, lv, _ := strings.Cut(lbl, "=")
			if line.Metric["__name__"] == name && `"`+line.Metric[ln]+`"` == lv && len(line.Values) > 0 {
				got[k] = line.Values[len(line.Values)-1]
			}
		}
	}
	return got
}

// TestPrometheusScrapes has a real Prometheus scrape the monitor's
// /metrics every second and checks a monitor metric through its API.
func TestPrometheusScrapes(t *testing.T) {
	prom := integration.Tool(t, "prometheus")
	c := testConfig(Target{Name: "refused", IP: "127.0.0.1", Port: closedPort(t)})
	c.Listen = "127.0.0.1:0"
	c.Interval = time.Hour
	m := newMonitor(t, c, nil)
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop(context.Background()) })

	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: monitor
    static_configs: [{targets: ["%s"]}]
`, m.Addr())), 0o644); err != nil {
		t.Fatal(err)
	}
	port := closedPort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	startDaemon(t, base+"/-/ready", prom, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))

	q := url.Values{"query": {`netpulse_monitor_proxy_status{proxy="refused"}`}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/api/v1/query?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if r := body.Data.Result; len(r) == 1 {
			if v := r[0].Value[1]; v != "0" {
				t.Fatalf("status %v, want 0", v)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Prometheus has no netpulse_monitor_proxy_status after 15s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
