package storetest

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/store"
)

// The value pools of the suite's records. Every dimension gets several
// values, among them the edges of its type: the largest number, IPv4,
// IPv6 and absent addresses, all flow types and directions, both
// booleans, empty and non-ASCII strings.
var (
	v4a = netip.MustParseAddr("192.0.2.1")
	v4b = netip.MustParseAddr("198.51.100.200")
	v6a = netip.MustParseAddr("2001:db8::1")
	v6b = netip.MustParseAddr("2001:db8:c1::ff:1")

	poolAddrs     = []netip.Addr{v4a, v4b, v6a, v6b, {}, netip.MustParseAddr("203.0.113.7")}
	poolExporters = []netip.Addr{netip.MustParseAddr("192.0.2.250"), netip.MustParseAddr("192.0.2.251"), netip.MustParseAddr("2001:db8:e::1"), {}}
	poolNextHops  = []netip.Addr{{}, {}, netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8::fe")}
	poolDevices   = []uint64{0, 1, 42, 1 << 40, 18446744073709551615}
	poolDomains   = []uint32{0, 100, 4294967295}
	poolTypes     = []flow.Type{flow.TypeUnknown, flow.TypeNetFlowV5, flow.TypeNetFlowV9, flow.TypeIPFIX, flow.TypeSFlowV5}
	poolIfs       = []uint32{0, 1, 2, 0x3fffffff, 4294967295}
	poolPorts     = []uint16{0, 22, 53, 443, 65535}
	poolProtos    = []uint8{1, 6, 17, 58}
	poolFlags     = []uint8{0, 0x02, 0x12, 0xff}
	poolToS       = []uint8{0, 0xb8, 0x28}
	poolAS        = []uint32{0, 64496, 4200000000}
	poolVLANs     = []uint16{0, 100, 4095}
	poolDirs      = []flow.Direction{flow.DirectionUnknown, flow.DirectionIngress, flow.DirectionEgress}
	poolHosts     = []string{"", "www.example.com", "ünï.example", "a\tb'c\"d"}
	poolCountries = []string{"", "FR", "DE", "JP"}
	poolSampling  = []struct{ rate, resample uint32 }{{0, 0}, {1, 0}, {10, 0}, {0, 4}, {1000, 2}}
)

func pick[T any](rng *rand.Rand, pool []T) T { return pool[rng.IntN(len(pool))] }

// richRecords returns n flow records received in [from, from+span), at
// whole milliseconds, with every dimension drawn from the pools.
func richRecords(rng *rand.Rand, from time.Time, span time.Duration, n int) []flow.Record {
	recs := make([]flow.Record, n)
	for i := range recs {
		at := from.Add(time.Duration(rng.Int64N(int64(span/time.Millisecond))) * time.Millisecond)
		s := pick(rng, poolSampling)
		recs[i] = flow.Record{
			Kind:              flow.KindFlow,
			Type:              pick(rng, poolTypes),
			TimeReceived:      at,
			Exporter:          pick(rng, poolExporters),
			ObservationDomain: pick(rng, poolDomains),
			Sequence:          uint32(i),
			SamplingRate:      s.rate,
			ResampleFactor:    s.resample,
			FlowStart:         at.Add(-time.Duration(rng.IntN(60000)) * time.Millisecond),
			FlowEnd:           at.Add(-time.Duration(rng.IntN(1000)) * time.Millisecond),
			SrcAddr:           pick(rng, poolAddrs),
			DstAddr:           pick(rng, poolAddrs),
			SrcPort:           pick(rng, poolPorts),
			DstPort:           pick(rng, poolPorts),
			Proto:             pick(rng, poolProtos),
			TCPFlags:          pick(rng, poolFlags),
			ToS:               pick(rng, poolToS),
			InIf:              pick(rng, poolIfs),
			OutIf:             pick(rng, poolIfs),
			Bytes:             40 + rng.Uint64N(1500*1000),
			Packets:           1 + rng.Uint64N(1000),
			SrcAS:             pick(rng, poolAS),
			DstAS:             pick(rng, poolAS),
			NextHop:           pick(rng, poolNextHops),
			SrcVLAN:           pick(rng, poolVLANs),
			DstVLAN:           pick(rng, poolVLANs),
			Direction:         pick(rng, poolDirs),
			DeviceID:          pick(rng, poolDevices),
			SrcInternal:       rng.IntN(2) == 0,
			DstInternal:       rng.IntN(3) == 0,
			SrcHostname:       pick(rng, poolHosts),
			DstHostname:       pick(rng, poolHosts),
			SrcCountry:        pick(rng, poolCountries),
			DstCountry:        pick(rng, poolCountries),
		}
		if i%7 == 0 {
			// Some records come without flow times, as sFlow's do.
			recs[i].FlowStart, recs[i].FlowEnd = time.Time{}, time.Time{}
		}
	}
	return recs
}

// counterRecords returns n interface-counter samples received at at.
func counterRecords(at time.Time, n int) []flow.Record {
	recs := make([]flow.Record, n)
	for i := range recs {
		recs[i] = flow.Record{
			Kind:         flow.KindCounters,
			Type:         flow.TypeSFlowV5,
			TimeReceived: at,
			Exporter:     v4a,
			SamplingRate: 10,
			DeviceID:     7,
			Counters: flow.Counters{
				IfIndex: uint32(3 + i), IfType: 6, IfSpeed: 10_000_000_000, IfDirection: 1,
				IfAdminUp: true, IfOperUp: i%2 == 0,
				InOctets: 1 << 50, InUcastPkts: 1 << 40, OutOctets: 1 << 51, OutUcastPkts: 1 << 41,
				InErrors: uint64(i), OutDiscards: 5,
				HasEthernet: i%2 == 1,
				Ethernet:    flow.EthernetCounters{FCSErrors: 9, AlignmentErrors: uint32(i)},
			},
		}
	}
	return recs
}

// split cuts recs into batches of at most size records, with ids
// prefix-0, prefix-1…, sent by the proxies in turn, each received one
// second after its latest record.
func split(recs []flow.Record, size int, prefix string, proxies ...string) []store.Batch {
	var out []store.Batch
	for i := 0; i < len(recs); i += size {
		part := recs[i:min(i+size, len(recs))]
		var latest time.Time
		for _, r := range part {
			if r.TimeReceived.After(latest) {
				latest = r.TimeReceived
			}
		}
		out = append(out, store.Batch{
			ID:       fmt.Sprintf("%s-%d", prefix, len(out)),
			Proxy:    proxies[len(out)%len(proxies)],
			Received: latest.Add(time.Second),
			Records:  part,
		})
	}
	return out
}

// at returns a flow record received at t with the given counts and
// sampling rate, and the rest zero but for the dimensions set by fn.
func at(t time.Time, bytes, packets uint64, rate uint32, fn func(r *flow.Record)) flow.Record {
	r := flow.Record{
		Kind: flow.KindFlow, Type: flow.TypeIPFIX, TimeReceived: t, Exporter: v4a,
		SrcAddr: v4b, DstAddr: v6a, Proto: 6,
		Bytes: bytes, Packets: packets, SamplingRate: rate,
	}
	if fn != nil {
		fn(&r)
	}
	return r
}
