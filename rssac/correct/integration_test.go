package correct

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netpulse/netpulse/internal/testdns"
	"github.com/netpulse/netpulse/probe/result"
	"github.com/netpulse/netpulse/rssac"
	"github.com/netpulse/netpulse/rssac/zone"
)

// liveQueries are the correctness queries asked of live servers: every
// positive kind, and negative ones (RSSAC047's www.rssac047-test.<10
// random letters>) whose names sort first, in the middle and last.
var liveQueries = [][2]string{
	{".", "SOA"}, {".", "DNSKEY"}, {".", "NS"},
	{"com.", "NS"}, {"net.", "NS"}, {"org.", "NS"}, {"zw.", "NS"}, {"arpa.", "NS"},
	{"com.", "DS"}, {"arpa.", "DS"}, {"org.", "DS"},
	{"www.rssac047-test.aqwertyuio.", "A"}, {"www.rssac047-test.lkjhgfdsaq.", "A"}, {"www.rssac047-test.zxcvbnmzxc.", "A"},
}

// liveSetup signs four versions of the test root zone with Debian's
// ldns-signzone and stores them in an archive as first seen 100, 60, 30
// and 2 hours before now. Version 0 was superseded 60 hours ago: outside
// RSSAC047's 48 hours; version 1 was current until 30 hours ago.
type liveSetup struct {
	signer  *testdns.RootSigner
	signed  []string // by version
	serials []uint32
	checker *Checker
	slot    time.Time
}

