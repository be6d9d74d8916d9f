// Command trafficgen writes a deterministic Ethernet pcap of synthetic traffic
// that is fed to real flow exporters (softflowd, pmacctd, fprobe) by
// testdata/gen/make-captures.sh.
//
// Usage (from the repository root):
//
//	go run ./testdata/gen/trafficgen -o testdata/captures/traffic.pcap
//
// The output depends only on -seed: timestamps start at a fixed date and all
// randomness comes from a seeded PCG generator, so the file is byte-for-byte
// reproducible. Only documentation addresses are used (192.0.2.0/24,
// 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32, MACs 00:00:5e:00:53:xx).
//
// Contents (about 3-4 thousand frames over ~150 s of capture time):
//   - IPv4 and IPv6 TCP conversations (SYN, SYN/ACK, ACK, PSH/ACK data,
//     FIN/ACK teardown; some reset with RST, some unanswered SYNs);
//   - IPv4 and IPv6 UDP request/response exchanges and one-way streams;
//   - ICMP echo request/reply, ICMP port unreachable (type 3 code 3) quoting
//     the offending UDP datagram, ICMPv6 echo request/reply;
//   - long-lived flows spanning the whole capture (split by active timeouts)
//     and flows with a 45 s idle gap (split by inactive timeouts);
//   - ~20% of conversations carry one 802.1Q tag, a few carry two tags
//     (802.1ad 0x88a8 outer or 0x8100/0x8100 outer);
//   - a variety of DSCP/ECN values and packet sizes.
//
// All frames have correct lengths and IP/TCP/UDP/ICMP checksums.
package main

import (
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"sort"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// startTime is the timestamp of the first frame.
var startTime = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)

const window = 150 * time.Second // spread of conversation start times

type frame struct {
	t    time.Duration // offset from startTime
	seq  int           // generation order, tie breaker for equal t
	data []byte
}

type gen struct {
	r      *rand.Rand
	frames []frame
	ports  map[string]bool // used 5-tuples, to keep flows distinct
}

// vlanTags describes the 802.1Q/802.1ad tags of a conversation.
type vlanTags struct {
	outerType layers.EthernetType // 0 when untagged or single-tagged
	outer     uint16
	inner     uint16 // 0 when untagged
}

// endpoint of a conversation.
type endpoint struct {
	mac  net.HardwareAddr
	ip   net.IP
	port uint16
}

type conv struct {
	a, b endpoint
	v6   bool
	tags vlanTags
	tosA uint8 // ToS / traffic class of packets a->b
	tosB uint8 // ToS / traffic class of packets b->a
	ttlA uint8
	ttlB uint8
	ipID uint16
	// TCP state
	seqA, seqB uint32
}

var dscpChoices = []uint8{0, 0, 0, 0, 8, 10, 18, 26, 34, 46, 48}

func (g *gen) tos() uint8 {
	d := dscpChoices[g.r.IntN(len(dscpChoices))]
	ecn := uint8(0)
	if g.r.IntN(8) == 0 {
		ecn = uint8(1 + g.r.IntN(2)) // ECT(1) or ECT(0)
	}
	return d<<2 | ecn
}

func mac(last byte) net.HardwareAddr {
	// RFC 7042 documentation range 00-00-5E-00-53-00..FF.
	return net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x53, last}
}

var (
	clientMAC = mac(0x01)
	serverMAC = mac(0x02)
)

func (g *gen) clientV4() net.IP {
	if g.r.IntN(2) == 0 {
		return net.IPv4(192, 0, 2, byte(1+g.r.IntN(254))).To4()
	}
	return net.IPv4(198, 51, 100, byte(1+g.r.IntN(254))).To4()
}

func (g *gen) serverV4() net.IP {
	return net.IPv4(203, 0, 113, byte(1+g.r.IntN(254))).To4()
}

func (g *gen) clientV6() net.IP {
	ip := net.ParseIP("2001:db8:c1::").To16()
	ip[13] = byte(g.r.IntN(4))
	ip[14] = byte(g.r.IntN(256))
	ip[15] = byte(1 + g.r.IntN(254))
	return ip
}

func (g *gen) serverV6() net.IP {
	ip := net.ParseIP("2001:db8:5e::").To16()
	ip[14] = byte(g.r.IntN(4))
	ip[15] = byte(1 + g.r.IntN(254))
	return ip
}

func (g *gen) ephemeral() uint16 { return uint16(32768 + g.r.IntN(28232)) }

