package alert

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// hook is a webhook receiver that answers from a script of status codes
// (200 once the script runs out) and keeps the bodies it was sent.
type hook struct {
	mu     sync.Mutex
	script []int
	bodies []string
	block  chan struct{} // when set, requests wait on it
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.block != nil {
		select {
		case <-h.block:
		case <-r.Context().Done():
			return
		}
	}
	b, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	h.bodies = append(h.bodies, string(b))
	code := http.StatusOK
	if len(h.script) > 0 {
		code, h.script = h.script[0], h.script[1:]
	}
	w.WriteHeader(code)
}

func (h *hook) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

func startWebhook(t *testing.T, h *hook, cfg WebhookConfig) *Webhook {
	t.Helper()
	srv := httptest.NewServer(h) // 127.0.0.1
	t.Cleanup(srv.Close)
	cfg.URL = srv.URL + "/alerts"
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Millisecond
	}
	w, err := NewWebhook(cfg, Deps{Log: testLogger(t), Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWebhookPostsJSON(t *testing.T) {
	h := &hook{}
	w := startWebhook(t, h, WebhookConfig{})
	type ifdown struct {
		Exporter string `json:"exporter"`
		IfIndex  int    `json:"ifindex"`
	}
	w.Send(Event{Severity: Warning, MsgID: "ifdown", Message: "down",
		SD:      map[string][]Param{"ifwatch@32473": {{"ifindex", "3"}}},
		Payload: ifdown{"10.0.0.1", 3}})
	stop(t, w)
	bodies := h.got()
	if len(bodies) != 1 {
		t.Fatalf("%d posts", len(bodies))
	}
	want := `{"time":"2024-03-09T14:05:06.123456789+01:00","severity":"warning","msgid":"ifdown","message":"down",` +
		`"sd":{"ifwatch@32473":[{"name":"ifindex","value":"3"}]},"payload":{"exporter":"10.0.0.1","ifindex":3}}`
	if bodies[0] != want {
		t.Errorf("body\n%s\nwant\n%s", bodies[0], want)
	}
	var back Event
	if err := json.Unmarshal([]byte(bodies[0]), &back); err != nil || back.Severity != Warning || !back.Time.Equal(t0) {
		t.Errorf("body does not read back: %+v %v", back, err)
	}
	if st := w.Stats(); st != (Stats{Sent: 1}) {
		t.Errorf("stats %+v", st)
	}
}

func TestWebhookRetries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script []int
		posts  int
		want   Stats
	}{
		{"5xx then ok", []int{500, 503}, 3, Stats{Sent: 1, Errors: 2}},
		{"429 then ok", []int{429}, 2, Stats{Sent: 1, Errors: 1}},
		{"out of retries", []int{500, 500, 500, 500}, 4, Stats{Failed: 1, Errors: 4}},
		{"4xx is not retried", []int{404}, 1, Stats{Failed: 1, Errors: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &hook{script: tc.script}
			w := startWebhook(t, h, WebhookConfig{Retries: 3})
			w.Send(Event{Severity: Info, Message: "m"})
			stop(t, w)
			if n := len(h.got()); n != tc.posts {
				t.Errorf("%d posts, want %d", n, tc.posts)
			}
			if st := w.Stats(); st != tc.want {
				t.Errorf("stats %+v, want %+v", st, tc.want)
			}
		})
	}
}

// TestWebhookSlowServer checks that a hanging receiver fills the queue,
// not the caller's time, and that Stop aborts the request in flight.
func TestWebhookSlowServer(t *testing.T) {
	h := &hook{block: make(chan struct{})}
	defer close(h.block)
	w := startWebhook(t, h, WebhookConfig{Queue: 3, Timeout: time.Minute})
	begin := time.Now()
	for range 10 {
		w.Send(Event{Severity: Info, Message: "m"})
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("10 sends took %s", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := w.Stop(ctx)
	if err == nil || !strings.Contains(err.Error(), "not delivered") {
		t.Errorf("Stop: %v", err)
	}
	st := w.Stats()
	if st.Sent != 0 || st.Dropped != 10 {
		t.Errorf("stats %+v, want all 10 dropped", st)
	}
}

func TestWebhookConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  WebhookConfig
		want string
	}{
		{WebhookConfig{}, "webhook.url: empty"},
		{WebhookConfig{URL: "ftp://h/x"}, "webhook.url"},
		{WebhookConfig{URL: "http:///x"}, "webhook.url"},
		{WebhookConfig{URL: "https://h/x", Retries: -1}, "webhook.retries"},
		{WebhookConfig{URL: "https://h/x", Timeout: -1}, "webhook.timeout"},
	} {
		if _, err := NewWebhook(tc.cfg, Deps{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	w, err := NewWebhook(WebhookConfig{URL: "https://h/x"}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if w.cfg.Timeout != 5*time.Second || w.cfg.Retries != 0 || cap(w.queue) != 256 {
		t.Errorf("defaults %+v", w.cfg)
	}
}

func TestWebhookUnmarshalablePayload(t *testing.T) {
	h := &hook{}
	w := startWebhook(t, h, WebhookConfig{})
	w.Send(Event{Severity: Info, Payload: make(chan int)})
	stop(t, w)
	if st := w.Stats(); st != (Stats{Failed: 1}) || len(h.got()) != 0 {
		t.Errorf("stats %+v, posts %d", st, len(h.got()))
	}
}
