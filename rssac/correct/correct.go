// Package correct is the RSSAC047 correctness check: it judges the
// response to a probe's correctness query against the root zones of the
// archive (package rssac/zone).
//
// A response is Correct when it matches one zone that was served in the
// 48 hours before the query: every RRset in every section is that zone's
// RRset (same records, same TTLs), every RRset the zone signs comes with
// RRSIGs that are the zone's and verify with its DNSKEYs at the time of
// the query, and the sections hold what an authoritative answer, a
// referral or a denial of existence must hold, with the AA bit set or
// not as the kind of response requires. A response that matches none is
// Incorrect, with a short reason. A query that got no response (a timeout
// is a matter for availability, not correctness), a truncated response
// (the TCP retry is judged instead), a query that is not a correctness
// query and a query for which no zone is at hand are Unchecked. The rules,
// and where they come from, are in docs/rssac-correctness.md.
package correct

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/netpulse/netpulse/probe/result"
	"github.com/netpulse/netpulse/rssac"
	"github.com/netpulse/netpulse/rssac/zone"
)

// Defaults of a Checker.
const (
	// DefaultWindow is RSSAC047's: a response may match any zone served
	// in the 48 hours before the query.
	DefaultWindow = 48 * time.Hour
	// DefaultLead lets a response match a zone the archive first saw up
	// to an hour after the run: a server can publish a serial before the
	// archive's next fetch (every 15 minutes) sees it.
	DefaultLead = time.Hour
	// MaxMessage is the largest DNS message there is.
	MaxMessage = 65535
)

// Source gives the zone versions to compare with: *zone.Archive.
type Source interface {
	// InEffect returns the versions that were current at some time in
	// [from, to], oldest first.
	InEffect(from, to time.Time) []zone.Entry
	// Get returns a version, parsed.
	Get(serial uint32) (*zone.Zone, error)
}

// Checker checks queries against the zones a Source had in effect around
// each run.
type Checker struct {
	// Source is the archive. Required.
	Source Source
	// Window is how far before a run's slot a zone still counts. Default
	// DefaultWindow.
	Window time.Duration
	// Lead is how far after the run's interval a zone first seen still
	// counts. Default DefaultLead.
	Lead time.Duration
	// Log receives zones that could not be loaded. Default: discard.
	Log *slog.Logger
}

// Result is a verdict and its reason ("" when Correct).
type Result struct {
	Verdict rssac.Verdict
	Reason  string
}

// Zones returns the zones a run of the given slot is judged against,
// oldest first: those current at some time from Window before the slot
// to Lead after its interval. A version that cannot be loaded is logged
// and left out.
func (c *Checker) Zones(slot time.Time) []*zone.Zone {
	window, lead := c.Window, c.Lead
	if window <= 0 {
		window = DefaultWindow
	}
	if lead <= 0 {
		lead = DefaultLead
	}
	entries := c.Source.InEffect(slot.Add(-window), slot.Add(result.Interval+lead))
	zones := make([]*zone.Zone, 0, len(entries))
	for _, e := range entries {
		z, err := c.Source.Get(e.Serial)
		if err != nil {
			if c.Log != nil {
				c.Log.Warn("correct: zone not loaded", "serial", e.Serial, "err", err)
			}
			continue
		}
		zones = append(zones, z)
	}
	return zones
}

// Check judges one query of a run of the given slot.
func (c *Checker) Check(slot time.Time, q *result.Query) (rssac.Verdict, string) {
	if q == nil || q.Purpose != result.PurposeCorrectness {
		return rssac.Unchecked, ReasonNotCorrectness
	}
	return Check(q, c.Zones(slot))
}

// CheckRun judges every query of a run; the results line up with
// r.Queries (and with rssac.FromRun's observations).
func (c *Checker) CheckRun(r *result.Run) []Result {
	out := make([]Result, len(r.Queries))
	var zones []*zone.Zone
	loaded := false
	for i := range r.Queries {
		q := &r.Queries[i]
		if q.Purpose != result.PurposeCorrectness {
			out[i] = Result{rssac.Unchecked, ReasonNotCorrectness}
			continue
		}
		if !loaded {
			zones, loaded = c.Zones(r.Slot), true
		}
		v, why := Check(q, zones)
		out[i] = Result{v, why}
	}
	return out
}

