package correct

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netpulse/netpulse/probe/result"
)

// probeQuery asks addr (a server on loopback) the way the probe asks a
// correctness query: RD clear, EDNS with a 1220-byte buffer and the DO
// bit, over UDP, and again over TCP when the answer is truncated. It
// returns the query record as the probe's result document holds it (the
// TCP retry's when there was one), with the raw response in ABuf.
func probeQuery(t testing.TB, addr, qname, qtype string) result.Query {
	t.Helper()
	q := probeOnce(t, addr, qname, qtype, result.UDP)
	if q.Response != nil && hasFlag(q.Response.Flags, "tc") {
		q = probeOnce(t, addr, qname, qtype, result.TCP)
		q.Retry = true
	}
	if !q.Answered() {
		t.Fatalf("%s %s: no response: %s", qname, qtype, q.Error)
	}
	return q
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

func probeOnce(t testing.TB, addr, qname, qtype, transport string) result.Query {
	t.Helper()
	q := result.Query{
		Target: "test", Address: addr, Port: 0, Family: 4, Transport: transport,
		Purpose: result.PurposeCorrectness, QName: qname, QType: qtype, DO: true, BufSize: 1220,
		Sent: time.Now().UTC(),
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(qname), dns.StringToType[qtype])
	m.RecursionDesired = false
	m.SetEdns0(1220, true)
	c, err := net.DialTimeout(transport, addr, 4*time.Second)
	if err != nil {
		q.Timeout, q.Error = true, err.Error()
		return q
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(4 * time.Second))
	co := &dns.Conn{Conn: c}
	if err := co.WriteMsg(m); err != nil {
		q.Timeout, q.Error = true, err.Error()
		return q
	}
	buf := make([]byte, 65535)
	n, err := co.Read(buf)
	if err != nil {
		q.Timeout, q.Error = true, err.Error()
		return q
	}
	q.RTTMS = float64(time.Since(q.Sent).Microseconds()) / 1000
	abuf := buf[:n:n]
	r := new(dns.Msg)
	if err := r.Unpack(abuf); err != nil {
		t.Fatalf("%s %s: %v", qname, qtype, err)
	}
	q.Response = responseRecord(r, abuf)
	return q
}

// responseRecord fills a result.Response as the probe does.
func responseRecord(r *dns.Msg, abuf []byte) *result.Response {
	resp := &result.Response{RCode: r.Rcode, RCodeName: dns.RcodeToString[r.Rcode], ID: r.Id, Size: len(abuf), ABuf: abuf}
	for _, f := range []struct {
		on   bool
		name string
	}{{r.Response, "qr"}, {r.Authoritative, "aa"}, {r.Truncated, "tc"}, {r.RecursionDesired, "rd"},
		{r.RecursionAvailable, "ra"}, {r.AuthenticatedData, "ad"}, {r.CheckingDisabled, "cd"}} {
		if f.on {
			resp.Flags = append(resp.Flags, f.name)
		}
	}
	conv := func(rrs []dns.RR) []result.RR {
		var out []result.RR
		for _, rr := range rrs {
			if rr.Header().Rrtype == dns.TypeOPT {
				continue
			}
			h := rr.Header()
			out = append(out, result.RR{Name: h.Name, TTL: h.Ttl, Class: dns.ClassToString[h.Class],
				Type: dns.TypeToString[h.Rrtype], RData: strings.TrimSpace(strings.TrimPrefix(rr.String(), h.String()))})
		}
		return out
	}
	for _, rr := range r.Answer {
		if soa, ok := rr.(*dns.SOA); ok {
			resp.SOASerial, resp.HasSerial = soa.Serial, true
			break
		}
	}
	resp.Answer = conv(r.Answer)
	resp.Authority = conv(r.Ns)
	resp.Additional = conv(r.Extra)
	return resp
}
