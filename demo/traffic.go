package demo

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/netpulse/netpulse/flow"
)

// diurnalTable is the relative traffic of each hour of the day, as an
// eyeballed mix of residential and business traffic: a trough around
// 04:00, a working-day plateau and an evening peak at 20:00–21:00. Diurnal
// interpolates it and divides by its mean.
var diurnalTable = [24]float64{
	0.85, 0.65, 0.50, 0.42, 0.38, 0.40, 0.50, 0.65, 0.80, 0.90, 0.95, 1.00,
	1.05, 1.05, 1.05, 1.05, 1.10, 1.20, 1.30, 1.45, 1.55, 1.55, 1.35, 1.10,
}

// diurnalMean is the mean of diurnalTable, which is also the mean over a
// day of its linear interpolation.
var diurnalMean = func() float64 {
	s := 0.0
	for _, v := range diurnalTable {
		s += v
	}
	return s / float64(len(diurnalTable))
}()

// Diurnal returns the traffic factor at the time of day of t, in t's
// location: its mean over a day is 1, its minimum 0.40 at 04:00 and its
// maximum 1.63 from 20:00 to 21:00. It is continuous: the hourly values
// are joined by straight lines.
func Diurnal(t time.Time) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60 + (float64(t.Second())+float64(t.Nanosecond())/1e9)/3600
	i := int(h) % 24
	f := h - math.Floor(h)
	return (diurnalTable[i]*(1-f) + diurnalTable[(i+1)%24]*f) / diurnalMean
}

// IP protocol numbers.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
)

// localAS is the simulated network's AS number.
const localAS = 64500

// asTrans is what NetFlow v5 reports for a 32-bit AS number (RFC 6793).
const asTrans = 23456

// Server pools.
const (
	poolWeb = iota
	poolDNS
	poolNTP
	numPools
)

// Sizes of the resolver pools, added after Config.Services.
const (
	numDNS = 4
	numNTP = 4
)

// app is one application of the traffic mix. Sizes are mean IPv4 packet
// sizes in bytes; IPv6 adds 20.
type app struct {
	name   string
	weight float64
	proto  uint8 // protoTCP, protoUDP or protoICMP (ICMPv6 over IPv6)
	ports  []uint16
	pool   int
	// inbound is the fraction of conversations that an external client
	// opens to an internal server.
	inbound float64
	// pkts is the median number of packets the client sends, sigma the
	// spread of its log, ratio the server's packets per client packet.
	pkts, sigma, ratio float64
	sizeC, sizeS       float64
	// dur is the median conversation duration.
	dur time.Duration
}

// apps is the traffic mix; the weights are percent of conversations, as
// the package documentation lists them.
var apps = []app{
	{name: "https", weight: 36, proto: protoTCP, ports: []uint16{443}, pool: poolWeb, inbound: 0.1, pkts: 14, sigma: 1.3, ratio: 1.6, sizeC: 110, sizeS: 1250, dur: 3 * time.Second},
	{name: "dns", weight: 20, proto: protoUDP, ports: []uint16{53}, pool: poolDNS, pkts: 1, ratio: 1, sizeC: 72, sizeS: 140, dur: 15 * time.Millisecond},
	{name: "quic", weight: 16, proto: protoUDP, ports: []uint16{443}, pool: poolWeb, pkts: 16, sigma: 1.3, ratio: 1.8, sizeC: 150, sizeS: 1280, dur: 3 * time.Second},
	{name: "http", weight: 7, proto: protoTCP, ports: []uint16{80}, pool: poolWeb, inbound: 0.05, pkts: 8, sigma: 1.0, ratio: 1.5, sizeC: 220, sizeS: 1100, dur: time.Second},
	{name: "icmp", weight: 5, proto: protoICMP, pool: poolWeb, inbound: 0.2, pkts: 3, sigma: 0.5, ratio: 1, sizeC: 84, sizeS: 84, dur: 3 * time.Second},
	{name: "ntp", weight: 4, proto: protoUDP, ports: []uint16{123}, pool: poolNTP, pkts: 1, ratio: 1, sizeC: 76, sizeS: 76, dur: 10 * time.Millisecond},
	{name: "ssh", weight: 3, proto: protoTCP, ports: []uint16{22}, pool: poolWeb, inbound: 0.3, pkts: 60, sigma: 1.5, ratio: 1.2, sizeC: 96, sizeS: 180, dur: 60 * time.Second},
	{name: "imaps", weight: 2, proto: protoTCP, ports: []uint16{993}, pool: poolWeb, pkts: 20, sigma: 1.0, ratio: 1.5, sizeC: 120, sizeS: 900, dur: 10 * time.Second},
	{name: "smtp", weight: 1, proto: protoTCP, ports: []uint16{587}, pool: poolWeb, pkts: 12, sigma: 1.0, ratio: 0.8, sizeC: 900, sizeS: 90, dur: 3 * time.Second},
	{name: "other", weight: 6, proto: protoTCP, ports: []uint16{8080, 8443, 3389, 5222, 1935}, pool: poolWeb, inbound: 0.1, pkts: 10, sigma: 1.4, ratio: 1.3, sizeC: 300, sizeS: 800, dur: 5 * time.Second},
}