// Reasons of Unchecked verdicts.
const (
	ReasonNotCorrectness = "not a correctness query"
	ReasonNoResponse     = "no response"
	ReasonTruncated      = "truncated (the TCP retry is judged)"
	ReasonNoZone         = "no zone to compare with"
)

// Check judges q's response against zones, oldest first: Correct if it
// matches any of them. It reads the response from ABuf, or from the
// recorded sections when there is no ABuf. The validity of signatures is
// judged at q.Sent.
func Check(q *result.Query, zones []*zone.Zone) (rssac.Verdict, string) {
	r, v, why := prepare(q)
	if r == nil {
		return v, why
	}
	if len(zones) == 0 {
		return rssac.Unchecked, ReasonNoZone
	}
	// The zone of the response's serial first, then newest first: the
	// reason given is the first zone's.
	order := make([]*zone.Zone, 0, len(zones))
	for i := len(zones) - 1; i >= 0; i-- {
		if r.hasSerial && zones[i].Serial() == r.serial {
			order = append([]*zone.Zone{zones[i]}, order...)
		} else {
			order = append(order, zones[i])
		}
	}
	reason, unmodelled := "", ""
	for _, z := range order {
		switch v, why := r.judge(z); v {
		case rssac.Correct:
			return rssac.Correct, ""
		case rssac.Unchecked:
			unmodelled = why
		default:
			if reason == "" {
				reason = why
			}
		}
	}
	if reason == "" {
		return rssac.Unchecked, unmodelled
	}
	return rssac.Incorrect, reason
}

type section uint8

const (
	secAnswer section = iota
	secAuthority
	secAdditional
)

func (s section) String() string {
	return [...]string{"answer", "authority", "additional"}[s]
}

// rrset is one RRset of the response.
type rrset struct {
	sec   section
	key   zone.SetKey
	rrs   []dns.RR
	ttl   uint32
	mixed bool
	data  string
	sigs  []*sig
}

func (s *rrset) String() string { return s.key.Name + " " + typeName(s.key.Type) }

type sig struct {
	rr   *dns.RRSIG
	data string
}

type verKey struct {
	sig *sig
	key string
}

// response is a parsed response, ready to be judged against zones.
type response struct {
	msg       *dns.Msg
	qname     string
	qtype     uint16
	do        bool
	at        time.Time
	sets      []*rrset
	serial    uint32
	hasSerial bool
	verified  map[verKey]error
}

func typeName(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE%d", t)
}

// prepare parses q's response; a nil response comes with the verdict.
func prepare(q *result.Query) (*response, rssac.Verdict, string) {
	if q == nil || q.Purpose != result.PurposeCorrectness {
		return nil, rssac.Unchecked, ReasonNotCorrectness
	}
	if !q.Answered() {
		return nil, rssac.Unchecked, ReasonNoResponse
	}
	qtype, ok := dns.StringToType[strings.ToUpper(q.QType)]
	if !ok || q.QName == "" {
		return nil, rssac.Unchecked, "query name or type not understood"
	}
	r := &response{qname: zone.CanonicalName(q.QName), qtype: qtype, do: q.DO, at: q.Sent}
	var err error
	if len(q.Response.ABuf) > 0 {
		if len(q.Response.ABuf) > MaxMessage {
			return nil, rssac.Incorrect, "response larger than a DNS message"
		}
		r.msg = new(dns.Msg)
		if err = r.msg.Unpack(q.Response.ABuf); err != nil {
			return nil, rssac.Incorrect, "malformed response: " + err.Error()
		}
	} else if r.msg, err = fromSections(q, qtype); err != nil {
		return nil, rssac.Unchecked, "recorded sections do not parse: " + err.Error()
	}
	m := r.msg
	switch {
	case !m.Response:
		return nil, rssac.Incorrect, "QR bit not set"
	case m.Opcode != dns.OpcodeQuery:
		return nil, rssac.Incorrect, "opcode " + dns.OpcodeToString[m.Opcode]
	case m.Truncated:
		return nil, rssac.Unchecked, ReasonTruncated
	case len(m.Question) != 1 || !strings.EqualFold(dns.Fqdn(m.Question[0].Name), r.qname) ||
		m.Question[0].Qtype != qtype || m.Question[0].Qclass != dns.ClassINET:
		return nil, rssac.Incorrect, "question differs"
	}
	if why := r.group(); why != "" {
		return nil, rssac.Incorrect, why
	}
	return r, rssac.Unchecked, ""
}

