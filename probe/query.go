package probe

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/netpulse/netpulse/probe/result"
)

// EDNS buffer sizes of the queries.
const (
	// soaBufSize is the SOA queries' EDNS buffer size: dig's default
	// (BIND 9.16, which the seed's probe used) and the DNS Flag Day 2020
	// value.
	soaBufSize = 1232
	// correctnessBufSize is RSSAC047's size for the correctness queries.
	correctnessBufSize = 1220
)

// querySpec is one query to send.
type querySpec struct {
	target    string
	addr      netip.Addr
	port      int
	transport string
	purpose   string
	qname     string
	qtype     uint16
	do        bool
	bufSize   uint16
	retry     bool
}

// family is 4 or 6.
func family(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

// buildQuery returns the wire form of the query: RD clear (the targets
// are authoritative), EDNS0 with the buffer size, the DO bit and an empty
// NSID option, which asks the server for its NSID (RFC 5001).
func buildQuery(s querySpec, id uint16) ([]byte, error) {
	m := new(dns.Msg)
	m.Id = id
	m.Question = []dns.Question{{Name: s.qname, Qtype: s.qtype, Qclass: dns.ClassINET}}
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	opt.SetUDPSize(s.bufSize)
	opt.SetDo(s.do)
	opt.Option = append(opt.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	m.Extra = append(m.Extra, opt)
	return m.Pack()
}

// exchange sends one query and records it. It never retries: a timeout
// or a connection error is an outcome, not a reason to ask again.
func exchange(ctx context.Context, s querySpec, timeout time.Duration) result.Query {
	q := result.Query{
		Target: s.target, Address: s.addr.String(), Port: s.port, Family: family(s.addr),
		Transport: s.transport, Purpose: s.purpose, QName: s.qname, QType: typeName(s.qtype),
		DO: s.do, BufSize: int(s.bufSize), Retry: s.retry,
	}
	id := dns.Id()
	wire, err := buildQuery(s, id)
	if err != nil {
		// Only a bad qname gets here; it is recorded, not sent.
		q.Sent, q.Timeout, q.Error = time.Now().UTC(), true, "query not built: "+err.Error()
		return q
	}
	ap := netip.AddrPortFrom(s.addr, uint16(s.port))
	var raw []byte
	var sent time.Time
	var rtt time.Duration
	if s.transport == result.TCP {
		raw, sent, rtt, err = exchangeTCP(ctx, ap, wire, timeout)
	} else {
		raw, sent, rtt, err = exchangeUDP(ctx, ap, wire, id, timeout)
	}
	q.Sent = sent.UTC()
	if err != nil {
		// No response: a timeout, or a connection error that the metrics
		// count as one (RSSAC047), with Error saying which.
		q.Timeout, q.Error = true, errorText(ctx, err)
		return q
	}
	q.RTTMS = float64(rtt.Nanoseconds()) / 1e6
	resp, err := decodeResponse(raw, id, s)
	q.Response = resp
	if err != nil {
		q.Error = err.Error()
	}
	return q
}

// exchangeUDP sends wire over a connected UDP socket and reads until a
// datagram with the query's id arrives. The time runs from just before
// the send to the end of the read of the full response; datagrams with
// another id (late answers, spoofing attempts) are skipped.
func exchangeUDP(ctx context.Context, ap netip.AddrPort, wire []byte, id uint16, timeout time.Duration) ([]byte, time.Time, time.Duration, error) {
	var d net.Dialer
	// Connecting a UDP socket sends nothing; it makes the kernel filter
	// other sources and report ICMP port unreachable as ECONNREFUSED.
	conn, err := d.DialContext(ctx, "udp", ap.String())
	if err != nil {
		return nil, time.Now(), 0, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	sent := time.Now()
	conn.SetDeadline(sent.Add(timeout))
	if _, err := conn.Write(wire); err != nil {
		return nil, sent, 0, err
	}
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil, sent, 0, err
		}
		if n < 2 || binary.BigEndian.Uint16(buf) != id {
			continue
		}
		rtt := time.Since(sent)
		return append([]byte(nil), buf[:n]...), sent, rtt, nil
	}
}

// exchangeTCP connects, sends wire with its length prefix and reads one
// length-prefixed response. The time runs from the start of the connect:
// RSSAC047 times TCP from connection start to the full response. Go's
// net.Dialer never asks for TCP Fast Open (it does not set
// TCP_FASTOPEN_CONNECT), so the handshake is a plain SYN/SYN-ACK, as
// RSSAC047 wants.
func exchangeTCP(ctx context.Context, ap netip.AddrPort, wire []byte, timeout time.Duration) ([]byte, time.Time, time.Duration, error) {
	sent := time.Now()
	dctx, cancel := context.WithDeadline(ctx, sent.Add(timeout))
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", ap.String())
	if err != nil {
		return nil, sent, 0, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	conn.SetDeadline(sent.Add(timeout))
	msg := make([]byte, 2+len(wire))
	binary.BigEndian.PutUint16(msg, uint16(len(wire)))
	copy(msg[2:], wire)
	if _, err := conn.Write(msg); err != nil {
		return nil, sent, 0, err
	}
	var l [2]byte
	if _, err := io.ReadFull(conn, l[:]); err != nil {
		return nil, sent, 0, err
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, sent, 0, err
	}
	return buf, sent, time.Since(sent), nil
}

// errorText is how a failed exchange is recorded: "" for a plain
// timeout, a short reason for a connection error.
func errorText(ctx context.Context, err error) string {
	switch {
	case ctx.Err() != nil:
		return "cancelled: the run's time was up"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return ""
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before the full response"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ""
	}
	return err.Error()
}

// decodeResponse turns a response into its record. The raw bytes are
// always kept (abuf). A response that does not unpack, is not a
// response, or answers another question is recorded with what its
// header says and an error, so that it never counts as available.
func decodeResponse(raw []byte, id uint16, s querySpec) (*result.Response, error) {
	r := &result.Response{Size: len(raw), ABuf: raw, Flags: []string{}}
	m := new(dns.Msg)
	if err := m.Unpack(raw); err != nil {
		if len(raw) >= 12 {
			var h dns.MsgHdr
			h.Id = binary.BigEndian.Uint16(raw)
			bits := binary.BigEndian.Uint16(raw[2:])
			h.Response, h.Authoritative, h.Truncated = bits&(1<<15) != 0, bits&(1<<10) != 0, bits&(1<<9) != 0
			h.RecursionDesired, h.RecursionAvailable = bits&(1<<8) != 0, bits&(1<<7) != 0
			h.AuthenticatedData, h.CheckingDisabled = bits&(1<<5) != 0, bits&(1<<4) != 0
			h.Rcode = int(bits & 0xf)
			fillHeader(r, h)
		}
		return r, fmt.Errorf("malformed response: %v", err)
	}
	fillHeader(r, m.MsgHdr)
	r.RCode, r.RCodeName = m.Rcode, rcodeName(m.Rcode)
	if opt := m.IsEdns0(); opt != nil {
		if m.Rcode == dns.RcodeBadVers {
			// 16 is BADSIG in a TSIG record, BADVERS in the header+OPT.
			r.RCodeName = "BADVERS"
		}
		for _, o := range opt.Option {
			if n, ok := o.(*dns.EDNS0_NSID); ok {
				r.NSIDHex, r.NSIDText = n.Nsid, nsidText(n.Nsid)
			}
		}
	}
	r.Answer = section(m.Answer)
	r.Authority = section(m.Ns)
	r.Additional = section(m.Extra)
	for _, rr := range m.Answer {
		if soa, ok := rr.(*dns.SOA); ok {
			r.SOASerial, r.HasSerial = soa.Serial, true
			break
		}
	}
	switch {
	case m.Id != id:
		return r, fmt.Errorf("response id %d, want %d", m.Id, id)
	case !m.Response:
		return r, errors.New("not a response (QR clear)")
	case len(m.Question) != 1 || !strings.EqualFold(m.Question[0].Name, s.qname) || m.Question[0].Qtype != s.qtype:
		return r, errors.New("response to another question")
	}
	return r, nil
}

// fillHeader sets the id, rcode and flags of r from h.
func fillHeader(r *result.Response, h dns.MsgHdr) {
	r.ID = h.Id
	r.RCode, r.RCodeName = h.Rcode, rcodeName(h.Rcode)
	for _, f := range []struct {
		set  bool
		name string
	}{{h.Response, "qr"}, {h.Authoritative, "aa"}, {h.Truncated, "tc"}, {h.RecursionDesired, "rd"},
		{h.RecursionAvailable, "ra"}, {h.AuthenticatedData, "ad"}, {h.CheckingDisabled, "cd"}} {
		if f.set {
			r.Flags = append(r.Flags, f.name)
		}
	}
}

// section is a message section as name/ttl/class/type/rdata. The OPT
// pseudo-record is left out: its NSID is in the response's fields, and
// the whole of it in abuf.
func section(rrs []dns.RR) []result.RR {
	var out []result.RR
	for _, rr := range rrs {
		h := rr.Header()
		if h.Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, result.RR{
			Name: h.Name, TTL: h.Ttl, Class: className(h.Class), Type: typeName(h.Rrtype),
			RData: rdata(rr),
		})
	}
	return out
}

// rdata is the record's data in presentation form: its text after the
// header's four tab-separated fields (name, TTL, class, type). Taken
// from the whole text rather than by trimming h.String(), because
// unknown types (RFC 3597) print their header as CLASS1/TYPEnnn.
func rdata(rr dns.RR) string {
	parts := strings.SplitN(rr.String(), "\t", 5)
	if len(parts) < 5 {
		return ""
	}
	return parts[4]
}

func typeName(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}

func className(c uint16) string {
	if s, ok := dns.ClassToString[c]; ok {
		return s
	}
	return "CLASS" + strconv.Itoa(int(c))
}

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return "RCODE" + strconv.Itoa(rc)
}

// nsidText is the NSID as text when every byte is printable ASCII, as
// operators usually set it ("b1.ams"), else "".
func nsidText(hexNSID string) string {
	b, err := hex.DecodeString(hexNSID)
	if err != nil || len(b) == 0 {
		return ""
	}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return ""
		}
	}
	return string(b)
}

// hasFlag reports whether a response has the named header flag.
func hasFlag(r *result.Response, f string) bool {
	if r == nil {
		return false
	}
	for _, x := range r.Flags {
		if x == f {
			return true
		}
	}
	return false
}
