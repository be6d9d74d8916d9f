// Package zone is the root-zone archive of the collector's rssac part.
//
// RSSAC047 judges a correctness response against every root zone that was
// served in the 48 hours before the query, so the collector keeps every
// version of the zone it has seen: an Archive stores each version by SOA
// serial with the time it was first seen, a Fetcher fills it on a
// schedule (AXFR from a server, or an HTTP(S) URL such as the one
// InterNIC publishes), and Parse turns a version into a Zone: the form
// that package rssac/correct compares responses with (RRsets keyed by
// owner and type with their signatures, the delegation points, the names
// that exist, the DNSKEYs).
//
// A Zone keeps canonical RDATA, not dns.RR values: a root zone of about
// 22,000 records then takes a few megabytes, and comparing a response's
// RRset with it is a map lookup and a string comparison. See
// docs/rssac-correctness.md.
package zone

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Limits bound a zone read from outside (a URL, a transfer, a file).
type Limits struct {
	// MaxBytes bounds the zone's text. The root zone is about 2.3 MB.
	MaxBytes int64
	// MaxRRs bounds its records (RRSIGs included). The root zone has
	// about 22,000.
	MaxRRs int
}

// DefaultLimits are 64 MiB and a million records: thirty times the root
// zone.
func DefaultLimits() Limits { return Limits{MaxBytes: 64 << 20, MaxRRs: 1_000_000} }

func (l *Limits) fill() {
	d := DefaultLimits()
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxRRs <= 0 {
		l.MaxRRs = d.MaxRRs
	}
}

// ErrTooLarge is returned for a zone past its Limits.
var ErrTooLarge = errors.New("zone: too large")

// SetKey names an RRset: its owner (canonical: lower case, fully
// qualified) and type. RRSIGs are kept with the RRset they cover.
type SetKey struct {
	Name string
	Type uint16
}

// RRset is one RRset of a zone, reduced to what a comparison needs.
type RRset struct {
	// TTL is the TTL of the set's first record. MixedTTL is true when
	// its records disagree (RFC 2181 §5.2 deprecates that); a
	// comparison then does not check TTLs.
	TTL      uint32
	MixedTTL bool
	// Data is the set's canonical form (SetData of its records'
	// canonical RDATA); Len counts its records.
	Data string
	Len  int
	// Sigs holds the canonical RDATA of the RRSIGs that cover the set,
	// sorted. Empty for an unsigned set (a delegation's NS, glue, or
	// any set of an unsigned zone).
	Sigs []string
}

// HasSig reports whether the canonical RRSIG RDATA d is one of the set's
// signatures.
func (s *RRset) HasSig(d string) bool {
	_, ok := slices.BinarySearch(s.Sigs, d)
	return ok
}

// DNSKEY is one of the zone's apex DNSKEYs, its key tag, and an identity
// for caches: its canonical RDATA.
type DNSKEY struct {
	Key *dns.DNSKEY
	Tag uint16
	ID  string
}

// Zone is one version of a zone, parsed. It is read-only after Parse and
// safe for concurrent use.
type Zone struct {
	origin string
	serial uint32
	soa    dns.SOA
	sets   map[SetKey]*RRset
	// names holds every owner name and each of its ancestors down to the
	// origin, so empty non-terminals exist.
	names map[string]struct{}
	// cuts holds the delegation points: owners of NS sets other than the
	// origin.
	cuts  map[string]struct{}
	keys  []DNSKEY
	nsec  bool
	nsec3 bool
	rrs   int
	bytes int64
}

// Origin is the zone's apex, e.g. ".".
func (z *Zone) Origin() string { return z.origin }

// Serial is the SOA serial.
func (z *Zone) Serial() uint32 { return z.serial }

// SOA returns a copy of the apex SOA record.
func (z *Zone) SOA() dns.SOA { return z.soa }

// RRCount is the number of records, RRSIGs included; Size the bytes of
// text parsed.
func (z *Zone) RRCount() int { return z.rrs }

// Size is the size of the zone's text in bytes.
func (z *Zone) Size() int64 { return z.bytes }

// Signed reports whether the zone has DNSKEYs at its apex.
func (z *Zone) Signed() bool { return len(z.keys) > 0 }

// HasNSEC and HasNSEC3 report which denial of existence the zone uses.
func (z *Zone) HasNSEC() bool { return z.nsec }

// HasNSEC3 reports whether the zone has NSEC3 or NSEC3PARAM records.
func (z *Zone) HasNSEC3() bool { return z.nsec3 }