func (g *gen) newTags() vlanTags {
	switch n := g.r.IntN(100); {
	case n < 20:
		return vlanTags{inner: uint16(100 + g.r.IntN(8))}
	case n < 23:
		return vlanTags{outerType: layers.EthernetTypeQinQ, outer: 1000, inner: uint16(200 + g.r.IntN(4))}
	case n < 25:
		return vlanTags{outerType: layers.EthernetTypeDot1Q, outer: 2000, inner: uint16(300 + g.r.IntN(4))}
	}
	return vlanTags{}
}

func (g *gen) newConv(v6 bool, proto string, serverPort uint16) *conv {
	for {
		c := &conv{v6: v6, tags: g.newTags()}
		c.a = endpoint{mac: clientMAC, port: g.ephemeral()}
		c.b = endpoint{mac: serverMAC, port: serverPort}
		if v6 {
			c.a.ip, c.b.ip = g.clientV6(), g.serverV6()
		} else {
			c.a.ip, c.b.ip = g.clientV4(), g.serverV4()
		}
		key := fmt.Sprintf("%s %s:%d %s:%d", proto, c.a.ip, c.a.port, c.b.ip, c.b.port)
		if g.ports[key] {
			continue
		}
		g.ports[key] = true
		c.tosA = g.tos()
		c.tosB = c.tosA
		if g.r.IntN(4) == 0 {
			c.tosB = g.tos()
		}
		ttls := []uint8{64, 128, 255, 63, 57, 118}
		c.ttlA = ttls[g.r.IntN(len(ttls))]
		c.ttlB = ttls[g.r.IntN(len(ttls))]
		c.ipID = uint16(g.r.IntN(65536))
		c.seqA = g.r.Uint32()
		c.seqB = g.r.Uint32()
		return c
	}
}

// emit serializes l3 (IPv4/IPv6) + the given upper layers, wrapped in the
// conversation's Ethernet/VLAN headers, for direction fromA.
func (g *gen) emit(t time.Duration, c *conv, fromA bool, upper ...gopacket.SerializableLayer) {
	src, dst := c.a, c.b
	tos, ttl := c.tosA, c.ttlA
	if !fromA {
		src, dst = c.b, c.a
		tos, ttl = c.tosB, c.ttlB
	}
	var l3 gopacket.NetworkLayer
	var l3s gopacket.SerializableLayer
	var etype layers.EthernetType
	proto := protoOf(upper[0])
	if c.v6 {
		ip := &layers.IPv6{Version: 6, TrafficClass: tos, HopLimit: ttl, NextHeader: proto, SrcIP: src.ip, DstIP: dst.ip}
		l3, l3s, etype = ip, ip, layers.EthernetTypeIPv6
	} else {
		c.ipID++
		ip := &layers.IPv4{Version: 4, IHL: 5, TOS: tos, TTL: ttl, Protocol: proto, Id: c.ipID,
			Flags: layers.IPv4DontFragment, SrcIP: src.ip, DstIP: dst.ip}
		l3, l3s, etype = ip, ip, layers.EthernetTypeIPv4
	}
	switch u := upper[0].(type) {
	case *layers.TCP:
		u.SetNetworkLayerForChecksum(l3)
	case *layers.UDP:
		u.SetNetworkLayerForChecksum(l3)
	case *layers.ICMPv6:
		u.SetNetworkLayerForChecksum(l3)
	}
	ls := []gopacket.SerializableLayer{}
	eth := &layers.Ethernet{SrcMAC: src.mac, DstMAC: dst.mac}
	ls = append(ls, eth)
	switch {
	case c.tags.outer != 0:
		eth.EthernetType = c.tags.outerType
		ls = append(ls,
			&layers.Dot1Q{VLANIdentifier: c.tags.outer, Type: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: c.tags.inner, Priority: 3, Type: etype})
	case c.tags.inner != 0:
		eth.EthernetType = layers.EthernetTypeDot1Q
		ls = append(ls, &layers.Dot1Q{VLANIdentifier: c.tags.inner, Type: etype})
	default:
		eth.EthernetType = etype
	}
	ls = append(ls, l3s)
	ls = append(ls, upper...)
	g.write(t, ls...)
}

func protoOf(l gopacket.SerializableLayer) layers.IPProtocol {
	switch l.(type) {
	case *layers.TCP:
		return layers.IPProtocolTCP
	case *layers.UDP:
		return layers.IPProtocolUDP
	case *layers.ICMPv4:
		return layers.IPProtocolICMPv4
	case *layers.ICMPv6:
		return layers.IPProtocolICMPv6
	}
	panic(fmt.Sprintf("unexpected layer %T", l))
}

