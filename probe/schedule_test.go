package probe

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netpulse/netpulse/internal/promtest"
	"github.com/netpulse/netpulse/probe/result"
)

// TestNextRun: the next run is at the next 5-minute boundary plus a
// delay in [0, max_delay], and the delays spread over that range.
func TestNextRun(t *testing.T) {
	cfg := testConfig(t, Target{Name: "x", IPv4: "127.0.0.1"})
	p := newTestProbe(t, cfg, Deps{Rand: rand.New(rand.NewPCG(3, 4))})
	now := time.Date(2026, 11, 30, 23, 57, 12, 0, time.UTC)
	wantSlot := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var lo, hi time.Duration = time.Hour, 0
	for range 2000 {
		slot, at := p.nextRun(now)
		if !slot.Equal(wantSlot) {
			t.Fatalf("slot %s, want %s", slot, wantSlot)
		}
		d := at.Sub(slot)
		if d < 0 || d > time.Minute {
			t.Fatalf("delay %s out of [0, 60s]", d)
		}
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo > 2*time.Second || hi < 58*time.Second {
		t.Errorf("delays span only [%s, %s]", lo, hi)
	}
	// On a boundary exactly, the run is for the next slot.
	if slot, _ := p.nextRun(wantSlot); !slot.Equal(wantSlot.Add(5 * time.Minute)) {
		t.Errorf("on the boundary: slot %s", slot)
	}
	// With a 10-minute interval, slots are on 10-minute boundaries.
	cfg.Interval = 10 * time.Minute
	p = newTestProbe(t, cfg, Deps{})
	if slot, _ := p.nextRun(time.Date(2026, 1, 1, 0, 12, 0, 0, time.UTC)); slot.Minute() != 20 {
		t.Errorf("10m interval: slot %s", slot)
	}
}

// TestScheduleLoop runs the schedule on an injected clock: three runs,
// each for the next slot, each started within a minute of its slot, each
// leaving its file in its month's folder (across a month boundary).
func TestScheduleLoop(t *testing.T) {
	clock := newFakeClock(time.Date(2026, 11, 30, 23, 52, 30, 0, time.UTC))
	cfg := testConfig(t, Target{Name: "down.test", IPv4: "127.0.0.1", Port: closedPort(t)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sleeps := 0
	clock.onSleep = func(time.Time) {
		if sleeps++; sleeps == 4 {
			cancel()
		}
	}
	p := newTestProbe(t, cfg, Deps{Now: clock.Now, Sleep: clock.Sleep})
	p.scheduleLoop(ctx)
	for i, slot := range []time.Time{
		time.Date(2026, 11, 30, 23, 55, 0, 0, time.UTC),
		time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 1, 0, 5, 0, 0, time.UTC),
	} {
		run := readRun(t, p.st.path(slot))
		if d := run.Start.Sub(slot); d < 0 || d > time.Minute {
			t.Errorf("run %d: started %s after its slot %s", i, d, slot)
		}
		if len(run.Queries) != 3 {
			t.Errorf("run %d: %d queries", i, len(run.Queries))
		}
	}
	if !strings.HasSuffix(p.st.path(time.Date(2026, 12, 1, 0, 5, 0, 0, time.UTC)), "/202612/001-20261201T0005.json.gz") {
		t.Errorf("path %s", p.st.path(time.Date(2026, 12, 1, 0, 5, 0, 0, time.UTC)))
	}
	if p.m.runs.Load() != 3 {
		t.Errorf("%d runs, want 3", p.m.runs.Load())
	}
}

// TestMetricsAndHandler: after a run against a server that answers UDP
// with REFUSED and TCP with NOERROR, the counters say so, every metric
// passes promlint, and /readyz follows Start.
func TestMetricsAndHandler(t *testing.T) {
	port := startMiekg(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := soaAnswer(r, 1)
		if w.LocalAddr().Network() == "udp" {
			m.Answer, m.Rcode = nil, dns.RcodeRefused
		}
		w.WriteMsg(m)
	})
	cfg := testConfig(t, Target{Name: "m.test", IPv4: "127.0.0.1", Port: port})
	cfg.Listen = "127.0.0.1:0"
	p := newTestProbe(t, cfg, Deps{})
	h := p.Handler()
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		b, _ := io.ReadAll(rec.Body)
		return rec.Code, string(b)
	}
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before Start: %d", code)
	}
	if _, _, err := p.RunOnce(context.Background(), result.SlotOf(time.Now())); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Stop(ctx)
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after Start: %d", code)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	resp, err := http.Get("http://" + p.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`netpulse_probe_queries_total{family="4",outcome="rcode",purpose="soa",transport="udp"} 1`,
		`netpulse_probe_queries_total{family="4",outcome="noerror",purpose="soa",transport="tcp"} 1`,
		`netpulse_probe_soa_available{family="4",target="m.test",transport="udp"} 0`,
		`netpulse_probe_soa_available{family="4",target="m.test",transport="tcp"} 1`,
		`netpulse_probe_runs_total 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !strings.Contains(string(body), `netpulse_probe_soa_rtt_seconds{family="4",target="m.test",transport="tcp"}`) {
		t.Error("no TCP SOA rtt")
	}
	promtest.Lint(t, p.Registry(), "netpulse_probe_",
		"netpulse_probe_runs_total", "netpulse_probe_queries_total", "netpulse_probe_last_run_timestamp_seconds",
		"netpulse_probe_alert_active", "netpulse_probe_clock_synced",
		"netpulse_probe_last_run_duration_seconds", "netpulse_probe_soa_rtt_seconds", "netpulse_probe_uploads_total",
		"netpulse_probe_upload_errors_total")
}
