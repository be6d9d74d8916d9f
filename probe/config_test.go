package probe

import (
	"strings"
	"testing"
	"time"
)

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte("log:\n  level: debug\nprobe:\n  vp: \"001\"\n  output_dir: /var/lib/netpulse/probe\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Targets) != 13 || c.Targets[0].Name != "a.root-servers.net" || c.Targets[12].IPv6 != "2001:dc3::35" || c.Targets[5].Port != 53 {
		t.Errorf("default targets %+v", c.Targets)
	}
	if c.Interval != 5*time.Minute || c.MaxDelay != time.Minute || c.Timeout != 4*time.Second || c.Concurrency != 13 {
		t.Errorf("schedule defaults %v %v %v %d", c.Interval, c.MaxDelay, c.Timeout, c.Concurrency)
	}
	if c.Alerts.File != "/var/lib/netpulse/probe/001-alerts.txt" || c.Alerts.DiskUsed != 0.8 || c.Alerts.CheckAfter != 4*time.Minute ||
		c.Alerts.UploadOverdue != 15*time.Minute || c.Traceroute.Method != "auto" || c.Listen != "127.0.0.1:9155" || len(c.TLDs) != len(DefaultTLDs()) {
		t.Errorf("defaults %+v", c)
	}
	// The defaults are a copy: changing one configuration's targets does
	// not change the next one's.
	c.Targets[0].Name = "changed"
	if RootServers()[0].Name != "a.root-servers.net" {
		t.Error("the root server list is shared")
	}
}

func TestParseTargets(t *testing.T) {
	c, err := Parse([]byte(`
probe:
  vp: vp-7
  output_dir: /tmp/p
  targets:
    - {name: ns1.example, ipv4: 192.0.2.1, ipv6: "2001:db8::1"}
    - {name: ns2.example, ipv6: "2001:db8::2", port: 5353}
  tlds: [example, test]
  traceroute: {method: scamper, max_hops: 20}
  max_delay: -1s
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Targets) != 2 || c.Targets[0].Port != 53 || c.Targets[1].Port != 5353 || len(c.Targets[1].addrs()) != 1 {
		t.Errorf("targets %+v", c.Targets)
	}
	if strings.Join(c.TLDs, ",") != "example,test" || c.Traceroute.MaxHops != 20 || c.Traceroute.Attempts != 2 || c.MaxDelay != 0 {
		t.Errorf("%+v", c)
	}
}

func TestParseErrors(t *testing.T) {
	base := "probe:\n  vp: \"001\"\n  output_dir: /tmp/p\n"
	for _, tc := range []struct{ yaml, want string }{
		{"log: {}\n", "no probe: section"},
		{base + "  intervall: 5m\n", "field intervall not found"},
		{base + "  targets: [{name: x, ipv4: 192.0.2.1, porrt: 53}]\n", "field porrt not found"},
		{"probe:\n  output_dir: /tmp/p\n", "vp"},
		{"probe:\n  vp: a/b\n  output_dir: /tmp/p\n", "vp"},
		{"probe:\n  vp: \"001\"\n", "output_dir"},
		{base + "  interval: 7m\n", "multiple of 5m"},
		{base + "  max_delay: 5m\n", "max_delay"},
		{base + "  targets: [{name: x, ipv4: \"2001:db8::1\"}]\n", "not an IPv4 address"},
		{base + "  targets: [{name: x, ipv6: 192.0.2.1}]\n", "not an IPv6 address"},
		{base + "  targets: [{name: x}]\n", "give ipv4, ipv6 or both"},
		{base + "  targets: [{name: x, ipv4: 192.0.2.1}, {name: x, ipv4: 192.0.2.2}]\n", "used twice"},
		{base + "  targets: [{name: x, ipv4: 192.0.2.1, port: 70000}]\n", "port 70000"},
		{base + "  tlds: [co.uk]\n", "tlds[0]"},
		{base + "  traceroute: {method: mtr}\n", "traceroute.method"},
		{base + "  alerts: {check_after: 30s}\n", "check_after"},
		{base + "  alerts: {disk_used: 80}\n", "disk_used"},
		{base + "  listen: 9155\n", "listen"},
		{base + "  upload: {url: \"http://collector.example:8080\", token_file: /dev/null}\n", "plain http"},
		{base + "  upload: {url: \"https://c.example\", token_file: /nonexistent/token}\n", "token_file"},
		{base + "  upload: {url: \"https://c.example\", retry: 1m, max_retry: 10s}\n", ""},
		{base + "  alerts: {syslog: {address: \"127.0.0.1:514\", transport: carrier-pigeon}}\n", "alerts.syslog.transport"},
		{base + "  timeout: 2h\n", "timeout"},
	} {
		t.Setenv(TokenEnv, "")
		if tc.want == "" {
			t.Setenv(TokenEnv, "x")
			tc.want = "max_retry"
		}
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to mention %q", tc.yaml, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("probe:\n  vp: \"001\"\n  output_dir: /tmp/p\n"))
	f.Add([]byte("probe:\n  vp: x\n  output_dir: /o\n  targets: [{name: a, ipv4: 192.0.2.1, ipv6: \"::1\", port: 1}]\n  interval: 10m\n"))
	f.Add([]byte("probe: [1, 2]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		// What parses is valid and has what a run needs.
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed but invalid: %v", err)
		}
		for _, tg := range c.Targets {
			if len(tg.addrs()) == 0 {
				t.Fatalf("target %q without an address", tg.Name)
			}
		}
	})
}