func (g *gen) write(t time.Duration, ls ...gopacket.SerializableLayer) {
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		log.Fatalf("serialize: %v", err)
	}
	data := append([]byte(nil), buf.Bytes()...)
	// Pad to the Ethernet minimum (60 bytes without FCS).
	for len(data) < 60 {
		data = append(data, 0)
	}
	g.frames = append(g.frames, frame{t: t, seq: len(g.frames), data: data})
}

func (g *gen) payload(n int) gopacket.Payload {
	// Zero-filled: exporters only look at headers, and zeros keep the file
	// compressible and application dissectors quiet.
	return gopacket.Payload(make([]byte, n))
}

func (g *gen) jitter(max time.Duration) time.Duration {
	return time.Duration(g.r.Int64N(int64(max))) + time.Microsecond
}

// tcpSeg emits one TCP segment and advances the sender's sequence number.
func (g *gen) tcpSeg(t time.Duration, c *conv, fromA bool, flags string, n int) {
	tcp := &layers.TCP{Window: 64240, DataOffset: 5}
	if fromA {
		tcp.SrcPort, tcp.DstPort = layers.TCPPort(c.a.port), layers.TCPPort(c.b.port)
		tcp.Seq, tcp.Ack = c.seqA, c.seqB
	} else {
		tcp.SrcPort, tcp.DstPort = layers.TCPPort(c.b.port), layers.TCPPort(c.a.port)
		tcp.Seq, tcp.Ack = c.seqB, c.seqA
		tcp.Window = 65160
	}
	for _, f := range flags {
		switch f {
		case 'S':
			tcp.SYN = true
		case 'A':
			tcp.ACK = true
		case 'F':
			tcp.FIN = true
		case 'P':
			tcp.PSH = true
		case 'R':
			tcp.RST = true
		case 'U':
			tcp.URG = true
		case 'E':
			tcp.ECE = true
		case 'C':
			tcp.CWR = true
		}
	}
	if !tcp.ACK {
		tcp.Ack = 0
	}
	if tcp.SYN {
		tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}
	}
	adv := uint32(n)
	if tcp.SYN || tcp.FIN {
		adv++
	}
	if fromA {
		c.seqA += adv
	} else {
		c.seqB += adv
	}
	if n > 0 {
		g.emit(t, c, fromA, tcp, g.payload(n))
	} else {
		g.emit(t, c, fromA, tcp)
	}
}

var tcpPorts = []uint16{80, 443, 443, 443, 22, 25, 8080, 179, 3306, 5432, 993}

// tcpConversation: handshake, some request/response rounds, then FIN or RST.
func (g *gen) tcpConversation(v6 bool, t time.Duration) {
	c := g.newConv(v6, "tcp", tcpPorts[g.r.IntN(len(tcpPorts))])
	rtt := time.Duration(1+g.r.IntN(80)) * time.Millisecond
	g.tcpSeg(t, c, true, "S", 0)
	t += rtt
	g.tcpSeg(t, c, false, "SA", 0)
	t += g.jitter(time.Millisecond)
	g.tcpSeg(t, c, true, "A", 0)
	rounds := 1 + g.r.IntN(3)
	for i := 0; i < rounds; i++ {
		t += g.jitter(400 * time.Millisecond)
		g.tcpSeg(t, c, true, "PA", 40+g.r.IntN(500))
		t += rtt
		segs := 1 + g.r.IntN(3)
		for s := 0; s < segs; s++ {
			n := 1448
			flags := "A"
			if s == segs-1 {
				n = 1 + g.r.IntN(1448)
				flags = "PA"
			}
			g.tcpSeg(t, c, false, flags, n)
			t += g.jitter(2 * time.Millisecond)
		}
		t += rtt
		g.tcpSeg(t, c, true, "A", 0)
	}
	t += g.jitter(time.Second)
	if g.r.IntN(6) == 0 {
		g.tcpSeg(t, c, true, "RA", 0)
		return
	}
	g.tcpSeg(t, c, true, "FA", 0)
	t += rtt
	g.tcpSeg(t, c, false, "FA", 0)
	t += rtt
	g.tcpSeg(t, c, true, "A", 0)
}

