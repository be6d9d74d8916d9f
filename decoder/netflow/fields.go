package netflow

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/netpulse/netpulse/flow"
)

// Information element IDs (IANA IPFIX registry; the same numbers are the
// NetFlow v9 field types).
const (
	ieOctetDeltaCount        = 1
	iePacketDeltaCount       = 2
	ieProtocol               = 4
	ieIPClassOfService       = 5
	ieTCPControlBits         = 6
	ieSourceTransportPort    = 7
	ieSourceIPv4Address      = 8
	ieSourceIPv4PrefixLen    = 9
	ieIngressInterface       = 10
	ieDestTransportPort      = 11
	ieDestIPv4Address        = 12
	ieDestIPv4PrefixLen      = 13
	ieEgressInterface        = 14
	ieIPNextHopIPv4          = 15
	ieBGPSourceAS            = 16
	ieBGPDestAS              = 17
	ieBGPNextHopIPv4         = 18
	iePostOctetDeltaCount    = 23
	iePostPacketDeltaCount   = 24
	ieFlowEndSysUpTime       = 21
	ieFlowStartSysUpTime     = 22
	ieSourceIPv6Address      = 27
	ieDestIPv6Address        = 28
	ieSourceIPv6PrefixLen    = 29
	ieDestIPv6PrefixLen      = 30
	ieICMPTypeCodeIPv4       = 32
	ieSamplingInterval       = 34
	ieSamplingAlgorithm      = 35
	ieSamplerID              = 48
	ieSamplerMode            = 49
	ieSamplerRandomInterval  = 50
	ieSourceMac              = 56
	iePostDestMac            = 57
	ieVlanID                 = 58
	iePostVlanID             = 59
	ieIPVersion              = 60
	ieFlowDirection          = 61
	ieIPNextHopIPv6          = 62
	ieBGPNextHopIPv6         = 63
	ieDestMac                = 80
	iePostSourceMac          = 81
	ieOctetTotalCount        = 85
	iePacketTotalCount       = 86
	ieICMPTypeCodeIPv6       = 139
	ieFlowStartSeconds       = 150
	ieFlowEndSeconds         = 151
	ieFlowStartMillis        = 152
	ieFlowEndMillis          = 153
	ieFlowStartMicros        = 154
	ieFlowEndMicros          = 155
	ieFlowStartNanos         = 156
	ieFlowEndNanos           = 157
	ieFlowStartDeltaMicros   = 158
	ieFlowEndDeltaMicros     = 159
	ieSystemInitTimeMillis   = 160
	ieFlowDurationMillis     = 161
	ieFlowDurationMicros     = 162
	ieICMPTypeIPv4           = 176
	ieICMPCodeIPv4           = 177
	ieICMPTypeIPv6           = 178
	ieICMPCodeIPv6           = 179
	ieIPDiffServCodePoint    = 195
	ieDot1qVlanID            = 243
	iePostDot1qVlanID        = 254
	ieEthernetType           = 256
	ieSelectorID             = 302
	ieSamplingPacketInterval = 305
	ieSamplingPacketSpace    = 306
)

// penReverse is the private enterprise number of RFC 5103 reverse
// information elements: the reverse counterpart of IE n is (29305, n).
const penReverse = 29305

// ntpEpochOffset is the seconds from 1900 (NTP) to 1970 (Unix).
const ntpEpochOffset = 2208988800

// timeParts collects the many ways a record may say when a flow started
// and ended, resolved once every field is read.
type timeParts struct {
	startUp, endUp         uint32 // sysUpTime milliseconds
	hasStartUp, hasEndUp   bool
	start, end             time.Time // absolute
	startDelta, endDelta   uint64    // microseconds before export time
	hasStartDel, hasEndDel bool
	durationMicros         uint64
	hasDuration            bool
	initMillis             uint64 // systemInitTimeMilliseconds in the record
	hasInit                bool
}

// recState is the scratch state of one data record.
type recState struct {
	r          *flow.Record
	hdr        *msgHeader
	fwd, rev   timeParts
	revBytes   uint64
	revPackets uint64
	revFlags   uint8
	hasRev     bool
	hasBytes   bool
	hasPackets bool
	totBytes   uint64
	totPackets uint64
	postBytes  uint64
	postPkts   uint64
	icmp       uint16
	hasICMP    bool
	icmpType   uint8
	icmpCode   uint8
	hasICMPTC  bool
	ipVersion  uint8
	dscp       uint8
	hasDSCP    bool
	hasToS     bool
	bgpNextHop netip.Addr
	// sampling as the record itself gives it
	interval, space uint32
	hasSpace        bool
	rate            uint32
	sampler         uint32
	hasSampler      bool
}

