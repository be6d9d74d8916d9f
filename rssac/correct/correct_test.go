package correct

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netpulse/netpulse/internal/testdns"
	"github.com/netpulse/netpulse/probe/result"
	"github.com/netpulse/netpulse/rssac"
	"github.com/netpulse/netpulse/rssac/zone"
)

// TestGoldenCorrect: every answer NSD gave from a zone version is Correct
// against that version, alone or among the others of the window, from
// the raw response and from the recorded sections alike.
func TestGoldenCorrect(t *testing.T) {
	all := loadZones(t, serials...)
	for _, serial := range []uint32{serial1, serial3} {
		own := loadZones(t, serial)
		for name, q := range loadResponses(t, serial) {
			for _, tc := range []struct {
				what  string
				zones []*zone.Zone
			}{{"own zone", own}, {"all zones", all}} {
				q := q
				if v, why := Check(&q, tc.zones); v != rssac.Correct {
					t.Errorf("%d %s against %s: %v %q, want Correct", serial, name, tc.what, v, why)
				}
				q.Response = cloneResponse(q.Response)
				q.Response.ABuf = nil
				if v, why := Check(&q, tc.zones); v != rssac.Correct {
					t.Errorf("%d %s from sections against %s: %v %q, want Correct", serial, name, tc.what, v, why)
				}
			}
		}
	}
}

// TestStaleSerial: an answer from version 1 matches version 1 only; the
// reason names the newest zone's difference.
func TestStaleSerial(t *testing.T) {
	old := loadResponses(t, serial1)
	newer := loadZones(t, serial2, serial3)
	for name, want := range map[string]string{
		"soa":    "answer RRset . SOA differs",
		"com-ns": "additional RRset b.gtld-servers.net. A differs",
		// ./NS, ./DNSKEY and the DS of com are the same in every version:
		// a stale server still answers them correctly.
		"ns":     "",
		"dnskey": "",
		"com-ds": "",
		// A negative answer carries the SOA, so it is stale too.
		"nxd-first": "authority RRset . SOA differs",
		// zz… sorts after se. in version 3: version 1's NSEC of org.
		// does not exist there.
		"nxd-last": "authority RRset . SOA differs",
	} {
		q := old[name]
		v, why := Check(&q, newer)
		if want == "" {
			if v != rssac.Correct {
				t.Errorf("%s: %v %q, want Correct", name, v, why)
			}
			continue
		}
		if v != rssac.Incorrect || why != want {
			t.Errorf("%s: %v %q, want Incorrect %q", name, v, why, want)
		}
	}
}

func cloneResponse(r *result.Response) *result.Response {
	c := *r
	return &c
}

// mutate returns q with its ABuf replaced by f applied to the parsed
// response.
func mutate(t testing.TB, q result.Query, f func(m *dns.Msg)) result.Query {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(q.Response.ABuf); err != nil {
		t.Fatal(err)
	}
	f(m)
	buf, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	q.Response = cloneResponse(q.Response)
	q.Response.ABuf = buf
	return q
}

// without drops the records of section sec for which drop is true.
func without(rrs []dns.RR, drop func(dns.RR) bool) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if !drop(rr) {
			out = append(out, rr)
		}
	}
	return out
}

func isType(t uint16) func(dns.RR) bool {
	return func(rr dns.RR) bool { return rr.Header().Rrtype == t }
}

func isSigOf(owner string, t uint16) func(dns.RR) bool {
	return func(rr dns.RR) bool {
		s, ok := rr.(*dns.RRSIG)
		return ok && s.TypeCovered == t && s.Hdr.Name == owner
	}
}

