package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// WebhookConfig configures a Webhook sender. A zero value in any field
// but Retries takes the default shown.
type WebhookConfig struct {
	// URL receives each event as a JSON POST (http or https). Required.
	URL string `yaml:"url"`
	// Timeout bounds one attempt, connection to response. Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how many times a failed POST (network error, 408, 429
	// or 5xx) is tried again; other 4xx are not. Default 3; 0 is no
	// retry.
	Retries int `yaml:"retries"`
	// Backoff is the wait before the first retry, doubled for each next
	// one. Default 1s.
	Backoff time.Duration `yaml:"backoff"`
	// Queue is how many events wait for delivery; more are dropped and
	// counted. Default 256.
	Queue int `yaml:"queue"`
}

// DefaultWebhookConfig returns the documented defaults, without a URL.
func DefaultWebhookConfig() WebhookConfig {
	return WebhookConfig{Timeout: 5 * time.Second, Retries: 3, Backoff: time.Second, Queue: 256}
}

func (c WebhookConfig) withDefaults() WebhookConfig {
	d := DefaultWebhookConfig()
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.Backoff == 0 {
		c.Backoff = d.Backoff
	}
	if c.Queue == 0 {
		c.Queue = d.Queue
	}
	return c
}

// Validate checks the configuration. Errors name the key under
// "webhook.".
func (c WebhookConfig) Validate() error {
	if c.URL == "" {
		return errors.New("webhook.url: empty: set the http(s) URL that receives the events")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("webhook.url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("webhook.url: %q: want http(s)://host/path", c.URL)
	}
	for _, v := range []struct {
		key string
		bad bool
	}{
		{"timeout", c.Timeout < 0}, {"retries", c.Retries < 0}, {"backoff", c.Backoff < 0}, {"queue", c.Queue < 0},
	} {
		if v.bad {
			return fmt.Errorf("webhook.%s: must not be negative", v.key)
		}
	}
	return nil
}

// Webhook posts events as JSON (Event's fields: time, severity, msgid,
// message, sd, payload) from a worker goroutine, retrying with a backoff.
type Webhook struct {
	cfg    WebhookConfig
	deps   Deps
	client *http.Client

	mu      sync.RWMutex // orders Send against Stop, as in Syslog
	started bool
	stopped bool
	queue   chan []byte
	quit    chan struct{}
	done    chan struct{}
	ctx     context.Context
	abort   context.CancelFunc

	sent, dropped, failed, errs atomic.Uint64
	failing                     bool // worker-owned: a warning was logged
}

// NewWebhook builds a sender; Start starts its worker.
func NewWebhook(cfg WebhookConfig, deps Deps) (*Webhook, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &Webhook{cfg: cfg, deps: deps, client: deps.HTTPClient,
		queue: make(chan []byte, cfg.Queue), quit: make(chan struct{}), done: make(chan struct{})}
	if w.client == nil {
		w.client = &http.Client{}
	}
	w.ctx, w.abort = context.WithCancel(context.Background())
	return w, nil
}

// Start starts the worker.
func (w *Webhook) Start(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started || w.stopped {
		return errors.New("webhook: already started")
	}
	w.started = true
	go w.run()
	return nil
}

// Send marshals ev and queues it; when the queue is full it drops it and
// counts the drop.
func (w *Webhook) Send(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = w.deps.now()
	}
	body, err := json.Marshal(ev)
	if err != nil {
		w.failed.Add(1)
		w.deps.log().Error("webhook: event does not marshal to JSON, not sent", "msgid", ev.MsgID, "err", err)
		return
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.stopped {
		w.dropped.Add(1)
		return
	}
	select {
	case w.queue <- body:
	default:
		w.dropped.Add(1)
	}
}

// Stop delivers the queued events until ctx ends, then aborts the POST in
// flight, drops the rest and returns an error that counts them.
func (w *Webhook) Stop(ctx context.Context) error {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return nil
	}
	w.stopped = true
	started := w.started
	w.mu.Unlock()
	before := w.dropped.Load()
	var err error
	if started {
		close(w.quit)
		select {
		case <-w.done:
		case <-ctx.Done():
			w.abort()
			<-w.done
			err = ctx.Err()
		}
	}
	w.abort()
	for range len(w.queue) {
		<-w.queue
		w.dropped.Add(1)
	}
	if err != nil {
		return fmt.Errorf("webhook %s: %d events not delivered: %w", w.cfg.URL, w.dropped.Load()-before, err)
	}
	return nil
}

// Stats returns the counts so far.
func (w *Webhook) Stats() Stats {
	return Stats{Sent: w.sent.Load(), Dropped: w.dropped.Load(), Failed: w.failed.Load(), Errors: w.errs.Load()}
}

func (w *Webhook) run() {
	defer close(w.done)
	for {
		var body []byte
		select {
		case body = <-w.queue:
		case <-w.quit:
			select {
			case body = <-w.queue:
			default:
				return
			}
		}
		if w.ctx.Err() != nil {
			w.dropped.Add(1)
			return
		}
		w.deliver(body)
	}
}

// deliver posts one event, with retries; it counts the outcome.
func (w *Webhook) deliver(body []byte) {
	delay := w.cfg.Backoff
	var err error
	for attempt := 0; ; attempt++ {
		var retry bool
		retry, err = w.post(body)
		if err == nil {
			w.sent.Add(1)
			if w.failing {
				w.failing = false
				w.deps.log().Info("webhook: delivering again", "url", w.cfg.URL)
			}
			return
		}
		if w.ctx.Err() != nil {
			w.dropped.Add(1) // Stop gave up on it
			return
		}
		w.errs.Add(1)
		if !retry || attempt >= w.cfg.Retries {
			break
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
			w.dropped.Add(1)
			return
		}
		delay *= 2
	}
	w.failed.Add(1)
	if !w.failing {
		w.failing = true
		w.deps.log().Warn("webhook: event not delivered; further failures are counted, not logged, until one succeeds",
			"url", w.cfg.URL, "err", err)
	}
}

// post makes one attempt; retry says whether another may succeed.
func (w *Webhook) post(body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(w.ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "netpulse-alert")
	resp, err := w.client.Do(req)
	if err != nil {
		return true, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // reuse the connection
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c/100 == 2:
		return false, nil
	case c == http.StatusRequestTimeout, c == http.StatusTooManyRequests, c/100 == 5:
		return true, fmt.Errorf("status %s", resp.Status)
	default:
		return false, fmt.Errorf("status %s", resp.Status)
	}
}
