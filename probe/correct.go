package probe

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/netpulse/netpulse/probe/result"
)

// correctnessQuery is the one correctness query of a target in a run.
type correctnessQuery struct {
	addr      netip.Addr
	transport string
	qname     string
	qtype     uint16
}

// negativePrefix starts the negative correctness queries' names
// (RSSAC047 §4.4: www.rssac047-test.<random>.).
const negativePrefix = "www.rssac047-test."

// pickCorrectness chooses a target's correctness query as RSSAC047 §4.4
// says: a random address family and transport; 90 % positive queries,
// split evenly between ./SOA, ./DNSKEY, ./NS, a random TLD's NS and a
// random TLD's DS; 10 % negative, a name under a random 10-letter label
// that cannot exist. t must have an address.
func pickCorrectness(rng *rand.Rand, t Target, tlds []string) correctnessQuery {
	addrs := t.addrs()
	c := correctnessQuery{addr: addrs[rng.IntN(len(addrs))], transport: result.UDP}
	if rng.IntN(2) == 1 {
		c.transport = result.TCP
	}
	if rng.IntN(10) == 0 {
		var label [10]byte
		for i := range label {
			label[i] = byte('a' + rng.IntN(26))
		}
		c.qname, c.qtype = negativePrefix+string(label[:])+".", dns.TypeA
		return c
	}
	tld := func() string { return dns.Fqdn(tlds[rng.IntN(len(tlds))]) }
	switch rng.IntN(5) {
	case 0:
		c.qname, c.qtype = ".", dns.TypeSOA
	case 1:
		c.qname, c.qtype = ".", dns.TypeDNSKEY
	case 2:
		c.qname, c.qtype = ".", dns.TypeNS
	case 3:
		c.qname, c.qtype = tld(), dns.TypeNS
	default:
		c.qname, c.qtype = tld(), dns.TypeDS
	}
	return c
}

// correctness sends the correctness query with EDNS buffer 1220 and the
// DO bit. A truncated UDP answer is followed by the same query over TCP
// (Retry set); both are recorded, and the collector checks the TCP one.
func correctness(ctx context.Context, t Target, c correctnessQuery, timeout time.Duration) []result.Query {
	s := querySpec{target: t.Name, addr: c.addr, port: t.Port, transport: c.transport, purpose: result.PurposeCorrectness,
		qname: c.qname, qtype: c.qtype, do: true, bufSize: correctnessBufSize}
	q := exchange(ctx, s, timeout)
	out := []result.Query{q}
	if c.transport == result.UDP && hasFlag(q.Response, "tc") {
		s.transport, s.retry = result.TCP, true
		out = append(out, exchange(ctx, s, timeout))
	}
	return out
}
