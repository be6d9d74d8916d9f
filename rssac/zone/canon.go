package zone

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Canonicalize lower-cases, in place, rr's owner name and the domain
// names in its RDATA (RFC 4034 §6.2), so that records compare the same
// whatever the case a server or a zone file used.
func Canonicalize(rr dns.RR) {
	h := rr.Header()
	h.Name = strings.ToLower(h.Name)
	switch rr := rr.(type) {
	case *dns.NS:
		rr.Ns = strings.ToLower(rr.Ns)
	case *dns.SOA:
		rr.Ns, rr.Mbox = strings.ToLower(rr.Ns), strings.ToLower(rr.Mbox)
	case *dns.CNAME:
		rr.Target = strings.ToLower(rr.Target)
	case *dns.DNAME:
		rr.Target = strings.ToLower(rr.Target)
	case *dns.PTR:
		rr.Ptr = strings.ToLower(rr.Ptr)
	case *dns.MX:
		rr.Mx = strings.ToLower(rr.Mx)
	case *dns.SRV:
		rr.Target = strings.ToLower(rr.Target)
	case *dns.NSEC:
		rr.NextDomain = strings.ToLower(rr.NextDomain)
	case *dns.RRSIG:
		rr.SignerName = strings.ToLower(rr.SignerName)
	case *dns.NAPTR:
		rr.Replacement = strings.ToLower(rr.Replacement)
	case *dns.KX:
		rr.Exchanger = strings.ToLower(rr.Exchanger)
	case *dns.RP:
		rr.Mbox, rr.Txt = strings.ToLower(rr.Mbox), strings.ToLower(rr.Txt)
	case *dns.AFSDB:
		rr.Hostname = strings.ToLower(rr.Hostname)
	case *dns.MINFO:
		rr.Rmail, rr.Email = strings.ToLower(rr.Rmail), strings.ToLower(rr.Email)
	case *dns.MB:
		rr.Mb = strings.ToLower(rr.Mb)
	case *dns.MG:
		rr.Mg = strings.ToLower(rr.Mg)
	case *dns.MR:
		rr.Mr = strings.ToLower(rr.Mr)
	case *dns.RT:
		rr.Host = strings.ToLower(rr.Host)
	}
}

var errRData = errors.New("record does not pack")

// RData appends rr's RDATA in wire format, uncompressed, to buf and
// returns it. Call Canonicalize first for the canonical form.
func RData(rr dns.RR, buf []byte) ([]byte, error) {
	need := dns.Len(rr) + 16
	if cap(buf)-len(buf) < need {
		buf = slices.Grow(buf, need)
	}
	start := len(buf)
	w := buf[start : start+need]
	n, err := dns.PackRR(rr, w, 0, nil, false)
	if err != nil {
		return buf, err
	}
	w = w[:n]
	// Skip the owner name (uncompressed: labels up to the root's zero)
	// and the fixed header: type, class, TTL and RDLENGTH.
	off := 0
	for off < len(w) && w[off] != 0 {
		off += int(w[off]) + 1
	}
	off += 1 + 10
	if off > len(w) {
		return buf, errRData
	}
	if int(binary.BigEndian.Uint16(w[off-2:off])) != len(w)-off {
		return buf, errRData
	}
	return append(buf[:start], w[off:]...), nil
}

// SetData is the canonical form of an RRset: its records' canonical
// RDATA, sorted, each prefixed with its length. The slice is sorted in
// place.
func SetData(rdatas []string) string {
	slices.Sort(rdatas)
	n := 0
	for _, d := range rdatas {
		n += 2 + len(d)
	}
	var b strings.Builder
	b.Grow(n)
	for _, d := range rdatas {
		b.WriteByte(byte(len(d) >> 8))
		b.WriteByte(byte(len(d)))
		b.WriteString(d)
	}
	return b.String()
}

// CompareNames orders two domain names canonically (RFC 4034 §6.1):
// label by label from the root, each compared as lower-case bytes. It
// returns -1, 0 or +1. Names that do not pack compare as their lower-case
// text.
func CompareNames(a, b string) int {
	wa, erra := wireLabels(a)
	wb, errb := wireLabels(b)
	if erra != nil || errb != nil {
		return strings.Compare(strings.ToLower(a), strings.ToLower(b))
	}
	for i, j := len(wa)-1, len(wb)-1; ; i, j = i-1, j-1 {
		switch {
		case i < 0 && j < 0:
			return 0
		case i < 0:
			return -1
		case j < 0:
			return 1
		}
		if c := bytes.Compare(wa[i], wb[j]); c != 0 {
			return c
		}
	}
}

// wireLabels returns name's labels in wire form, lower case, escapes
// resolved.
func wireLabels(name string) ([][]byte, error) {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		return nil, err
	}
	buf = buf[:n]
	// ASCII only: DNS compares other bytes as they are.
	for i, c := range buf {
		if 'A' <= c && c <= 'Z' {
			buf[i] = c + 'a' - 'A'
		}
	}
	var labels [][]byte
	for off := 0; off < len(buf) && buf[off] != 0; {
		l := int(buf[off])
		if off+1+l > len(buf) {
			return nil, errRData
		}
		labels = append(labels, buf[off+1:off+1+l])
		off += 1 + l
	}
	return labels, nil
}