// be reads a big-endian unsigned integer of 1 to 8 bytes; IPFIX allows
// reduced-size encoding (RFC 7011 section 6.2), so any length is accepted.
func be(v []byte) uint64 {
	switch len(v) {
	case 1:
		return uint64(v[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(v))
	case 4:
		return uint64(binary.BigEndian.Uint32(v))
	case 8:
		return binary.BigEndian.Uint64(v)
	}
	if len(v) > 8 {
		v = v[len(v)-8:]
	}
	var x uint64
	for _, c := range v {
		x = x<<8 | uint64(c)
	}
	return x
}

func addr4(v []byte) (netip.Addr, bool) {
	if len(v) != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte(v)), true
}

func addr16(v []byte) (netip.Addr, bool) {
	if len(v) != 16 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16([16]byte(v)), true
}

func mac(v []byte) (flow.MAC, bool) {
	if len(v) != 6 {
		return flow.MAC{}, false
	}
	return flow.MAC(v), true
}

// ntpTime decodes a 64-bit NTP timestamp (dateTimeMicroseconds and
// dateTimeNanoseconds, RFC 7011 section 6.1.9).
func ntpTime(v []byte) time.Time {
	x := be(v)
	secs := int64(x>>32) - ntpEpochOffset
	frac := (x & 0xffffffff) * 1e9 >> 32
	return time.Unix(secs, int64(frac))
}

// applyTime handles the timestamp elements, forward or reverse.
func applyTime(tp *timeParts, id uint16, v []byte) bool {
	switch id {
	case ieFlowStartSysUpTime:
		tp.startUp, tp.hasStartUp = uint32(be(v)), true
	case ieFlowEndSysUpTime:
		tp.endUp, tp.hasEndUp = uint32(be(v)), true
	case ieFlowStartSeconds:
		tp.start = time.Unix(int64(be(v)), 0)
	case ieFlowEndSeconds:
		tp.end = time.Unix(int64(be(v)), 0)
	case ieFlowStartMillis:
		tp.start = time.UnixMilli(int64(be(v)))
	case ieFlowEndMillis:
		tp.end = time.UnixMilli(int64(be(v)))
	case ieFlowStartMicros, ieFlowStartNanos:
		tp.start = ntpTime(v)
	case ieFlowEndMicros, ieFlowEndNanos:
		tp.end = ntpTime(v)
	case ieFlowStartDeltaMicros:
		tp.startDelta, tp.hasStartDel = be(v), true
	case ieFlowEndDeltaMicros:
		tp.endDelta, tp.hasEndDel = be(v), true
	case ieFlowDurationMillis:
		tp.durationMicros, tp.hasDuration = be(v)*1000, true
	case ieFlowDurationMicros:
		tp.durationMicros, tp.hasDuration = be(v), true
	case ieSystemInitTimeMillis:
		tp.initMillis, tp.hasInit = be(v), true
	default:
		return false
	}
	return true
}

