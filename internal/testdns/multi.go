package testdns

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/internal/syncbuf"

	"github.com/miekg/dns"

	"github.com/netpulse/netpulse/internal/integration"
)

// ServerSpec describes one authoritative server for StartServers.
type ServerSpec struct {
	// Software is "nsd" (the default) or "knot" (knotd).
	Software string
	// Zones maps each origin ("." for a root zone) to its zone file text.
	Zones map[string]string
	// NSID, when set, is the NSID (RFC 5001) the server returns, as text.
	NSID string
	// IPv6 makes the server listen on ::1 too, on the same port as on
	// its IPv4 address.
	IPv6 bool
	// XFR allows zone transfers (AXFR) from 127.0.0.0/8 and ::1 without
	// a key.
	XFR bool
}

// Server is one running authoritative server of StartServers.
type Server struct {
	// IPv4 is its own loopback address, 127.0.0.x; IPv6 is "::1" or "".
	IPv4, IPv6 string
	// Port is its DNS port (UDP and TCP) on both addresses.
	Port int
	// NSID is the NSID it answers with, "" when none.
	NSID string
	// Software is "nsd" or "knot".
	Software string

	dir  string
	cmd  *exec.Cmd
	once sync.Once
	done chan struct{}
	log  syncbuf.Buffer // the server's output
}

// Addr is the server's IPv4 host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.IPv4, strconv.Itoa(s.Port)) }

// Stop kills the server and waits for it to exit: afterwards TCP
// connections to it are refused and UDP queries get ICMP port
// unreachable. It is safe to call twice; the test's cleanup calls it too.
func (s *Server) Stop() {
	s.once.Do(func() {
		s.cmd.Process.Kill()
		<-s.done
	})
}

// StartServers starts one server per spec, each on its own 127.0.0.x
// address (x random, so that parallel tests rarely meet) and its own
// port, and waits until each answers the SOA of every zone it serves.
// The servers stop when the test ends.
func StartServers(t testing.TB, specs ...ServerSpec) []*Server {
	t.Helper()
	used := map[string]bool{}
	out := make([]*Server, 0, len(specs))
	for i, spec := range specs {
		if len(spec.Zones) == 0 {
			t.Fatalf("testdns: server %d: no zones", i)
		}
		sw := spec.Software
		if sw == "" {
			sw = "nsd"
		}
		var ip string
		for {
			ip = fmt.Sprintf("127.0.0.%d", 2+rand.IntN(250))
			if !used[ip] {
				used[ip] = true
				break
			}
		}
		ips := []string{ip}
		if spec.IPv6 {
			if !loopback6() {
				t.Fatal("testdns: ::1 is not usable on this machine")
			}
			ips = append(ips, "::1")
		}
		s := &Server{IPv4: ip, Port: freePortOn(t, ips...), NSID: spec.NSID, Software: sw, dir: t.TempDir(), done: make(chan struct{})}
		if spec.IPv6 {
			s.IPv6 = "::1"
		}
		var args []string
		switch sw {
		case "nsd":
			args = s.nsdConfig(t, spec, integration.Tool(t, "nsd"))
		case "knot":
			args = s.knotConfig(t, spec, integration.Tool(t, "knotd"))
		default:
			t.Fatalf("testdns: software %q: want nsd or knot", sw)
		}
		s.cmd = exec.Command(args[0], args[1:]...)
		s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
		if err := s.cmd.Start(); err != nil {
			t.Fatalf("testdns: %s: %v", sw, err)
		}
		go func() { s.cmd.Wait(); close(s.done) }()
		t.Cleanup(s.Stop)
		for _, a := range ips {
			for origin := range spec.Zones {
				s.waitReady(t, net.JoinHostPort(a, strconv.Itoa(s.Port)), origin)
			}
		}
		out = append(out, s)
	}
	return out
}

// loopback6 reports whether ::1 can be bound.
func loopback6() bool {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// Loopback6 reports whether this machine has a usable ::1, for tests to
// skip their IPv6 part with a clear message when it has not.
func Loopback6() bool { return loopback6() }

// freePortOn returns a port free for UDP and TCP on every one of ips.
func freePortOn(t testing.TB, ips ...string) int {
	t.Helper()
	for range 50 {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ips[0])})
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		ok := true
		var closers []func() error
		closers = append(closers, u.Close)
		for j, ip := range ips {
			hp := net.JoinHostPort(ip, strconv.Itoa(port))
			if j > 0 {
				c, err := net.ListenPacket("udp", hp)
				if err != nil {
					ok = false
					break
				}
				closers = append(closers, c.Close)
			}
			l, err := net.Listen("tcp", hp)
			if err != nil {
				ok = false
				break
			}
			closers = append(closers, l.Close)
		}
		for _, c := range closers {
			c()
		}
		if ok {
			return port
		}
	}
	t.Fatal("testdns: no free port")
	return 0
}

