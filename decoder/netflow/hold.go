package netflow

import (
	"sync"
	"sync/atomic"
	"time"
)

// heldSet is a data set waiting for its template, with what it needs from
// its datagram's header to be decoded later.
type heldSet struct {
	key      TemplateKey
	hdr      msgHeader
	received time.Time
	data     []byte
}

// holdQueue keeps data sets that arrived before their template, oldest
// first, bounded in count, bytes and age.
type holdQueue struct {
	mu       sync.Mutex
	cfg      Config
	sets     []heldSet
	bytes    int
	earliest time.Time // received time of sets[0]
	// n is len(sets), read without the lock: the queue is empty nearly
	// always, and every datagram asks.
	n atomic.Int32
}

func newHoldQueue(cfg Config) *holdQueue { return &holdQueue{cfg: cfg} }

func (q *holdQueue) len() int { return int(q.n.Load()) }

// add copies data into the queue. It returns false, keeping nothing, when
// the queue is full.
func (q *holdQueue) add(k TemplateKey, hdr msgHeader, received time.Time, data []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.sets) >= q.cfg.HoldSets || q.bytes+len(data) > q.cfg.HoldBytes {
		return false
	}
	if len(q.sets) == 0 {
		q.earliest = received
	}
	q.sets = append(q.sets, heldSet{key: k, hdr: hdr, received: received, data: append([]byte(nil), data...)})
	q.bytes += len(data)
	q.n.Store(int32(len(q.sets)))
	return true
}

// take removes and returns the sets waiting for k, oldest first.
func (q *holdQueue) take(k TemplateKey) []heldSet {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.sets) == 0 {
		return nil
	}
	var out []heldSet
	kept := q.sets[:0]
	for _, s := range q.sets {
		if s.key == k {
			out = append(out, s)
			q.bytes -= len(s.data)
		} else {
			kept = append(kept, s)
		}
	}
	clear(q.sets[len(kept):])
	q.sets = kept
	q.n.Store(int32(len(q.sets)))
	if len(kept) > 0 {
		q.earliest = kept[0].received
	}
	return out
}

// expire drops sets held longer than the hold time and returns how many.
func (q *holdQueue) expire(now time.Time) int {
	if q.n.Load() == 0 {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.sets) == 0 || now.Sub(q.earliest) <= q.cfg.HoldTime {
		return 0
	}
	n := 0
	for n < len(q.sets) && now.Sub(q.sets[n].received) > q.cfg.HoldTime {
		q.bytes -= len(q.sets[n].data)
		n++
	}
	rest := copy(q.sets, q.sets[n:])
	clear(q.sets[rest:])
	q.sets = q.sets[:rest]
	q.n.Store(int32(rest))
	if rest > 0 {
		q.earliest = q.sets[0].received
	}
	return n
}