// group sorts the response's records into RRsets per section, with their
// RRSIGs, in canonical form.
func (r *response) group() string {
	type skey struct {
		sec section
		key zone.SetKey
	}
	sets := map[skey]*rrset{}
	var sigs []skey
	var sigRRs []*dns.RRSIG
	var buf []byte
	for sec, rrs := range [][]dns.RR{r.msg.Answer, r.msg.Ns, r.msg.Extra} {
		for _, rr := range rrs {
			h := rr.Header()
			if h.Rrtype == dns.TypeOPT {
				continue
			}
			zone.Canonicalize(rr)
			if h.Class != dns.ClassINET {
				return fmt.Sprintf("%s record %s %s of class %s", section(sec), h.Name, typeName(h.Rrtype), dns.ClassToString[h.Class])
			}
			if s, ok := rr.(*dns.RRSIG); ok {
				sigs = append(sigs, skey{section(sec), zone.SetKey{Name: h.Name, Type: s.TypeCovered}})
				sigRRs = append(sigRRs, s)
				continue
			}
			k := skey{section(sec), zone.SetKey{Name: h.Name, Type: h.Rrtype}}
			s := sets[k]
			if s == nil {
				s = &rrset{sec: k.sec, key: k.key, ttl: h.Ttl}
				sets[k] = s
				r.sets = append(r.sets, s)
			} else if h.Ttl != s.ttl {
				s.mixed = true
			}
			s.rrs = append(s.rrs, rr)
			if soa, ok := rr.(*dns.SOA); ok && !r.hasSerial && section(sec) != secAdditional {
				r.serial, r.hasSerial = soa.Serial, true
			}
		}
	}
	for _, s := range r.sets {
		rds := make([]string, 0, len(s.rrs))
		for _, rr := range s.rrs {
			var err error
			if buf, err = zone.RData(rr, buf[:0]); err != nil {
				return fmt.Sprintf("%s record %s does not pack", s.sec, s)
			}
			rds = append(rds, string(buf))
		}
		s.data = zone.SetData(rds)
	}
	for i, k := range sigs {
		s := sets[k]
		if s == nil {
			return fmt.Sprintf("%s RRSIG %s %s without its RRset", k.sec, k.key.Name, typeName(k.key.Type))
		}
		var err error
		if buf, err = zone.RData(sigRRs[i], buf[:0]); err != nil {
			return fmt.Sprintf("%s RRSIG %s does not pack", k.sec, s)
		}
		s.sigs = append(s.sigs, &sig{rr: sigRRs[i], data: string(buf)})
	}
	return ""
}

