// Package testdns starts a real authoritative DNS server (NSD, from
// Debian) on loopback for tests, with the zones a test gives it.
package testdns

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netpulse/netpulse/internal/integration"
)

// freePort returns a port free for both UDP and TCP on 127.0.0.1 now.
func freePort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 20; i++ {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		u.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// StartNSD serves zones (origin -> zone file text) from NSD on
// 127.0.0.1 and returns its address. The server stops when the test ends.
func StartNSD(t testing.TB, zones map[string]string) string {
	t.Helper()
	bin := integration.Tool(t, "nsd")
	dir := t.TempDir()
	port := freePort(t)
	var conf strings.Builder
	fmt.Fprintf(&conf, `server:
  ip-address: 127.0.0.1@%d
  port: %d
  zonesdir: %q
  pidfile: %q
  xfrdfile: %q
  zonelistfile: %q
  database: ""
  username: ""
  chroot: ""
  logfile: %q
  do-ip6: no
  verbosity: 1
remote-control:
  control-enable: no
`, port, port, dir, filepath.Join(dir, "nsd.pid"), filepath.Join(dir, "xfrd.state"),
		filepath.Join(dir, "zone.list"), filepath.Join(dir, "nsd.log"))
	for origin, text := range zones {
		file := strings.TrimSuffix(origin, ".") + ".zone"
		if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&conf, "zone:\n  name: %q\n  zonefile: %q\n", origin, file)
	}
	cfg := filepath.Join(dir, "nsd.conf")
	if err := os.WriteFile(cfg, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-d", "-c", cfg)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("nsd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// Ready when it answers the first zone's SOA.
	var origin string
	for o := range zones {
		origin = o
		break
	}
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(origin), dns.TypeSOA)
		if r, _, err := c.Exchange(m, addr); err == nil && r.Rcode == dns.RcodeSuccess {
			return addr
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "nsd.log"))
	t.Fatalf("nsd did not answer on %s:\n%s", addr, log)
	return ""
}
