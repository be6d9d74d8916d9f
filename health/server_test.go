package health

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// testDeps serves goldenStatus at its fixed time.
func testDeps() Deps {
	st, now := goldenStatus()
	return Deps{
		Status: func() *Status { return st },
		Now:    func() time.Time { return now },
	}
}

func goldenText() string {
	st, now := goldenStatus()
	return string(AppendText(nil, st, now))
}

// startServer starts a server on 127.0.0.1:0 with a 20ms sniff window
// unless cfg says otherwise, and stops it when the test ends.
func startServer(t *testing.T, cfg Config, deps Deps) *Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.SniffTimeout == 0 {
		cfg.SniffTimeout = 20 * time.Millisecond
	}
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return s
}

// rawClient connects, sends send, half-closes when asked, and reads to
// EOF, as kproxy monitors do.
func rawClient(addr string, send string, closeWrite bool) (string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return "", err
	}
	if send != "" {
		if _, err := io.WriteString(c, send); err != nil {
			return "", err
		}
	}
	if closeWrite {
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			return "", err
		}
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

func TestServerText(t *testing.T) {
	// Only the silent client waits for the sniff window: the others are
	// served at once even when it is long.
	short := startServer(t, Config{}, testDeps())
	long := startServer(t, Config{SniffTimeout: 10 * time.Second}, testDeps())
	for _, tc := range []struct {
		name       string
		s          *Server
		send       string
		closeWrite bool
	}{
		{"silent", short, "", false},
		{"half-close", long, "", true},
		{"not HTTP", long, "hello\r\n", false},
		{"not HTTP, half-close", long, "status", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			got, err := rawClient(tc.s.Addr().String(), tc.send, tc.closeWrite)
			if err != nil {
				t.Fatal(err)
			}
			if got != goldenText() {
				t.Errorf("got:\n%s\nwant:\n%s", got, goldenText())
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	if st := long.Stats(); st.TextConns != 3 || st.HTTPConns != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestServerTextParses reads the server's text back with ParseText, as a
// monitor would.
func TestServerTextParses(t *testing.T) {
	s := startServer(t, Config{}, testDeps())
	text, err := rawClient(s.Addr().String(), "", false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseText(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := goldenStatus()
	checkStatus(t, got, canonical(st))
}

func TestServerNilStatus(t *testing.T) {
	s := startServer(t, Config{}, Deps{Status: func() *Status { return nil }})
	got, err := rawClient(s.Addr().String(), "", true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "status unavailable\n0 Connected Devices\n") {
		t.Errorf("got %q", got)
	}
}

func httpClient(t *testing.T, keepAlive bool) *http.Client {
	tr := &http.Transport{DisableKeepAlives: !keepAlive}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

func get(t *testing.T, c *http.Client, method, url string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestServerHTTP(t *testing.T) {
	reg := prometheus.NewRegistry()
	ctr := prometheus.NewCounter(prometheus.CounterOpts{Name: "netpulse_test_things_total", Help: "Things."})
	reg.MustRegister(ctr)
	ctr.Add(3)
	var mu sync.Mutex
	var notReady error
	deps := testDeps()
	deps.Gatherer = reg
	deps.Ready = func() error { mu.Lock(); defer mu.Unlock(); return notReady }
	s := startServer(t, Config{SniffTimeout: 5 * time.Second}, deps) // HTTP must not wait for it
	base := "http://" + s.Addr().String()
	c := httpClient(t, true)

	start := time.Now()
	for _, tc := range []struct {
		method, path string
		code         int
		ctype, body  string
	}{
		{"GET", "/healthz", 200, "text/plain; charset=utf-8", "ok\n"},
		{"GET", "/readyz", 200, "text/plain; charset=utf-8", "ok\n"},
		{"GET", "/", 200, "text/plain; charset=utf-8", goldenText()},
		{"HEAD", "/", 200, "text/plain; charset=utf-8", ""},
		{"GET", "/nope", 404, "text/plain; charset=utf-8", "404 page not found\n"},
		{"POST", "/healthz", 405, "text/plain; charset=utf-8", "Method Not Allowed\n"},
	} {
		code, h, body := get(t, c, tc.method, base+tc.path)
		if code != tc.code || h.Get("Content-Type") != tc.ctype || body != tc.body {
			t.Errorf("%s %s: %d %q %q, want %d %q %q", tc.method, tc.path, code, h.Get("Content-Type"), body, tc.code, tc.ctype, tc.body)
		}
	}

	code, _, body := get(t, c, "GET", base+"/metrics")
	if code != 200 || !strings.Contains(body, "netpulse_test_things_total 3\n") {
		t.Errorf("/metrics: %d %q", code, body)
	}

	mu.Lock()
	notReady = errors.New("no collector connection")
	mu.Unlock()
	code, _, body = get(t, c, "GET", base+"/readyz")
	if code != 503 || body != "not ready: no collector connection\n" {
		t.Errorf("/readyz not ready: %d %q", code, body)
	}

	code, h, body := get(t, c, "GET", base+"/status")
	if code != 200 || h.Get("Content-Type") != "application/json" {
		t.Fatalf("/status: %d %q", code, h.Get("Content-Type"))
	}
	var got Status
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	want, _ := goldenStatus()
	if g, w := mustJSON(t, &got), mustJSON(t, want); g != w {
		t.Errorf("/status:\n%s\nwant:\n%s", g, w)
	}
	if time.Since(start) > 4*time.Second {
		t.Errorf("HTTP waited for the sniff window")
	}
	if st := s.Stats(); st.HTTPConns != 1 {
		t.Errorf("keep-alive: %d HTTP connections, want 1", st.HTTPConns)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestStatusJSONNames pins the JSON field names, which monitors depend on.
func TestStatusJSONNames(t *testing.T) {
	s := startServer(t, Config{}, testDeps())
	_, _, body := get(t, httpClient(t, false), "GET", "http://"+s.Addr().String()+"/status")
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"problem", "devices", "unregistered", "proxy_name", "version", "listen", "started"}
	if g, w := keys(m), strings.Join(want, ","); g != w {
		t.Errorf("status keys %s, want %s", g, w)
	}
	dev := m["devices"].([]any)[0].(map[string]any)
	want = []string{"id", "name", "tag", "target", "in1", "out1", "in15", "out15", "last_seen", "sources", "highwater", "flow_type"}
	if g, w := keys(dev), strings.Join(want, ","); g != w {
		t.Errorf("device keys %s, want %s", g, w)
	}
	un := m["unregistered"].([]any)[0].(map[string]any)
	if g := keys(un); g != "addr,first_seen" {
		t.Errorf("unregistered keys %s", g)
	}

	// An empty status has lists, not nulls, and a GOOD has an empty problem.
	s2 := startServer(t, Config{}, Deps{Status: func() *Status { return &Status{} }})
	_, _, body = get(t, httpClient(t, false), "GET", "http://"+s2.Addr().String()+"/status")
	if want := "{\n  \"problem\": \"\",\n  \"devices\": [],\n  \"unregistered\": []\n}\n"; body != want {
		t.Errorf("empty status %q, want %q", body, want)
	}
}

// keys returns m's keys in the order the JSON had them... which a map
// loses, so in the order of a known list.
func keys(m map[string]any) string {
	order := []string{"problem", "devices", "unregistered", "proxy_name", "version", "listen", "started", "warnings",
		"id", "name", "tag", "target", "in1", "out1", "in15", "out15", "last_seen", "sources", "highwater", "flow_type",
		"addr", "first_seen"}
	var out []string
	for _, k := range order {
		if _, ok := m[k]; ok {
			out = append(out, k)
		}
	}
	if len(out) != len(m) {
		return "unknown keys in " + mustJSONString(m)
	}
	return strings.Join(out, ",")
}

func mustJSONString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestServerReadyFromStatus checks the default readiness: no Problem.
func TestServerReadyFromStatus(t *testing.T) {
	s := startServer(t, Config{}, Deps{Status: func() *Status { return &Status{Problem: "collector down"} }})
	code, _, body := get(t, httpClient(t, false), "GET", "http://"+s.Addr().String()+"/readyz")
	if code != 503 || body != "not ready: collector down\n" {
		t.Errorf("got %d %q", code, body)
	}
	code, _, _ = get(t, httpClient(t, false), "GET", "http://"+s.Addr().String()+"/metrics")
	if code != 404 {
		t.Errorf("/metrics without a Gatherer: %d, want 404", code)
	}
}

func TestServerKeepAlive(t *testing.T) {
	s := startServer(t, Config{}, testDeps())
	c := httpClient(t, true)
	reused := 0
	for range 3 {
		req, _ := http.NewRequest("GET", "http://"+s.Addr().String()+"/healthz", nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) {
				if i.Reused {
					reused++
				}
			},
		}))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if reused != 2 {
		t.Errorf("%d of 3 requests reused the connection, want 2", reused)
	}
}

// TestServerHangingClients fills every slot with clients that send a
// little and hang; the server frees the slots by its deadlines and
// serves the next client.
func TestServerHangingClients(t *testing.T) {
	s := startServer(t, Config{MaxConns: 3, IOTimeout: 200 * time.Millisecond}, testDeps())
	addr := s.Addr().String()
	for _, send := range []string{"G", "GET / HTTP/1.1\r\nHost: x\r\n", "\x00"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, send); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	got, err := rawClient(addr, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if got != goldenText() {
		t.Errorf("got %q", got)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("waited %v behind hanging clients", d)
	}

	// A client that sent one byte and hangs does not block others while
	// slots are free.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "H"); err != nil {
		t.Fatal(err)
	}
	code, _, _ := get(t, httpClient(t, false), "GET", "http://"+addr+"/healthz")
	if code != 200 {
		t.Errorf("/healthz: %d", code)
	}
}

func TestServerManyClients(t *testing.T) {
	s := startServer(t, Config{MaxConns: 8}, testDeps())
	addr := s.Addr().String()
	c := httpClient(t, false)
	const n = 60
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 3 {
			case 0:
				got, err := rawClient(addr, "", false)
				if err == nil && got != goldenText() {
					err = errors.New("wrong text from silent client")
				}
				errs <- err
			case 1:
				got, err := rawClient(addr, "", true)
				if err == nil && got != goldenText() {
					err = errors.New("wrong text from half-closing client")
				}
				errs <- err
			case 2:
				resp, err := c.Get("http://" + addr + "/")
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && (resp.StatusCode != 200 || string(b) != goldenText()) {
					err = errors.New("wrong HTTP answer: " + resp.Status)
				}
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if st := s.Stats(); st.TextConns != 2*n/3 || st.HTTPConns != n/3 || st.Errors != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestServerStop(t *testing.T) {
	s, err := New(Config{Listen: "127.0.0.1:0"}, testDeps())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Errorf("Stop before Start: %v", err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr().String()

	// An idle keep-alive connection and a client lingering after its text
	// must not hold Stop up.
	c := httpClient(t, true)
	if code, _, _ := get(t, c, "GET", "http://"+addr+"/healthz"); code != 200 {
		t.Fatal(code)
	}
	lingerer, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer lingerer.Close()
	if _, err := io.WriteString(lingerer, "x"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := lingerer.Read(buf); err != nil { // the text has started
		t.Fatal(err)
	}

	start := time.Now()
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Stop took %v", d)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Error("still listening after Stop")
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Config{}, Deps{}); err == nil || !strings.Contains(err.Error(), "Status") {
		t.Errorf("no Status: %v", err)
	}
	if _, err := New(Config{Listen: "9996"}, testDeps()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("bad listen: %v", err)
	}
	s, err := New(Config{}, testDeps())
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg != DefaultConfig() {
		t.Errorf("zero config filled as %+v, want %+v", s.cfg, DefaultConfig())
	}
	if s.Addr() != nil {
		t.Error("Addr before Start")
	}
}

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		in         string
		http, more bool
	}{
		{"", false, true},
		{"G", false, true},
		{"GET", false, true},
		{"GET ", true, false},
		{"GET / HTTP/1.1\r\n", true, false},
		{"HEAD /x", true, false},
		{"OPTIONS", false, true},
		{"OPTIONS *", true, false},
		{"GETX", false, false},
		{"get /", false, false},
		{"\n", false, false},
		{"\x16\x03\x01", false, false}, // TLS
	} {
		if h, m := sniff([]byte(tc.in)); h != tc.http || m != tc.more {
			t.Errorf("sniff(%q) = %v, %v; want %v, %v", tc.in, h, m, tc.http, tc.more)
		}
	}
}

// TestServerCollector serves the server's own counters on its /metrics.
func TestServerCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	deps := testDeps()
	deps.Gatherer = reg
	s := startServer(t, Config{}, deps)
	reg.MustRegister(s)
	addr := s.Addr().String()
	if _, err := rawClient(addr, "", true); err != nil {
		t.Fatal(err)
	}
	_, _, body := get(t, httpClient(t, false), "GET", "http://"+addr+"/metrics")
	for _, want := range []string{
		`netpulse_health_connections_total{mode="text"} 1`,
		`netpulse_health_connections_total{mode="http"} 1`,
		`netpulse_health_connection_errors_total 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Listen: "localhost"}, "health.listen"},
		{Config{SniffTimeout: -1}, "health.sniff_timeout"},
		{Config{MaxConns: -1}, "health.max_conns"},
		{Config{IOTimeout: -1}, "health.io_timeout"},
		{Config{IdleTimeout: -1}, "health.idle_timeout"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error naming %s", tc.cfg, err, tc.want)
		}
		if _, err := New(tc.cfg, testDeps()); err == nil {
			t.Errorf("New(%+v) accepted", tc.cfg)
		}
	}
}
