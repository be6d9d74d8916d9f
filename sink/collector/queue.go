package collector

import (
	"sync"

	"github.com/netpulse/netpulse/flow"
)

// queue is the bounded in-memory queue between Write and the sender: a
// list of chunks of up to one batch each, so that the sender takes a whole
// batch without copying or shifting what remains.
type queue struct {
	mu     sync.Mutex
	chunks [][]flow.Record
	n      int // records in chunks
	max    int
	size   int // records per chunk (the batch size)
	free   [][]flow.Record
	closed bool
}

func newQueue(max, size int) *queue { return &queue{max: max, size: size} }

// push copies what fits and reports how many it took and whether a full
// chunk is waiting.
func (q *queue) push(recs []flow.Record) (accepted int, full bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return 0, false
	}
	room := q.max - q.n
	if room <= 0 {
		return 0, len(q.chunks) > 1 || (len(q.chunks) == 1 && len(q.chunks[0]) == q.size)
	}
	recs = recs[:min(len(recs), room)]
	for len(recs) > 0 {
		last := len(q.chunks) - 1
		if last < 0 || len(q.chunks[last]) == q.size {
			q.chunks = append(q.chunks, q.newChunk())
			last++
		}
		c := q.chunks[last]
		k := min(len(recs), q.size-len(c))
		q.chunks[last] = append(c, recs[:k]...)
		recs = recs[k:]
		q.n += k
		accepted += k
	}
	full = len(q.chunks) > 1 || len(q.chunks[0]) == q.size
	return accepted, full
}

func (q *queue) newChunk() []flow.Record {
	if n := len(q.free); n > 0 {
		c := q.free[n-1]
		q.free = q.free[:n-1]
		return c
	}
	return make([]flow.Record, 0, q.size)
}

// pop takes the oldest chunk if it is full, or if partial whatever is
// there; nil when there is nothing to take.
func (q *queue) pop(partial bool) []flow.Record {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.chunks) == 0 || len(q.chunks[0]) == 0 || (!partial && len(q.chunks[0]) < q.size) {
		return nil
	}
	c := q.chunks[0]
	q.chunks[0] = nil
	q.chunks = q.chunks[1:]
	q.n -= len(c)
	return c
}

// recycle gives back a chunk the sender has encoded. A few are kept for
// reuse; the strings they point to are cleared so as not to pin them.
func (q *queue) recycle(c []flow.Record) {
	clear(c)
	q.mu.Lock()
	if len(q.free) < 4 {
		q.free = append(q.free, c[:0])
	}
	q.mu.Unlock()
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// close makes push refuse everything from now on.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}
