package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netpulse/netpulse/internal/integration"
	"github.com/netpulse/netpulse/tcpstats"
)

func TestTCPStatsConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	typo := write("typo.yaml", "tcpstats:\n  interfaces: [eth0]\n  filtr: tcp\n")
	badFilter := write("filter.yaml", "tcpstats:\n  filter: tcp prot 80\n")
	good := write("good.yaml", "tcpstats:\n  max_flows: 1\n  filter: tcp port 5001\n")
	rst := filepath.Join("..", "..", "testdata", "tcp", "rst4.pcap")
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"config", "check", typo}, 1, "line 3: unknown key filtr"},
		{[]string{"config", "check", badFilter}, 1, `tcpstats.filter: filter "tcp prot 80": col 5`},
		{[]string{"config", "check", good}, 0, "ok"},
		{[]string{"config", "defaults"}, 0, "tcpstats:\n    interfaces: []\n    filter: \"\"\n"},
		{[]string{"tcpstats", "-config", typo, "--read", rst}, 2, "unknown key filtr"},
		{[]string{"tcpstats", "--filter", "tcp prot 80", "--interface", "lo"}, 2, "col 5"},
		{[]string{"tcpstats", "--service-ports", "80,x", "--read", rst}, 2, "want comma-separated port numbers"},
		{[]string{"tcpstats", "--read", rst, "--interface", "lo"}, 2, "exclude each other"},
		// The file's interfaces are for live capture: --read ignores them.
		{[]string{"tcpstats", "-config", write("live.yaml", "tcpstats:\n  interfaces: [lo]\n"), "--read", rst}, 0, "reset"},
	} {
		var out, errs bytes.Buffer
		code := run(tc.args, &out, &errs)
		if code != tc.code || !strings.Contains(out.String()+errs.String(), tc.out) {
			t.Errorf("%v: exit %d, output %q; want %d and %q", tc.args, code, out.String()+errs.String(), tc.code, tc.out)
		}
	}
	// max_flows 1 from the file reaches --read: rst4.pcap's connection
	// table holds one flow at a time; the flags still win over the file.
	a, err := tcpstatsSettings([]string{"-config", good, "--max-flows", "5", rst}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if a.cfg.MaxFlows != 5 || a.cfg.Filter != "tcp port 5001" || len(a.read) != 1 {
		t.Errorf("settings: %+v", a)
	}
}

// TestTCPStatsReload runs the command's reload path on a live capture:
// the file is edited, the flags given at start still win, and the
// running capture takes the new service ports.
func TestTCPStatsReload(t *testing.T) {
	if os.Geteuid() != 0 {
		integration.Missing(t, "live capture needs root (CAP_NET_RAW)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	path := filepath.Join(t.TempDir(), "tcpstats.yaml")
	os.WriteFile(path, []byte("tcpstats:\n  interfaces: [lo]\n  service_ports: [22]\n  filter: tcp\n"), 0o644)
	args := []string{"-config", path, "--listen", "127.0.0.1:0", "--filter", "tcp port " + strconv.Itoa(port)}
	a, err := tcpstatsSettings(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tcpstats.NewLive(a.cfg.Live())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	os.WriteFile(path, []byte("tcpstats:\n  interfaces: [lo]\n  service_ports: [22, "+strconv.Itoa(port)+"]\n  filter: udp\n"), 0o644)
	if err := tcpstatsReload(l, args); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write(make([]byte, 777))
	c.Close()
	want := `netpulse_tcpstats_payload_bytes_total{direction="to_server",interface="lo",service="` + strconv.Itoa(port) + `"} 777`
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + l.Addr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), want) {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no %q after the reload (the --filter flag must still win over the file's udp)", want)
		}
	}
	// A file that no longer parses keeps the running configuration.
	os.WriteFile(path, []byte("tcpstats:\n  interfacs: [lo]\n"), 0o644)
	if err := tcpstatsReload(l, args); err == nil || !strings.Contains(err.Error(), "unknown key interfacs") {
		t.Errorf("bad file: %v", err)
	}
}
