package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/netpulse/netpulse/device"
)

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

// batchMsgs is how many datagrams one recvmmsg call reads at most.
const batchMsgs = 64

// arenaSize is the byte capacity of one datagram batch handed from a
// reader to its decode worker. Datagrams are copied into it compactly, so
// a queue of batches costs at most (queue length × arenaSize) bytes
// whatever the overload.
const arenaSize = 256 << 10

// batchDatagrams bounds the datagrams of one batch, whatever their size
// (an arena holds 190 datagrams of 1400 bytes, but thousands of tiny ones).
const batchDatagrams = 512

// datagram is one received datagram inside a batch's arena.
type datagram struct {
	src      netip.AddrPort
	received time.Time
	off, n   int
	// src is looked up once, by the reader: dev is nil for a source
	// that is not a device, ds its counters.
	dev *device.Device
	ds  *deviceStats
}

// batch is a group of datagrams read together.
type batch struct {
	arena []byte
	dgs   []datagram
}

func (b *batch) payload(i int) []byte { d := b.dgs[i]; return b.arena[d.off : d.off+d.n] }

// reader owns one socket: it reads datagrams with recvmmsg into batches and
// hands them to its worker through a bounded queue. It never waits for the
// worker: when every batch is full or queued, datagrams are dropped and
// counted per device.
type reader struct {
	sock  *socket
	queue chan *batch
	free  chan *batch
	now   func() time.Time
	// lookup identifies a source: its device and counters (nil when the
	// source is not a device), which travel with the datagram. It is
	// called once per run of datagrams from one source in a read.
	lookup func(src netip.AddrPort, now time.Time) (*device.Device, *deviceStats)
	// count counts datagrams read, once per run of one source.
	count func(ds *deviceStats, datagrams, bytes uint64)
	// dropped is called for each datagram dropped because every arena
	// was in use.
	dropped func(ds *deviceStats)
	// highwater records the queue length seen at each enqueue.
	highwater func(ds *deviceStats, depth int)
	// tee, when set, gets every datagram as read.
	tee func(src netip.AddrPort, payload []byte)
	// linger is the pause after draining the socket under dense traffic
	// (see run); 0 turns it off. rcvbuf is the socket's receive buffer
	// as the kernel reports it, which bounds the pause.
	linger time.Duration
	rcvbuf int
}

func newReader(sock *socket, queueLen int) *reader {
	r := &reader{
		sock:  sock,
		queue: make(chan *batch, queueLen),
		// One batch more than the queue holds is being filled, one is
		// being decoded: the memory bound is (queueLen+2) arenas.
		free:   make(chan *batch, queueLen+2),
		linger: defaultLinger,
	}
	for i := 0; i < queueLen+2; i++ {
		r.free <- &batch{arena: make([]byte, arenaSize), dgs: make([]datagram, 0, batchDatagrams)}
	}
	return r
}

// defaultLinger is the reader's pause after it drained its socket while
// datagrams arrive densely. Without it each wake-up of the reader (and
// then of the worker) carries the few datagrams that arrived meanwhile
// (3 to 5 at 100–300 k datagrams/s on loopback), and the wake-ups, not
// the reading, are most of the receive path's CPU time. With it a wake-up
// carries up to 10 ms of traffic, which the socket buffer holds meanwhile.
// On loopback at 100 k datagrams/s a bare reader's CPU time per datagram
// was 3.1 µs without a pause, 1.4 µs with 1 ms and 1.1 µs with 2 ms; at
// 30 k datagrams/s the whole proxy used 7 % less CPU with 10 ms than with
// 2 ms. The added delay is nothing next to the seconds to minutes an
// exporter holds a flow.
const defaultLinger = 10 * time.Millisecond

// minPause is the shortest pause worth taking: Go's timers wake no sooner
// than about 1 ms when the process is otherwise idle.
const minPause = time.Millisecond

