package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRSSACReportCommand: the command asks the collector's report API
// with the operator's token and the period, prints one format, or writes
// both with -out; bad periods never reach the network.
func TestRSSACReportCommand(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer op-token" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		asked = append(asked, r.URL.Path+"?"+r.URL.RawQuery)
		if r.URL.Query().Get("format") == "json" {
			w.Write([]byte(`{"name":"2026-10"}`))
			return
		}
		w.Write([]byte("# RSSAC047 report\n"))
	}))
	defer srv.Close()
	t.Setenv("NETPULSE_API_TOKEN", "op-token")
	var out, errb bytes.Buffer
	if code := run([]string{"rssac", "report", "-month", "2026-10", "-api", srv.URL}, &out, &errb); code != 0 || out.String() != "# RSSAC047 report\n" {
		t.Fatalf("exit %d, out %q, err %q", code, out.String(), errb.String())
	}
	dir := t.TempDir()
	out.Reset()
	if code := run([]string{"rssac", "report", "-week", "2026-W44", "-out", dir, "-api", srv.URL}, &out, &errb); code != 0 {
		t.Fatalf("-out: exit %d, %s", code, errb.String())
	}
	md, _ := os.ReadFile(filepath.Join(dir, "rssac-2026-W44.md"))
	js, _ := os.ReadFile(filepath.Join(dir, "rssac-2026-W44.json"))
	if !strings.HasPrefix(string(md), "# RSSAC047") || !strings.HasPrefix(string(js), "{") {
		t.Errorf("files: %q, %q", md, js)
	}
	want := []string{"/api/v1/rssac/report?format=markdown&month=2026-10", "/api/v1/rssac/report?format=markdown&week=2026-W44", "/api/v1/rssac/report?format=json&week=2026-W44"}
	if strings.Join(asked, " ") != strings.Join(want, " ") {
		t.Errorf("asked %v, want %v", asked, want)
	}
	for _, args := range [][]string{
		{"rssac"},
		{"rssac", "report"},
		{"rssac", "report", "-month", "2026-13", "-api", srv.URL},
		{"rssac", "report", "-month", "2026-10", "-week", "2026-W44", "-api", srv.URL},
		{"rssac", "report", "-month", "2026-10", "-format", "xml", "-api", srv.URL},
	} {
		errb.Reset()
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
	if len(asked) != 3 {
		t.Errorf("bad invocations reached the server: %v", asked[3:])
	}
	t.Setenv("NETPULSE_API_TOKEN", "wrong")
	if code := run([]string{"rssac", "report", "-month", "2026-10", "-api", srv.URL}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "401") {
		t.Errorf("wrong token: exit %d, %s", code, errb.String())
	}
}
