package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/netpulse/netpulse/probe/result"
)

// Traceroute methods, as result.Trace records them.
const (
	MethodICMP    = "icmp"
	MethodScamper = "scamper"
)

// errNoPrivilege is the built-in traceroute's answer when the process
// may not open a raw ICMP socket (no root, no CAP_NET_RAW).
var errNoPrivilege = errors.New("no privilege for a raw ICMP socket (run as root or grant CAP_NET_RAW)")

// tracer runs the traceroutes of a run with the configured method.
type tracer struct {
	cfg TraceConfig
	// ids hands each built-in traceroute its own ICMP echo identifier: a
	// raw socket sees every ICMP message of the host, and the identifier
	// tells this trace's replies from the others'. It starts at a random
	// value so that two probes on one host rarely share one.
	ids atomic.Uint32
	// icmp is the built-in method (a variable for tests).
	icmp func(ctx context.Context, cfg TraceConfig, id uint16, target string, addr netip.Addr) (result.Trace, error)
}

func newTracer(cfg TraceConfig) *tracer {
	t := &tracer{cfg: cfg, icmp: icmpTrace}
	t.ids.Store(rand.Uint32())
	return t
}

// trace runs one traceroute to addr. With method auto it tries the
// built-in ICMP traceroute and falls back to scamper when the process
// lacks the privilege; when neither works the trace records why.
func (t *tracer) trace(ctx context.Context, target string, addr netip.Addr) result.Trace {
	switch t.cfg.Method {
	case MethodScamper:
		return scamperTrace(ctx, t.cfg, target, addr)
	case MethodICMP:
		tr, err := t.icmp(ctx, t.cfg, uint16(t.ids.Add(1)), target, addr)
		if err != nil {
			tr.Error = err.Error()
		}
		return tr
	}
	tr, err := t.icmp(ctx, t.cfg, uint16(t.ids.Add(1)), target, addr)
	if errors.Is(err, errNoPrivilege) {
		if _, lerr := lookScamper(t.cfg.Scamper); lerr == nil {
			return scamperTrace(ctx, t.cfg, target, addr)
		}
		tr.Error = err.Error() + ", and scamper is not installed"
		return tr
	}
	if err != nil {
		tr.Error = err.Error()
	}
	return tr
}

// parisSum is the constant the ICMP-Paris probes' checksums are held to.
const parisSum = 0x6e70

// echoProbe is an ICMP echo request whose checksum is the same for every
// sequence number (Paris traceroute): the first two payload bytes make
// up for the sequence number, so that routers that balance load on the
// ICMP checksum send every probe of a trace down the same path.
func echoProbe(v6 bool, id, seq uint16) []byte {
	payload := make([]byte, 16)
	binary.BigEndian.PutUint16(payload, onesAdd(parisSum, ^seq))
	copy(payload[2:], "netpulse-probe")
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if v6 {
		typ = ipv6.ICMPTypeEchoRequest
	}
	m := icmp.Message{Type: typ, Body: &icmp.Echo{ID: int(id), Seq: int(seq), Data: payload}}
	// For ICMPv6 the kernel fills in the checksum, over the same words.
	b, _ := m.Marshal(nil)
	return b
}

// onesAdd is one's complement addition, the arithmetic of the Internet
// checksum.
func onesAdd(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s&0xffff + s>>16)
}