// fromSections rebuilds a message from the recorded header and sections.
func fromSections(q *result.Query, qtype uint16) (*dns.Msg, error) {
	resp := q.Response
	m := new(dns.Msg)
	m.Id = resp.ID
	m.Rcode = resp.RCode
	for _, f := range resp.Flags {
		switch strings.ToLower(f) {
		case "qr":
			m.Response = true
		case "aa":
			m.Authoritative = true
		case "tc":
			m.Truncated = true
		case "rd":
			m.RecursionDesired = true
		case "ra":
			m.RecursionAvailable = true
		case "ad":
			m.AuthenticatedData = true
		case "cd":
			m.CheckingDisabled = true
		}
	}
	m.Question = []dns.Question{{Name: dns.Fqdn(q.QName), Qtype: qtype, Qclass: dns.ClassINET}}
	for i, sec := range [][]result.RR{resp.Answer, resp.Authority, resp.Additional} {
		for _, x := range sec {
			class := x.Class
			if class == "" {
				class = "IN"
			}
			rr, err := dns.NewRR(fmt.Sprintf("%s %d %s %s %s", x.Name, x.TTL, class, x.Type, x.RData))
			if err != nil {
				return nil, err
			}
			if rr == nil {
				return nil, errors.New("empty record")
			}
			switch i {
			case 0:
				m.Answer = append(m.Answer, rr)
			case 1:
				m.Ns = append(m.Ns, rr)
			default:
				m.Extra = append(m.Extra, rr)
			}
		}
	}
	return m, nil
}

// kind is what the zone says the response must be.
type kind uint8

const (
	kindAnswer kind = iota
	kindReferral
	kindNoData
	kindNXDomain
	kindUnmodelled
)

// classify says what a zone's authoritative server answers to
// (qname, qtype). The root zone has no CNAME, DNAME or wildcard: a zone
// whose answer would involve one is not modelled.
func classify(z *zone.Zone, qname string, qtype uint16) (kind, string) {
	cut := z.Cut(qname)
	if cut != "" && (qtype != dns.TypeDS || qname != cut) {
		return kindReferral, cut
	}
	if z.Lookup(qname, qtype) != nil {
		return kindAnswer, ""
	}
	if z.Lookup(qname, dns.TypeCNAME) != nil {
		return kindUnmodelled, ""
	}
	if z.Exists(qname) {
		return kindNoData, ""
	}
	if z.Exists("*." + strings.TrimPrefix(closestEncloser(z, qname), ".")) {
		return kindUnmodelled, ""
	}
	return kindNXDomain, ""
}

// closestEncloser is the longest ancestor of qname that exists.
func closestEncloser(z *zone.Zone, qname string) string {
	for off, end := 0, false; !end; off, end = dns.NextLabel(qname, off) {
		if n := qname[off:]; z.Exists(n) {
			return n
		}
	}
	return z.Origin()
}

// judge compares the response with one zone.
func (r *response) judge(z *zone.Zone) (rssac.Verdict, string) {
	if !dns.IsSubDomain(z.Origin(), r.qname) {
		return rssac.Unchecked, "query name outside the zone"
	}
	k, cut := classify(z, r.qname, r.qtype)
	if k == kindUnmodelled {
		return rssac.Unchecked, "answer would come from a CNAME or wildcard: not modelled"
	}
	want := dns.RcodeSuccess
	if k == kindNXDomain {
		want = dns.RcodeNameError
	}
	if r.msg.Rcode != want {
		return rssac.Incorrect, fmt.Sprintf("rcode %s, want %s", rcodeName(r.msg.Rcode), rcodeName(want))
	}
	if k == kindReferral && r.msg.Authoritative {
		return rssac.Incorrect, "AA bit set on a referral"
	}
	if k != kindReferral && !r.msg.Authoritative {
		return rssac.Incorrect, "AA bit not set"
	}
	negative := k == kindNoData || k == kindNXDomain
	// Contents, then what each section holds, then signatures (the
	// costly part) once all else matches.
	for _, s := range r.sets {
		if why := r.compare(z, s, negative); why != "" {
			return rssac.Incorrect, why
		}
	}
	if why := r.sections(z, k, cut); why != "" {
		return rssac.Incorrect, why
	}
	for _, s := range r.sets {
		if why := r.signatures(z, s); why != "" {
			return rssac.Incorrect, why
		}
	}
	return rssac.Correct, ""
}

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rc)
}

// find returns the response's RRset in sec, or nil.
func (r *response) find(sec section, name string, t uint16) *rrset {
	for _, s := range r.sets {
		if s.sec == sec && s.key.Type == t && s.key.Name == name {
			return s
		}
	}
	return nil
}