func (s *Server) listenAddrs() []string {
	a := []string{s.IPv4}
	if s.IPv6 != "" {
		a = append(a, s.IPv6)
	}
	return a
}

// writeZones writes the zone files into the server's folder and returns
// origin -> file name.
func (s *Server) writeZones(t testing.TB, zones map[string]string) map[string]string {
	t.Helper()
	files := map[string]string{}
	for origin, text := range zones {
		name := strings.TrimSuffix(origin, ".")
		if name == "" {
			name = "root"
		}
		file := name + ".zone"
		if err := os.WriteFile(filepath.Join(s.dir, file), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		files[origin] = file
	}
	return files
}

func (s *Server) nsdConfig(t testing.TB, spec ServerSpec, bin string) []string {
	t.Helper()
	var c strings.Builder
	fmt.Fprintf(&c, "server:\n")
	for _, a := range s.listenAddrs() {
		fmt.Fprintf(&c, "  ip-address: %s@%d\n", a, s.Port)
	}
	ip6 := "no"
	if s.IPv6 != "" {
		ip6 = "yes"
	}
	fmt.Fprintf(&c, `  port: %d
  do-ip4: yes
  do-ip6: %s
  server-count: 1
  zonesdir: %q
  pidfile: %q
  xfrdfile: %q
  zonelistfile: %q
  database: ""
  username: ""
  chroot: ""
  logfile: %q
  verbosity: 1
`, s.Port, ip6, s.dir, filepath.Join(s.dir, "nsd.pid"), filepath.Join(s.dir, "xfrd.state"),
		filepath.Join(s.dir, "zone.list"), filepath.Join(s.dir, "nsd.log"))
	if spec.NSID != "" {
		fmt.Fprintf(&c, "  nsid: %q\n", hex.EncodeToString([]byte(spec.NSID)))
	}
	fmt.Fprintf(&c, "remote-control:\n  control-enable: no\n")
	for origin, file := range s.writeZones(t, spec.Zones) {
		fmt.Fprintf(&c, "zone:\n  name: %q\n  zonefile: %q\n", origin, file)
		if spec.XFR {
			fmt.Fprintf(&c, "  provide-xfr: 127.0.0.0/8 NOKEY\n  provide-xfr: ::1 NOKEY\n")
		}
	}
	conf := filepath.Join(s.dir, "nsd.conf")
	if err := os.WriteFile(conf, []byte(c.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{bin, "-d", "-c", conf}
}

func (s *Server) knotConfig(t testing.TB, spec ServerSpec, bin string) []string {
	t.Helper()
	var c strings.Builder
	fmt.Fprintf(&c, "server:\n  rundir: %q\n  udp-workers: 1\n  tcp-workers: 1\n  background-workers: 1\n", s.dir)
	for _, a := range s.listenAddrs() {
		fmt.Fprintf(&c, "  listen: %q\n", fmt.Sprintf("%s@%d", a, s.Port))
	}
	if spec.NSID != "" {
		fmt.Fprintf(&c, "  nsid: %q\n", spec.NSID)
	}
	fmt.Fprintf(&c, `database:
  storage: %q
log:
  - target: stderr
    any: warning
acl:
  - id: xfr
    address: [127.0.0.0/8, ::1]
    action: transfer
template:
  - id: default
    storage: %q
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
`, filepath.Join(s.dir, "db"), s.dir)
	// Knot warns when its database folder is missing.
	if err := os.MkdirAll(filepath.Join(s.dir, "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	for origin, file := range s.writeZones(t, spec.Zones) {
		fmt.Fprintf(&c, "  - domain: %q\n    file: %q\n", origin, file)
		if spec.XFR {
			fmt.Fprintf(&c, "    acl: xfr\n")
		}
	}
	conf := filepath.Join(s.dir, "knot.conf")
	if err := os.WriteFile(conf, []byte(c.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{bin, "-c", conf}
}

// waitReady waits until addr answers origin's SOA with NOERROR.
func (s *Server) waitReady(t testing.TB, addr, origin string) {
	t.Helper()
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			t.Fatalf("testdns: %s on %s exited:\n%s%s", s.Software, addr, s.log.String(), s.fileLog())
		default:
		}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(origin), dns.TypeSOA)
		if r, _, err := c.Exchange(m, addr); err == nil && r.Rcode == dns.RcodeSuccess {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("testdns: %s did not answer on %s:\n%s%s", s.Software, addr, s.log.String(), s.fileLog())
}

func (s *Server) fileLog() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "nsd.log"))
	return string(b)
}
