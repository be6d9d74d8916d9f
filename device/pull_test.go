package device

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/internal/syncbuf"
)

// recorder wraps the API handler: it records what each request carried
// and how it was answered, and can answer in its place.
type recorder struct {
	h    http.Handler
	hits chan struct{}

	mu       sync.Mutex
	inm      []string // If-None-Match of each request
	statuses []int
	override http.HandlerFunc
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(s int) { w.status = s; w.ResponseWriter.WriteHeader(s) }

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{w, 200}
	rc.mu.Lock()
	o := rc.override
	rc.mu.Unlock()
	if o != nil {
		o(sw, r)
	} else {
		rc.h.ServeHTTP(sw, r)
	}
	rc.mu.Lock()
	rc.inm = append(rc.inm, r.Header.Get("If-None-Match"))
	rc.statuses = append(rc.statuses, sw.status)
	rc.mu.Unlock()
	select {
	case rc.hits <- struct{}{}:
	default:
	}
}

func (rc *recorder) setOverride(f http.HandlerFunc) {
	rc.mu.Lock()
	rc.override = f
	rc.mu.Unlock()
}

// last returns the If-None-Match and status of the last request.
func (rc *recorder) last(t *testing.T) (string, int) {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.inm) == 0 {
		t.Fatal("the server saw no request")
	}
	return rc.inm[len(rc.inm)-1], rc.statuses[len(rc.statuses)-1]
}