// run reads until the socket is closed.
//
// It fills a batch until the batch is full (its 256 KiB arena or
// batchDatagrams) or the socket is drained, and then hands it to the
// worker when the queue has room, so that the queue's bound in bytes is
// used rather than a few datagrams per batch. When the queue is full it
// keeps filling the batch it holds, so that a stall of the worker is
// absorbed by the arenas (up to Queue × 256 KiB) rather than dropping
// datagrams while the socket buffer is empty; only when every arena is
// full are datagrams dropped. It never waits for the worker: a held batch
// is retried within a few milliseconds by a read timeout. After draining
// the socket under dense traffic it pauses for the linger (see
// defaultLinger), letting the socket buffer gather the next datagrams: the
// pause is skipped when what arrives meanwhile could fill more than a
// quarter of the buffer. It closes the socket when done.
func (r *reader) run() error {
	defer r.sock.close()
	bufs := make([][]byte, batchMsgs)
	for i := range bufs {
		bufs[i] = make([]byte, maxDatagram)
	}
	mr := newMsgReader(r.sock, bufs)
	var cur *batch
	held := false // cur is complete, and the queue was full
	more := false // the last read filled every buffer: more may be waiting
	var lastDrain time.Time
	var cycleDgs, cycleBytes int // read since the socket was last drained
	for {
		if held {
			switch {
			case cur == nil || len(cur.dgs) == 0:
				held = false // pushed meanwhile, when its arena filled
			case r.tryPush(cur):
				cur, held = nil, false
			}
		}
		timeout := idleTimeout
		if held {
			timeout = retryHeld
		}
		if err := r.sock.setTimeout(timeout); err != nil {
			r.flush(cur)
			return err
		}
		// After a full read the next one does not wait: finding nothing
		// means the socket is drained, and cur must go to the worker now
		// rather than when the next datagram comes.
		n, err := mr.read(!more)
		switch {
		case err == errNothing:
			n = 0
		case err == errReadTimeout:
			continue
		case err != nil:
			r.flush(cur)
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("proxy: read: %w", err)
		}
		var nb int
		cur, nb = r.ingest(mr, bufs, n, cur)
		cycleDgs += n
		cycleBytes += nb
		if more = n == len(bufs); more {
			continue // read on, filling cur
		}
		// The socket is drained: hand the batch over before pausing.
		if cur != nil && len(cur.dgs) > 0 {
			if r.tryPush(cur) {
				cur, held = nil, false
			} else {
				held = true
			}
		}
		now := time.Now()
		if d := r.pause(now.Sub(lastDrain), cycleDgs, cycleBytes); d > 0 {
			time.Sleep(d)
		}
		lastDrain, cycleDgs, cycleBytes = now, 0, 0
	}
}

// flush hands the batch being filled to the worker and closes the queue:
// the worker decodes what is queued, then ends.
func (r *reader) flush(cur *batch) {
	if cur != nil && len(cur.dgs) > 0 {
		r.queue <- cur // the worker drains the queue until it closes
	}
	close(r.queue)
}

// pause is how long the reader lingers after draining its socket, given
// the datagrams and bytes read since it last drained it, since ago: the
// linger, shortened so that what arrives meanwhile fills at most a quarter
// of the receive buffer, and none when that leaves less than minPause.
func (r *reader) pause(since time.Duration, dgs, bytes int) time.Duration {
	if r.linger <= 0 {
		return 0
	}
	if dgs < 2 && since >= r.linger {
		// Sparse traffic: every datagram comes alone, and a pause would
		// add a wake-up rather than save one.
		return 0
	}
	d := r.linger
	if r.rcvbuf > 0 && since > 0 {
		// The kernel charges a datagram's buffer (up to twice its size)
		// plus its sk_buff to the receive buffer: allow for both, and for
		// the timer waking late (twice the pause).
		perSec := float64(2*bytes+1024*dgs) / since.Seconds()
		if limit := time.Duration(float64(r.rcvbuf) / 4 / (2 * perSec) * float64(time.Second)); limit < d {
			d = limit
		}
	}
	if d < minPause {
		return 0
	}
	return d
}

