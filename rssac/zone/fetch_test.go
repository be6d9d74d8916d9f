package zone

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/netpulse/netpulse/internal/promtest"
	"github.com/netpulse/netpulse/internal/testdns"
)

// zoneServer serves texts[min(hits, len-1)] over HTTP on loopback.
func zoneServer(t *testing.T, texts ...string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(hits.Add(1)) - 1
		if i >= len(texts) {
			i = len(texts) - 1
		}
		switch texts[i] {
		case "404":
			http.NotFound(w, r)
		default:
			w.Write([]byte(texts[i]))
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// TestFetcherSchedule runs the fetcher's loop on an injected schedule:
// the first fetch stores the zone, a repeat is unchanged, a new serial is
// stored with the injected clock's time.
func TestFetcherSchedule(t *testing.T) {
	srv, _ := zoneServer(t, testdns.RootZoneText(1), testdns.RootZoneText(1), testdns.RootZoneText(2))
	a := openArchive(t, t.TempDir())
	// The clock reads 15 minutes later at each fetch.
	clock := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	var calls atomic.Int64
	ticks := make(chan time.Time) // unbuffered: a send returns once the previous fetch is done
	f, err := NewFetcher(FetchConfig{Source: srv.URL + "/root.zone"}, a, FetcherDeps{
		Now:  func() time.Time { return clock.Add(time.Duration(calls.Add(1)-1) * 15 * time.Minute) },
		Tick: func(d time.Duration) (<-chan time.Time, func()) { return ticks, func() {} },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		ticks <- time.Time{}
	}
	// Three fetches are done (the fourth may be under way).
	res := f.Results()
	if err := f.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if res[ResultNew] != 2 || res[ResultUnchanged] != 1 || res[ResultError] != 0 {
		t.Errorf("results %v", res)
	}
	e1, _ := a.Entry(1)
	e2, _ := a.Entry(2)
	if !e1.FirstSeen.Equal(clock) || !e2.FirstSeen.Equal(clock.Add(30*time.Minute)) || !a.LastGrowth().Equal(e2.FirstSeen) {
		t.Errorf("first seen %v %v, last growth %v", e1.FirstSeen, e2.FirstSeen, a.LastGrowth())
	}
}

// TestFetchHTTP: plain and gzip bodies are stored; a failed or bad fetch
// is counted and stores nothing; the metrics pass promlint.
func TestFetchHTTP(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(testdns.RootZoneText(2)))
	zw.Close()
	srv, _ := zoneServer(t, testdns.RootZoneText(1), "404", "garbage\n", gz.String(), testdns.RootZoneText(3)+strings.Repeat(";\n", 5000))
	a := openArchive(t, t.TempDir(), func(c *Config) { c.MaxBytes = 8000 })
	f, err := NewFetcher(FetchConfig{Source: srv.URL}, a, FetcherDeps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, want := range []struct {
		isNew bool
		err   string
	}{{true, ""}, {false, "404 Not Found"}, {false, "zone: dns: not a TTL"}, {true, ""}, {false, "is over 8000 bytes"}} {
		_, isNew, err := f.FetchOnce(ctx)
		if isNew != want.isNew || (err == nil) != (want.err == "") || err != nil && !strings.Contains(err.Error(), want.err) {
			t.Errorf("fetch %d: new %v err %v, want %v %q", i+1, isNew, err, want.isNew, want.err)
		}
	}
	if !errors.Is(f.LastError(), ErrTooLarge) {
		t.Errorf("last error %v", f.LastError())
	}
	if got := serialsOf(a.Entries()); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Errorf("stored %v", got)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(a.Collector(), f.Collector())
	promtest.Lint(t, reg, "netpulse_rssac_zone_", "netpulse_rssac_zone_fetches_total", "netpulse_rssac_zone_serials",
		"netpulse_rssac_zone_last_new_serial_timestamp_seconds", "netpulse_rssac_zone_latest_serial",
		"netpulse_rssac_zone_last_fetch_success_timestamp_seconds")
	if res := f.Results(); res[ResultNew] != 2 || res[ResultError] != 3 {
		t.Errorf("results %v", res)
	}
}

func TestFetchConfig(t *testing.T) {
	a := openArchive(t, t.TempDir())
	for _, src := range []string{"", "ftp://x/", "axfr://", "axfr://127.0.0.1:53/zone", "http://"} {
		if _, err := NewFetcher(FetchConfig{Source: src}, a, FetcherDeps{}); err == nil {
			t.Errorf("source %q accepted", src)
		}
	}
	f, err := NewFetcher(FetchConfig{Source: "axfr://127.0.0.1"}, a, FetcherDeps{})
	if err != nil || f.cfg.Interval != 15*time.Minute {
		t.Errorf("%v %v", f, err)
	}
}

// TestFetchAXFR transfers the zone from NSD on loopback: the archive
// holds what the server serves, a second transfer is unchanged, and a
// server that refuses transfers is a counted error.
func TestFetchAXFR(t *testing.T) {
	text := signedText(t)
	addr := testdns.StartNSDWithXFR(t, map[string]string{".": text})
	a := openArchive(t, t.TempDir())
	f, err := NewFetcher(FetchConfig{Source: "axfr://" + addr, Timeout: 10 * time.Second}, a, FetcherDeps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e, isNew, err := f.FetchOnce(ctx)
	if err != nil || !isNew || e.Serial != 2026110100 || e.RRs != 48 {
		t.Fatalf("axfr: %+v %v %v", e, isNew, err)
	}
	if _, isNew, err := f.FetchOnce(ctx); err != nil || isNew {
		t.Errorf("second axfr: %v %v", isNew, err)
	}
	got, err := a.Get(e.Serial)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Parse(strings.NewReader(text), ".", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.sets) != len(want.sets) {
		t.Fatalf("%d RRsets, want %d", len(got.sets), len(want.sets))
	}
	for k, s := range want.sets {
		g := got.sets[k]
		if g == nil || g.Data != s.Data || g.TTL != s.TTL || len(g.Sigs) != len(s.Sigs) {
			t.Errorf("%v differs after the transfer", k)
		}
	}

	refusing := testdns.StartNSD(t, map[string]string{".": text})
	g, err := NewFetcher(FetchConfig{Source: "axfr://" + refusing, Timeout: 10 * time.Second}, openArchive(t, t.TempDir()), FetcherDeps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := g.FetchOnce(ctx); err == nil {
		t.Error("a refused transfer succeeded")
	}
	if res := g.Results(); res[ResultError] != 1 {
		t.Errorf("results %v", res)
	}
}
