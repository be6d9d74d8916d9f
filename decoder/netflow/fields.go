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

// fkind is what the decoder does with a field, decided once per template
// so that the per-record switch is dense (a jump table) rather than a
// search over sparse element IDs.
type fkind uint8

const (
	kNone fkind = iota
	kOctets
	kPackets
	kOctetsTotal
	kPacketsTotal
	kPostOctets
	kPostPackets
	kProto
	kToS
	kDSCP
	kTCPFlags
	kSrcPort
	kDstPort
	kSrc4
	kDst4
	kSrc6
	kDst6
	kSrcMask
	kDstMask
	kInIf
	kOutIf
	kNextHop4
	kNextHop6
	kBGPNextHop4
	kBGPNextHop6
	kSrcAS
	kDstAS
	kICMPTypeCode
	kICMPType
	kICMPCode
	kSrcMAC
	kDstMAC
	kPostSrcMAC
	kPostDstMAC
	kVLAN
	kPostVLAN
	kDot1q
	kPostDot1q
	kIPVersion
	kEtherType
	kDirection
	kRate
	kInterval
	kSpace
	kSampler
	kTime
	kRevOctets
	kRevPackets
	kRevFlags
	kRevTime
)

// timeIDs are the elements applyTime reads.
var timeIDs = [...]uint16{ieFlowStartSysUpTime, ieFlowEndSysUpTime, ieFlowStartSeconds, ieFlowEndSeconds,
	ieFlowStartMillis, ieFlowEndMillis, ieFlowStartMicros, ieFlowEndMicros, ieFlowStartNanos, ieFlowEndNanos,
	ieFlowStartDeltaMicros, ieFlowEndDeltaMicros, ieFlowDurationMillis, ieFlowDurationMicros, ieSystemInitTimeMillis}

func isTime(id uint16) bool {
	for _, t := range timeIDs {
		if t == id {
			return true
		}
	}
	return false
}

// kindOf maps a template field to what the decoder does with it; kNone
// for the elements it does not read, which are skipped by their length.
// Other enterprises' elements are never read: an enterprise field never
// stands in for the IANA element with the same number.
func kindOf(f Field) fkind {
	if f.Enterprise == penReverse {
		switch f.ID {
		case ieOctetDeltaCount, ieOctetTotalCount:
			return kRevOctets
		case iePacketDeltaCount, iePacketTotalCount:
			return kRevPackets
		case ieTCPControlBits:
			return kRevFlags
		}
		if isTime(f.ID) {
			return kRevTime
		}
		return kNone
	}
	if f.Enterprise != 0 {
		return kNone
	}
	switch f.ID {
	case ieOctetDeltaCount:
		return kOctets
	case iePacketDeltaCount:
		return kPackets
	case ieOctetTotalCount:
		return kOctetsTotal
	case iePacketTotalCount:
		return kPacketsTotal
	case iePostOctetDeltaCount:
		return kPostOctets
	case iePostPacketDeltaCount:
		return kPostPackets
	case ieProtocol:
		return kProto
	case ieIPClassOfService:
		return kToS
	case ieIPDiffServCodePoint:
		return kDSCP
	case ieTCPControlBits:
		return kTCPFlags
	case ieSourceTransportPort:
		return kSrcPort
	case ieDestTransportPort:
		return kDstPort
	case ieSourceIPv4Address:
		return kSrc4
	case ieDestIPv4Address:
		return kDst4
	case ieSourceIPv6Address:
		return kSrc6
	case ieDestIPv6Address:
		return kDst6
	case ieSourceIPv4PrefixLen, ieSourceIPv6PrefixLen:
		return kSrcMask
	case ieDestIPv4PrefixLen, ieDestIPv6PrefixLen:
		return kDstMask
	case ieIngressInterface:
		return kInIf
	case ieEgressInterface:
		return kOutIf
	case ieIPNextHopIPv4:
		return kNextHop4
	case ieIPNextHopIPv6:
		return kNextHop6
	case ieBGPNextHopIPv4:
		return kBGPNextHop4
	case ieBGPNextHopIPv6:
		return kBGPNextHop6
	case ieBGPSourceAS:
		return kSrcAS
	case ieBGPDestAS:
		return kDstAS
	case ieICMPTypeCodeIPv4, ieICMPTypeCodeIPv6:
		return kICMPTypeCode
	case ieICMPTypeIPv4, ieICMPTypeIPv6:
		return kICMPType
	case ieICMPCodeIPv4, ieICMPCodeIPv6:
		return kICMPCode
	case ieSourceMac:
		return kSrcMAC
	case ieDestMac:
		return kDstMAC
	case iePostSourceMac:
		return kPostSrcMAC
	case iePostDestMac:
		return kPostDstMAC
	case ieVlanID:
		return kVLAN
	case iePostVlanID:
		return kPostVLAN
	case ieDot1qVlanID:
		return kDot1q
	case iePostDot1qVlanID:
		return kPostDot1q
	case ieIPVersion:
		return kIPVersion
	case ieEthernetType:
		return kEtherType
	case ieFlowDirection:
		return kDirection
	case ieSamplingInterval, ieSamplerRandomInterval:
		return kRate
	case ieSamplingPacketInterval:
		return kInterval
	case ieSamplingPacketSpace:
		return kSpace
	case ieSamplerID, ieSelectorID:
		return kSampler
	}
	if isTime(f.ID) {
		return kTime
	}
	return kNone
}

