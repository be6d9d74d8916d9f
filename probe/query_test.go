package probe

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netpulse/netpulse/probe/result"
)

// startMiekg serves handler over UDP and TCP on one port of 127.0.0.1
// and returns the port.
func startMiekg(t *testing.T, handler dns.HandlerFunc) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		pc.Close()
		t.Skipf("port %d taken for TCP: %v", port, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // runs last: cleanups run in reverse
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		ready := make(chan struct{})
		s.NotifyStartedFunc = func() { close(ready) }
		wg.Go(func() { s.ActivateAndServe() })
		<-ready
		t.Cleanup(func() { s.Shutdown() })
	}
	return port
}

// soaAnswer answers r with the root SOA.
func soaAnswer(r *dns.Msg, serial uint32) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	soa, _ := dns.NewRR(". 86400 IN SOA a.root-servers.net. nstld.verisign-grs.com. " + strconv.Itoa(int(serial)) + " 1800 900 604800 86400")
	m.Answer = append(m.Answer, soa)
	return m
}

func loop4(t *testing.T) netip.Addr { return netip.MustParseAddr("127.0.0.1") }

func soaSpec(port int, transport string) querySpec {
	return querySpec{target: "x.test", addr: netip.MustParseAddr("127.0.0.1"), port: port, transport: transport,
		purpose: result.PurposeSOA, qname: ".", qtype: dns.TypeSOA, bufSize: soaBufSize}
}

// TestTruncationRetryInProcess: a server that truncates every UDP answer
// gets the correctness query again over TCP, and both are recorded.
func TestTruncationRetryInProcess(t *testing.T) {
	port := startMiekg(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := soaAnswer(r, 7)
		if w.LocalAddr().Network() == "udp" {
			m.Answer, m.Truncated = nil, true
		}
		w.WriteMsg(m)
	})
	tg := Target{Name: "tc.test", IPv4: "127.0.0.1", Port: port}
	qs := correctness(context.Background(), tg, correctnessQuery{addr: loop4(t), transport: result.UDP, qname: ".", qtype: dns.TypeSOA}, time.Second)
	if len(qs) != 2 {
		t.Fatalf("%d queries, want 2", len(qs))
	}
	if q := qs[0]; q.Transport != "udp" || q.Retry || !hasFlag(q.Response, "tc") || q.Response.HasSerial {
		t.Errorf("first query: %+v", q)
	}
	if q := qs[1]; q.Transport != "tcp" || !q.Retry || !q.Available() || q.Response.SOASerial != 7 || !q.DO || q.BufSize != 1220 || q.Purpose != result.PurposeCorrectness {
		t.Errorf("retry: %+v", q)
	}
	// Over TCP first there is nothing to retry.
	qs = correctness(context.Background(), tg, correctnessQuery{addr: loop4(t), transport: result.TCP, qname: ".", qtype: dns.TypeSOA}, time.Second)
	if len(qs) != 1 || !qs[0].Available() {
		t.Errorf("over TCP: %+v", qs)
	}
}

// rawUDP serves each datagram with reply(query) → datagrams to send.
func rawUDP(t *testing.T, reply func(q []byte) [][]byte) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			for _, d := range reply(append([]byte(nil), buf[:n]...)) {
				pc.WriteTo(d, from)
			}
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// TestSpoofedIDIgnored: a datagram with another id is not the answer;
// the probe waits for the one with its id.
func TestSpoofedIDIgnored(t *testing.T) {
	port := rawUDP(t, func(q []byte) [][]byte {
		var m dns.Msg
		if m.Unpack(q) != nil {
			return nil
		}
		good, _ := soaAnswer(&m, 42).Pack()
		bad := append([]byte(nil), good...)
		binary.BigEndian.PutUint16(bad, m.Id+1)
		return [][]byte{bad, good}
	})
	q := exchange(context.Background(), soaSpec(port, result.UDP), time.Second)
	if !q.Available() || q.Response.SOASerial != 42 {
		t.Fatalf("%+v", q)
	}
}

// TestMalformedResponse: an answer with the right id that does not
// unpack is recorded with its bytes and an error, and is not available.
func TestMalformedResponse(t *testing.T) {
	port := rawUDP(t, func(q []byte) [][]byte {
		if len(q) < 12 {
			return nil
		}
		// The query's id, QR|AA, one question whose name is a
		// compression pointer to itself.
		b := []byte{q[0], q[1], 0x84, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 6, 0, 1}
		return [][]byte{b}
	})
	q := exchange(context.Background(), soaSpec(port, result.UDP), time.Second)
	if q.Timeout || q.Response == nil || !strings.HasPrefix(q.Error, "malformed response") || q.Available() || q.Answered() {
		t.Fatalf("%+v", q)
	}
	if q.Response.Size != 18 || len(q.Response.ABuf) != 18 || !hasFlag(q.Response, "aa") || !hasFlag(q.Response, "qr") {
		t.Errorf("header not kept: %+v", q.Response)
	}
	if q.RTTMS <= 0 {
		t.Errorf("rtt %g", q.RTTMS)
	}
	run := &result.Run{Version: result.Version, VP: "001", Slot: result.SlotOf(time.Now()), Queries: []result.Query{q}}
	if err := run.Validate(); err != nil {
		t.Errorf("the record does not validate: %v", err)
	}
}

