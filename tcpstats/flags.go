package tcpstats

import "math/bits"

// Flag is one tcp.analysis finding about a segment.
type Flag uint8

// The findings, named after Wireshark's tcp.analysis.* fields.
const (
	Retransmission Flag = iota
	FastRetransmission
	SpuriousRetransmission
	OutOfOrder
	LostSegment
	AckedUnseen
	DuplicateAck
	ZeroWindow
	ZeroWindowProbe
	ZeroWindowProbeAck
	WindowFull
	WindowUpdate
	KeepAlive
	KeepAliveAck
	Reset
	NumFlags
)

var flagNames = [NumFlags]string{
	"retransmission", "fast_retransmission", "spurious_retransmission",
	"out_of_order", "lost_segment", "ack_lost_segment", "duplicate_ack",
	"zero_window", "zero_window_probe", "zero_window_probe_ack",
	"window_full", "window_update", "keep_alive", "keep_alive_ack", "reset",
}

// tsharkFields names, for each flag, the tshark field that marks it.
var tsharkFields = [NumFlags]string{
	"tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
	"tcp.analysis.spurious_retransmission", "tcp.analysis.out_of_order",
	"tcp.analysis.lost_segment", "tcp.analysis.ack_lost_segment",
	"tcp.analysis.duplicate_ack", "tcp.analysis.zero_window",
	"tcp.analysis.zero_window_probe", "tcp.analysis.zero_window_probe_ack",
	"tcp.analysis.window_full", "tcp.analysis.window_update",
	"tcp.analysis.keep_alive", "tcp.analysis.keep_alive_ack", "tcp.flags.reset",
}

// String returns the flag's name as used in JSON, tables and metrics.
func (f Flag) String() string {
	if f < NumFlags {
		return flagNames[f]
	}
	return "unknown"
}

// TSharkField returns the tshark display field that marks the same finding.
func (f Flag) TSharkField() string { return tsharkFields[f] }

// Flags is a set of findings about one segment.
type Flags uint16

// Has reports whether f is in the set.
func (s Flags) Has(f Flag) bool { return s&(1<<f) != 0 }

func (s *Flags) set(f Flag) { *s |= 1 << f }

// Len returns the number of findings in the set.
func (s Flags) Len() int { return bits.OnesCount16(uint16(s)) }

// Counts holds one counter per flag.
type Counts [NumFlags]uint64

// Add counts every flag of s.
func (c *Counts) Add(s Flags) {
	for s != 0 {
		f := bits.TrailingZeros16(uint16(s))
		c[f]++
		s &= s - 1
	}
}

// Sum adds o into c.
func (c *Counts) Sum(o *Counts) {
	for i := range c {
		c[i] += o[i]
	}
}
