package storetest

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/decoder"
	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/store"
)

// CapturesDir returns the repository's testdata/captures, found by going
// up from the working directory (a package's folder under go test).
func CapturesDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		c := filepath.Join(dir, "testdata", "captures")
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(c); err == nil {
				return c
			}
		}
		up := filepath.Dir(dir)
		if up == dir {
			tb.Fatal("storetest: no testdata/captures above the working directory")
		}
		dir = up
	}
}

// CaptureRecords decodes every exporter capture in dir (all *.pcap but
// the input traffic.pcap) with the live path's decoder, one decoder per
// file, and returns the flow and counter records in capture order.
func CaptureRecords(dir string) ([]flow.Record, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.pcap"))
	if err != nil {
		return nil, err
	}
	var out []flow.Record
	for _, f := range files {
		if filepath.Base(f) == "traffic.pcap" {
			continue
		}
		d := decoder.New(decoder.DefaultConfig())
		err := capture.ReadUDP(f, func(dg capture.Datagram) error {
			// A datagram the decoder refuses is simply not in the mix.
			_ = d.Decode(dg.Src.Addr(), dg.Time, dg.Payload, func(r *flow.Record) { out = append(out, *r) })
			return nil
		}, nil)
		if err != nil {
			return nil, fmt.Errorf("storetest: %w", err)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("storetest: no records in the captures")
	}
	return out, nil
}

// Generator makes any number of realistic records from the decoded
// captures: the k-th pass over them shifts the receive (and flow) times
// forward, varies the low bits of the addresses and the ephemeral ports
// with k, spreads them over 16 devices and exporters, and fills what a
// proxy's enrichment adds (AS numbers, countries, hostnames, internal
// flags, interfaces, direction) from bounded pools keyed by the address,
// as real enrichment would. It is deterministic and allocates nothing
// per record.
type Generator struct {
	base     []flow.Record
	start    time.Time
	interval time.Duration
	n        uint64
	batches  atomic.Uint64
	prefix   string

	hosts   []string
	proxies []string
}

// NewGenerator returns a generator over base (from CaptureRecords) whose
// records are received from start on, perSecond of them a second. Batch
// ids start with prefix.
func NewGenerator(base []flow.Record, start time.Time, perSecond int, prefix string) *Generator {
	g := &Generator{
		base: base, start: start, interval: time.Second / time.Duration(max(perSecond, 1)), prefix: prefix,
		proxies: []string{"edge-paris", "edge-frankfurt"},
	}
	for i := range 500 {
		g.hosts = append(g.hosts, fmt.Sprintf("host-%d.example.net", i))
	}
	g.hosts = append(g.hosts, "", "", "")
	return g
}

// mix is splitmix64's finaliser: a cheap, well-spread hash.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

func vary(a netip.Addr, h uint64) netip.Addr {
	switch {
	case a.Is4():
		b := a.As4()
		b[2] ^= byte(h >> 8)
		b[3] ^= byte(h)
		return netip.AddrFrom4(b)
	case a.Is6():
		b := a.As16()
		b[13] ^= byte(h >> 16)
		b[14] ^= byte(h >> 8)
		b[15] ^= byte(h)
		return netip.AddrFrom16(b)
	}
	return a
}

func addrHash(a netip.Addr) uint64 {
	b := a.As16()
	var h uint64
	for _, c := range b[8:] {
		h = h<<8 | uint64(c)
	}
	return mix(h ^ uint64(b[0])<<56)
}

// clients are the client ranges of traffic.pcap: addresses there are
// internal.
var clients = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("2001:db8:c1::/48"),
}