// tcpProbe: a SYN that is refused with RST/ACK, or left unanswered (retried).
func (g *gen) tcpProbe(v6 bool, t time.Duration) {
	c := g.newConv(v6, "tcp", uint16(1+g.r.IntN(1024)))
	g.tcpSeg(t, c, true, "S", 0)
	if g.r.IntN(2) == 0 {
		// RST/ACK acknowledges the SYN (seqA already advanced past it).
		g.tcpSeg(t+time.Duration(1+g.r.IntN(50))*time.Millisecond, c, false, "RA", 0)
		return
	}
	c.seqA-- // retransmission: same sequence number
	g.tcpSeg(t+time.Second, c, true, "S", 0)
	c.seqA--
	g.tcpSeg(t+3*time.Second, c, true, "S", 0)
}

var udpPorts = []uint16{53, 53, 53, 123, 161, 514, 443, 4789, 5060}

func (g *gen) udp(t time.Duration, c *conv, fromA bool, n int) {
	u := &layers.UDP{}
	if fromA {
		u.SrcPort, u.DstPort = layers.UDPPort(c.a.port), layers.UDPPort(c.b.port)
	} else {
		u.SrcPort, u.DstPort = layers.UDPPort(c.b.port), layers.UDPPort(c.a.port)
	}
	g.emit(t, c, fromA, u, g.payload(n))
}

// udpExchange: a few request/response pairs.
func (g *gen) udpExchange(v6 bool, t time.Duration) {
	c := g.newConv(v6, "udp", udpPorts[g.r.IntN(len(udpPorts))])
	n := 1 + g.r.IntN(4)
	for i := 0; i < n; i++ {
		g.udp(t, c, true, 20+g.r.IntN(100))
		t += time.Duration(1+g.r.IntN(30)) * time.Millisecond
		g.udp(t, c, false, 40+g.r.IntN(900))
		t += g.jitter(2 * time.Second)
	}
}

// udpStream: a one-way stream (e.g. syslog, media) of several packets.
func (g *gen) udpStream(v6 bool, t time.Duration) {
	c := g.newConv(v6, "udp", uint16(5000+g.r.IntN(20000)))
	n := 5 + g.r.IntN(15)
	size := 100 + g.r.IntN(1100)
	for i := 0; i < n; i++ {
		g.udp(t, c, true, size)
		t += g.jitter(300 * time.Millisecond)
	}
}

// icmpEcho: a ping sequence (v4 or v6).
func (g *gen) icmpEcho(v6 bool, t time.Duration) {
	c := g.newConv(v6, "icmp", 0)
	id := uint16(g.r.IntN(65536))
	n := 1 + g.r.IntN(5)
	size := []int{56, 56, 56, 32, 64, 1000, 1400}[g.r.IntN(7)]
	reply := g.r.IntN(5) != 0
	for i := 0; i < n; i++ {
		seq := uint16(i + 1)
		if v6 {
			g.emit(t, c, true, &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)},
				&layers.ICMPv6Echo{Identifier: id, SeqNumber: seq}, g.payload(size))
		} else {
			g.emit(t, c, true, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: id, Seq: seq}, g.payload(size))
		}
		if reply {
			rt := t + time.Duration(1+g.r.IntN(40))*time.Millisecond
			if v6 {
				g.emit(rt, c, false, &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoReply, 0)},
					&layers.ICMPv6Echo{Identifier: id, SeqNumber: seq}, g.payload(size))
			} else {
				g.emit(rt, c, false, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoReply, 0), Id: id, Seq: seq}, g.payload(size))
			}
		}
		t += time.Second
	}
}

// udpUnreachable: UDP datagrams to a closed port answered with ICMP type 3
// code 3 quoting the IP header and first 8 bytes of the datagram.
func (g *gen) udpUnreachable(t time.Duration) {
	c := g.newConv(false, "udp", uint16(30000+g.r.IntN(3000)))
	n := 1 + g.r.IntN(3)
	for i := 0; i < n; i++ {
		c.ipID++
		orig := []gopacket.SerializableLayer{
			&layers.IPv4{Version: 4, IHL: 5, TOS: c.tosA, TTL: c.ttlA, Protocol: layers.IPProtocolUDP, Id: c.ipID + 1,
				SrcIP: c.a.ip, DstIP: c.b.ip},
			&layers.UDP{SrcPort: layers.UDPPort(c.a.port), DstPort: layers.UDPPort(c.b.port)},
		}
		orig[1].(*layers.UDP).SetNetworkLayerForChecksum(orig[0].(*layers.IPv4))
		size := 20 + g.r.IntN(60)
		g.udp(t, c, true, size)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			append(orig, g.payload(size))...); err != nil {
			log.Fatal(err)
		}
		quoted := buf.Bytes()[:28]
		// The ICMP error comes from the server address towards the client.
		g.emit(t+time.Duration(1+g.r.IntN(20))*time.Millisecond, c, false,
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort)},
			gopacket.Payload(append([]byte(nil), quoted...)))
		t += g.jitter(3 * time.Second)
	}
}

