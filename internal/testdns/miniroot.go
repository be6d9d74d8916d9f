package testdns

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// MiniRootOptions describe a small root-like zone.
type MiniRootOptions struct {
	// Serial is the SOA serial. Default 2026010100.
	Serial uint32
	// TLDs are delegated, each with an NS, its glue and a DS. Default
	// com, net, org.
	TLDs []string
	// Sign signs the zone (RSASHA256, NSEC): a ZSK and two KSKs that
	// both sign the DNSKEY RRset, as during a KSK rollover, which makes
	// the DNSKEY answer with DO larger than 1220 bytes (UDP answers to a
	// 1220-byte EDNS buffer come back truncated).
	Sign bool
}

// MiniRoot returns the zone file text of a small root zone: "." SOA, NS
// and the TLD delegations, signed when asked. Signatures are valid from
// an hour ago for 30 days.
func MiniRoot(t testing.TB, o MiniRootOptions) string {
	t.Helper()
	if o.Serial == 0 {
		o.Serial = 2026010100
	}
	if len(o.TLDs) == 0 {
		o.TLDs = []string{"com", "net", "org"}
	}
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("testdns: %s: %v", s, err)
		}
		return r
	}
	var rrs []dns.RR
	rrs = append(rrs,
		rr(fmt.Sprintf(". 86400 IN SOA a.root-servers.net. nstld.verisign-grs.com. %d 1800 900 604800 86400", o.Serial)),
		rr(". 518400 IN NS a.root-servers.net."),
		rr(". 518400 IN NS b.root-servers.net."),
	)
	tlds := make([]string, len(o.TLDs))
	for i, tld := range o.TLDs {
		tlds[i] = dns.Fqdn(strings.ToLower(tld))
		digest := sha256.Sum256([]byte(tlds[i]))
		rrs = append(rrs,
			rr(fmt.Sprintf("%s 172800 IN NS ns1.nic.%s", tlds[i], tlds[i])),
			rr(fmt.Sprintf("ns1.nic.%s 172800 IN A 192.0.2.%d", tlds[i], 1+i%250)),
			rr(fmt.Sprintf("%s 86400 IN DS %d 8 2 %s", tlds[i], 10000+i, strings.ToUpper(hex.EncodeToString(digest[:])))),
		)
		if tlds[i] == "net." {
			rrs = append(rrs,
				rr("a.root-servers.net. 518400 IN A 198.41.0.4"),
				rr("b.root-servers.net. 518400 IN A 170.247.170.2"))
		}
	}
	if o.Sign {
		rrs = signMiniRoot(t, rrs, tlds)
	}
	var b strings.Builder
	for _, r := range rrs {
		b.WriteString(r.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// signMiniRoot adds the DNSKEYs, the NSEC chain over the authoritative
// names ("." and the delegations) and an RRSIG for every authoritative
// RRset (not the delegations' NS, not glue).
func signMiniRoot(t testing.TB, rrs []dns.RR, tlds []string) []dns.RR {
	t.Helper()
	type key struct {
		pub  *dns.DNSKEY
		priv crypto.Signer
	}
	gen := func(flags uint16) key {
		k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 172800},
			Flags: flags, Protocol: 3, Algorithm: dns.RSASHA256}
		priv, err := k.Generate(2048)
		if err != nil {
			t.Fatal(err)
		}
		return key{k, priv.(crypto.Signer)}
	}
	zsk, ksk1, ksk2 := gen(256), gen(257), gen(257)
	for _, k := range []key{zsk, ksk1, ksk2} {
		rrs = append(rrs, k.pub)
	}
	// The NSEC chain, in canonical order; "." sorts first.
	owners := append([]string{"."}, tlds...)
	slices.SortFunc(owners, canonicalCompare)
	types := map[string][]uint16{}
	for _, r := range rrs {
		h := r.Header()
		if slices.Contains(owners, h.Name) && !slices.Contains(types[h.Name], h.Rrtype) {
			types[h.Name] = append(types[h.Name], h.Rrtype)
		}
	}
	for i, o := range owners {
		bitmap := append(types[o], dns.TypeNSEC, dns.TypeRRSIG)
		slices.Sort(bitmap)
		rrs = append(rrs, &dns.NSEC{Hdr: dns.RR_Header{Name: o, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: 86400},
			NextDomain: owners[(i+1)%len(owners)], TypeBitMap: bitmap})
	}
	// RRsets to sign: everything at "." and the DS and NSEC of the
	// delegations.
	type setKey struct {
		name string
		typ  uint16
	}
	sets := map[setKey][]dns.RR{}
	var order []setKey
	for _, r := range rrs {
		h := r.Header()
		k := setKey{h.Name, h.Rrtype}
		if h.Name != "." && h.Rrtype != dns.TypeDS && h.Rrtype != dns.TypeNSEC {
			continue
		}
		if _, ok := sets[k]; !ok {
			order = append(order, k)
		}
		sets[k] = append(sets[k], r)
	}
	now := time.Now()
	for _, k := range order {
		signers := []key{zsk}
		if k.typ == dns.TypeDNSKEY {
			signers = []key{ksk1, ksk2}
		}
		for _, s := range signers {
			sig := &dns.RRSIG{Hdr: dns.RR_Header{Name: k.name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: sets[k][0].Header().Ttl},
				Algorithm: dns.RSASHA256, KeyTag: s.pub.KeyTag(), SignerName: ".",
				Inception: uint32(now.Add(-time.Hour).Unix()), Expiration: uint32(now.Add(30 * 24 * time.Hour).Unix())}
			if err := sig.Sign(s.priv, sets[k]); err != nil {
				t.Fatalf("testdns: sign %s %s: %v", k.name, dns.TypeToString[k.typ], err)
			}
			rrs = append(rrs, sig)
		}
	}
	return rrs
}

// canonicalCompare orders names as RFC 4034 §6.1 does: label by label
// from the right, case-insensitively.
func canonicalCompare(a, b string) int {
	la, lb := dns.SplitDomainName(strings.ToLower(a)), dns.SplitDomainName(strings.ToLower(b))
	for i := 1; i <= len(la) && i <= len(lb); i++ {
		if c := strings.Compare(la[len(la)-i], lb[len(lb)-i]); c != 0 {
			return c
		}
	}
	return len(la) - len(lb)
}