// pullServer is a collector serving testDevices on 127.0.0.1.
func pullServer(t *testing.T) (*httptest.Server, *MemStore, *recorder) {
	t.Helper()
	store := NewMemStore(mustSet(t, testDevices()))
	h, err := NewHandler(HandlerConfig{Read: TokenAuth(readToken)}, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := &recorder{h: h, hits: make(chan struct{}, 1)}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	return srv, store, rc
}

// newPuller returns a started puller; its loop waits an hour unless
// mod says otherwise, so that tests drive it with Refresh.
func newPuller(t *testing.T, url, cache string, mod func(*PullerConfig)) (*Puller, *Registry) {
	t.Helper()
	cfg := PullerConfig{URL: url, AllowInsecureLoopback: true, Token: readToken, CacheFile: cache, Interval: time.Hour}
	if mod != nil {
		mod(&cfg)
	}
	reg := NewRegistry(nil)
	p, err := NewPuller(cfg, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// t.Context is cancelled before cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return p, reg
}

func readCache(t *testing.T, path string) (cacheFile, *Set) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c cacheFile
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	s, _, err := ParseDevicesJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

func TestPullFetchThenNotModified(t *testing.T) {
	srv, _, rc := pullServer(t)
	cache := filepath.Join(t.TempDir(), "devices.json")
	p, reg := newPuller(t, srv.URL, cache, nil)

	// Start fetched: no cache to start from.
	if reg.Current().Len() != 2 || reg.Lookup(netip.MustParseAddr("2001:db8::3")).ID != 3 {
		t.Fatalf("registry after Start: %+v", reg.Current().All())
	}
	inm, status := rc.last(t)
	if inm != "" || status != 200 {
		t.Errorf("first request: If-None-Match %q, status %d", inm, status)
	}
	etag, _ := ETag(reg.Current())
	c, cached := readCache(t, cache)
	if c.ETag != etag || cached.Len() != 2 {
		t.Errorf("cache ETag %q (want %q), %d devices", c.ETag, etag, cached.Len())
	}
	if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("cache mode %v (%v), want 0600: it holds SNMP secrets", fi.Mode(), err)
	}

	held := reg.Current()
	if err := p.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if inm, status := rc.last(t); inm != etag || status != http.StatusNotModified {
		t.Errorf("second request: If-None-Match %q (want %q), status %d (want 304)", inm, etag, status)
	}
	if reg.Current() != held {
		t.Error("the registry's set was replaced after a 304")
	}
	st := p.Stats()
	if st.Fetches != 2 || st.NotModified != 1 || st.Updates != 1 || st.Errors != 0 || st.ETag != etag ||
		st.LastSuccess.IsZero() || st.LastError != "" || st.FromCache {
		t.Errorf("stats %+v", st)
	}
}

func TestPullChange(t *testing.T) {
	srv, store, rc := pullServer(t)
	cache := filepath.Join(t.TempDir(), "devices.json")
	p, reg := newPuller(t, srv.URL, cache, nil)
	oldTag := p.Stats().ETag

	d := testDevices()[0]
	d.IPs = []netip.Addr{netip.MustParseAddr("198.51.100.7")}
	if _, err := store.Put(t.Context(), d, PutReplace); err != nil {
		t.Fatal(err)
	}
	if err := p.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if inm, status := rc.last(t); inm != oldTag || status != 200 {
		t.Errorf("If-None-Match %q (want %q), status %d", inm, oldTag, status)
	}
	if got := reg.Lookup(netip.MustParseAddr("198.51.100.7")); got == nil || got.ID != 7 {
		t.Errorf("new address: %+v", got)
	}
	if reg.Lookup(netip.MustParseAddr("192.0.2.7")) != nil {
		t.Error("old address still registered")
	}
	st := p.Stats()
	if st.Updates != 2 || st.ETag == oldTag {
		t.Errorf("stats %+v", st)
	}
	if c, s := readCache(t, cache); c.ETag != st.ETag || s.ByIP(netip.MustParseAddr("198.51.100.7")) == nil {
		t.Errorf("cache not rewritten: %+v", c)
	}
}

// TestPullLoop: without Refresh, the puller polls every Interval.
func TestPullLoop(t *testing.T) {
	srv, store, rc := pullServer(t)
	_, reg := newPuller(t, srv.URL, "", func(c *PullerConfig) { c.Interval = 5 * time.Millisecond })
	if _, err := store.Delete(t.Context(), 7); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(2 * time.Second)
	for reg.Current().Len() != 1 {
		select {
		case <-rc.hits:
		case <-deadline:
			t.Fatal("the loop did not fetch the change within 2s")
		}
	}
}

func TestPullCacheWhenCollectorDown(t *testing.T) {
	srv, _, rc := pullServer(t)
	cache := filepath.Join(t.TempDir(), "devices.json")
	p1, reg1 := newPuller(t, srv.URL, cache, nil)
	etag := p1.Stats().ETag
	if err := p1.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}

	// Restart while the collector is up: the cached ETag makes the first
	// fetch a 304.
	p2, reg2 := newPuller(t, srv.URL, cache, nil)
	if reg2.Current().Len() != 2 {
		t.Fatalf("registry from cache: %d devices", reg2.Current().Len())
	}
	if err := p2.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if inm, status := rc.last(t); inm != etag || status != http.StatusNotModified {
		t.Errorf("after restart: If-None-Match %q, status %d; want %q and 304", inm, status, etag)
	}
	if st := p2.Stats(); st.Updates != 0 || st.FromCache {
		t.Errorf("restart stats %+v", st)
	}

	// Restart while the collector is down.
	srv.Close()
	p3, reg3 := newPuller(t, srv.URL, cache, nil)
	if reg3.Current().Len() != 2 || reg3.Lookup(netip.MustParseAddr("192.0.2.7")) == nil {
		t.Fatalf("registry from cache: %+v", reg3.Current().All())
	}
	if err := p3.Refresh(t.Context()); err == nil {
		t.Fatal("fetch from a closed server succeeded")
	}
	st := p3.Stats()
	if st.Errors == 0 || !st.FromCache || st.ETag != etag || st.LastError == "" || !st.LastSuccess.IsZero() {
		t.Errorf("stats %+v", st)
	}
	if reg3.Current().Len() != 2 || reg1.Current().Len() != 2 {
		t.Error("a failed fetch changed the registry")
	}
}