// icmpTrace is the built-in traceroute: ICMP-Paris echo requests with
// TTL 1, 2, … up to MaxHops, Attempts probes per hop until one is
// answered, Wait for each reply. It stops at an echo reply (reached), at
// a destination unreachable, or after GapLimit silent hops in a row. A
// silent hop is recorded with one empty reply per probe.
func icmpTrace(ctx context.Context, cfg TraceConfig, id uint16, target string, addr netip.Addr) (result.Trace, error) {
	tr := result.Trace{Target: target, Address: addr.String(), Family: family(addr), Method: MethodICMP, Start: time.Now().UTC()}
	v6 := addr.Is6()
	network, listen := "ip4:icmp", "0.0.0.0"
	if v6 {
		network, listen = "ip6:ipv6-icmp", "::"
	}
	conn, err := icmp.ListenPacket(network, listen)
	if err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPROTONOSUPPORT) {
			return tr, errNoPrivilege
		}
		return tr, fmt.Errorf("icmp socket: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	if v6 {
		// Only the messages a trace reads reach the socket.
		var f ipv6.ICMPFilter
		f.SetAll(true)
		for _, typ := range []ipv6.ICMPType{ipv6.ICMPTypeEchoReply, ipv6.ICMPTypeTimeExceeded, ipv6.ICMPTypeDestinationUnreachable} {
			f.Accept(typ)
		}
		_ = conn.IPv6PacketConn().SetICMPFilter(&f)
	}
	dst := &net.IPAddr{IP: addr.AsSlice()}
	buf := make([]byte, 1500)
	gap := 0
	for ttl := 1; ttl <= cfg.MaxHops; ttl++ {
		if v6 {
			err = conn.IPv6PacketConn().SetHopLimit(ttl)
		} else {
			err = conn.IPv4PacketConn().SetTTL(ttl)
		}
		if err != nil {
			return tr, fmt.Errorf("set ttl %d: %w", ttl, err)
		}
		hop := result.Hop{TTL: ttl}
		var got reply
		for a := 0; a < cfg.Attempts && got.kind == 0; a++ {
			seq := uint16(ttl)<<4 | uint16(a)
			sent := time.Now()
			if _, err := conn.WriteTo(echoProbe(v6, id, seq), dst); err != nil {
				return tr, fmt.Errorf("send ttl %d: %w", ttl, err)
			}
			got = awaitReply(conn, buf, v6, id, seq, addr, sent.Add(cfg.Wait))
			if ctx.Err() != nil {
				tr.Hops = append(tr.Hops, hop)
				tr.Error = "cancelled: the run's time was up"
				return tr, nil
			}
			if got.kind == 0 {
				hop.Replies = append(hop.Replies, result.HopReply{})
				continue
			}
			hop.Replies = append(hop.Replies, result.HopReply{Addr: got.from.String(), RTTMS: float64(got.at.Sub(sent).Nanoseconds()) / 1e6})
		}
		tr.Hops = append(tr.Hops, hop)
		switch got.kind {
		case replyEcho:
			tr.Reached = true
			return tr, nil
		case replyUnreachable:
			tr.Reached = got.from == addr
			return tr, nil
		case replyTimeExceeded:
			gap = 0
		default:
			if gap++; gap >= cfg.GapLimit {
				return tr, nil
			}
		}
	}
	return tr, nil
}

// Kinds of reply to a traceroute probe.
const (
	replyEcho = iota + 1
	replyTimeExceeded
	replyUnreachable
)

type reply struct {
	kind int
	from netip.Addr
	at   time.Time
}

// awaitReply reads until the reply to probe (id, seq) arrives or the
// deadline passes; other ICMP messages are skipped.
func awaitReply(conn *icmp.PacketConn, buf []byte, v6 bool, id, seq uint16, dst netip.Addr, deadline time.Time) reply {
	conn.SetReadDeadline(deadline)
	for {
		n, peer, err := conn.ReadFrom(buf)
		if err != nil {
			return reply{}
		}
		at := time.Now()
		ipa, ok := peer.(*net.IPAddr)
		if !ok {
			continue
		}
		from, ok := netip.AddrFromSlice(ipa.IP)
		if !ok {
			continue
		}
		kind, rid, rseq, ok := parseICMPReply(buf[:n], v6, dst)
		if !ok || rid != id || rseq != seq || (kind == replyEcho && from.Unmap() != dst) {
			continue
		}
		return reply{kind: kind, from: from.Unmap(), at: at}
	}
}

// parseICMPReply reads an ICMP message (without its IP header) that may
// answer a traceroute probe to dst: an echo reply, or a time exceeded or
// destination unreachable that quotes an echo request to dst. It returns
// the kind and the probe's identifier and sequence number. Bytes from the
// network: it never panics on any input.
func parseICMPReply(b []byte, v6 bool, dst netip.Addr) (kind int, id, seq uint16, ok bool) {
	if len(b) < 8 {
		return 0, 0, 0, false
	}
	typ := b[0]
	var echoReply, timeExceeded, unreach byte = 0, 11, 3
	if v6 {
		echoReply, timeExceeded, unreach = 129, 3, 1
	}
	switch typ {
	case echoReply:
		return replyEcho, binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:]), true
	case timeExceeded:
		kind = replyTimeExceeded
	case unreach:
		kind = replyUnreachable
	default:
		return 0, 0, 0, false
	}
	// The quoted datagram follows the 8-byte ICMP header.
	inner := b[8:]
	var quoted []byte
	var idst netip.Addr
	if v6 {
		if len(inner) < 40 || inner[0]>>4 != 6 || inner[6] != 58 {
			return 0, 0, 0, false
		}
		idst = netip.AddrFrom16([16]byte(inner[24:40]))
		quoted = inner[40:]
		if len(quoted) < 8 || quoted[0] != 128 {
			return 0, 0, 0, false
		}
	} else {
		if len(inner) < 20 || inner[0]>>4 != 4 {
			return 0, 0, 0, false
		}
		ihl := int(inner[0]&0x0f) * 4
		if ihl < 20 || len(inner) < ihl+8 || inner[9] != 1 {
			return 0, 0, 0, false
		}
		idst = netip.AddrFrom4([4]byte(inner[16:20]))
		quoted = inner[ihl:]
		if quoted[0] != 8 {
			return 0, 0, 0, false
		}
	}
	if idst != dst {
		return 0, 0, 0, false
	}
	return kind, binary.BigEndian.Uint16(quoted[4:]), binary.BigEndian.Uint16(quoted[6:]), true
}
