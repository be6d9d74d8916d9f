// Package seq turns export sequence numbers into loss counters, one stream
// per exporter, observation domain and protocol.
//
// Each protocol counts something different: NetFlow v5 and IPFIX count
// flow records sent before this datagram, NetFlow v9 and sFlow count
// datagrams. The caller says how many units the datagram carries (its
// flow count, or 1), and Observe compares the datagram's sequence with the
// one expected from the previous datagram of the stream:
//   - equal: nothing lost;
//   - ahead by less than ResetGap: the difference is lost;
//   - behind: a late or repeated datagram, counted as out of order, and the
//     expectation is kept; but when the next datagram follows on from the
//     one that was behind, the exporter restarted: the out-of-order count
//     becomes a reset and the stream goes on from the new numbers;
//   - ahead by ResetGap or more: a restart too, counted as a reset.
//
// The table of streams is keyed by data from the network, so it is bounded:
// when full, the stream seen longest ago is forgotten.
package seq

import (
	"net/netip"
	"sync"
	"time"
)

// ResetGap is the largest jump taken as loss rather than an exporter
// restart. A million units is far more than any exporter sends between two
// datagrams of a working stream.
const ResetGap = 1 << 20

// DefaultMaxStreams bounds the stream table.
const DefaultMaxStreams = 65536

// Key identifies one sequence stream.
type Key struct {
	Exporter netip.Addr
	Domain   uint32
	// Proto separates protocols that share an exporter and domain, for
	// example a router exporting both NetFlow v9 and sFlow.
	Proto uint8
}

// Stats are the loss counters of one stream.
type Stats struct {
	// Datagrams is the number of datagrams observed.
	Datagrams uint64
	// Lost is the number of units (flows or datagrams) never seen.
	Lost       uint64
	OutOfOrder uint64
	Resets     uint64
	LastSeen   time.Time
}

type stream struct {
	Stats
	next  uint32
	known bool
	// alt is what would come next if the last datagram that was behind
	// was in fact an exporter restart.
	alt      uint32
	altValid bool
}

// Tracker tracks sequence streams. It is safe for concurrent use.
type Tracker struct {
	mu      sync.Mutex
	max     int
	streams map[Key]*stream
	evicted uint64
}

// NewTracker returns a tracker that keeps at most maxStreams streams
// (DefaultMaxStreams when maxStreams <= 0).
func NewTracker(maxStreams int) *Tracker {
	if maxStreams <= 0 {
		maxStreams = DefaultMaxStreams
	}
	return &Tracker{max: maxStreams, streams: make(map[Key]*stream)}
}

// Observe records a datagram with sequence number seq that carries units
// units, and returns how many units were lost just before it.
func (t *Tracker) Observe(k Key, seq, units uint32, now time.Time) (lost uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.get(k)
	s.Datagrams++
	s.LastSeen = now
	if s.known {
		d := int64(int32(seq - s.next))
		switch {
		case d == 0:
		case s.altValid && seq == s.alt:
			s.OutOfOrder--
			s.Resets++
		case d > 0 && d < ResetGap:
			lost = uint64(d)
			s.Lost += lost
		case d < 0:
			s.OutOfOrder++
			s.alt, s.altValid = seq+units, true
			return 0
		default:
			s.Resets++
		}
	}
	s.next = seq + units
	s.known = true
	s.altValid = false
	return lost
}

// Resync records a datagram whose unit count is unknown (its records wait
// for a template): loss before it is still counted, and the stream's next
// expectation is forgotten so the following datagram starts it again.
func (t *Tracker) Resync(k Key, seq uint32, now time.Time) (lost uint64) {
	lost = t.Observe(k, seq, 0, now)
	t.mu.Lock()
	if s := t.streams[k]; s != nil {
		s.known = false
	}
	t.mu.Unlock()
	return lost
}

func (t *Tracker) get(k Key) *stream {
	if s := t.streams[k]; s != nil {
		return s
	}
	if len(t.streams) >= t.max {
		var oldest Key
		var when time.Time
		first := true
		for kk, s := range t.streams {
			if first || s.LastSeen.Before(when) {
				oldest, when, first = kk, s.LastSeen, false
			}
		}
		delete(t.streams, oldest)
		t.evicted++
	}
	s := &stream{}
	t.streams[k] = s
	return s
}

// Stream returns the counters of one stream.
func (t *Tracker) Stream(k Key) (Stats, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.streams[k]
	if !ok {
		return Stats{}, false
	}
	return s.Stats, true
}

// Snapshot returns the counters of every stream.
func (t *Tracker) Snapshot() map[Key]Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[Key]Stats, len(t.streams))
	for k, s := range t.streams {
		out[k] = s.Stats
	}
	return out
}

// Evicted returns how many streams were forgotten because the table was full.
func (t *Tracker) Evicted() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.evicted
}
