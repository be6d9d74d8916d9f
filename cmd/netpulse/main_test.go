package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSubcommands(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("log:\n  levle: debug\n"), 0o644)
	good := filepath.Join(t.TempDir(), "good.yaml")
	os.WriteFile(good, []byte("log:\n  level: debug\nproxy:\n  port: 2055\n"), 0o644)
	probeGood := filepath.Join(t.TempDir(), "probe.yaml")
	os.WriteFile(probeGood, []byte("probe:\n  vp: \"001\"\n  output_dir: /var/lib/netpulse/probe\n"), 0o644)
	probeBad := filepath.Join(t.TempDir(), "probe-bad.yaml")
	os.WriteFile(probeBad, []byte("probe:\n  vp: \"001\"\n  outptu_dir: x\n"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"version"}, 0, "netpulse "},
		{[]string{"collector"}, 2, "usage: netpulse collector"},
		{[]string{"ifwatch"}, 2, "usage: netpulse ifwatch report"},
		{[]string{"probe"}, 2, "usage: netpulse probe"},
		{[]string{"collector", "-config", good}, 2, "proxy_tokens_file is required"},
		{[]string{"run", "extra"}, 2, "usage: netpulse run"},
		{[]string{"tcpstats"}, 2, "usage: netpulse tcpstats"},
		{[]string{"tcpstats", "--format", "json", filepath.Join("..", "..", "testdata", "tcp", "rst4.pcap")}, 0, `"reset": 1`},
		{[]string{"monitor"}, 2, "usage: netpulse monitor"},
		{[]string{"monitor", "-config", good}, 2, "no monitor: section"},
		{[]string{"nosuch"}, 2, "unknown command"},
		{[]string{"config", "check", bad}, 1, "unknown key levle"},
		{[]string{"config", "check", good}, 0, "ok"},
		{[]string{"config", "check", probeGood}, 0, "ok"},
		{[]string{"config", "check", probeBad}, 1, "unknown key outptu_dir"},
		{[]string{"config", "defaults"}, 0, "hold_time"},
		{[]string{"decode"}, 2, "usage"},
		{[]string{"decode", "--format", "tsv", filepath.Join("..", "..", "testdata", "captures", "pmacct-v5.pcap")}, 0, "exporter\tdomain"},
		{[]string{"proxy", "-port", "2055"}, 2, "no sink"},
		{[]string{"proxy", "-null", "extra"}, 2, "unexpected argument"},
	} {
		var out, errs bytes.Buffer
		code := run(tc.args, &out, &errs)
		if code != tc.code || !strings.Contains(out.String()+errs.String(), tc.out) {
			t.Errorf("%v: exit %d, output %q; want %d and %q", tc.args, code, out.String()+errs.String(), tc.code, tc.out)
		}
	}
}

func TestConfigArgs(t *testing.T) {
	got := configArgs([]string{"-port", "1", "-config", "a.yaml", "--config=b.yaml", "-null"})
	if strings.Join(got, " ") != "-config a.yaml --config=b.yaml" {
		t.Errorf("got %v", got)
	}
}
