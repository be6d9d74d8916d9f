package probe

import (
	"context"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/probe/result"
)

// collectorStub is an in-process collector ingest: it fails the first
// failures uploads with 503, then stores each file (201) or says it has
// it already (409).
type collectorStub struct {
	t        *testing.T
	mu       sync.Mutex
	failures int
	// retryAfter, when set, is the Retry-After of each failure.
	retryAfter string
	reject     bool
	attempts   int
	got        map[string]*result.Run
}

func (c *collectorStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.attempts++
	if r.Method != http.MethodPost || r.URL.Path != UploadPath || r.Header.Get("Authorization") != "Bearer s3cret" ||
		r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Content-Encoding") != "gzip" {
		c.t.Errorf("request %s %s %v", r.Method, r.URL.Path, r.Header)
		http.Error(w, "bad request", http.StatusUnauthorized)
		return
	}
	if c.failures > 0 {
		c.failures--
		if c.retryAfter != "" {
			w.Header().Set("Retry-After", c.retryAfter)
		}
		http.Error(w, "store down", http.StatusServiceUnavailable)
		return
	}
	if c.reject {
		http.Error(w, "not a result document", http.StatusBadRequest)
		return
	}
	body, _ := io.ReadAll(r.Body)
	run, err := result.Decode(body)
	if err != nil {
		c.t.Errorf("upload does not decode: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	name := r.Header.Get(ResultNameHeader)
	if name != result.FileName(run.VP, run.Slot) {
		c.t.Errorf("name header %q for a run of %s", name, run.Slot)
	}
	if c.got[name] != nil {
		w.WriteHeader(http.StatusConflict)
		return
	}
	c.got[name] = run
	w.WriteHeader(http.StatusCreated)
}

func (c *collectorStub) names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for n := range c.got {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// closedPort is a loopback port nothing listens on: queries to it fail
// at once, which keeps the runs of these tests fast.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// uploadSetup starts a TLS collector stub and returns a configuration
// that uploads to it, trusting its certificate through ca_file.
func uploadSetup(t *testing.T, stub *collectorStub) Config {
	t.Helper()
	srv := httptest.NewTLSServer(stub)
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(TokenEnv, "s3cret")
	cfg := testConfig(t, Target{Name: "down.test", IPv4: "127.0.0.1", Port: closedPort(t)})
	cfg.Upload = UploadConfig{URL: srv.URL, CAFile: ca, Timeout: 5 * time.Second, Retry: 10 * time.Millisecond, MaxRetry: 40 * time.Millisecond}
	return cfg
}

// TestUploadRetriesUntilAcknowledged: the collector fails three times;
// the queue waits 10, 20, 40 ms (doubling, capped) and then delivers
// the file, which leaves the queue.
func TestUploadRetriesUntilAcknowledged(t *testing.T) {
	stub := &collectorStub{t: t, failures: 3, got: map[string]*result.Run{}}
	cfg := uploadSetup(t, stub)
	var mu sync.Mutex
	var sleeps []time.Duration
	p := newTestProbe(t, cfg, Deps{Sleep: func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		sleeps = append(sleeps, d)
		mu.Unlock()
		return ctx.Err()
	}})
	slot := result.SlotOf(time.Now())
	if _, _, err := p.RunOnce(context.Background(), slot); err != nil {
		t.Fatal(err)
	}
	if n, _ := p.st.pending(); len(n) != 1 {
		t.Fatalf("queue %v after the run, want the run's file", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.up.loop(ctx); close(done) }()
	waitFor(t, func() bool { return len(stub.names()) == 1 })
	cancel()
	<-done
	if want := []string{result.FileName("001", slot)}; !slices.Equal(stub.names(), want) {
		t.Errorf("collector has %v, want %v", stub.names(), want)
	}
	mu.Lock()
	if want := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond}; !slices.Equal(sleeps, want) {
		t.Errorf("backoff %v, want %v", sleeps, want)
	}
	mu.Unlock()
	if n, _ := p.st.pending(); len(n) != 0 {
		t.Errorf("queue %v after the acknowledgement", n)
	}
	if p.m.uploadErrors.Load() != 3 || p.m.uploadsOK.Load() != 1 {
		t.Errorf("errors %d ok %d, want 3 and 1", p.m.uploadErrors.Load(), p.m.uploadsOK.Load())
	}
	// The file itself stays in its yyyymm/ folder.
	if _, err := os.Stat(p.st.path(slot)); err != nil {
		t.Error(err)
	}
}

// TestUploadRetryAfter: a 503 with Retry-After holds the queue back at
// least that long (the backoff alone would be 10 and 20 ms).
func TestUploadRetryAfter(t *testing.T) {
	stub := &collectorStub{t: t, failures: 2, retryAfter: "7", got: map[string]*result.Run{}}
	cfg := uploadSetup(t, stub)
	var mu sync.Mutex
	var sleeps []time.Duration
	p := newTestProbe(t, cfg, Deps{Sleep: func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		sleeps = append(sleeps, d)
		mu.Unlock()
		return ctx.Err()
	}})
	if _, _, err := p.RunOnce(context.Background(), result.SlotOf(time.Now())); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.up.loop(ctx); close(done) }()
	waitFor(t, func() bool { return len(stub.names()) == 1 })
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if want := []time.Duration{7 * time.Second, 7 * time.Second}; !slices.Equal(sleeps, want) {
		t.Errorf("waits %v, want %v", sleeps, want)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"120", 2 * time.Minute, true},
		{"99999999", time.Hour, true}, // capped
		{"-5", 0, false},
		{"soon", 0, false},
		{"Sun, 22 Nov 2026 10:00:30 GMT", 30 * time.Second, true},
		{"Sun, 22 Nov 2026 09:00:00 GMT", 0, true}, // past: now
		{"Mon, 23 Nov 2026 10:00:00 GMT", time.Hour, true},
	} {
		got, ok := parseRetryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// TestUploadQueueSurvivesRestart: files written while the collector is
// down stay queued on disk; a new probe on the same folder sends them
// when it starts, oldest first. A second copy is acknowledged by 409.
func TestUploadQueueSurvivesRestart(t *testing.T) {
	stub := &collectorStub{t: t, failures: 1 << 30, got: map[string]*result.Run{}}
	cfg := uploadSetup(t, stub)
	p1 := newTestProbe(t, cfg, Deps{})
	slot := result.SlotOf(time.Now())
	for i := range 3 {
		if _, _, err := p1.RunOnce(context.Background(), slot.Add(time.Duration(i)*result.Interval)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p1.UploadPending(context.Background()); err == nil {
		t.Fatal("upload to a failing collector succeeded")
	}
	if n, _ := p1.st.pending(); len(n) != 3 {
		t.Fatalf("queue %v, want 3 files", n)
	}

	// The collector recovers; a new process starts on the same folder.
	stub.mu.Lock()
	stub.failures = 0
	stub.mu.Unlock()
	p2 := newTestProbe(t, cfg, Deps{})
	if err := p2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { n, _ := p2.st.pending(); return len(n) == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 3 {
		want = append(want, result.FileName("001", slot.Add(time.Duration(i)*result.Interval)))
	}
	if !slices.Equal(stub.names(), want) {
		t.Errorf("collector has %v, want %v", stub.names(), want)
	}

	// The same file again (a lost acknowledgement): 409 acknowledges.
	if err := p2.st.enqueue(p2.st.path(slot)); err != nil {
		t.Fatal(err)
	}
	if err := p2.UploadPending(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, _ := p2.st.pending(); len(n) != 0 {
		t.Errorf("a duplicate stays queued: %v", n)
	}
}

// TestUploadRejected: a file the collector refuses as invalid leaves the
// queue for rejected/, and the next one is tried.
func TestUploadRejected(t *testing.T) {
	stub := &collectorStub{t: t, reject: true, got: map[string]*result.Run{}}
	cfg := uploadSetup(t, stub)
	p := newTestProbe(t, cfg, Deps{})
	slot := result.SlotOf(time.Now())
	for i := range 2 {
		if _, _, err := p.RunOnce(context.Background(), slot.Add(time.Duration(i)*result.Interval)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.UploadPending(context.Background()); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(cfg.OutputDir, rejectedDir))
	if n, _ := p.st.pending(); len(n) != 0 || len(ents) != 2 || p.m.uploadRejected.Load() != 2 {
		t.Errorf("queue %v, rejected/ %d files, counted %d", n, len(ents), p.m.uploadRejected.Load())
	}
	if stub.attempts != 2 {
		t.Errorf("%d attempts, want 2", stub.attempts)
	}
}

// TestUploadConfig: a token is required, from the environment or a
// file; plain http only to loopback when allowed.
func TestUploadConfig(t *testing.T) {
	base := testConfig(t, Target{Name: "x", IPv4: "127.0.0.1"})
	base.Upload.URL = "https://collector.example:8443"
	t.Setenv(TokenEnv, "")
	c := base
	if _, err := New(c, Deps{}); err == nil || !strings.Contains(err.Error(), TokenEnv) {
		t.Errorf("no token: %v", err)
	}
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte("from-file\n"), 0o600)
	c.Upload.TokenFile = tok
	p, err := New(c, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if p.up.token != "from-file" || p.up.url != "https://collector.example:8443"+UploadPath {
		t.Errorf("token %q url %q", p.up.token, p.up.url)
	}
	t.Setenv(TokenEnv, "from-env")
	if p, _ = New(c, Deps{}); p.up.token != "from-env" {
		t.Errorf("the environment does not win: %q", p.up.token)
	}
	c.Upload.URL = "http://127.0.0.1:" + strconv.Itoa(closedPort(t))
	if _, err := New(c, Deps{}); err == nil {
		t.Error("plain http accepted without allow_insecure_loopback")
	}
	c.Upload.AllowInsecureLoopback = true
	if _, err := New(c, Deps{}); err != nil {
		t.Error(err)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