// TestFaults changes NSD's captured answers the way a faulty server
// would, and checks the verdict and its reason.
func TestFaults(t *testing.T) {
	zones := loadZones(t, serials...)
	got := loadResponses(t, serial3)
	mustRR := func(s string) dns.RR {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return rr
	}
	for _, tc := range []struct {
		name, query string
		f           func(*dns.Msg)
		q           func(*result.Query)
		verdict     rssac.Verdict
		reason      string
	}{
		{name: "AA clear", query: "soa", f: func(m *dns.Msg) { m.Authoritative = false },
			verdict: rssac.Incorrect, reason: "AA bit not set"},
		{name: "AA on referral", query: "com-ns", f: func(m *dns.Msg) { m.Authoritative = true },
			verdict: rssac.Incorrect, reason: "AA bit set on a referral"},
		{name: "AA clear on NXDOMAIN", query: "nxd-middle", f: func(m *dns.Msg) { m.Authoritative = false },
			verdict: rssac.Incorrect, reason: "AA bit not set"},
		{name: "SERVFAIL", query: "ns", f: func(m *dns.Msg) { m.Rcode = dns.RcodeServerFailure; m.Answer = nil; m.Extra = nil },
			verdict: rssac.Incorrect, reason: "rcode SERVFAIL, want NOERROR"},
		{name: "NOERROR for a name that does not exist", query: "nxd-first", f: func(m *dns.Msg) { m.Rcode = dns.RcodeSuccess },
			verdict: rssac.Incorrect, reason: "rcode NOERROR, want NXDOMAIN"},
		{name: "TTL changed", query: "ns", f: func(m *dns.Msg) {
			for _, rr := range m.Answer {
				if rr.Header().Rrtype == dns.TypeNS {
					rr.Header().Ttl = 3600
				}
			}
		}, verdict: rssac.Incorrect, reason: "answer RRset . NS TTL differs"},
		{name: "NS dropped", query: "ns", f: func(m *dns.Msg) {
			m.Answer = without(m.Answer, func(rr dns.RR) bool { ns, ok := rr.(*dns.NS); return ok && ns.Ns == "b.root-servers.net." })
		}, verdict: rssac.Incorrect, reason: "answer RRset . NS differs"},
		{name: "NS added", query: "ns", f: func(m *dns.Msg) {
			m.Answer = append(m.Answer, mustRR(". 518400 IN NS c.root-servers.net."))
		}, verdict: rssac.Incorrect, reason: "answer RRset . NS differs"},
		{name: "extra NS in a referral", query: "com-ns", f: func(m *dns.Msg) {
			m.Ns = append(m.Ns, mustRR("com. 172800 IN NS c.gtld-servers.net."))
		}, verdict: rssac.Incorrect, reason: "authority RRset com. NS differs"},
		{name: "glue changed", query: "com-ns", f: func(m *dns.Msg) {
			for _, rr := range m.Extra {
				if a, ok := rr.(*dns.A); ok && a.Hdr.Name == "a.gtld-servers.net." {
					a.A = []byte{192, 0, 2, 1}
				}
			}
		}, verdict: rssac.Incorrect, reason: "additional RRset a.gtld-servers.net. A differs"},
		{name: "glue of another name", query: "com-ns", f: func(m *dns.Msg) {
			m.Extra = append(m.Extra, mustRR("a.root-servers.net. 518400 IN A 198.41.0.4"))
		}, verdict: rssac.Incorrect, reason: "additional has unexpected RRset a.root-servers.net. A"},
		{name: "glue omitted", query: "com-ns", f: func(m *dns.Msg) {
			m.Extra = without(m.Extra, isType(dns.TypeAAAA))
		}, verdict: rssac.Correct},
		{name: "record not in zone", query: "soa", f: func(m *dns.Msg) {
			m.Ns = append(m.Ns, mustRR(". 86400 IN TXT \"hello\""))
		}, verdict: rssac.Incorrect, reason: "authority RRset . TXT not in zone"},
		{name: "answer missing", query: "dnskey", f: func(m *dns.Msg) { m.Answer = nil },
			verdict: rssac.Incorrect, reason: "answer lacks . DNSKEY"},
		{name: "answer on a referral", query: "com-ns", f: func(m *dns.Msg) {
			m.Answer = append(m.Answer, mustRR("com. 172800 IN NS a.gtld-servers.net."), mustRR("com. 172800 IN NS b.gtld-servers.net."))
		}, verdict: rssac.Incorrect, reason: "answer not empty on a referral"},
		{name: "RRSIG dropped", query: "ns", f: func(m *dns.Msg) { m.Answer = without(m.Answer, isType(dns.TypeRRSIG)) },
			verdict: rssac.Incorrect, reason: "answer RRset . NS lacks its RRSIG"},
		{name: "RRSIG corrupted", query: "soa", f: func(m *dns.Msg) {
			for _, rr := range m.Answer {
				if s, ok := rr.(*dns.RRSIG); ok {
					b, err := base64.StdEncoding.DecodeString(s.Signature)
					if err != nil {
						t.Fatal(err)
					}
					b[len(b)/2] ^= 1
					s.Signature = base64.StdEncoding.EncodeToString(b)
				}
			}
		}, verdict: rssac.Incorrect, reason: "RRSIG . SOA invalid: crypto/rsa: verification error"},
		{name: "RRSIG on unsigned glue", query: "com-ns", f: func(m *dns.Msg) {
			var sig *dns.RRSIG
			for _, rr := range m.Ns {
				if s, ok := rr.(*dns.RRSIG); ok {
					sig = dns.Copy(s).(*dns.RRSIG)
				}
			}
			sig.Hdr.Name, sig.TypeCovered = "com.", dns.TypeNS
			m.Ns = append(m.Ns, sig)
		}, verdict: rssac.Incorrect, reason: "RRSIG com. NS not in zone"},
		{name: "RRSIG without its RRset", query: "soa", f: func(m *dns.Msg) {
			m.Answer = without(m.Answer, isType(dns.TypeSOA))
		}, verdict: rssac.Incorrect, reason: "answer RRSIG . SOA without its RRset"},
		{name: "signature expired", query: "dnskey", q: func(q *result.Query) { q.Sent = sigExpiration.Add(time.Hour) },
			verdict: rssac.Incorrect, reason: "RRSIG . DNSKEY invalid: outside its validity period"},
		{name: "signature not yet valid", query: "com-ds", q: func(q *result.Query) { q.Sent = sigInception.Add(-time.Hour) },
			verdict: rssac.Incorrect, reason: "RRSIG com. DS invalid: outside its validity period"},
		{name: "referral without DS", query: "com-ns", f: func(m *dns.Msg) {
			m.Ns = without(m.Ns, func(rr dns.RR) bool { return isType(dns.TypeDS)(rr) || isType(dns.TypeRRSIG)(rr) })
		}, verdict: rssac.Incorrect, reason: "referral lacks com. DS"},
		{name: "unsigned referral without NSEC", query: "org-ns", f: func(m *dns.Msg) {
			m.Ns = without(m.Ns, func(rr dns.RR) bool { return isType(dns.TypeNSEC)(rr) || isType(dns.TypeRRSIG)(rr) })
		}, verdict: rssac.Incorrect, reason: "referral lacks org. NSEC"},
		{name: "NXDOMAIN without NSEC", query: "nxd-first", f: func(m *dns.Msg) {
			m.Ns = without(m.Ns, func(rr dns.RR) bool { return isType(dns.TypeNSEC)(rr) || isSigOf(".", dns.TypeNSEC)(rr) })
		}, verdict: rssac.Incorrect, reason: "NSEC proof of non-existence missing"},
		{name: "NXDOMAIN without wildcard proof", query: "nxd-last", f: func(m *dns.Msg) {
			m.Ns = without(m.Ns, func(rr dns.RR) bool {
				return rr.Header().Name == "." && (isType(dns.TypeNSEC)(rr) || isSigOf(".", dns.TypeNSEC)(rr))
			})
		}, verdict: rssac.Incorrect, reason: "NSEC proof of no wildcard missing"},
		{name: "NXDOMAIN without SOA", query: "nxd-middle", f: func(m *dns.Msg) {
			m.Ns = without(m.Ns, func(rr dns.RR) bool { return isType(dns.TypeSOA)(rr) || isSigOf(".", dns.TypeSOA)(rr) })
		}, verdict: rssac.Incorrect, reason: "authority lacks the SOA"},
		{name: "no-data without NSEC", query: "org-ds", f: func(m *dns.Msg) {
			m.Ns = without(m.Ns, func(rr dns.RR) bool { return isType(dns.TypeNSEC)(rr) || isSigOf("org.", dns.TypeNSEC)(rr) })
		}, verdict: rssac.Incorrect, reason: "NSEC proof of no DS missing"},
		{name: "names in upper case", query: "com-ns", f: func(m *dns.Msg) {
			m.Question[0].Name = "COM."
			for _, rr := range append(append(m.Answer, m.Ns...), m.Extra...) {
				rr.Header().Name = strings.ToUpper(rr.Header().Name)
				if ns, ok := rr.(*dns.NS); ok {
					ns.Ns = strings.ToUpper(ns.Ns)
				}
			}
		}, verdict: rssac.Correct},
		{name: "records reordered", query: "ns", f: func(m *dns.Msg) {
			for i, j := 0, len(m.Answer)-1; i < j; i, j = i+1, j-1 {
				m.Answer[i], m.Answer[j] = m.Answer[j], m.Answer[i]
			}
			for i, j := 0, len(m.Extra)-1; i < j; i, j = i+1, j-1 {
				m.Extra[i], m.Extra[j] = m.Extra[j], m.Extra[i]
			}
		}, verdict: rssac.Correct},
		{name: "truncated", query: "dnskey", f: func(m *dns.Msg) { m.Truncated = true },
			verdict: rssac.Unchecked, reason: ReasonTruncated},
		{name: "QR clear", query: "soa", f: func(m *dns.Msg) { m.Response = false },
			verdict: rssac.Incorrect, reason: "QR bit not set"},
		{name: "question differs", query: "com-ns", f: func(m *dns.Msg) { m.Question[0].Name = "net." },
			verdict: rssac.Incorrect, reason: "question differs"},
		{name: "malformed", query: "soa", q: func(q *result.Query) { q.Response.ABuf = q.Response.ABuf[:20] },
			verdict: rssac.Incorrect, reason: "malformed response: dns: overflow unpacking uint16"},
		{name: "timeout", query: "soa", q: func(q *result.Query) { q.Response, q.Timeout = nil, true },
			verdict: rssac.Unchecked, reason: ReasonNoResponse},
		{name: "connection refused", query: "soa", q: func(q *result.Query) { q.Response, q.Error = nil, "connection refused" },
			verdict: rssac.Unchecked, reason: ReasonNoResponse},
		{name: "an SOA query", query: "soa", q: func(q *result.Query) { q.Purpose = result.PurposeSOA },
			verdict: rssac.Unchecked, reason: ReasonNotCorrectness},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := got[tc.query]
			q.Response = cloneResponse(q.Response)
			if tc.f != nil {
				q = mutate(t, q, tc.f)
			}
			if tc.q != nil {
				tc.q(&q)
			}
			v, why := Check(&q, zones)
			if v != tc.verdict || why != tc.reason {
				t.Errorf("got %v %q, want %v %q", v, why, tc.verdict, tc.reason)
			}
		})
	}
}