// knownIDs are the IANA elements applyField reads, so that templates skip
// the rest without a call.
var knownIDs = func() (k [512]bool) {
	for _, id := range []uint16{
		ieOctetDeltaCount, iePacketDeltaCount, ieProtocol, ieIPClassOfService, ieTCPControlBits,
		ieSourceTransportPort, ieSourceIPv4Address, ieSourceIPv4PrefixLen, ieIngressInterface,
		ieDestTransportPort, ieDestIPv4Address, ieDestIPv4PrefixLen, ieEgressInterface, ieIPNextHopIPv4,
		ieBGPSourceAS, ieBGPDestAS, ieBGPNextHopIPv4, iePostOctetDeltaCount, iePostPacketDeltaCount,
		ieFlowEndSysUpTime, ieFlowStartSysUpTime, ieSourceIPv6Address, ieDestIPv6Address,
		ieSourceIPv6PrefixLen, ieDestIPv6PrefixLen, ieICMPTypeCodeIPv4, ieSamplingInterval,
		ieSamplingAlgorithm, ieSamplerID, ieSamplerMode, ieSamplerRandomInterval, ieSourceMac,
		iePostDestMac, ieVlanID, iePostVlanID, ieIPVersion, ieFlowDirection, ieIPNextHopIPv6,
		ieBGPNextHopIPv6, ieDestMac, iePostSourceMac, ieOctetTotalCount, iePacketTotalCount,
		ieICMPTypeCodeIPv6, ieFlowStartSeconds, ieFlowEndSeconds, ieFlowStartMillis, ieFlowEndMillis,
		ieFlowStartMicros, ieFlowEndMicros, ieFlowStartNanos, ieFlowEndNanos, ieFlowStartDeltaMicros,
		ieFlowEndDeltaMicros, ieSystemInitTimeMillis, ieFlowDurationMillis, ieFlowDurationMicros,
		ieICMPTypeIPv4, ieICMPCodeIPv4, ieICMPTypeIPv6, ieICMPCodeIPv6, ieIPDiffServCodePoint,
		ieDot1qVlanID, iePostDot1qVlanID, ieEthernetType, ieSelectorID, ieSamplingPacketInterval,
		ieSamplingPacketSpace,
	} {
		k[id] = true
	}
	return k
}()

// known reports whether applyField reads f.
func known(f Field) bool {
	return (f.Enterprise == 0 || f.Enterprise == penReverse) && int(f.ID) < len(knownIDs) && knownIDs[f.ID]
}

// applyField stores one field of a data record.
func (s *recState) applyField(f Field, v []byte) {
	r := s.r
	if f.Enterprise == penReverse {
		switch f.ID {
		case ieOctetDeltaCount, ieOctetTotalCount:
			s.revBytes, s.hasRev = be(v), true
		case iePacketDeltaCount, iePacketTotalCount:
			s.revPackets, s.hasRev = be(v), true
		case ieTCPControlBits:
			s.revFlags = uint8(be(v))
		default:
			applyTime(&s.rev, f.ID, v)
		}
		return
	}
	if f.Enterprise != 0 {
		return // other enterprises' elements are kept out by their length
	}
	switch f.ID {
	case ieOctetDeltaCount:
		r.Bytes, s.hasBytes = be(v), true
	case iePacketDeltaCount:
		r.Packets, s.hasPackets = be(v), true
	case ieOctetTotalCount:
		s.totBytes = be(v)
	case iePacketTotalCount:
		s.totPackets = be(v)
	case iePostOctetDeltaCount:
		s.postBytes = be(v)
	case iePostPacketDeltaCount:
		s.postPkts = be(v)
	case ieProtocol:
		r.Proto = uint8(be(v))
	case ieIPClassOfService:
		r.ToS, s.hasToS = uint8(be(v)), true
	case ieIPDiffServCodePoint:
		s.dscp, s.hasDSCP = uint8(be(v)), true
	case ieTCPControlBits:
		r.TCPFlags = uint8(be(v)) // the low byte: IPFIX may send 16 bits
	case ieSourceTransportPort:
		r.SrcPort = uint16(be(v))
	case ieDestTransportPort:
		r.DstPort = uint16(be(v))
	case ieSourceIPv4Address:
		if a, ok := addr4(v); ok {
			r.SrcAddr = a
		}
	case ieDestIPv4Address:
		if a, ok := addr4(v); ok {
			r.DstAddr = a
		}
	case ieSourceIPv6Address:
		if a, ok := addr16(v); ok {
			r.SrcAddr = a
		}
	case ieDestIPv6Address:
		if a, ok := addr16(v); ok {
			r.DstAddr = a
		}
	case ieSourceIPv4PrefixLen, ieSourceIPv6PrefixLen:
		r.SrcMask = uint8(be(v))
	case ieDestIPv4PrefixLen, ieDestIPv6PrefixLen:
		r.DstMask = uint8(be(v))
	case ieIngressInterface:
		r.InIf = uint32(be(v))
	case ieEgressInterface:
		r.OutIf = uint32(be(v))
	case ieIPNextHopIPv4:
		if a, ok := addr4(v); ok {
			r.NextHop = a
		}
	case ieIPNextHopIPv6:
		if a, ok := addr16(v); ok {
			r.NextHop = a
		}
	case ieBGPNextHopIPv4:
		if a, ok := addr4(v); ok {
			s.bgpNextHop = a
		}
	case ieBGPNextHopIPv6:
		if a, ok := addr16(v); ok {
			s.bgpNextHop = a
		}
	case ieBGPSourceAS:
		r.SrcAS = uint32(be(v))
	case ieBGPDestAS:
		r.DstAS = uint32(be(v))
	case ieICMPTypeCodeIPv4, ieICMPTypeCodeIPv6:
		s.icmp, s.hasICMP = uint16(be(v)), true
	case ieICMPTypeIPv4, ieICMPTypeIPv6:
		s.icmpType, s.hasICMPTC = uint8(be(v)), true
	case ieICMPCodeIPv4, ieICMPCodeIPv6:
		s.icmpCode, s.hasICMPTC = uint8(be(v)), true
	case ieSourceMac:
		if m, ok := mac(v); ok {
			r.SrcMAC = m
		}
	case ieDestMac:
		if m, ok := mac(v); ok {
			r.DstMAC = m
		}
	case iePostSourceMac:
		if m, ok := mac(v); ok && r.SrcMAC.IsZero() {
			r.SrcMAC = m
		}
	case iePostDestMac:
		if m, ok := mac(v); ok && r.DstMAC.IsZero() {
			r.DstMAC = m
		}
	case ieVlanID:
		r.SrcVLAN = uint16(be(v)) & 0xfff
	case iePostVlanID:
		r.DstVLAN = uint16(be(v)) & 0xfff
	case ieDot1qVlanID:
		if r.SrcVLAN == 0 {
			r.SrcVLAN = uint16(be(v)) & 0xfff
		}
	case iePostDot1qVlanID:
		if r.DstVLAN == 0 {
			r.DstVLAN = uint16(be(v)) & 0xfff
		}
	case ieIPVersion:
		s.ipVersion = uint8(be(v))
	case ieEthernetType:
		r.EtherType = uint16(be(v))
	case ieFlowDirection:
		switch be(v) {
		case 0:
			r.Direction = flow.DirectionIngress
		case 1:
			r.Direction = flow.DirectionEgress
		}
	case ieSamplingInterval, ieSamplerRandomInterval:
		s.rate = uint32(be(v))
	case ieSamplingPacketInterval:
		s.interval = uint32(be(v))
	case ieSamplingPacketSpace:
		s.space, s.hasSpace = uint32(be(v)), true
	case ieSamplerID, ieSelectorID:
		s.sampler, s.hasSampler = uint32(be(v)), true
	default:
		applyTime(&s.fwd, f.ID, v)
	}
}