// TestWrongQuestion: an answer to another question is not available.
func TestWrongQuestion(t *testing.T) {
	port := startMiekg(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := soaAnswer(r, 1)
		m.Question[0].Name = "com."
		w.WriteMsg(m)
	})
	q := exchange(context.Background(), soaSpec(port, result.TCP), time.Second)
	if q.Error != "response to another question" || q.Available() || q.Response == nil {
		t.Fatalf("%+v", q)
	}
}

// TestSilentServer: nothing answers (UDP read and dropped, TCP accepted
// and never answered): a timeout over both, with no error text.
func TestSilentServer(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	port := pc.LocalAddr().(*net.UDPAddr).Port
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Skip(err)
	}
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	for _, tr := range []string{result.UDP, result.TCP} {
		start := time.Now()
		q := exchange(context.Background(), soaSpec(port, tr), 300*time.Millisecond)
		took := time.Since(start)
		if !q.Timeout || q.Error != "" || q.Response != nil || q.RTTMS != 0 || q.Sent.IsZero() {
			t.Errorf("%s: %+v", tr, q)
		}
		if took < 300*time.Millisecond || took > 2*time.Second {
			t.Errorf("%s: gave up after %s, want the 300ms timeout", tr, took)
		}
	}
}

// TestConnectionErrors: nothing listening (connection refused; on
// loopback UDP gets ICMP port unreachable too) and a server that closes
// the connection without answering.
func TestConnectionErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	for _, tr := range []string{result.UDP, result.TCP} {
		q := exchange(context.Background(), soaSpec(port, tr), time.Second)
		if !q.Timeout || q.Error != "connection refused" || q.Available() {
			t.Errorf("%s to a closed port: %+v", tr, q)
		}
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
			c.Read(make([]byte, 512))
			c.Close()
		}
	}()
	q := exchange(context.Background(), soaSpec(ln.Addr().(*net.TCPAddr).Port, result.TCP), time.Second)
	if !q.Timeout || q.Error != "connection closed before the full response" {
		t.Errorf("closed early: %+v", q)
	}
}

// TestCancelledQuery: a query cut short by the run's deadline says so.
func TestCancelledQuery(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	q := exchange(ctx, soaSpec(pc.LocalAddr().(*net.UDPAddr).Port, result.UDP), 5*time.Second)
	if !q.Timeout || !strings.HasPrefix(q.Error, "cancelled") {
		t.Errorf("%+v", q)
	}
}

// TestQueryWire: the query asks for NSID with the EDNS buffer and DO
// bit, without recursion.
func TestQueryWire(t *testing.T) {
	for _, do := range []bool{false, true} {
		s := querySpec{qname: "com.", qtype: dns.TypeDS, do: do, bufSize: 1220}
		b, err := buildQuery(s, 4242)
		if err != nil {
			t.Fatal(err)
		}
		var m dns.Msg
		if err := m.Unpack(b); err != nil {
			t.Fatal(err)
		}
		opt := m.IsEdns0()
		if m.Id != 4242 || m.RecursionDesired || opt == nil || opt.UDPSize() != 1220 || opt.Do() != do || len(opt.Option) != 1 || opt.Option[0].Option() != dns.EDNS0NSID {
			t.Errorf("do=%v: %s", do, m.String())
		}
		if m.Question[0].Name != "com." || m.Question[0].Qtype != dns.TypeDS {
			t.Errorf("question %v", m.Question)
		}
	}
	if _, err := buildQuery(querySpec{qname: strings.Repeat("a", 70) + ".", qtype: dns.TypeA}, 1); err == nil {
		t.Error("a 70-byte label packed")
	}
}