func TestPullCacheBad(t *testing.T) {
	srv, _, _ := pullServer(t)
	dir := t.TempDir()
	cache := filepath.Join(dir, "devices.json")
	leftover := cache + ".tmp-123"
	for _, f := range []struct{ path, data string }{
		{cache, `{"etag":"\"x\"","devices":[{"id":1,"name":"a","ips":["192.0.2.1"]},{"id":2,"name":"b","ips":["192.0.2.1"]}]}`},
		{leftover, "half written"},
	} {
		if err := os.WriteFile(f.path, []byte(f.data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p, reg := newPuller(t, srv.URL, cache, nil)
	// The refused cache is ignored, so Start fetched: no If-None-Match "x".
	if reg.Current().Len() != 2 || p.Stats().Updates != 1 {
		t.Errorf("after a bad cache: %d devices, %+v", reg.Current().Len(), p.Stats())
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("temporary file left over: %v", err)
	}
	if c, _ := readCache(t, cache); c.ETag == `"x"` {
		t.Error("bad cache not replaced")
	}
}

func TestPullRefused(t *testing.T) {
	dup := `{"version":"2","devices":[{"id":1,"name":"a","ips":["192.0.2.1"]},{"id":2,"name":"b","ips":["192.0.2.1"]}]}`
	for _, tc := range []struct {
		name   string
		answer http.HandlerFunc
		want   string
	}{
		{"duplicate address", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("ETag", `"2"`)
			_, _ = w.Write([]byte(dup))
		}, "192.0.2.1"},
		{"not JSON", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte("<html>login</html>"))
		}, "device list"},
		{"no devices key", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"status":"ok"}`))
		}, `no "devices"`},
		{"too large", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"devices":[]}` + strings.Repeat(" ", 1<<10)))
		}, "over"},
		{"server error", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(500)
			_, _ = w.Write([]byte(`{"error":"database down"}`))
		}, "database down"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://192.0.2.1/steal", http.StatusFound)
		}, "302"},
		{"unasked 304", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNotModified)
		}, "without If-None-Match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _, rc := pullServer(t)
			cache := filepath.Join(t.TempDir(), "devices.json")
			p, reg := newPuller(t, srv.URL, cache, func(c *PullerConfig) { c.MaxBytes = 1 << 10 })
			held := reg.Current()
			before, err := os.ReadFile(cache)
			if err != nil {
				t.Fatal(err)
			}
			rc.setOverride(tc.answer)
			if tc.name == "unasked 304" {
				p.fetchMu.Lock()
				p.etag = "" // as after a collector without ETags
				p.fetchMu.Unlock()
			}
			err = p.Refresh(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Refresh: %v, want an error saying %q", err, tc.want)
			}
			if reg.Current() != held {
				t.Error("refused list replaced the registry's")
			}
			after, _ := os.ReadFile(cache)
			if !bytes.Equal(before, after) {
				t.Error("refused list written to the cache")
			}
			if st := p.Stats(); st.Errors != 1 || st.Updates != 1 || st.LastError != err.Error() {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestPullBadToken(t *testing.T) {
	srv, _, rc := pullServer(t)
	p, reg := newPuller(t, srv.URL, "", func(c *PullerConfig) { c.Token = "stolen" })
	if _, status := rc.last(t); status != http.StatusUnauthorized {
		t.Errorf("status %d, want 401", status)
	}
	st := p.Stats()
	if st.Errors != 1 || reg.Current().Len() != 0 || !strings.Contains(st.LastError, "token refused") ||
		!strings.Contains(st.LastError, "missing or unknown bearer token") {
		t.Errorf("stats %+v, %d devices", st, reg.Current().Len())
	}
}

// TestPullNoETag: a collector that sends no ETag answers 200 every time;
// an unchanged list is not swapped in again.
func TestPullNoETag(t *testing.T) {
	srv, store, rc := pullServer(t)
	rc.setOverride(func(w http.ResponseWriter, r *http.Request) {
		s, _ := store.List(r.Context())
		c, _ := CanonicalJSON(s)
		_, _ = w.Write([]byte(`{"devices":` + string(c) + `}`))
	})
	p, reg := newPuller(t, srv.URL, "", nil)
	held := reg.Current()
	if err := p.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if inm, status := rc.last(t); inm != "" || status != 200 {
		t.Errorf("If-None-Match %q, status %d", inm, status)
	}
	if reg.Current() != held || p.Stats().Updates != 1 {
		t.Errorf("unchanged list swapped in again: %+v", p.Stats())
	}
}

// TestPullLogRateLimited: errors in a row are logged once per LogEvery,
// the others counted.
func TestPullLogRateLimited(t *testing.T) {
	srv, _, rc := pullServer(t)
	var mu sync.Mutex
	now := time.Unix(1e9, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var buf syncbuf.Buffer
	cfg := PullerConfig{URL: srv.URL, AllowInsecureLoopback: true, Token: readToken, Interval: time.Hour, Now: clock}
	p, err := NewPuller(cfg, NewRegistry(nil), slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	rc.setOverride(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })
	for range 3 {
		_ = p.Refresh(t.Context())
	}
	if n := strings.Count(buf.String(), "fetch failed"); n != 1 {
		t.Errorf("%d error lines for 3 errors within a minute, want 1:\n%s", n, buf.String())
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	_ = p.Refresh(t.Context())
	if out := buf.String(); strings.Count(out, "fetch failed") != 2 || !strings.Contains(out, "not_logged=2") {
		t.Errorf("after a minute:\n%s", out)
	}
	rc.setOverride(nil)
	if err := p.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, "recovered") {
		t.Errorf("no recovery line:\n%s", out)
	}
	if st := p.Stats(); st.Errors != 4 || !st.LastSuccess.Equal(now) {
		t.Errorf("stats %+v", st)
	}
}

func TestPullDelay(t *testing.T) {
	p := &Puller{cfg: PullerConfig{Interval: time.Minute, BackoffMin: time.Second, BackoffMax: 8 * time.Second}.withDefaults()}
	for _, tc := range []struct {
		failures int
		lo, hi   time.Duration
	}{
		{0, 54 * time.Second, 66 * time.Second},
		{1, 500 * time.Millisecond, time.Second},
		{2, time.Second, 2 * time.Second},
		{4, 4 * time.Second, 8 * time.Second},
		{1000, 4 * time.Second, 8 * time.Second},
	} {
		for range 100 {
			if d := p.delay(tc.failures); d < tc.lo || d > tc.hi {
				t.Fatalf("delay after %d failures: %v, want %v to %v", tc.failures, d, tc.lo, tc.hi)
			}
		}
	}
}

func TestPullTLS(t *testing.T) {
	store := NewMemStore(mustSet(t, testDevices()))
	h, _ := NewHandler(HandlerConfig{Read: TokenAuth(readToken)}, store, nil)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	p, reg := newPuller(t, srv.URL, "", func(c *PullerConfig) { c.CAFile = ca; c.AllowInsecureLoopback = false })
	if reg.Current().Len() != 2 || p.Stats().Errors != 0 {
		t.Errorf("over TLS with the CA: %+v", p.Stats())
	}
	p2, _ := newPuller(t, srv.URL, "", func(c *PullerConfig) { c.AllowInsecureLoopback = false })
	if st := p2.Stats(); st.Errors != 1 || !strings.Contains(st.LastError, "certificate") {
		t.Errorf("without the CA: %+v", st)
	}
}

func TestPullerConfig(t *testing.T) {
	ok := PullerConfig{Token: "t", AllowInsecureLoopback: true}
	for _, tc := range []struct {
		url  string
		mod  func(*PullerConfig)
		want string // endpoint, or the start of an error
	}{
		{"https://collector.example:8443", nil, "https://collector.example:8443" + APIPath},
		{"https://collector.example/", nil, "https://collector.example" + APIPath},
		{"http://127.0.0.1:8080/other?proxy=edge1", nil, "http://127.0.0.1:8080/other?proxy=edge1"},
		{"http://[::1]:8080", nil, "http://[::1]:8080" + APIPath},
		{"http://localhost:8080", nil, "http://localhost:8080" + APIPath},
		{"", nil, "devices_api.url: empty"},
		{"http://collector.example", nil, "devices_api.url"},
		{"http://127.0.0.1", func(c *PullerConfig) { c.AllowInsecureLoopback = false }, "devices_api.url"},
		{"ftp://127.0.0.1", nil, "devices_api.url"},
		{"https://", nil, "devices_api.url"},
		{"https://u:p@collector.example", nil, "devices_api.url"},
		{"https://collector.example", func(c *PullerConfig) { c.Token = "" }, "devices_api: no API token"},
		{"https://collector.example", func(c *PullerConfig) { c.CertFile = "x.pem" }, "devices_api.cert_file and"},
		{"https://collector.example", func(c *PullerConfig) { c.CAFile = "/nonexistent" }, "devices_api.ca_file"},
	} {
		cfg := ok
		cfg.URL = tc.url
		if tc.mod != nil {
			tc.mod(&cfg)
		}
		p, err := NewPuller(cfg, NewRegistry(nil), nil)
		switch {
		case err != nil && !strings.HasPrefix(err.Error(), tc.want):
			t.Errorf("%q: error %v, want %q", tc.url, err, tc.want)
		case err == nil && p.url != tc.want:
			t.Errorf("%q: endpoint %q, want %q", tc.url, p.url, tc.want)
		}
	}
	if _, err := NewPuller(PullerConfig{URL: "https://c", Token: "t"}, nil, nil); err == nil {
		t.Error("nil registry accepted")
	}
	d := DefaultPullerConfig()
	if d.Interval != time.Minute || d.Timeout != 10*time.Second {
		t.Errorf("defaults %+v", d)
	}
}

func TestPullerStartStop(t *testing.T) {
	p, err := NewPuller(PullerConfig{URL: "https://c", Token: "t"}, NewRegistry(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(t.Context()); err != nil {
		t.Errorf("Stop before Start: %v", err)
	}
	srv, _, _ := pullServer(t)
	p, _ = newPuller(t, srv.URL, "", nil)
	if err := p.Start(t.Context()); err == nil {
		t.Error("second Start accepted")
	}
	if err := p.Stop(t.Context()); err != nil {
		t.Error(err)
	}
}
