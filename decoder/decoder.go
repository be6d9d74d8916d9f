// Package decoder turns export datagrams into flow records. It recognises
// the protocol of each datagram by its content, not by the port it came to,
// and hands it to the NetFlow v5/v9 and IPFIX decoder (package netflow) or
// the sFlow v5 decoder (package sflow). Like them it does no I/O.
package decoder

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/netpulse/netpulse/decoder/netflow"
	"github.com/netpulse/netpulse/decoder/seq"
	"github.com/netpulse/netpulse/decoder/sflow"
	"github.com/netpulse/netpulse/flow"
)

// Config configures the decoders.
type Config struct {
	// NetFlow bounds the template cache and the data held for templates.
	NetFlow netflow.Config `yaml:"netflow"`
	// MaxStreams bounds the sequence streams tracked for loss counting.
	// Default 65536.
	MaxStreams int `yaml:"max_streams"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{NetFlow: netflow.DefaultConfig(), MaxStreams: seq.DefaultMaxStreams}
}

// Decoder decodes any supported export datagram. It is safe for
// concurrent use.
type Decoder struct {
	nf      *netflow.Decoder
	sf      *sflow.Decoder
	seqs    *seq.Tracker
	unknown atomic.Uint64
}

// New returns a decoder.
func New(cfg Config) *Decoder {
	seqs := seq.NewTracker(cfg.MaxStreams)
	return &Decoder{nf: netflow.New(cfg.NetFlow, seqs), sf: sflow.New(seqs), seqs: seqs}
}

// ErrUnknown is returned for a datagram that is none of the supported
// protocols.
var ErrUnknown = errors.New("not NetFlow v5/v9, IPFIX or sFlow v5")

// Detect recognises the protocol of a datagram from its first bytes.
func Detect(b []byte) flow.Type {
	if len(b) < 8 {
		return flow.TypeUnknown
	}
	switch binary.BigEndian.Uint16(b) {
	case 5:
		count := int(binary.BigEndian.Uint16(b[2:]))
		if count >= 1 && count <= 30 && len(b) >= 24+48*count {
			return flow.TypeNetFlowV5
		}
	case 9:
		if len(b) >= 20 {
			return flow.TypeNetFlowV9
		}
	case 10:
		if l := int(binary.BigEndian.Uint16(b[2:])); len(b) >= 16 && l >= 16 && l <= len(b) {
			return flow.TypeIPFIX
		}
	case 0:
		// sFlow: a 32-bit version 5, then the agent address type.
		if binary.BigEndian.Uint32(b) == 5 {
			if at := binary.BigEndian.Uint32(b[4:]); at == 1 || at == 2 {
				return flow.TypeSFlowV5
			}
		}
	}
	return flow.TypeUnknown
}

// Decode decodes one datagram from exporter, received at received,
// calling emit for each record; see netflow.Decoder.Decode for the
// contract.
func (d *Decoder) Decode(exporter netip.Addr, received time.Time, data []byte, emit func(*flow.Record)) error {
	exporter = exporter.Unmap()
	switch Detect(data) {
	case flow.TypeNetFlowV5, flow.TypeNetFlowV9, flow.TypeIPFIX:
		return d.nf.Decode(exporter, received, data, emit)
	case flow.TypeSFlowV5:
		return d.sf.Decode(exporter, received, data, emit)
	}
	d.unknown.Add(1)
	return ErrUnknown
}

// Expire drops data held for templates longer than the hold time.
func (d *Decoder) Expire(now time.Time) { d.nf.Expire(now) }

// NetFlow returns the NetFlow/IPFIX decoder, for its templates and stats.
func (d *Decoder) NetFlow() *netflow.Decoder { return d.nf }

// SFlow returns the sFlow decoder, for its stats.
func (d *Decoder) SFlow() *sflow.Decoder { return d.sf }

// Sequences returns the sequence tracker with per-exporter loss counts.
func (d *Decoder) Sequences() *seq.Tracker { return d.seqs }

// Unknown returns how many datagrams were of no supported protocol.
func (d *Decoder) Unknown() uint64 { return d.unknown.Load() }
