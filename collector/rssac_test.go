package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/internal/diskusage"
	"github.com/netpulse/netpulse/internal/promtest"
	"github.com/netpulse/netpulse/probe/result"
	"github.com/netpulse/netpulse/rssac"
	"github.com/netpulse/netpulse/rssac/ingest"
	"github.com/netpulse/netpulse/rssac/rstore"
)

const tokProbe = "token-of-probe-001-0123456789"

func rssacRun(slot time.Time) *result.Run {
	return &result.Run{Version: result.Version, VP: "001", Slot: slot, Start: slot.Add(10 * time.Second), End: slot.Add(40 * time.Second),
		Queries: []result.Query{
			{Target: "a.root-servers.net", Address: "198.51.100.1", Port: 53, Family: 4, Transport: result.UDP, Purpose: result.PurposeSOA,
				QName: ".", QType: "SOA", Sent: slot.Add(11 * time.Second), RTTMS: 12.5,
				Response: &result.Response{RCodeName: "NOERROR", Flags: []string{"qr", "aa"}, Size: 90, SOASerial: 2026100100, HasSerial: true}},
			{Target: "b.root-servers.net", Address: "198.51.100.2", Port: 53, Family: 4, Transport: result.TCP, Purpose: result.PurposeSOA,
				QName: ".", QType: "SOA", Sent: slot.Add(11 * time.Second), Timeout: true},
		}}
}

// TestRSSACInCollector mounts the RSSAC part on a collector as
// cmd/netpulse does (Options.Extra, the collector's registry) and
// drives it over HTTP: an upload, the runs API, the report API with and
// without a Reporter, and the metrics.
func TestRSSACInCollector(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	cfg := Config{Listen: "127.0.0.1:0", PlainHTTP: true, DataDir: dir, RSSAC: RSSACConfig{Enabled: true, ProbeTokensFile: "unused"}}
	st := rstore.NewMemory()
	var mu sync.Mutex
	var asked []rssac.Period
	deps := RSSACDeps{Store: st, ProbeTokens: map[string]string{tokProbe: "001"}, APITokens: []string{tokOps},
		Now: func() time.Time { return now }, Disk: diskusage.Func(func(string) (float64, error) { return 0.5, nil }),
		Reporter: func(_ context.Context, p rssac.Period) (*rssac.Report, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, p)
			return &rssac.Report{Period: p, Name: p.Name()}, nil
		}}
	r, err := NewRSSAC(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, newMemStore(), Options{ProxyTokens: map[string]string{tokA: "proxy-a"}, APITokens: []string{tokOps}, Extra: r.Handlers()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Register(srv.Registry()); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	do := func(method, path, token string, body []byte, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, hs.URL+path, bytes.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hs.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	slot := time.Date(2026, 11, 3, 11, 50, 0, 0, time.UTC)
	doc, err := result.Marshal(rssacRun(slot))
	if err != nil {
		t.Fatal(err)
	}
	hdr := map[string]string{"Content-Type": "application/json", "Content-Encoding": "gzip", ingest.HeaderName: result.FileName("001", slot)}
	if code, body := do("POST", ingest.Path, tokProbe, doc, hdr); code != http.StatusCreated {
		t.Fatalf("upload: %d %s", code, body)
	}
	if code, _ := do("POST", ingest.Path, tokProbe, doc, hdr); code != http.StatusConflict {
		t.Errorf("second upload: %d, want 409", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "rssac", "originals", "202611", "001-20261103T1150.json.gz")); err != nil {
		t.Errorf("original not archived under data_dir: %v", err)
	}
	// A proxy's token is not a probe's.
	if code, _ := do("POST", ingest.Path, tokA, doc, hdr); code != http.StatusUnauthorized {
		t.Errorf("upload with a proxy token: %d, want 401", code)
	}

	// Runs: operators only.
	if code, _ := do("GET", RSSACRunsPath, tokProbe, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("runs with a probe token: %d, want 401", code)
	}
	code, body := do("GET", RSSACRunsPath, tokOps, nil, nil)
	var runs RSSACRuns
	if err := json.Unmarshal([]byte(body), &runs); code != http.StatusOK || err != nil {
		t.Fatalf("runs: %d %s %v", code, body, err)
	}
	if len(runs.VPs) != 1 || runs.VPs[0].VP != "001" || runs.VPs[0].Runs != 1 || runs.VPs[0].Observations != 2 || !runs.VPs[0].Last.Equal(slot) {
		t.Errorf("runs: %s", body)
	}
	if code, body := do("GET", RSSACRunsPath+"?month=2026-10", tokOps, nil, nil); code != http.StatusOK || !strings.Contains(body, `"vps": []`) {
		t.Errorf("runs of October: %d %s", code, body)
	}
	for _, q := range []string{"?month=2026-13", "?from=yesterday", "?from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z"} {
		if code, _ := do("GET", RSSACRunsPath+q, tokOps, nil, nil); code != http.StatusBadRequest {
			t.Errorf("runs%s: %d, want 400", q, code)
		}
	}

	// Report.
	code, body = do("GET", RSSACReportPath+"?week=2026-W43", tokOps, nil, nil)
	if code != http.StatusOK || !strings.Contains(body, `"name": "2026-W43"`) {
		t.Errorf("report: %d %s", code, body)
	}
	mu.Lock()
	if len(asked) != 1 || !asked[0].From.Equal(time.Date(2026, 10, 19, 0, 0, 0, 0, time.UTC)) || asked[0].Kind != "week" {
		t.Errorf("reporter asked %+v", asked)
	}
	mu.Unlock()
	if code, _ := do("GET", RSSACReportPath+"?month=2026-10&week=2026-W43", tokOps, nil, nil); code != http.StatusBadRequest {
		t.Errorf("report of two periods: %d, want 400", code)
	}

	// Metrics are on the collector's /metrics.
	code, body = do("GET", "/metrics", "", nil, nil)
	if code != http.StatusOK || !strings.Contains(body, `netpulse_rssac_ingest_results_total{outcome="stored",source="http"} 1`) ||
		!strings.Contains(body, `netpulse_rssac_ingest_results_total{outcome="duplicate",source="http"} 1`) {
		t.Errorf("metrics lack the ingest counters")
	}
	promtest.Lint(t, srv.Registry(), "netpulse_", "netpulse_rssac_watchdog_problems")

	// The default Reporter computes from the store: the run uploaded
	// above is in 2026-11; markdown on request; a bad format is refused.
	deps.Reporter = nil
	r2, err := NewRSSAC(Config{DataDir: t.TempDir(), RSSAC: RSSACConfig{Enabled: true}}, deps)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q    string
		code int
		want string
	}{
		{"?month=2026-11", http.StatusOK, `"soa": `},
		{"?month=2026-11&format=markdown", http.StatusOK, "# RSSAC047"},
		{"?month=2026-11&format=xml", http.StatusBadRequest, "format"},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", RSSACReportPath+tc.q, nil)
		req.Header.Set("Authorization", "Bearer "+tokOps)
		r2.Handlers()[RSSACReportPath].ServeHTTP(rec, req)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("report%s: %d %.200s, want %d with %q", tc.q, rec.Code, rec.Body.String(), tc.code, tc.want)
		}
	}
}