// longLived: a flow with a packet every 1-4 s over the whole capture, so
// that an active timeout (e.g. 60 s) splits it into several records.
func (g *gen) longLived(v6 bool, tcp bool, t time.Duration) {
	end := window + 10*time.Second
	if tcp {
		c := g.newConv(v6, "tcp", 22)
		g.tcpSeg(t, c, true, "S", 0)
		g.tcpSeg(t+5*time.Millisecond, c, false, "SA", 0)
		g.tcpSeg(t+6*time.Millisecond, c, true, "A", 0)
		for t += time.Second; t < end; t += time.Duration(1000+g.r.IntN(3000)) * time.Millisecond {
			g.tcpSeg(t, c, true, "PA", 36+g.r.IntN(60))
			g.tcpSeg(t+5*time.Millisecond, c, false, "PA", 36+g.r.IntN(200))
			g.tcpSeg(t+10*time.Millisecond, c, true, "A", 0)
		}
		return
	}
	c := g.newConv(v6, "udp", 4789)
	for ; t < end; t += time.Duration(1000+g.r.IntN(3000)) * time.Millisecond {
		g.udp(t, c, true, 100+g.r.IntN(1300))
	}
}

// gapFlow: packets, a 45 s silence, then more packets on the same 5-tuple,
// so that an inactive timeout below 45 s splits it in two records.
func (g *gen) gapFlow(v6 bool, t time.Duration) {
	c := g.newConv(v6, "udp", 123)
	for i := 0; i < 3; i++ {
		g.udp(t, c, true, 48)
		g.udp(t+10*time.Millisecond, c, false, 48)
		t += 2 * time.Second
	}
	t += 45 * time.Second
	for i := 0; i < 3; i++ {
		g.udp(t, c, true, 48)
		g.udp(t+10*time.Millisecond, c, false, 48)
		t += 2 * time.Second
	}
}

func main() {
	out := flag.String("o", "traffic.pcap", "output pcap file")
	seed := flag.Uint64("seed", 20261101, "random seed")
	flag.Parse()

	g := &gen{r: rand.New(rand.NewPCG(*seed, 0x6e657470756c7365)), ports: map[string]bool{}}
	at := func() time.Duration { return time.Duration(g.r.Int64N(int64(window - 10*time.Second))) }

	for i := 0; i < 110; i++ {
		g.tcpConversation(false, at())
	}
	for i := 0; i < 40; i++ {
		g.tcpConversation(true, at())
	}
	for i := 0; i < 20; i++ {
		g.tcpProbe(i%4 == 0, at())
	}
	for i := 0; i < 70; i++ {
		g.udpExchange(i%4 == 0, at())
	}
	for i := 0; i < 12; i++ {
		g.udpStream(i%3 == 0, at())
	}
	for i := 0; i < 25; i++ {
		g.icmpEcho(false, at())
	}
	for i := 0; i < 12; i++ {
		g.icmpEcho(true, at())
	}
	for i := 0; i < 10; i++ {
		g.udpUnreachable(at())
	}
	for i := 0; i < 4; i++ {
		g.longLived(i%2 == 1, i < 2, time.Duration(i)*300*time.Millisecond)
	}
	for i := 0; i < 4; i++ {
		g.gapFlow(i == 3, time.Duration(5+i*20)*time.Second)
	}

	sort.SliceStable(g.frames, func(i, j int) bool {
		if g.frames[i].t != g.frames[j].t {
			return g.frames[i].t < g.frames[j].t
		}
		return g.frames[i].seq < g.frames[j].seq
	})

	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		log.Fatal(err)
	}
	for _, fr := range g.frames {
		ci := gopacket.CaptureInfo{
			Timestamp:     startTime.Add(fr.t.Truncate(time.Microsecond)),
			CaptureLength: len(fr.data),
			Length:        len(fr.data),
		}
		if err := w.WritePacket(ci, fr.data); err != nil {
			log.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "trafficgen: wrote %d frames to %s\n", len(g.frames), *out)
}
