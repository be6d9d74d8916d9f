package probe

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/netpulse/netpulse/internal/integration"
	"github.com/netpulse/netpulse/probe/result"
)

func testTraceConfig() TraceConfig {
	c := DefaultConfig().Traceroute
	c.Wait = 500 * time.Millisecond
	return c
}

// needRoot skips a test that needs raw sockets or namespaces, and fails
// it where integration peers are required (CI runs as root).
func needRoot(t *testing.T, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		integration.Missing(t, what+" needs root (raw sockets)")
	}
}

// loopbackTargets are 127.0.0.x (x random) and, when usable, ::1.
func loopbackTargets() []netip.Addr {
	a := []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + rand.IntN(250))})}
	if loopback6Usable() {
		a = append(a, netip.IPv6Loopback())
	}
	return a
}

func loopback6Usable() bool {
	c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::1")
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestICMPTraceLoopback: the built-in traceroute to a loopback address
// is one hop, answered by the address itself.
func TestICMPTraceLoopback(t *testing.T) {
	needRoot(t, "the built-in ICMP traceroute")
	tr := newTracer(testTraceConfig())
	tr.cfg.Method = MethodICMP
	for _, a := range loopbackTargets() {
		got := tr.trace(context.Background(), "lo.test", a)
		if got.Error != "" || !got.Reached || got.Method != MethodICMP || got.Family != family(a) || got.Address != a.String() {
			t.Errorf("%s: %+v", a, got)
			continue
		}
		if len(got.Hops) != 1 || got.Hops[0].TTL != 1 || len(got.Hops[0].Replies) != 1 ||
			got.Hops[0].Replies[0].Addr != a.String() || got.Hops[0].Replies[0].RTTMS <= 0 {
			t.Errorf("%s: hops %+v", a, got.Hops)
		}
	}
}

// TestScamperTraceLoopback forces the scamper method to loopback.
func TestScamperTraceLoopback(t *testing.T) {
	integration.Tool(t, "scamper")
	needRoot(t, "scamper")
	cfg := testTraceConfig()
	cfg.Method = MethodScamper
	tr := newTracer(cfg)
	for _, a := range loopbackTargets() {
		got := tr.trace(context.Background(), "lo.test", a)
		if got.Error != "" || !got.Reached || got.Method != MethodScamper || got.Start.IsZero() {
			t.Errorf("%s: %+v", a, got)
			continue
		}
		if len(got.Hops) != 1 || got.Hops[0].TTL != 1 || len(got.Hops[0].Replies) != 1 ||
			got.Hops[0].Replies[0].Addr != a.String() || got.Hops[0].Replies[0].RTTMS <= 0 {
			t.Errorf("%s: hops %+v", a, got.Hops)
		}
	}
}

// TestTracerFallback: without the privilege for a raw socket, auto
// falls back to scamper, and without scamper records why.
func TestTracerFallback(t *testing.T) {
	tr := newTracer(testTraceConfig())
	tr.icmp = func(_ context.Context, _ TraceConfig, _ uint16, target string, addr netip.Addr) (result.Trace, error) {
		return result.Trace{Target: target, Address: addr.String(), Family: family(addr), Method: MethodICMP}, errNoPrivilege
	}
	tr.cfg.Scamper = filepath.Join(t.TempDir(), "no-scamper")
	got := tr.trace(context.Background(), "x", netip.MustParseAddr("127.0.0.1"))
	if got.Reached || !strings.Contains(got.Error, "no privilege") || !strings.Contains(got.Error, "scamper is not installed") {
		t.Errorf("no scamper: %+v", got)
	}
	// A stand-in scamper that prints a recorded trace.
	fake := filepath.Join(t.TempDir(), "scamper")
	out, err := os.ReadFile("testdata/scamper-loopback.json")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(fake, []byte("#!/bin/sh\ncat <<'EOF'\n"+string(out)+"EOF\n"), 0o755)
	tr.cfg.Scamper = fake
	got = tr.trace(context.Background(), "x", netip.MustParseAddr("127.0.0.2"))
	if got.Method != MethodScamper || !got.Reached || got.Error != "" || len(got.Hops) != 1 {
		t.Errorf("fallback to scamper: %+v", got)
	}
	// Forced scamper that fails.
	tr.cfg.Method, tr.cfg.Scamper = MethodScamper, "/bin/false"
	if got := tr.trace(context.Background(), "x", netip.MustParseAddr("127.0.0.2")); got.Error == "" || got.Reached {
		t.Errorf("failing scamper: %+v", got)
	}
}

// TestEchoProbeParis: every probe of a trace has the same ICMP checksum,
// whatever its sequence number.
func TestEchoProbeParis(t *testing.T) {
	sum := map[uint16]bool{}
	for _, seq := range []uint16{0, 1, 0x10, 0x11, 0xff0, 0xfff, 0xffff} {
		b := echoProbe(false, 0x1234, seq)
		m, err := icmp.ParseMessage(1, b)
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := m.Body.(*icmp.Echo); !ok || e.Seq != int(seq) || e.ID != 0x1234 {
			t.Fatalf("seq %d: %+v", seq, m.Body)
		}
		sum[binary.BigEndian.Uint16(b[2:])] = true
		// The checksum is valid: the one's complement sum of the message
		// is 0xffff.
		var s uint32
		for i := 0; i+1 < len(b); i += 2 {
			s += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		for s>>16 != 0 {
			s = s&0xffff + s>>16
		}
		if s != 0xffff {
			t.Errorf("seq %d: bad checksum (sum %#x)", seq, s)
		}
	}
	if len(sum) != 1 {
		t.Errorf("checksums vary: %v", sum)
	}
}

// icmpErr builds an ICMP error of type typ quoting an echo request
// (id, seq) to dst.
func icmpErr(t *testing.T, v6 bool, typ icmp.Type, dst netip.Addr, id, seq uint16) []byte {
	t.Helper()
	probe := echoProbe(v6, id, seq)
	var quoted []byte
	if v6 {
		h := make([]byte, 40)
		h[0], h[6], h[7] = 0x60, 58, 1
		copy(h[8:24], netip.MustParseAddr("2001:db8::1").AsSlice())
		copy(h[24:40], dst.AsSlice())
		quoted = append(h, probe...)
	} else {
		h := make([]byte, 20)
		h[0], h[8], h[9] = 0x45, 1, 1
		copy(h[12:16], netip.MustParseAddr("192.0.2.1").AsSlice())
		copy(h[16:20], dst.AsSlice())
		quoted = append(h, probe[:8]...)
	}
	var body icmp.MessageBody
	switch typ {
	case ipv4.ICMPTypeTimeExceeded, ipv6.ICMPTypeTimeExceeded:
		body = &icmp.TimeExceeded{Data: quoted}
	default:
		body = &icmp.DstUnreach{Data: quoted}
	}
	b, err := (&icmp.Message{Type: typ, Body: body}).Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseICMPReply(t *testing.T) {
	d4, d6 := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8::53")
	echo4, _ := (&icmp.Message{Type: ipv4.ICMPTypeEchoReply, Body: &icmp.Echo{ID: 9, Seq: 0x31}}).Marshal(nil)
	echo6, _ := (&icmp.Message{Type: ipv6.ICMPTypeEchoReply, Body: &icmp.Echo{ID: 9, Seq: 0x31}}).Marshal(nil)
	req4 := echoProbe(false, 9, 0x31)
	for _, tc := range []struct {
		name string
		b    []byte
		v6   bool
		dst  netip.Addr
		kind int
		ok   bool
	}{
		{"echo reply v4", echo4, false, d4, replyEcho, true},
		{"echo reply v6", echo6, true, d6, replyEcho, true},
		{"time exceeded v4", icmpErr(t, false, ipv4.ICMPTypeTimeExceeded, d4, 9, 0x31), false, d4, replyTimeExceeded, true},
		{"time exceeded v6", icmpErr(t, true, ipv6.ICMPTypeTimeExceeded, d6, 9, 0x31), true, d6, replyTimeExceeded, true},
		{"unreachable v4", icmpErr(t, false, ipv4.ICMPTypeDestinationUnreachable, d4, 9, 0x31), false, d4, replyUnreachable, true},
		{"unreachable v6", icmpErr(t, true, ipv6.ICMPTypeDestinationUnreachable, d6, 9, 0x31), true, d6, replyUnreachable, true},
		{"another destination", icmpErr(t, false, ipv4.ICMPTypeTimeExceeded, netip.MustParseAddr("198.51.100.8"), 9, 0x31), false, d4, 0, false},
		{"our own request (loopback)", req4, false, d4, 0, false},
		{"truncated quote", icmpErr(t, false, ipv4.ICMPTypeTimeExceeded, d4, 9, 0x31)[:30], false, d4, 0, false},
		{"short", []byte{0, 0, 0}, false, d4, 0, false},
	} {
		kind, id, seq, ok := parseICMPReply(tc.b, tc.v6, tc.dst)
		if ok != tc.ok || kind != tc.kind || (ok && (id != 9 || seq != 0x31)) {
			t.Errorf("%s: kind %d id %d seq %#x ok %v; want kind %d ok %v", tc.name, kind, id, seq, ok, tc.kind, tc.ok)
		}
	}
}

func FuzzParseICMPReply(f *testing.F) {
	d4 := netip.MustParseAddr("198.51.100.7")
	t := &testing.T{}
	f.Add(icmpErr(t, false, ipv4.ICMPTypeTimeExceeded, d4, 9, 0x31), false)
	f.Add(icmpErr(t, true, ipv6.ICMPTypeTimeExceeded, netip.MustParseAddr("2001:db8::53"), 9, 0x31), true)
	f.Add([]byte{3, 0, 0, 0, 0, 0, 0, 0, 0x4f}, false)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		dst := d4
		if v6 {
			dst = netip.MustParseAddr("2001:db8::53")
		}
		parseICMPReply(b, v6, dst)
	})
}

func TestParseScamper(t *testing.T) {
	out, err := os.ReadFile("testdata/scamper-loopback.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseScamper(out, netip.MustParseAddr("127.0.0.2"))
	if err != nil {
		t.Fatal(err)
	}
	if !got.reached || len(got.hops) != 1 || got.hops[0].Replies[0] != (result.HopReply{Addr: "127.0.0.2", RTTMS: 0.040}) ||
		!got.start.Equal(time.Unix(1795333076, 969666000)) {
		t.Errorf("%+v", got)
	}
	if _, err := parseScamper(out, netip.MustParseAddr("127.0.0.3")); err == nil {
		t.Error("a trace to another address was taken")
	}
	// A trace with a silent hop, stopped at the gap limit.
	gap := `{"type":"trace","dst":"192.0.2.9","stop_reason":"GAPLIMIT","attempts":2,"start":{"sec":1,"usec":0},"hops":[` +
		`{"addr":"10.0.0.1","probe_ttl":1,"rtt":1.5},{"addr":"10.0.1.1","probe_ttl":3,"rtt":7.25},{"addr":"10.0.1.2","probe_ttl":3,"rtt":7.5},` +
		`{"addr":"bad","probe_ttl":4,"rtt":1},{"addr":"10.0.0.9","probe_ttl":999,"rtt":1}]}`
	got, err = parseScamper([]byte("garbage\n"+gap+"\n"), netip.MustParseAddr("192.0.2.9"))
	if err != nil {
		t.Fatal(err)
	}
	want := []result.Hop{
		{TTL: 1, Replies: []result.HopReply{{Addr: "10.0.0.1", RTTMS: 1.5}}},
		{TTL: 2, Replies: []result.HopReply{{}, {}}},
		{TTL: 3, Replies: []result.HopReply{{Addr: "10.0.1.1", RTTMS: 7.25}, {Addr: "10.0.1.2", RTTMS: 7.5}}},
	}
	if got.reached || fmt.Sprint(got.hops) != fmt.Sprint(want) {
		t.Errorf("got %+v reached %v\nwant %+v", got.hops, got.reached, want)
	}
}

func FuzzParseScamper(f *testing.F) {
	out, _ := os.ReadFile("testdata/scamper-loopback.json")
	f.Add(out)
	f.Add([]byte(`{"type":"trace","dst":"127.0.0.2","attempts":99999999,"hops":[{"addr":"127.0.0.2","probe_ttl":255,"rtt":-1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseScamper(b, netip.MustParseAddr("127.0.0.2"))
		if err == nil && len(r.hops) > maxScamperTTL {
			t.Fatalf("%d hops", len(r.hops))
		}
	})
}

// TestTraceThroughRouterNamespace builds source ↔ router ↔ destination
// network namespaces joined by veth pairs and traces from the source to
// the destination: two hops, the router then the destination, over IPv4
// and IPv6, with the built-in method and with scamper. Every packet
// stays inside the namespaces the test creates.
func TestTraceThroughRouterNamespace(t *testing.T) {
	needRoot(t, "network namespaces")
	ip := integration.Tool(t, "ip")
	id := rand.IntN(1 << 20)
	ns := func(s string) string { return fmt.Sprintf("np-pr%d-%s", id, s) }
	src, rtr, dst := ns("s"), ns("r"), ns("d")
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	for _, n := range []string{src, rtr, dst} {
		if out, err := exec.Command(ip, "netns", "add", n).CombinedOutput(); err != nil {
			integration.Missing(t, fmt.Sprintf("ip netns add: %v: %s", err, out))
		}
		t.Cleanup(func() { exec.Command(ip, "netns", "del", n).Run() })
		run("-n", n, "link", "set", "lo", "up")
	}
	// 198.18.0.0/15 is for benchmark networks (RFC 2544): no clash with
	// a real network inside these namespaces.
	run("-n", src, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", rtr)
	run("-n", rtr, "link", "add", "vc", "type", "veth", "peer", "name", "vd", "netns", dst)
	for _, a := range [][]string{
		{src, "va", "198.18.1.1/24", "fd00:1::1/64"}, {rtr, "vb", "198.18.1.2/24", "fd00:1::2/64"},
		{rtr, "vc", "198.18.2.1/24", "fd00:2::1/64"}, {dst, "vd", "198.18.2.2/24", "fd00:2::2/64"},
	} {
		run("-n", a[0], "addr", "add", a[2], "dev", a[1])
		run("-n", a[0], "-6", "addr", "add", a[3], "dev", a[1], "nodad")
		run("-n", a[0], "link", "set", a[1], "up")
	}
	run("-n", src, "route", "add", "default", "via", "198.18.1.2")
	run("-n", src, "-6", "route", "add", "default", "via", "fd00:1::2")
	run("-n", dst, "route", "add", "default", "via", "198.18.2.1")
	run("-n", dst, "-6", "route", "add", "default", "via", "fd00:2::1")
	for _, k := range []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1", "net.ipv4.icmp_ratelimit=0", "net.ipv6.icmp.ratelimit=0"} {
		if out, err := exec.Command(ip, "netns", "exec", rtr, "sysctl", "-qw", k).CombinedOutput(); err != nil {
			t.Fatalf("sysctl %s: %v: %s", k, err, out)
		}
	}
	// IPv6 is ready once no address is tentative (the link-local ones
	// go through duplicate address detection).
	for deadline := time.Now().Add(10 * time.Second); ; {
		busy := false
		for _, n := range []string{src, rtr, dst} {
			out, _ := exec.Command(ip, "-n", n, "-6", "addr", "show", "tentative").Output()
			busy = busy || len(strings.TrimSpace(string(out))) > 0
		}
		if !busy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("IPv6 addresses still tentative after 10s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	targets := []netip.Addr{netip.MustParseAddr("198.18.2.2"), netip.MustParseAddr("fd00:2::2")}
	routers := []string{"198.18.1.2", "fd00:1::2"}

	cfg := testTraceConfig()
	cfg.Method = MethodICMP
	cfg.MaxHops = 5
	// The built-in traceroute opens its socket in the source namespace:
	// a goroutine locked to a thread that enters it (and is never given
	// back: the runtime discards the thread when the goroutine ends).
	ch := make(chan []result.Trace, 1)
	go func() {
		runtime.LockOSThread()
		var trs []result.Trace
		f, err := os.Open("/var/run/netns/" + src)
		if err == nil {
			err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
			f.Close()
		}
		if err != nil {
			ch <- []result.Trace{{Error: "setns: " + err.Error()}}
			return
		}
		tr := newTracer(cfg)
		for _, a := range targets {
			trs = append(trs, tr.trace(context.Background(), "d.test", a))
		}
		ch <- trs
	}()
	traces := <-ch
	// scamper runs in the namespace through `ip netns exec`.
	if sc, err := exec.LookPath("scamper"); err == nil {
		wrapper := filepath.Join(t.TempDir(), "scamper-in-ns")
		os.WriteFile(wrapper, []byte(fmt.Sprintf("#!/bin/sh\nexec %s netns exec %s %s \"$@\"\n", ip, src, sc)), 0o755)
		scfg := cfg
		scfg.Method, scfg.Scamper = MethodScamper, wrapper
		tr := newTracer(scfg)
		for _, a := range targets {
			traces = append(traces, tr.trace(context.Background(), "d.test", a))
		}
	} else {
		t.Log("scamper not installed: only the built-in method is checked")
	}
	for _, tr := range traces {
		i := 0
		if tr.Family == 6 {
			i = 1
		}
		if tr.Error != "" || !tr.Reached || len(tr.Hops) != 2 {
			t.Errorf("%s to %s: %+v", tr.Method, tr.Address, tr)
			continue
		}
		h1, h2 := tr.Hops[0], tr.Hops[1]
		if h1.TTL != 1 || h1.Replies[0].Addr != routers[i] || h2.TTL != 2 || h2.Replies[0].Addr != targets[i].String() || h2.Replies[0].RTTMS <= 0 {
			t.Errorf("%s to %s: hops %+v", tr.Method, tr.Address, tr.Hops)
		}
	}
}