// sections applies the per-kind rules on what each section holds.
func (r *response) sections(z *zone.Zone, k kind, cut string) string {
	origin := z.Origin()
	proofs := r.do && z.HasNSEC() && !z.HasNSEC3()
	targets := map[string]bool{}
	for _, s := range r.sets {
		if s.key.Type == dns.TypeNS && s.sec != secAdditional {
			for _, rr := range s.rrs {
				targets[rr.(*dns.NS).Ns] = true
			}
		}
	}
	for _, s := range r.sets {
		var ok bool
		switch s.sec {
		case secAnswer:
			ok = k == kindAnswer && s.key == zone.SetKey{Name: r.qname, Type: r.qtype}
			if !ok && k != kindAnswer {
				return "answer not empty on a " + kindName(k)
			}
		case secAuthority:
			switch k {
			case kindAnswer:
				ok = s.key == zone.SetKey{Name: origin, Type: dns.TypeNS}
			case kindReferral:
				ok = s.key.Name == cut && (s.key.Type == dns.TypeNS || s.key.Type == dns.TypeDS || s.key.Type == dns.TypeNSEC) ||
					s.key.Type == dns.TypeNSEC3
			default:
				ok = s.key == zone.SetKey{Name: origin, Type: dns.TypeSOA} || s.key.Type == dns.TypeNSEC || s.key.Type == dns.TypeNSEC3
			}
		case secAdditional:
			ok = (s.key.Type == dns.TypeA || s.key.Type == dns.TypeAAAA) && targets[s.key.Name]
		}
		if !ok {
			return fmt.Sprintf("%s has unexpected RRset %s", s.sec, s)
		}
	}
	switch k {
	case kindAnswer:
		if r.find(secAnswer, r.qname, r.qtype) == nil {
			return fmt.Sprintf("answer lacks %s %s", r.qname, typeName(r.qtype))
		}
	case kindReferral:
		if r.find(secAuthority, cut, dns.TypeNS) == nil {
			return fmt.Sprintf("referral lacks %s NS", cut)
		}
		// A signed zone's referral proves the DS or its absence (RFC 4035
		// §3.1.4); an unsigned zone's need not carry the DS.
		if !r.do || !z.Signed() {
			break
		}
		if z.Lookup(cut, dns.TypeDS) != nil {
			if r.find(secAuthority, cut, dns.TypeDS) == nil {
				return fmt.Sprintf("referral lacks %s DS", cut)
			}
		} else if proofs && r.find(secAuthority, cut, dns.TypeNSEC) == nil {
			return fmt.Sprintf("referral lacks %s NSEC", cut)
		}
	case kindNoData, kindNXDomain:
		if r.find(secAuthority, origin, dns.TypeSOA) == nil {
			return "authority lacks the SOA"
		}
		if !proofs {
			break
		}
		if k == kindNoData {
			if !r.provesNoData() {
				return fmt.Sprintf("NSEC proof of no %s missing", typeName(r.qtype))
			}
			break
		}
		if !r.covered(r.qname) {
			return "NSEC proof of non-existence missing"
		}
		ce := closestEncloser(z, r.qname)
		if !r.covered("*." + strings.TrimPrefix(ce, ".")) {
			return "NSEC proof of no wildcard missing"
		}
	}
	return ""
}

func kindName(k kind) string {
	switch k {
	case kindReferral:
		return "referral"
	case kindNoData:
		return "no-data response"
	case kindNXDomain:
		return "NXDOMAIN"
	}
	return "answer"
}

// covered reports whether an NSEC in the authority section covers name:
// its owner sorts before name and its next name after it, or it is the
// last of the chain (its next name is the apex) and its owner sorts
// before name.
func (r *response) covered(name string) bool {
	for _, s := range r.sets {
		if s.sec != secAuthority || s.key.Type != dns.TypeNSEC {
			continue
		}
		for _, rr := range s.rrs {
			n := rr.(*dns.NSEC)
			if zone.CompareNames(n.Hdr.Name, name) >= 0 {
				continue
			}
			if zone.CompareNames(n.Hdr.Name, n.NextDomain) >= 0 || zone.CompareNames(name, n.NextDomain) < 0 {
				return true
			}
		}
	}
	return false
}