func TestNoZone(t *testing.T) {
	q := loadResponses(t, serial3)["soa"]
	if v, why := Check(&q, nil); v != rssac.Unchecked || why != ReasonNoZone {
		t.Errorf("got %v %q", v, why)
	}
}

// TestSectionsFallback: without ABuf, a change in the recorded sections
// is judged like one in the raw response.
func TestSectionsFallback(t *testing.T) {
	zones := loadZones(t, serials...)
	q := loadResponses(t, serial3)["ns"]
	q.Response = cloneResponse(q.Response)
	q.Response.ABuf = nil
	q.Response.Answer = append([]result.RR(nil), q.Response.Answer...)
	q.Response.Answer[0].TTL = 60
	if v, why := Check(&q, zones); v != rssac.Incorrect || why != "answer RRset . NS TTL differs" {
		t.Errorf("got %v %q", v, why)
	}
	q.Response.Answer[0].RData = "not a name with spaces"
	if v, why := Check(&q, zones); v != rssac.Unchecked || !strings.HasPrefix(why, "recorded sections do not parse") {
		t.Errorf("got %v %q", v, why)
	}
}

// fakeSource is a Source of zones with given first-seen times.
type fakeSource struct {
	entries []zone.Entry
	zones   map[uint32]*zone.Zone
}