// ownRate is the rate the record (or options record) states itself.
// With packet interval and space (IEs 305 and 306), interval packets are
// selected out of every interval+space.
func (s *recState) ownRate() uint32 {
	if s.interval > 0 {
		if s.hasSpace {
			return uint32((uint64(s.interval) + uint64(s.space)) / uint64(s.interval))
		}
		return s.interval
	}
	return s.rate
}

// resolve turns the parts into start and end times.
func (tp *timeParts) resolve(hdr *msgHeader, init uint64, hasInit bool) (start, end time.Time) {
	start, end = tp.start, tp.end
	if tp.hasInit {
		init, hasInit = tp.initMillis, true
	}
	if start.IsZero() && tp.hasStartUp {
		start = hdr.upTime(tp.startUp, init, hasInit)
	}
	if end.IsZero() && tp.hasEndUp {
		end = hdr.upTime(tp.endUp, init, hasInit)
	}
	if start.IsZero() && tp.hasStartDel {
		start = hdr.export.Add(-time.Duration(tp.startDelta) * time.Microsecond)
	}
	if end.IsZero() && tp.hasEndDel {
		end = hdr.export.Add(-time.Duration(tp.endDelta) * time.Microsecond)
	}
	if tp.hasDuration {
		d := time.Duration(tp.durationMicros) * time.Microsecond
		switch {
		case end.IsZero() && !start.IsZero():
			end = start.Add(d)
		case start.IsZero() && !end.IsZero():
			start = end.Add(-d)
		}
	}
	if !start.IsZero() {
		start = start.UTC()
	}
	if !end.IsZero() {
		end = end.UTC()
	}
	return start, end
}
