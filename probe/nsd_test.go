package probe

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netpulse/netpulse/internal/testdns"
	"github.com/netpulse/netpulse/probe/result"
)

const exampleZone = `example. 3600 IN SOA ns.example. host.example. 1 3600 600 86400 300
example. 3600 IN NS ns.example.
ns.example. 3600 IN A 192.0.2.53
`

// TestRunAgainstRealServers points one run at real authoritative servers
// on loopback — NSD and Knot serving a signed root-like zone, one NSD
// serving another zone only (REFUSED for "."), and one stopped — and
// checks the file it writes.
func TestRunAgainstRealServers(t *testing.T) {
	const serial = 2026112201
	root := signedRoot(t, serial)
	v6 := testdns.Loopback6()
	if !v6 {
		t.Log("IPv6 SKIPPED: ::1 is not usable here; only IPv4 is measured")
	}
	srv := testdns.StartServers(t,
		testdns.ServerSpec{Zones: map[string]string{".": root}, NSID: "nsd-one", IPv6: v6},
		testdns.ServerSpec{Zones: map[string]string{".": root}, NSID: "nsd-two", IPv6: v6},
		testdns.ServerSpec{Zones: map[string]string{".": root}, IPv6: v6},
		testdns.ServerSpec{Software: "knot", Zones: map[string]string{".": root}, NSID: "knot-one", IPv6: v6},
		testdns.ServerSpec{Zones: map[string]string{"example.": exampleZone}},
		testdns.ServerSpec{Zones: map[string]string{".": root}},
	)
	srv[5].Stop()
	names := []string{"one.test", "two.test", "three.test", "knot.test", "refuses.test", "stopped.test"}
	var targets []Target
	for i, s := range srv {
		targets = append(targets, Target{Name: names[i], IPv4: s.IPv4, IPv6: s.IPv6, Port: s.Port})
	}
	cfg := testConfig(t, targets...)
	cfg.Traceroute.Method = "auto"
	cfg.Traceroute.Wait = 500 * time.Millisecond
	p := newTestProbe(t, cfg, Deps{Software: "netpulse test"})
	slot := result.SlotOf(time.Now())
	t0 := time.Now()
	path, _, err := p.RunOnce(context.Background(), slot)
	t.Logf("run took %s", time.Since(t0))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%s/%s/001-%s.json.gz", cfg.OutputDir, slot.Format("200601"), slot.Format("20060102T1504")); path != want {
		t.Errorf("file %s, want %s", path, want)
	}
	run := readRun(t, path)
	if run.VP != "001" || !run.Slot.Equal(slot) || run.Software != "netpulse test" || run.Clock.Source != "adjtimex" {
		t.Errorf("run header: vp %q slot %s software %q clock %+v", run.VP, run.Slot, run.Software, run.Clock)
	}
	if run.Start.Before(slot) || run.End.Before(run.Start) {
		t.Errorf("start %s end %s for slot %s", run.Start, run.End, slot)
	}

	for i, s := range srv[:4] {
		name := names[i]
		soa := queriesOf(run, name, result.PurposeSOA)
		want := 2
		if s.IPv6 != "" {
			want = 4
		}
		if len(soa) != want {
			t.Fatalf("%s: %d SOA queries, want %d", name, len(soa), want)
		}
		seen := map[string]bool{}
		for _, q := range soa {
			what := fmt.Sprintf("%s %s/%d", name, q.Transport, q.Family)
			seen[fmt.Sprintf("%s/%d", q.Transport, q.Family)] = true
			if !q.Available() || q.Timeout || q.Error != "" {
				t.Errorf("%s: not available: timeout %v error %q", what, q.Timeout, q.Error)
				continue
			}
			r := q.Response
			if !r.HasSerial || r.SOASerial != serial {
				t.Errorf("%s: serial %d (has %v), want %d", what, r.SOASerial, r.HasSerial, serial)
			}
			if q.RTTMS <= 0 || q.Sent.IsZero() {
				t.Errorf("%s: rtt %g ms, sent %s", what, q.RTTMS, q.Sent)
			}
			if q.QName != "." || q.QType != "SOA" || q.DO || q.BufSize != soaBufSize || q.Port != s.Port {
				t.Errorf("%s: query recorded as %+v", what, q)
			}
			if r.NSIDText != s.NSID {
				t.Errorf("%s: nsid %q (hex %q), want %q", what, r.NSIDText, r.NSIDHex, s.NSID)
			}
			if !slices.Contains(r.Flags, "qr") || !slices.Contains(r.Flags, "aa") || slices.Contains(r.Flags, "rd") {
				t.Errorf("%s: flags %v, want qr and aa, not rd", what, r.Flags)
			}
			if len(r.Answer) != 1 || r.Answer[0].Type != "SOA" || r.Answer[0].Name != "." || r.Answer[0].Class != "IN" ||
				r.Answer[0].RData != fmt.Sprintf("a.root-servers.net. nstld.verisign-grs.com. %d 1800 900 604800 86400", serial) {
				t.Errorf("%s: answer %+v", what, r.Answer)
			}
			// NSD adds the root's NS to the authority section; Knot
			// gives minimal responses.
			if s.Software == "nsd" && (len(r.Authority) != 2 || r.Authority[0].Type != "NS") {
				t.Errorf("%s: authority section %+v, want the 2 NS", what, r.Authority)
			}
			m := new(dns.Msg)
			if err := m.Unpack(r.ABuf); err != nil || m.Id != r.ID || len(m.Answer) != 1 || m.Answer[0].(*dns.SOA).Serial != serial || len(r.ABuf) != r.Size {
				t.Errorf("%s: abuf does not parse back to the response: %v", what, err)
			}
		}
		for _, k := range []string{"udp/4", "tcp/4"} {
			if !seen[k] {
				t.Errorf("%s: no %s SOA query", name, k)
			}
		}
		cq := queriesOf(run, name, result.PurposeCorrectness)
		if len(cq) == 0 || len(cq) > 2 {
			t.Fatalf("%s: %d correctness queries", name, len(cq))
		}
		if q := cq[0]; !q.DO || q.BufSize != 1220 || q.Retry || !q.Answered() {
			t.Errorf("%s: correctness query %+v", name, q)
		}
		if len(cq) == 2 {
			if cq[0].Transport != result.UDP || !hasFlag(cq[0].Response, "tc") || cq[1].Transport != result.TCP || !cq[1].Retry || hasFlag(cq[1].Response, "tc") {
				t.Errorf("%s: a retry without a truncated UDP answer before it: %+v", name, cq)
			}
		}
	}

	for _, q := range queriesOf(run, "refuses.test", result.PurposeSOA) {
		if !q.Answered() || q.Response.RCode != dns.RcodeRefused || q.Response.RCodeName != "REFUSED" || q.Available() {
			t.Errorf("refuses.test %s: want an answered REFUSED, not available: %+v", q.Transport, q)
		}
	}
	stopped := queriesOf(run, "stopped.test", result.PurposeSOA)
	if len(stopped) != 2 {
		t.Fatalf("stopped.test: %d SOA queries", len(stopped))
	}
	for _, q := range stopped {
		if !q.Timeout || q.Response != nil || q.Available() || q.RTTMS != 0 {
			t.Errorf("stopped.test %s: want a timeout without response: %+v", q.Transport, q)
		}
		if q.Transport == result.TCP && q.Error != "connection refused" {
			t.Errorf("stopped.test tcp: error %q, want connection refused", q.Error)
		}
	}

	// One traceroute per address; to loopback it is one hop, reached,
	// with the built-in method when running as root.
	nAddr := 0
	for _, tg := range targets {
		nAddr += len(tg.addrs())
	}
	if len(run.Traces) != nAddr {
		t.Errorf("%d traces, want one per address (%d)", len(run.Traces), nAddr)
	}
	for _, tr := range run.Traces {
		if os.Geteuid() == 0 && (tr.Method != MethodICMP || !tr.Reached || len(tr.Hops) != 1 || tr.Hops[0].Replies[0].Addr != tr.Address) {
			t.Errorf("trace to %s (%s): %+v", tr.Address, tr.Target, tr)
		}
	}
}