// ingest copies the n datagrams of a read into batches, identifying each
// run of datagrams from one source once, and returns the batch being
// filled and the bytes read.
func (r *reader) ingest(mr *mmsgReader, bufs [][]byte, n int, cur *batch) (*batch, int) {
	now := r.now()
	var (
		runSrc     netip.AddrPort
		dev        *device.Device
		ds         *deviceStats
		runDgs, rb uint64
		inRun      bool
		total      int
	)
	flushRun := func() {
		if inRun && r.count != nil {
			r.count(ds, runDgs, rb)
		}
		runDgs, rb = 0, 0
	}
	for i := 0; i < n; i++ {
		src, size := mr.msg(i)
		payload := bufs[i][:size]
		total += size
		if !inRun || src != runSrc {
			flushRun()
			runSrc, inRun = src, true
			dev, ds = nil, nil
			if r.lookup != nil {
				dev, ds = r.lookup(src, now)
			}
		}
		runDgs++
		rb += uint64(size)
		if r.tee != nil {
			r.tee(src, payload)
		}
		if cur == nil {
			cur = r.take()
		}
		if cur != nil && (len(cur.arena)-arenaUsed(cur) < size || len(cur.dgs) == batchDatagrams) {
			if !r.tryPush(cur) {
				r.drop(ds)
				continue
			}
			cur = r.take()
		}
		if cur == nil {
			// Every arena is queued or in use: the worker is behind.
			r.drop(ds)
			continue
		}
		off := arenaUsed(cur)
		copy(cur.arena[off:], payload)
		cur.dgs = append(cur.dgs, datagram{src: src, received: now, off: off, n: size, dev: dev, ds: ds})
	}
	flushRun()
	return cur, total
}

// retryHeld is how soon a batch held back by a full queue is offered
// again when no datagram arrives meanwhile.
const retryHeld = 2 * time.Millisecond

func (r *reader) drop(ds *deviceStats) {
	if r.dropped != nil {
		r.dropped(ds)
	}
}

func arenaUsed(b *batch) int {
	if len(b.dgs) == 0 {
		return 0
	}
	d := b.dgs[len(b.dgs)-1]
	return d.off + d.n
}

// take returns a free batch, or nil when there is none.
func (r *reader) take() *batch {
	select {
	case b := <-r.free:
		b.dgs = b.dgs[:0]
		return b
	default:
		return nil
	}
}

// tryPush queues b for the worker and reports whether there was room.
func (r *reader) tryPush(b *batch) bool {
	// The worker owns b once it is queued: record the depth first.
	if r.highwater != nil {
		depth := len(r.queue) + 1
		var last *deviceStats
		for i, d := range b.dgs {
			if i == 0 || d.ds != last {
				r.highwater(d.ds, depth)
				last = d.ds
			}
		}
	}
	select {
	case r.queue <- b:
		return true
	default:
		return false
	}
}

// release returns a decoded batch to the free list.
func (r *reader) release(b *batch) {
	b.dgs = b.dgs[:0]
	r.free <- b
}

// sockets opens n SO_REUSEPORT sockets on addr; on port 0 the first
// gets a free port and the others join it.
func sockets(addr netip.AddrPort, n, rcvbuf int) ([]*socket, int, error) {
	var out []*socket
	got := 0
	for i := 0; i < n; i++ {
		s, g, err := openSocket(addr, rcvbuf)
		if err != nil {
			for _, s := range out {
				s.close()
			}
			return nil, 0, fmt.Errorf("proxy: listen %s: %w", addr, err)
		}
		addr = netip.AddrPortFrom(addr.Addr(), s.addr.Port())
		out = append(out, s)
		got = g
	}
	return out, got, nil
}