// TestRSSACImportLoop: ImportOnce empties the configured drop folders,
// and a vantage point named by a folder is expected by the watchdog.
func TestRSSACImportLoop(t *testing.T) {
	dir, drop := t.TempDir(), t.TempDir()
	now := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	st := rstore.NewMemory()
	r, err := NewRSSAC(Config{DataDir: dir, RSSAC: RSSACConfig{Enabled: true, Import: []RSSACImportDir{{Dir: drop, VP: "001"}}}},
		RSSACDeps{Store: st, ProbeTokens: map[string]string{}, Now: func() time.Time { return now },
			Disk: diskusage.Func(func(string) (float64, error) { return 0.1, nil })})
	if err != nil {
		t.Fatal(err)
	}
	slot := time.Date(2026, 11, 3, 11, 0, 0, 0, time.UTC)
	doc, _ := result.Marshal(rssacRun(slot))
	p := filepath.Join(drop, "x.json.gz")
	if err := os.WriteFile(p, doc, 0o640); err != nil {
		t.Fatal(err)
	}
	old := now.Add(-time.Hour)
	os.Chtimes(p, old, old)
	r.ImportOnce(context.Background())
	runs, err := st.Runs(context.Background(), slot, slot.Add(time.Hour))
	if err != nil || len(runs) != 1 {
		t.Fatalf("after ImportOnce: %+v %v", runs, err)
	}
	// 001 last sent slot 11:00; at 12:00 it is silent.
	probs := r.Watchdog().Check(context.Background())
	if len(probs) != 1 || probs[0].Subject != "001" {
		t.Errorf("watchdog problems %+v", probs)
	}
}