// TestTruncatedDNSKEYRetriedOverTCP asks a real NSD for the signed root's
// DNSKEY with a 1220-byte buffer: the answer does not fit, comes back
// truncated, and the probe asks again over TCP.
func TestTruncatedDNSKEYRetriedOverTCP(t *testing.T) {
	root := signedRoot(t, 2026010100)
	s := testdns.StartServers(t, testdns.ServerSpec{Zones: map[string]string{".": root}})[0]
	tg := Target{Name: "nsd.test", IPv4: s.IPv4, Port: s.Port}
	qs := correctness(context.Background(), tg, correctnessQuery{addr: tg.addrs()[0], transport: result.UDP, qname: ".", qtype: dns.TypeDNSKEY}, time.Second)
	if len(qs) != 2 {
		t.Fatalf("%d queries, want the UDP one and its TCP retry", len(qs))
	}
	u, r := qs[0], qs[1]
	if u.Transport != result.UDP || u.Retry || !hasFlag(u.Response, "tc") || u.Response.Size > 1220 {
		t.Errorf("UDP query: %+v", u)
	}
	if r.Transport != result.TCP || !r.Retry || !r.Available() || hasFlag(r.Response, "tc") || r.Response.Size <= 1220 || !r.DO || r.BufSize != 1220 {
		t.Errorf("TCP retry: %+v", r)
	}
	var keys, sigs int
	for _, rr := range r.Response.Answer {
		switch rr.Type {
		case "DNSKEY":
			keys++
		case "RRSIG":
			sigs++
		}
	}
	if keys != 3 || sigs != 2 {
		t.Errorf("TCP answer: %d DNSKEY and %d RRSIG, want 3 and 2", keys, sigs)
	}
}

// signedRoot is a small root zone signed by ldns-signzone with a ZSK and
// two KSKs (a rollover: the DNSKEY answer with DO exceeds 1220 bytes),
// signatures valid from an hour ago for 30 days.
func signedRoot(t *testing.T, serial uint32) string {
	t.Helper()
	s := testdns.NewRootSigner(t)
	s.AddKSK(t)
	now := time.Now()
	return s.Sign(t, testdns.RootZoneText(serial), now.Add(-time.Hour), now.Add(30*24*time.Hour))
}