// applyField stores one field of a data record; k is kindOf(f).
func (s *recState) applyField(k fkind, id uint16, v []byte) {
	r := s.r
	switch k {
	case kOctets:
		r.Bytes, s.hasBytes = be(v), true
	case kPackets:
		r.Packets, s.hasPackets = be(v), true
	case kOctetsTotal:
		s.totBytes = be(v)
	case kPacketsTotal:
		s.totPackets = be(v)
	case kPostOctets:
		s.postBytes = be(v)
	case kPostPackets:
		s.postPkts = be(v)
	case kProto:
		r.Proto = uint8(be(v))
	case kToS:
		r.ToS, s.hasToS = uint8(be(v)), true
	case kDSCP:
		s.dscp, s.hasDSCP = uint8(be(v)), true
	case kTCPFlags:
		r.TCPFlags = uint8(be(v)) // the low byte: IPFIX may send 16 bits
	case kSrcPort:
		r.SrcPort = uint16(be(v))
	case kDstPort:
		r.DstPort = uint16(be(v))
	case kSrc4:
		if a, ok := addr4(v); ok {
			r.SrcAddr = a
		}
	case kDst4:
		if a, ok := addr4(v); ok {
			r.DstAddr = a
		}
	case kSrc6:
		if a, ok := addr16(v); ok {
			r.SrcAddr = a
		}
	case kDst6:
		if a, ok := addr16(v); ok {
			r.DstAddr = a
		}
	case kSrcMask:
		r.SrcMask = uint8(be(v))
	case kDstMask:
		r.DstMask = uint8(be(v))
	case kInIf:
		r.InIf = uint32(be(v))
	case kOutIf:
		r.OutIf = uint32(be(v))
	case kNextHop4:
		if a, ok := addr4(v); ok {
			r.NextHop = a
		}
	case kNextHop6:
		if a, ok := addr16(v); ok {
			r.NextHop = a
		}
	case kBGPNextHop4:
		if a, ok := addr4(v); ok {
			s.bgpNextHop = a
		}
	case kBGPNextHop6:
		if a, ok := addr16(v); ok {
			s.bgpNextHop = a
		}
	case kSrcAS:
		r.SrcAS = uint32(be(v))
	case kDstAS:
		r.DstAS = uint32(be(v))
	case kICMPTypeCode:
		s.icmp, s.hasICMP = uint16(be(v)), true
	case kICMPType:
		s.icmpType, s.hasICMPTC = uint8(be(v)), true
	case kICMPCode:
		s.icmpCode, s.hasICMPTC = uint8(be(v)), true
	case kSrcMAC:
		if m, ok := mac(v); ok {
			r.SrcMAC = m
		}
	case kDstMAC:
		if m, ok := mac(v); ok {
			r.DstMAC = m
		}
	case kPostSrcMAC:
		if m, ok := mac(v); ok && r.SrcMAC.IsZero() {
			r.SrcMAC = m
		}
	case kPostDstMAC:
		if m, ok := mac(v); ok && r.DstMAC.IsZero() {
			r.DstMAC = m
		}
	case kVLAN:
		r.SrcVLAN = uint16(be(v)) & 0xfff
	case kPostVLAN:
		r.DstVLAN = uint16(be(v)) & 0xfff
	case kDot1q:
		if r.SrcVLAN == 0 {
			r.SrcVLAN = uint16(be(v)) & 0xfff
		}
	case kPostDot1q:
		if r.DstVLAN == 0 {
			r.DstVLAN = uint16(be(v)) & 0xfff
		}
	case kIPVersion:
		s.ipVersion = uint8(be(v))
	case kEtherType:
		r.EtherType = uint16(be(v))
	case kDirection:
		switch be(v) {
		case 0:
			r.Direction = flow.DirectionIngress
		case 1:
			r.Direction = flow.DirectionEgress
		}
	case kRate:
		s.rate = uint32(be(v))
	case kInterval:
		s.interval = uint32(be(v))
	case kSpace:
		s.space, s.hasSpace = uint32(be(v)), true
	case kSampler:
		s.sampler, s.hasSampler = uint32(be(v)), true
	case kTime:
		applyTime(&s.fwd, id, v)
	case kRevOctets:
		s.revBytes, s.hasRev = be(v), true
	case kRevPackets:
		s.revPackets, s.hasRev = be(v), true
	case kRevFlags:
		s.revFlags = uint8(be(v))
	case kRevTime:
		applyTime(&s.rev, id, v)
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