// provesNoData reports whether the authority section has the NSEC of
// qname without qtype (or CNAME) in its bitmap, or, for an empty
// non-terminal, an NSEC covering qname.
func (r *response) provesNoData() bool {
	if s := r.find(secAuthority, r.qname, dns.TypeNSEC); s != nil {
		for _, rr := range s.rrs {
			types := rr.(*dns.NSEC).TypeBitMap
			if !slices.Contains(types, r.qtype) && !slices.Contains(types, dns.TypeCNAME) {
				return true
			}
		}
		return false
	}
	return r.covered(r.qname)
}

// compare checks one RRset's records and TTL against the zone.
func (r *response) compare(z *zone.Zone, s *rrset, negative bool) string {
	zs := z.Lookup(s.key.Name, s.key.Type)
	if zs == nil {
		return fmt.Sprintf("%s RRset %s not in zone", s.sec, s)
	}
	if zs.Data != s.data {
		return fmt.Sprintf("%s RRset %s differs", s.sec, s)
	}
	if zs.MixedTTL {
		return ""
	}
	if s.mixed {
		return fmt.Sprintf("%s RRset %s TTL differs", s.sec, s)
	}
	if s.ttl == zs.TTL {
		return ""
	}
	// In a negative answer a server may give the SOA, and the NSECs, the
	// lesser of their TTL and the SOA's TTL and MINIMUM field (RFC 2308
	// §3, RFC 9077 §3). The root zone's are all one day.
	if negative && s.sec == secAuthority && (s.key.Type == dns.TypeSOA || s.key.Type == dns.TypeNSEC) {
		soa := z.SOA()
		if s.ttl == min(zs.TTL, soa.Hdr.Ttl, soa.Minttl) {
			return ""
		}
	}
	return fmt.Sprintf("%s RRset %s TTL differs", s.sec, s)
}

// Reasons of signature checks that fail without a crypto error.
var (
	errNoKey    = errors.New("no DNSKEY of the zone matches")
	errValidity = errors.New("outside its validity period")
)

// signatures checks one RRset's RRSIGs against the zone: the zone's
// signed sets must come with signatures (when DO was set), every
// signature must verify with a zone DNSKEY at the query's time and be
// one the zone has; an unsigned set must come without.
func (r *response) signatures(z *zone.Zone, s *rrset) string {
	zs := z.Lookup(s.key.Name, s.key.Type)
	if len(zs.Sigs) == 0 {
		if len(s.sigs) > 0 {
			return fmt.Sprintf("RRSIG %s not in zone", s)
		}
		return ""
	}
	if len(s.sigs) == 0 {
		if r.do {
			return fmt.Sprintf("%s RRset %s lacks its RRSIG", s.sec, s)
		}
		return ""
	}
	for _, sg := range s.sigs {
		if err := r.verify(z, s, sg); err != nil {
			return fmt.Sprintf("RRSIG %s invalid: %v", s, err)
		}
		if !zs.HasSig(sg.data) {
			return fmt.Sprintf("RRSIG %s not in zone", s)
		}
	}
	return ""
}

// verify checks one signature with the zone's keys of its tag and
// algorithm. Results are kept per key, since the zones of a window mostly
// share their DNSKEYs.
func (r *response) verify(z *zone.Zone, s *rrset, sg *sig) error {
	err := errNoKey
	for _, k := range z.DNSKEYs() {
		if k.Tag != sg.rr.KeyTag || k.Key.Algorithm != sg.rr.Algorithm {
			continue
		}
		vk := verKey{sg, k.ID}
		e, done := r.verified[vk]
		if !done {
			e = sg.rr.Verify(k.Key, s.rrs)
			if r.verified == nil {
				r.verified = map[verKey]error{}
			}
			r.verified[vk] = e
		}
		if e == nil {
			if !sg.rr.ValidityPeriod(r.at) {
				return errValidity
			}
			return nil
		}
		err = e
	}
	return err
}