func (f *fakeSource) InEffect(from, to time.Time) []zone.Entry {
	var out []zone.Entry
	for i, e := range f.entries {
		if e.FirstSeen.After(to) {
			break
		}
		if e.FirstSeen.Before(from) && i+1 < len(f.entries) && !f.entries[i+1].FirstSeen.After(from) {
			continue
		}
		out = append(out, e)
	}
	return out
}

func (f *fakeSource) Get(serial uint32) (*zone.Zone, error) { return f.zones[serial], nil }

// TestCheckerWindow: a run is judged against the zones in effect from 48
// hours before its slot; a server still serving a version superseded
// longer ago than that is Incorrect.
func TestCheckerWindow(t *testing.T) {
	zs := loadZones(t, serials...)
	slot := time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC)
	src := &fakeSource{zones: map[uint32]*zone.Zone{}}
	for i, seen := range []time.Duration{-100 * time.Hour, -50 * time.Hour, -2 * time.Hour} {
		src.entries = append(src.entries, zone.Entry{Serial: serials[i], FirstSeen: slot.Add(seen)})
		src.zones[serials[i]] = zs[i]
	}
	c := &Checker{Source: src}
	if got := c.Zones(slot); len(got) != 2 || got[0].Serial() != serial2 || got[1].Serial() != serial3 {
		t.Fatalf("zones of the window: %v", got)
	}
	old := loadResponses(t, serial1)
	run := &result.Run{Version: result.Version, VP: "001", Slot: slot, Queries: []result.Query{old["soa"], old["ns"]}}
	run.Queries = append(run.Queries, result.Query{Purpose: result.PurposeSOA})
	res := c.CheckRun(run)
	want := []Result{{rssac.Incorrect, "answer RRset . SOA differs"}, {rssac.Correct, ""}, {rssac.Unchecked, ReasonNotCorrectness}}
	for i := range want {
		if res[i] != want[i] {
			t.Errorf("query %d: %+v, want %+v", i, res[i], want[i])
		}
	}
	// Version 1 was current 52 hours before: within the window of a
	// slot two hours earlier.
	if v, why := c.Check(slot.Add(-4*time.Hour), &run.Queries[0]); v != rssac.Correct {
		t.Errorf("4 hours earlier: %v %q, want Correct", v, why)
	}
}