// appCumulative are the cumulative weights of apps.
var appCumulative = func() []float64 {
	c := make([]float64, len(apps))
	s := 0.0
	for i, a := range apps {
		s += a.weight
		c[i] = s
	}
	return c
}()

// ToS values and their cumulative probabilities: mostly best effort, some
// AF21, AF11, EF and CS1.
var (
	tosValues = []uint8{0x00, 0x48, 0x28, 0xb8, 0x20}
	tosCum    = []float64{0.90, 0.94, 0.97, 0.99, 1}
)

// networks are the external AS numbers, the first ones the largest; the
// first peeringNetworks are reached through the peering uplink.
var networks = []uint32{
	64496, 65536, 64497, 64498, 65537, 64499, 64501, 64502, 65538, 64503, 64504, 65539,
	64505, 64506, 65540, 64507, 64508, 65541, 64509, 64510, 65542, 64511, 65543, 65544,
}

const peeringNetworks = 4

// Zipf laws of host and server popularity: the k-th most popular (from
// 0) is picked with a probability proportional to (k+v)^-s. With the
// defaults the top host makes about 11% of a device's conversations and
// the top tenth of the hosts about 60%; the top web server gets about 12%
// of the web conversations.
const (
	hostZipfS, hostZipfV     = 1.2, 3
	serverZipfS, serverZipfV = 1.3, 2
)

// server is one external server.
type server struct {
	v4, v6  netip.Addr
	as      uint32
	peering bool
}

// buildServers returns the external servers: the web pool first, then the
// DNS and the NTP resolvers, and the pools' index ranges.
func buildServers(n int, seed uint64) ([]server, [numPools][2]int) {
	r := rand.New(rand.NewPCG(seed, 0xde30))
	z := rand.NewZipf(r, 1.5, 1, uint64(len(networks)-1))
	total := n + numDNS + numNTP
	out := make([]server, total)
	blocks := [3][3]byte{{192, 0, 2}, {198, 51, 100}, {203, 0, 113}}
	for k := range out {
		b := blocks[k%3]
		host := byte(k/3 + 1)
		ni := int(z.Uint64())
		out[k] = server{
			v4:      netip.AddrFrom4([4]byte{b[0], b[1], b[2], host}),
			v6:      netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, byte(k >> 8), byte(k), 0, 0, 0, 0, 0, 0, 0, 0, 1}),
			as:      networks[ni],
			peering: ni < peeringNetworks,
		}
	}
	return out, [numPools][2]int{{0, n}, {n, n + numDNS}, {n + numDNS, total}}
}

// conversation is one exchange between a client and a server, before it
// is exported as flows or sampled.
type conversation struct {
	req, resp    flow.Record // client to server, server to client
	hasResp      bool
	sizeC, sizeS float64 // mean IP packet sizes
	// lan and up are the positions of its LAN and uplink interfaces; li
	// and slot place the internal host on its LAN.
	lan, up, li, slot int
}

// pick returns the index of the first cumulative weight above u*total.
func pick(cum []float64, u float64) int {
	x := u * cum[len(cum)-1]
	for i, c := range cum {
		if x < c {
			return i
		}
	}
	return len(cum) - 1
}

// lognormal returns median*e^(sigma*N(0,1)).
func lognormal(r *rand.Rand, median, sigma float64) float64 {
	if sigma == 0 {
		return median
	}
	return median * math.Exp(sigma*r.NormFloat64())
}

// packetSize draws an IP packet size around mean, within [lo, 1500].
func packetSize(r *rand.Rand, mean float64, lo int) int {
	s := int(mean * (0.85 + 0.3*r.Float64()))
	return max(lo, min(s, 1500))
}

// minIPSize is the smallest IP packet of a protocol: the IP header and
// the transport header.
func minIPSize(proto uint8, v6 bool) int {
	ip := 20
	if v6 {
		ip = 40
	}
	if proto == protoTCP {
		return ip + 20
	}
	return ip + 8
}

// maxFlowPackets caps the packets of one flow, so that bytes stay within
// NetFlow v5's 32 bits.
const maxFlowPackets = 1_000_000

// activeTimeout is when exporters cut a long flow: a conversation longer
// than this is exported as an ongoing one.
const activeTimeout = time.Minute

// msTime truncates t to the millisecond, as the export formats carry it.
func msTime(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }
