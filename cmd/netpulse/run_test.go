//go:build cgo

package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/netpulse/netpulse/internal/syncbuf"

	"github.com/netpulse/netpulse/collector"
)

// TestRunDemo is the README's promise: `netpulse run -demo` shows live
// data from every simulated router through the API within a minute, and
// stops cleanly.
func TestRunDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runContext = func() (context.Context, context.CancelFunc) { return ctx, cancel }
	var out, errs syncbuf.Buffer
	dir := t.TempDir()
	done := make(chan int)
	go func() {
		done <- run([]string{"run", "-demo", "-data", dir, "-api", "127.0.0.1:0", "-flow", "127.0.0.1:0", "-log_level", "warn"}, &out, &errs)
	}()
	apiRE := regexp.MustCompile(`API:\s+(http://127\.0\.0\.1:\d+)/api/v1/`)
	tokRE := regexp.MustCompile(`Token:\s+([0-9a-f]{40})`)
	start := time.Now()
	var api, token string
	for api == "" || token == "" {
		select {
		case code := <-done:
			t.Fatalf("run exited with %d: %s %s", code, out.String(), errs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if m := apiRE.FindStringSubmatch(out.String()); m != nil {
			api = m[1]
		}
		if m := tokRE.FindStringSubmatch(out.String()); m != nil {
			token = m[1]
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("no banner: %s %s", out.String(), errs.String())
		}
	}
	var res collector.QueryResponse
	for {
		req, _ := http.NewRequest(http.MethodGet, api+"/api/v1/query?group_by=exporter&from=-5m", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatal(err)
		}
		if len(res.Rows) == 6 {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("after a minute, %d exporters: %s\n%s", len(res.Rows), body, errs.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("data from %d simulated routers after %v", len(res.Rows), time.Since(start).Round(time.Millisecond))
	for _, r := range res.Rows {
		if r.Bytes == 0 || r.Flows == 0 {
			t.Errorf("exporter %v: %+v", r.Keys, r)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop")
	}
}