func newLiveSetup(t *testing.T) *liveSetup {
	now := time.Now().UTC()
	s := &liveSetup{signer: testdns.NewRootSigner(t), slot: result.SlotOf(now)}
	a, err := zone.Open(zone.Config{Dir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, age := range []time.Duration{100 * time.Hour, 60 * time.Hour, 30 * time.Hour, 2 * time.Hour} {
		serial := uint32(2026120100 + i)
		text := testdns.RootZoneText(serial)
		if i >= 2 {
			text += "se.\t172800\tIN\tNS\ta.ns.se.\na.ns.se.\t172800\tIN\tA\t192.36.144.107\n"
		}
		signed := s.signer.Sign(t, text, now.Add(-10*24*time.Hour), now.Add(30*24*time.Hour))
		if _, isNew, err := a.Add([]byte(signed), now.Add(-age)); err != nil || !isNew {
			t.Fatalf("add version %d: %v %v", i, isNew, err)
		}
		s.signed = append(s.signed, signed)
		s.serials = append(s.serials, serial)
	}
	s.checker = &Checker{Source: a}
	return s
}

// ask asks addr every live query and checks each verdict: want maps
// "qname qtype" to the wanted reason ("" for Correct); queries not in
// want must be Correct.
func (s *liveSetup) ask(t *testing.T, server, addr string, want map[string]string) {
	t.Helper()
	for _, lq := range liveQueries {
		q := probeQuery(t, addr, lq[0], lq[1])
		v, why := s.checker.Check(s.slot, &q)
		w := want[lq[0]+" "+lq[1]]
		switch {
		case w == "" && v != rssac.Correct:
			t.Errorf("%s: %s %s: %v %q, want Correct", server, lq[0], lq[1], v, why)
		case w != "" && (v != rssac.Incorrect || !globMatch(w, why)):
			t.Errorf("%s: %s %s: %v %q, want Incorrect %q", server, lq[0], lq[1], v, why, w)
		}
	}
}

// TestLiveServers: NSD and Knot serving the current version answer every
// query correctly; a server on a stale version within 48 hours too, one
// past them does not; a changed RRset and a bad signature are caught
// with the reason; an unsigned zone is judged on its content.
func TestLiveServers(t *testing.T) {
	s := newLiveSetup(t)
	cur := s.signed[3]

	t.Run("nsd current", func(t *testing.T) {
		s.ask(t, "nsd", testdns.StartNSD(t, map[string]string{".": cur}), nil)
	})
	t.Run("knot current", func(t *testing.T) {
		s.ask(t, "knot", testdns.StartKnotdZones(t, map[string]string{".": cur}), nil)
	})
	t.Run("stale within 48h", func(t *testing.T) {
		// Version 1 differs from the current one in the SOA and in the
		// NSEC chain (no se.), both in effect 48 hours ago.
		s.ask(t, "nsd v1", testdns.StartNSD(t, map[string]string{".": s.signed[1]}), nil)
		s.ask(t, "nsd v2", testdns.StartNSD(t, map[string]string{".": s.signed[2]}), nil)
	})
	t.Run("stale past 48h", func(t *testing.T) {
		soa := "answer RRset . SOA differs"
		neg := "authority RRset . SOA differs"
		s.ask(t, "nsd v0", testdns.StartNSD(t, map[string]string{".": s.signed[0]}), map[string]string{
			". SOA": soa, "org. DS": neg,
			"www.rssac047-test.aqwertyuio. A": neg, "www.rssac047-test.lkjhgfdsaq. A": neg, "www.rssac047-test.zxcvbnmzxc. A": neg,
			// The other answers are the same in every version (RSA
			// signatures of the same data and times are the same), or
			// the same as in version 1 (no se. yet: the NSEC of org.).
		})
	})
	t.Run("wrong RRsets", func(t *testing.T) {
		// Re-signed with the zone's own keys: the signatures verify, the
		// contents differ from every archived version.
		text := testdns.RootZoneText(s.serials[3]) + "se.\t172800\tIN\tNS\ta.ns.se.\na.ns.se.\t172800\tIN\tA\t192.36.144.107\n"
		text = strings.Replace(text, "com.\t172800\tIN\tNS\tb.gtld-servers.net.\n", "com.\t172800\tIN\tNS\tb.gtld-servers.net.\ncom.\t172800\tIN\tNS\tevil.example.\n", 1)
		text = strings.Replace(text, "ns2.zw.\t172800\tIN\tA\t192.0.2.82", "ns2.zw.\t172800\tIN\tA\t192.0.2.99", 1)
		text = strings.Replace(text, ".\t518400\tIN\tNS\tb.root-servers.net.\n", ".\t518400\tIN\tNS\tb.root-servers.net.\n.\t518400\tIN\tNS\tz.root-servers.net.\n", 1)
		now := time.Now()
		bad := s.signer.Sign(t, text, now.Add(-24*time.Hour), now.Add(24*time.Hour))
		s.ask(t, "nsd changed", testdns.StartNSD(t, map[string]string{".": bad}), map[string]string{
			". NS":     "answer RRset . NS differs",
			". SOA":    "authority RRset . NS differs",
			"com. NS":  "authority RRset com. NS differs",
			"zw. NS":   "additional RRset ns2.zw. A differs",
			". DNSKEY": "RRSIG . DNSKEY not in zone",
			"com. DS":  "RRSIG com. DS not in zone",
			"arpa. DS": "RRSIG arpa. DS not in zone",
			"net. NS":  "RRSIG net. DS not in zone",
			"arpa. NS": "RRSIG arpa. DS not in zone",
			"org. NS":  "RRSIG org. NSEC not in zone",
			"org. DS":  "RRSIG . SOA not in zone",
			// NSD lists the NSECs before the SOA.
			"www.rssac047-test.aqwertyuio. A": "RRSIG * not in zone",
			"www.rssac047-test.lkjhgfdsaq. A": "RRSIG * not in zone",
			"www.rssac047-test.zxcvbnmzxc. A": "RRSIG * not in zone",
		})
	})
	t.Run("bad signatures", func(t *testing.T) {
		bad := testdns.CorruptRRSIG(t, cur, ".", dns.TypeSOA)
		bad = testdns.CorruptRRSIG(t, bad, "com.", dns.TypeDS)
		s.ask(t, "nsd bad RRSIGs", testdns.StartNSD(t, map[string]string{".": bad}), map[string]string{
			". SOA":                           "RRSIG . SOA invalid: crypto/rsa: verification error",
			"com. DS":                         "RRSIG com. DS invalid: crypto/rsa: verification error",
			"com. NS":                         "RRSIG com. DS invalid: crypto/rsa: verification error",
			"org. DS":                         "RRSIG . SOA invalid: crypto/rsa: verification error",
			"www.rssac047-test.aqwertyuio. A": "RRSIG . SOA invalid: crypto/rsa: verification error",
			"www.rssac047-test.lkjhgfdsaq. A": "RRSIG . SOA invalid: crypto/rsa: verification error",
			"www.rssac047-test.zxcvbnmzxc. A": "RRSIG . SOA invalid: crypto/rsa: verification error",
		})
	})
	t.Run("truncated DNSKEY", func(t *testing.T) {
		// A standby 4096-bit key, as during a KSK rollover, makes the
		// signed DNSKEY RRset larger than the 1220-byte buffer: the UDP
		// answer is truncated (Unchecked) and the TCP retry is judged.
		blob := make([]byte, 4+512)
		copy(blob, []byte{3, 1, 0, 1})
		rand.Read(blob[4:])
		text := testdns.RootZoneText(2026120300) + ".\t86400\tIN\tDNSKEY\t257 3 8 " + base64.StdEncoding.EncodeToString(blob) + "\n"
		now := time.Now().UTC()
		signed := s.signer.Sign(t, text, now.Add(-time.Hour), now.Add(time.Hour))
		a, err := zone.Open(zone.Config{Dir: t.TempDir()}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.Add([]byte(signed), now); err != nil {
			t.Fatal(err)
		}
		c := &Checker{Source: a}
		addr := testdns.StartNSD(t, map[string]string{".": signed})
		udp := probeOnce(t, addr, ".", "DNSKEY", result.UDP)
		if v, why := c.Check(s.slot, &udp); v != rssac.Unchecked || why != ReasonTruncated {
			t.Errorf("UDP: %v %q (size %d)", v, why, udp.Response.Size)
		}
		tcp := probeQuery(t, addr, ".", "DNSKEY")
		if v, why := c.Check(s.slot, &tcp); !tcp.Retry || tcp.Transport != result.TCP || v != rssac.Correct {
			t.Errorf("TCP retry %v over %s: %v %q", tcp.Retry, tcp.Transport, v, why)
		}
	})
	t.Run("unsigned zone", func(t *testing.T) {
		// Without DNSKEYs there is nothing to validate: the contents
		// decide, and a denial needs no NSEC.
		now := time.Now().UTC()
		a, err := zone.Open(zone.Config{Dir: t.TempDir()}, nil)
		if err != nil {
			t.Fatal(err)
		}
		plain := testdns.RootZoneText(2026120200)
		if _, _, err := a.Add([]byte(plain), now.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		u := &liveSetup{checker: &Checker{Source: a}, slot: s.slot}
		u.ask(t, "nsd unsigned", testdns.StartNSD(t, map[string]string{".": plain}), nil)
		changed := strings.Replace(plain, "192.5.6.30", "192.5.6.31", 1)
		u.ask(t, "nsd unsigned changed", testdns.StartNSD(t, map[string]string{".": changed}), map[string]string{
			"com. NS": "additional RRset a.gtld-servers.net. A differs",
			"net. NS": "additional RRset a.gtld-servers.net. A differs",
		})
	})
}

// globMatch matches s against a pattern with at most one "*".
func globMatch(pattern, s string) bool {
	pre, suf, star := strings.Cut(pattern, "*")
	if !star {
		return pattern == s
	}
	return len(s) >= len(pre)+len(suf) && strings.HasPrefix(s, pre) && strings.HasSuffix(s, suf)
}