func TestRSSACConfig(t *testing.T) {
	base := func() Config { return Config{PlainHTTP: true, Listen: "127.0.0.1:0"} }
	c := base().WithDefaults()
	if c.RSSAC.ArchiveDir != "/var/lib/netpulse/rssac/originals" || c.RSSAC.Alerts.Path != "/var/lib/netpulse/rssac-alerts.log" ||
		c.RSSAC.Watchdog.MissedRuns != 3 || c.RSSAC.Watchdog.ZoneStale != 24*time.Hour || c.RSSAC.Watchdog.DiskThreshold != 0.8 ||
		c.RSSAC.MaxUploadBytes != result.MaxFileBytes || c.RSSAC.ImportInterval != time.Minute {
		t.Errorf("defaults: %+v", c.RSSAC)
	}
	if err := base().Validate(); err != nil {
		t.Errorf("rssac disabled: %v", err)
	}
	for _, tc := range []struct {
		rc  RSSACConfig
		key string
	}{
		{RSSACConfig{Enabled: true}, "collector.rssac.probe_tokens_file"},
		{RSSACConfig{Enabled: true, ProbeTokensFile: "f", MaxUploadBytes: 1 << 40}, "collector.rssac.max_upload_bytes"},
		{RSSACConfig{Enabled: true, ProbeTokensFile: "f", Import: []RSSACImportDir{{Dir: ""}}}, "collector.rssac.import[0].dir"},
		{RSSACConfig{Enabled: true, ProbeTokensFile: "f", Import: []RSSACImportDir{{Dir: "/a"}, {Dir: "/a/"}}}, "collector.rssac.import[1].dir"},
		{RSSACConfig{Enabled: true, ProbeTokensFile: "f", Import: []RSSACImportDir{{Dir: "/a", VP: "../x"}}}, "collector.rssac.import[0].vp"},
		{RSSACConfig{Enabled: true, ProbeTokensFile: "f", Watchdog: ingest.WatchdogConfig{DiskThreshold: 80}}, "collector.rssac.watchdog.disk_threshold"},
	} {
		c := base()
		c.RSSAC = tc.rc
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.key) {
			t.Errorf("%+v: %v, want an error about %s", tc.rc, err, tc.key)
		}
	}
	// The probe tokens file is read when no tokens are given.
	tokFile := filepath.Join(t.TempDir(), "probe-tokens")
	os.WriteFile(tokFile, []byte("001 "+tokProbe+"\n"), 0o600)
	c = base()
	c.DataDir = t.TempDir()
	c.RSSAC = RSSACConfig{Enabled: true, ProbeTokensFile: tokFile}
	if _, err := NewRSSAC(c, RSSACDeps{Store: rstore.NewMemory()}); err != nil {
		t.Errorf("NewRSSAC reading the tokens file: %v", err)
	}
	c.RSSAC.ProbeTokensFile = filepath.Join(t.TempDir(), "missing")
	if _, err := NewRSSAC(c, RSSACDeps{Store: rstore.NewMemory()}); err == nil || !strings.Contains(err.Error(), "probe_tokens_file") {
		t.Errorf("missing tokens file: %v", err)
	}
}

func TestParseRSSACPeriod(t *testing.T) {
	d := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		month, week string
		from, to    time.Time
	}{
		{"2026-10", "", d(2026, 10, 1), d(2026, 11, 1)},
		{"2026-12", "", d(2026, 12, 1), d(2027, 1, 1)},
		{"2024-02", "", d(2024, 2, 1), d(2024, 3, 1)},
		{"", "2026-W43", d(2026, 10, 19), d(2026, 10, 26)},
		{"", "2026-W01", d(2025, 12, 29), d(2026, 1, 5)},
		{"", "2026-W53", d(2026, 12, 28), d(2027, 1, 4)}, // 2026 starts on a Thursday: 53 weeks
		{"", "2021-W01", d(2021, 1, 4), d(2021, 1, 11)},
	} {
		p, err := ParseRSSACPeriod(tc.month, tc.week)
		if err != nil || !p.From.Equal(tc.from) || !p.To.Equal(tc.to) || p.From.Location() != time.UTC {
			t.Errorf("ParseRSSACPeriod(%q, %q) = %+v, %v; want [%v, %v)", tc.month, tc.week, p, err, tc.from, tc.to)
		}
	}
	for _, bad := range [][2]string{{"", ""}, {"2026-10", "2026-W43"}, {"2026-13", ""}, {"202610", ""}, {"", "2025-W53"}, {"", "2026-W00"}, {"", "2026-W54"}, {"", "2026W43"}} {
		if p, err := ParseRSSACPeriod(bad[0], bad[1]); err == nil {
			t.Errorf("ParseRSSACPeriod(%q, %q) = %+v, want an error", bad[0], bad[1], p)
		}
	}
}
