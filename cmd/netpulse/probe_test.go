package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/netpulse/netpulse/probe/result"
)

// rootStub answers `. SOA` (and anything else with the SOA in the
// authority section) over UDP and TCP on one loopback port.
func rootStub(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		pc.Close()
		t.Skipf("port %d taken for TCP: %v", port, err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		soa, _ := dns.NewRR(". 86400 IN SOA a.root-servers.net. nstld.verisign-grs.com. 2026112201 1800 900 604800 86400")
		if r.Question[0].Qtype == dns.TypeSOA && r.Question[0].Name == "." {
			m.Answer = []dns.RR{soa}
		} else {
			m.Ns = []dns.RR{soa}
		}
		w.WriteMsg(m)
	})
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		ready := make(chan struct{})
		s.NotifyStartedFunc = func() { close(ready) }
		go s.ActivateAndServe()
		<-ready
		t.Cleanup(func() { s.Shutdown() })
	}
	return port
}

func TestProbeCommand(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	port := rootStub(t)
	good := filepath.Join(dir, "probe.yaml")
	os.WriteFile(good, []byte(fmt.Sprintf(`log:
  level: warn
probe:
  vp: "042"
  output_dir: %s
  listen: none
  targets:
    - {name: a.test, ipv4: 127.0.0.1, port: %d}
  traceroute: {method: "off"}
`, out, port)), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("probe:\n  vp: \"042\"\n  output_dir: /tmp/x\n  intervall: 5m\n"), 0o644)
	badLog := filepath.Join(dir, "badlog.yaml")
	os.WriteFile(badLog, []byte("log:\n  levle: debug\nprobe:\n  vp: \"042\"\n  output_dir: /tmp/x\n"), 0o644)
	defaults := filepath.Join(dir, "defaults.yaml")
	os.WriteFile(defaults, []byte("probe:\n  vp: \"001\"\n  output_dir: /var/lib/netpulse/probe\n"), 0o644)

	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{nil, 2, "usage: netpulse probe"},
		{[]string{"-config", good, "extra"}, 2, "usage: netpulse probe"},
		{[]string{"-config", good, "-check"}, 0, "probe: vp 042, 1 targets (1 addresses), output " + out + ", upload off, ok"},
		{[]string{"-config", defaults, "-check"}, 0, "13 targets (26 addresses)"},
		{[]string{"-config", bad, "-check"}, 2, "field intervall not found"},
		{[]string{"-config", badLog, "-check"}, 2, "field levle not found"},
		{[]string{"-config", filepath.Join(dir, "missing.yaml")}, 2, "no such file"},
	} {
		var o, e bytes.Buffer
		code := cmdProbe(tc.args, &o, &e)
		if code != tc.code || !strings.Contains(o.String()+e.String(), tc.out) {
			t.Errorf("%v: exit %d, output %q; want %d and %q", tc.args, code, o.String()+e.String(), tc.code, tc.out)
		}
	}

	var o, e bytes.Buffer
	if code := cmdProbe([]string{"-config", good, "-once"}, &o, &e); code != 0 {
		t.Fatalf("-once: exit %d\n%s%s", code, o.String(), e.String())
	}
	lines := strings.Split(strings.TrimSpace(o.String()), "\n")
	last := lines[len(lines)-1]
	path := strings.TrimPrefix(last, "wrote ")
	if !strings.HasPrefix(last, "wrote "+out+"/") || !strings.HasSuffix(path, ".json.gz") {
		t.Fatalf("-once output:\n%s", o.String())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	run, err := result.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if run.VP != "042" || len(run.Queries) != 3 || !strings.HasPrefix(run.Software, "netpulse ") {
		t.Errorf("run: vp %s, %d queries, software %q", run.VP, len(run.Queries), run.Software)
	}
	for _, q := range run.Queries {
		if !q.Available() {
			t.Errorf("%s %s %s: not available: %+v", q.Purpose, q.Transport, q.QName, q)
		}
	}
	if !strings.Contains(o.String(), "a.test\t127.0.0.1\tudp4\tsoa\t. SOA\tNOERROR") {
		t.Errorf("-once output lacks the UDP SOA line:\n%s", o.String())
	}
}