// DNSKEYs returns the apex DNSKEYs. The slice and keys are shared: do not
// modify them.
func (z *Zone) DNSKEYs() []DNSKEY { return z.keys }

// Lookup returns the RRset of a canonical owner name and type, or nil.
// A set that only has RRSIGs (no records) is not returned.
func (z *Zone) Lookup(name string, t uint16) *RRset {
	s := z.sets[SetKey{name, t}]
	if s == nil || s.Len == 0 {
		return nil
	}
	return s
}

// Exists reports whether a canonical name exists in the zone: it owns
// records, or it is an empty non-terminal above names that do.
func (z *Zone) Exists(name string) bool {
	_, ok := z.names[name]
	return ok
}

// Cut returns the delegation point at or above a canonical name, the one
// nearest the origin (names below it belong to the child zone), or ""
// when the name is in the zone's authoritative data.
func (z *Zone) Cut(name string) string {
	if len(z.cuts) == 0 {
		return ""
	}
	cut := ""
	for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
		n := name[off:]
		if n == z.origin || len(n) < len(z.origin) {
			break
		}
		if _, ok := z.cuts[n]; ok {
			cut = n
		}
	}
	return cut
}

// Parse reads a zone in master-file format. The first record must be the
// SOA; its owner is the origin, and when origin is not empty it must be
// that name. Every record must be of class IN and at or below the origin.
// $INCLUDE and $GENERATE are refused (a zone from outside spells its
// records out); $ORIGIN and $TTL work as in any zone file. Duplicate
// records are dropped, as a server does.
func Parse(r io.Reader, origin string, lim Limits) (*Zone, error) {
	lim.fill()
	if origin != "" {
		origin = CanonicalName(origin)
	}
	cr := &countingReader{r: io.LimitReader(r, lim.MaxBytes+1)}
	zp := dns.NewZoneParser(cr, origin, "")
	zp.SetIncludeAllowed(false)
	b := newBuilder()
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if cr.n > lim.MaxBytes {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, lim.MaxBytes)
		}
		if b.z.rrs >= lim.MaxRRs {
			return nil, fmt.Errorf("%w: more than %d records", ErrTooLarge, lim.MaxRRs)
		}
		// Spelt out, a record takes at least five bytes of text: more
		// records than that come from $GENERATE, which would let a few
		// bytes make a million records.
		if int64(b.z.rrs) > cr.n/4+64 {
			return nil, fmt.Errorf("zone: more records than the text spells out ($GENERATE is refused)")
		}
		if err := b.add(rr, origin); err != nil {
			return nil, err
		}
	}
	if cr.n > lim.MaxBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, lim.MaxBytes)
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("zone: %w", err)
	}
	if b.z.rrs == 0 {
		return nil, errors.New("zone: no records")
	}
	z, err := b.finish()
	if err != nil {
		return nil, err
	}
	z.bytes = cr.n
	return z, nil
}