func internal(a netip.Addr) bool {
	for _, p := range clients {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Fill overwrites recs with the next len(recs) records.
func (g *Generator) Fill(recs []flow.Record) {
	for i := range recs {
		n := g.n
		g.n++
		idx := n % uint64(len(g.base))
		b := &g.base[idx]
		k := n / uint64(len(g.base))
		r := &recs[i]
		*r = *b
		at := g.start.Add(time.Duration(n) * g.interval)
		shift := at.Sub(b.TimeReceived)
		r.TimeReceived = at
		if !r.FlowStart.IsZero() {
			r.FlowStart = r.FlowStart.Add(shift)
		}
		if !r.FlowEnd.IsZero() {
			r.FlowEnd = r.FlowEnd.Add(shift)
		}
		hk := mix(k)
		// An exporting process of the captures (protocol and domain) is
		// one of four devices, as a real device exports one protocol.
		dev := mix(uint64(b.Type)<<40|uint64(b.ObservationDomain)<<8|k%4) % 16
		r.DeviceID = dev + 1
		r.Exporter = netip.AddrFrom4([4]byte{192, 0, 2, byte(dev + 1)})
		r.Sequence = uint32(n)
		if r.Kind == flow.KindCounters {
			r.Counters.InOctets += k * 1_000_000
			r.Counters.OutOctets += k * 2_000_000
			continue
		}
		// Which side is ours is decided on the capture's addresses, before
		// they are varied.
		r.SrcInternal, r.DstInternal = internal(r.SrcAddr), internal(r.DstAddr)
		r.SrcAddr = vary(r.SrcAddr, hk)
		r.DstAddr = vary(r.DstAddr, hk>>24)
		if r.SrcPort >= 1024 {
			r.SrcPort = uint16(1024 + (uint64(r.SrcPort)+k*7919)%64512)
		}
		if r.DstPort >= 1024 && r.DstPort != 4789 {
			r.DstPort = uint16(1024 + (uint64(r.DstPort)+k*104729)%64512)
		}
		hs, hd := addrHash(r.SrcAddr), addrHash(r.DstAddr)
		var srcIf, dstIf uint32
		r.SrcAS, r.SrcCountry, r.SrcHostname, srcIf = g.enrich(r.SrcInternal, hs)
		r.DstAS, r.DstCountry, r.DstHostname, dstIf = g.enrich(r.DstInternal, hd)
		if r.InIf == 0 || r.InIf == 0x3fffffff {
			r.InIf = srcIf
		}
		if r.OutIf == 0 || r.OutIf == 0x3fffffff {
			r.OutIf = dstIf
		}
		if r.Direction == flow.DirectionUnknown {
			r.Direction = flow.Direction(1 + hs%2)
		}
	}
}

// Our network's AS and country, and the public ASes (with their
// countries) that the other ends belong to, most traffic going to the
// first ones, as on a real link.
const ownAS = 64500

var publicAS = []struct {
	as      uint32
	country string
}{
	{15169, "US"}, {13335, "US"}, {16509, "US"}, {32934, "US"}, {8075, "US"}, {20940, "NL"},
	{3356, "US"}, {1299, "SE"}, {174, "US"}, {2914, "US"}, {6939, "US"}, {3257, "DE"},
	{5511, "FR"}, {3215, "FR"}, {12322, "FR"}, {3320, "DE"}, {6830, "NL"}, {2856, "GB"},
	{4134, "CN"}, {4837, "CN"}, {9808, "CN"}, {2516, "JP"}, {4713, "JP"}, {17676, "JP"},
	{7922, "US"}, {701, "US"}, {7018, "US"}, {1221, "AU"}, {4766, "KR"}, {9829, "IN"},
	{28573, "BR"}, {8151, "MX"}, {12389, "RU"}, {3269, "IT"}, {3352, "ES"}, {5089, "GB"},
	{6805, "DE"}, {20115, "US"}, {22773, "US"}, {0, ""},
}

// enrich returns what a proxy's enrichment adds for one end of a flow
// whose address hashes to h: AS, country, hostname and the interface it
// is behind (two LAN ports for our side, two uplinks for the rest).
func (g *Generator) enrich(internal bool, h uint64) (as uint32, country, host string, ifIndex uint32) {
	if internal {
		return ownAS, "FR", g.hosts[h%uint64(len(g.hosts))], 1 + uint32(h>>32)%2
	}
	// A skewed pick: u³ puts most flows on the first ASes.
	u := float64(h>>11) / (1 << 53)
	p := publicAS[int(u*u*u*float64(len(publicAS)))]
	host = ""
	if h%3 != 0 {
		host = g.hosts[h%uint64(len(g.hosts))]
	}
	return p.as, p.country, host, 10 + uint32(h>>32)%2
}

// Batch fills recs with the next records and returns them as a batch
// with a new id, from one of two proxies, received one second after its
// last record.
func (g *Generator) Batch(recs []flow.Record) store.Batch {
	g.Fill(recs)
	n := g.batches.Add(1)
	received := g.start
	if len(recs) > 0 {
		received = recs[len(recs)-1].TimeReceived.Add(time.Second)
	}
	return store.Batch{ID: fmt.Sprintf("%s-%d", g.prefix, n), Proxy: g.proxies[n%2], Received: received, Records: recs}
}

// Until is the receive time of the next record.
func (g *Generator) Until() time.Time { return g.start.Add(time.Duration(g.n) * g.interval) }
