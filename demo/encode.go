package demo

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/netpulse/netpulse/flow"
)

// encBase is what every encoder knows of its device.
type encBase struct {
	id     uint64
	src    netip.Addr
	typ    flow.Type
	domain uint32
	rate   uint32
	// boot is when the device started, to the millisecond: uptimes count
	// from it.
	boot    time.Time
	maxSize int
}

// uptime returns t in milliseconds of the device's uptime, modulo 2^32 as
// the export formats carry it.
func (e *encBase) uptime(t time.Time) uint32 {
	return uint32(t.Sub(e.boot).Milliseconds())
}

func (e *encBase) datagram(now time.Time, payload []byte, recs []flow.Record) Datagram {
	return Datagram{DeviceID: e.id, Src: e.src, Type: e.typ, Time: now, Payload: payload, Records: recs}
}

// header returns the fields every decoder sets from the datagram of an
// expected record.
func (e *encBase) header(kind flow.Kind, now time.Time, seq uint32) flow.Record {
	return flow.Record{Kind: kind, Type: e.typ, TimeReceived: now, Exporter: e.src, ObservationDomain: e.domain, Sequence: seq}
}

// etherType is the EtherType of an IP address's family.
func etherType(a netip.Addr) uint16 {
	if a.Is6() {
		return 0x86dd
	}
	return 0x0800
}

var be = binary.BigEndian

// appendUint appends the low n bytes of v, big-endian.
func appendUint(b []byte, v uint64, n int) []byte {
	for i := n - 1; i >= 0; i-- {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

// append4 appends an IPv4 address, 0.0.0.0 when a is not one.
func append4(b []byte, a netip.Addr) []byte {
	if !a.Is4() {
		return append(b, 0, 0, 0, 0)
	}
	v := a.As4()
	return append(b, v[:]...)
}

// append16 appends an IPv6 address, :: when a is not one.
func append16(b []byte, a netip.Addr) []byte {
	if !a.Is6() {
		return append(b, make([]byte, 16)...)
	}
	v := a.As16()
	return append(b, v[:]...)
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