// TestNegativeTTL: in a negative answer the SOA may carry the lesser of
// its TTL and its MINIMUM field (RFC 2308); any other TTL is wrong. The
// zone is unsigned: no NSEC is needed.
func TestNegativeTTL(t *testing.T) {
	text := strings.Replace(testdns.RootZoneText(5), "604800 86400", "604800 3600", 1)
	z, err := zone.Parse(strings.NewReader(text), ".", zone.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ttl     uint32
		verdict rssac.Verdict
		reason  string
	}{{86400, rssac.Correct, ""}, {3600, rssac.Correct, ""}, {1800, rssac.Incorrect, "authority RRset . SOA TTL differs"}} {
		m := new(dns.Msg)
		m.SetQuestion("www.rssac047-test.qwertyuiop.", dns.TypeA)
		m.Response, m.Authoritative, m.Rcode = true, true, dns.RcodeNameError
		soa, err := dns.NewRR(fmt.Sprintf(". %d IN SOA a.root-servers.net. nstld.verisign-grs.com. 5 1800 900 604800 3600", tc.ttl))
		if err != nil {
			t.Fatal(err)
		}
		m.Ns = []dns.RR{soa}
		buf, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		q := result.Query{Purpose: result.PurposeCorrectness, QName: "www.rssac047-test.qwertyuiop.", QType: "A", DO: true,
			Response: &result.Response{ABuf: buf}}
		if v, why := Check(&q, []*zone.Zone{z}); v != tc.verdict || why != tc.reason {
			t.Errorf("TTL %d: %v %q, want %v %q", tc.ttl, v, why, tc.verdict, tc.reason)
		}
	}
}