// TestDecodeResponse covers what the servers in the other tests do not
// send: an extended RCODE, a binary NSID, an unknown type, the OPT
// record left out of the additional section.
func TestDecodeResponse(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("com.", dns.TypeNS)
	m.Response, m.Authoritative, m.Truncated, m.CheckingDisabled, m.RecursionDesired = true, true, true, true, false
	m.Rcode = dns.RcodeBadVers
	unknown, _ := dns.NewRR("com. 300 IN TYPE65280 \\# 3 010203")
	ns, _ := dns.NewRR("com. 172800 IN NS a.gtld-servers.net.")
	m.Answer = []dns.RR{unknown}
	m.Ns = []dns.RR{ns}
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	opt.SetUDPSize(1232)
	opt.Option = []dns.EDNS0{&dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: "00ff41"}}
	m.Extra = []dns.RR{opt}
	raw, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeResponse(raw, m.Id, querySpec{qname: "com.", qtype: dns.TypeNS})
	if err != nil {
		t.Fatal(err)
	}
	if r.RCode != 16 || r.RCodeName != "BADVERS" {
		t.Errorf("rcode %d %s, want 16 BADVERS", r.RCode, r.RCodeName)
	}
	if r.NSIDHex != "00ff41" || r.NSIDText != "" {
		t.Errorf("nsid %q/%q", r.NSIDHex, r.NSIDText)
	}
	if strings.Join(r.Flags, ",") != "qr,aa,tc,cd" {
		t.Errorf("flags %v", r.Flags)
	}
	if len(r.Answer) != 1 || r.Answer[0].Type != "TYPE65280" || r.Answer[0].RData != `\# 3 010203` || r.Answer[0].TTL != 300 {
		t.Errorf("answer %+v", r.Answer)
	}
	if len(r.Authority) != 1 || r.Authority[0].RData != "a.gtld-servers.net." || len(r.Additional) != 0 || r.HasSerial {
		t.Errorf("authority %+v additional %+v", r.Authority, r.Additional)
	}
}

// TestPickCorrectness: over many runs the draws follow RSSAC047's mix,
// and a seeded generator repeats itself.
func TestPickCorrectness(t *testing.T) {
	tg := Target{Name: "x", IPv4: "192.0.2.1", IPv6: "2001:db8::1", Port: 53}
	tlds := []string{"com", "net"}
	rng := rand.New(rand.NewPCG(7, 8))
	const n = 20000
	count := map[string]int{}
	neg := regexp.MustCompile(`^www\.rssac047-test\.[a-z]{10}\.$`)
	negNames := map[string]bool{}
	for range n {
		c := pickCorrectness(rng, tg, tlds)
		count[c.transport]++
		count["v"+strconv.Itoa(family(c.addr))]++
		kind := c.qname + "/" + dns.TypeToString[c.qtype]
		switch {
		case neg.MatchString(c.qname) && c.qtype == dns.TypeA:
			kind = "negative"
			negNames[c.qname] = true
		case c.qname == "com." || c.qname == "net.":
			kind = "tld/" + dns.TypeToString[c.qtype]
		}
		count[kind]++
	}
	within := func(k string, want float64) {
		got := float64(count[k]) / n
		if got < want-0.015 || got > want+0.015 {
			t.Errorf("%s: %.3f of the draws, want %.3f", k, got, want)
		}
	}
	within("negative", 0.10)
	for _, k := range []string{"./SOA", "./DNSKEY", "./NS", "tld/NS", "tld/DS"} {
		within(k, 0.18)
	}
	for _, k := range []string{"udp", "tcp", "v4", "v6"} {
		within(k, 0.5)
	}
	if len(negNames) < count["negative"]-2 {
		t.Errorf("negative names repeat: %d distinct of %d", len(negNames), count["negative"])
	}
	a := pickCorrectness(rand.New(rand.NewPCG(1, 1)), tg, tlds)
	b := pickCorrectness(rand.New(rand.NewPCG(1, 1)), tg, tlds)
	if a != b {
		t.Errorf("same seed, different draws: %+v %+v", a, b)
	}
	// A target with one address always uses it.
	one := Target{Name: "y", IPv6: "2001:db8::2", Port: 53}
	for range 50 {
		if c := pickCorrectness(rng, one, tlds); c.addr.String() != "2001:db8::2" {
			t.Fatalf("picked %s", c.addr)
		}
	}
}

// TestRunIsParallel: eight targets that never answer cost about one
// target's timeouts, not eight.
func TestRunIsParallel(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	port := pc.LocalAddr().(*net.UDPAddr).Port
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Skip(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	var targets []Target
	for i := range 8 {
		targets = append(targets, Target{Name: "silent" + strconv.Itoa(i) + ".test", IPv4: "127.0.0.1", Port: port})
	}
	cfg := testConfig(t, targets...)
	cfg.Timeout = 300 * time.Millisecond
	p := newTestProbe(t, cfg, Deps{})
	start := time.Now()
	_, run, err := p.RunOnce(context.Background(), result.SlotOf(start))
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	// Per target: 2 SOA queries and 1 correctness query, 300ms each.
	if took > 2500*time.Millisecond {
		t.Errorf("run took %s; in sequence it would take 7.2s, in parallel about 0.9s", took)
	}
	if len(run.Queries) != 24 {
		t.Errorf("%d queries, want 24", len(run.Queries))
	}
	for _, q := range run.Queries {
		if !q.Timeout {
			t.Errorf("%+v", q)
		}
	}
}