// ParseRRs builds a zone from records, e.g. those of a zone transfer
// without its closing SOA. The same rules as Parse apply.
func ParseRRs(rrs []dns.RR, origin string, lim Limits) (*Zone, error) {
	lim.fill()
	if origin != "" {
		origin = CanonicalName(origin)
	}
	if len(rrs) > lim.MaxRRs {
		return nil, fmt.Errorf("%w: more than %d records", ErrTooLarge, lim.MaxRRs)
	}
	if len(rrs) == 0 {
		return nil, errors.New("zone: no records")
	}
	b := newBuilder()
	for _, rr := range rrs {
		if err := b.add(dns.Copy(rr), origin); err != nil {
			return nil, err
		}
	}
	return b.finish()
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// building is an RRset being collected.
type building struct {
	ttl   uint32
	mixed bool
	data  map[string]struct{}
	sigs  map[string]struct{}
}

type builder struct {
	z    *Zone
	sets map[SetKey]*building
	buf  []byte
}

func newBuilder() *builder {
	return &builder{
		z:    &Zone{names: map[string]struct{}{}, cuts: map[string]struct{}{}},
		sets: map[SetKey]*building{},
		buf:  make([]byte, 0, 512),
	}
}

// meta are the types that never belong in a zone's data.
func meta(t uint16) bool {
	switch t {
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeANY,
		dns.TypeMAILA, dns.TypeMAILB, dns.TypeNone, dns.TypeReserved:
		return true
	}
	return false
}

func (b *builder) add(rr dns.RR, origin string) error {
	z := b.z
	h := rr.Header()
	Canonicalize(rr)
	name := h.Name
	if z.rrs == 0 {
		soa, ok := rr.(*dns.SOA)
		if !ok {
			return fmt.Errorf("zone: first record is %s %s, not the SOA", name, dns.TypeToString[h.Rrtype])
		}
		if origin != "" && name != origin {
			return fmt.Errorf("zone: SOA owner %s, want %s", name, origin)
		}
		z.origin, z.serial, z.soa = name, soa.Serial, *soa
	}
	z.rrs++
	if h.Class != dns.ClassINET {
		return fmt.Errorf("zone: %s %s: class %s, want IN", name, dns.TypeToString[h.Rrtype], dns.ClassToString[h.Class])
	}
	if meta(h.Rrtype) {
		return fmt.Errorf("zone: %s: type %s does not belong in a zone", name, dns.TypeToString[h.Rrtype])
	}
	if !dns.IsSubDomain(z.origin, name) {
		return fmt.Errorf("zone: %s %s is outside the zone %s", name, dns.TypeToString[h.Rrtype], z.origin)
	}
	rd, err := RData(rr, b.buf[:0])
	if err != nil {
		return fmt.Errorf("zone: %s %s: %w", name, dns.TypeToString[h.Rrtype], err)
	}
	b.buf = rd
	// The text parser takes a record without RDATA (as in a dynamic
	// update); no zone needs one.
	if len(rd) == 0 {
		return fmt.Errorf("zone: %s %s: no RDATA", name, dns.TypeToString[h.Rrtype])
	}
	key := SetKey{name, h.Rrtype}
	if sig, ok := rr.(*dns.RRSIG); ok {
		key.Type = sig.TypeCovered
	}
	s := b.sets[key]
	if s == nil {
		s = &building{data: map[string]struct{}{}}
		b.sets[key] = s
	}
	if sig, ok := rr.(*dns.RRSIG); ok {
		if sig.TypeCovered == dns.TypeRRSIG || meta(sig.TypeCovered) {
			return fmt.Errorf("zone: %s: RRSIG covering %s", name, dns.TypeToString[sig.TypeCovered])
		}
		if s.sigs == nil {
			s.sigs = map[string]struct{}{}
		}
		s.sigs[string(rd)] = struct{}{}
		return nil
	}
	if _, dup := s.data[string(rd)]; dup {
		return nil
	}
	switch rr := rr.(type) {
	case *dns.SOA:
		if name != z.origin {
			return fmt.Errorf("zone: SOA at %s, not at the apex %s", name, z.origin)
		}
	case *dns.NS:
		if name != z.origin {
			z.cuts[name] = struct{}{}
		}
	case *dns.DNSKEY:
		if name == z.origin {
			z.keys = append(z.keys, DNSKEY{Key: rr, Tag: rr.KeyTag(), ID: string(rd)})
		}
	case *dns.NSEC:
		z.nsec = true
	case *dns.NSEC3, *dns.NSEC3PARAM:
		z.nsec3 = true
	}
	if len(s.data) == 0 {
		s.ttl = h.Ttl
	} else if h.Ttl != s.ttl {
		s.mixed = true
	}
	s.data[string(rd)] = struct{}{}
	for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
		n := name[off:]
		if _, ok := z.names[n]; ok || len(n) < len(z.origin) {
			break
		}
		z.names[n] = struct{}{}
	}
	return nil
}

func (b *builder) finish() (*Zone, error) {
	z := b.z
	z.names[z.origin] = struct{}{}
	z.sets = make(map[SetKey]*RRset, len(b.sets))
	for k, s := range b.sets {
		set := &RRset{TTL: s.ttl, MixedTTL: s.mixed, Len: len(s.data)}
		rds := make([]string, 0, len(s.data))
		for d := range s.data {
			rds = append(rds, d)
		}
		set.Data = SetData(rds)
		if len(s.sigs) > 0 {
			set.Sigs = make([]string, 0, len(s.sigs))
			for d := range s.sigs {
				set.Sigs = append(set.Sigs, d)
			}
			slices.Sort(set.Sigs)
		}
		z.sets[k] = set
	}
	// An SOA set holds one record: a second, different SOA (a file that
	// is two zones, or a transfer's closing SOA of another serial) is
	// refused.
	if s := z.sets[SetKey{z.origin, dns.TypeSOA}]; s.Len > 1 {
		return nil, fmt.Errorf("zone: %d different SOA records at %s", s.Len, z.origin)
	}
	return z, nil
}

// CanonicalName returns name fully qualified and in lower case.
func CanonicalName(name string) string { return strings.ToLower(dns.Fqdn(name)) }
