package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/netpulse/netpulse/device"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
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

// listen opens one UDP socket with SO_REUSEPORT, so that several sockets
// share the port and the kernel spreads exporters across them, and sets
// the receive buffer. As root it uses SO_RCVBUFFORCE, which ignores
// net.core.rmem_max; otherwise the kernel caps the size at rmem_max.
func listen(ctx context.Context, addr string, rcvbuf int) (*net.UDPConn, int, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			if serr == nil && rcvbuf > 0 {
				if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf) != nil {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, 0, err
	}
	conn := pc.(*net.UDPConn)
	got := 0
	if raw, err := conn.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) {
			got, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		})
	}
	return conn, got, nil
}

// batchReader reads datagrams with recvmmsg through golang.org/x/net.
type batchReader interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
}

func newBatchReader(conn *net.UDPConn) batchReader {
	if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() != nil {
		return ipv4.NewPacketConn(conn)
	}
	return ipv6BatchReader{ipv6.NewPacketConn(conn)}
}

type ipv6BatchReader struct{ *ipv6.PacketConn }

func (r ipv6BatchReader) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	return r.PacketConn.ReadBatch(ms, flags)
}

// reader owns one socket: it reads batches of datagrams and hands them to
// its worker through a bounded queue. It never waits for the worker: when
// the queue is full the batch is dropped and counted per device.
type reader struct {
	conn  *net.UDPConn
	br    batchReader
	queue chan *batch
	free  chan *batch
	now   func() time.Time
	// received is called once for each datagram read, before queueing;
	// it returns the source's device and counters (nil when the source
	// is not a device), which travel with the datagram.
	received func(src netip.AddrPort, n int) (*device.Device, *deviceStats)
	// dropped is called for each datagram dropped because every arena
	// was in use.
	dropped func(ds *deviceStats)
	// highwater records the queue length seen at each enqueue.
	highwater func(ds *deviceStats, depth int)
	// tee, when set, gets every datagram as read.
	tee func(src netip.AddrPort, payload []byte)
}

func newReader(conn *net.UDPConn, queueLen int) *reader {
	r := &reader{
		conn:  conn,
		br:    newBatchReader(conn),
		queue: make(chan *batch, queueLen),
		// One batch more than the queue holds is being filled, one is
		// being decoded: the memory bound is (queueLen+2) arenas.
		free: make(chan *batch, queueLen+2),
	}
	for i := 0; i < queueLen+2; i++ {
		r.free <- &batch{arena: make([]byte, arenaSize), dgs: make([]datagram, 0, batchMsgs*4)}
	}
	return r
}

// run reads until the socket is closed.
//
// It hands each recvmmsg result to the worker at once when the queue has
// room. When the queue is full it keeps filling the batch it holds, so
// that a short stall of the worker is absorbed by the arenas (up to
// Queue × 256 KiB) rather than dropping datagrams while the socket buffer
// is empty; only when every arena is full are datagrams dropped. It never
// waits for the worker: a held batch is retried within a few milliseconds
// by a read deadline.
func (r *reader) run() error {
	bufs := make([][]byte, batchMsgs)
	msgs := make([]ipv4.Message, batchMsgs)
	for i := range msgs {
		bufs[i] = make([]byte, maxDatagram)
		msgs[i].Buffers = [][]byte{bufs[i]}
	}
	var cur *batch
	deadline := false
	for {
		if cur != nil && len(cur.dgs) > 0 && r.tryPush(cur) {
			cur = nil
		}
		switch held := cur != nil && len(cur.dgs) > 0; {
		case held:
			r.conn.SetReadDeadline(time.Now().Add(retryHeld))
			deadline = true
		case deadline:
			r.conn.SetReadDeadline(time.Time{})
			deadline = false
		}
		n, err := r.br.ReadBatch(msgs, 0)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if cur != nil && len(cur.dgs) > 0 {
				r.queue <- cur // the worker drains the queue until it closes
			}
			close(r.queue)
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("proxy: read: %w", err)
		}
		now := r.now()
		for i := 0; i < n; i++ {
			m := &msgs[i]
			src := addrPort(m.Addr)
			payload := bufs[i][:m.N]
			var dev *device.Device
			var ds *deviceStats
			if r.received != nil {
				dev, ds = r.received(src, m.N)
			}
			if r.tee != nil {
				r.tee(src, payload)
			}
			if cur == nil {
				cur = r.take()
			}
			if cur != nil && len(cur.arena)-arenaUsed(cur) < m.N {
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
			cur.dgs = append(cur.dgs, datagram{src: src, received: now, off: off, n: m.N, dev: dev, ds: ds})
		}
	}
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
		for _, d := range b.dgs {
			r.highwater(d.ds, depth)
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

func addrPort(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		ip, _ := netip.AddrFromSlice(u.IP)
		return netip.AddrPortFrom(ip.Unmap(), uint16(u.Port))
	}
	return netip.AddrPort{}
}

// sockets opens n SO_REUSEPORT sockets on addr.
func sockets(ctx context.Context, addr string, n, rcvbuf int) ([]*net.UDPConn, int, error) {
	var conns []*net.UDPConn
	got := 0
	for i := 0; i < n; i++ {
		c, g, err := listen(ctx, addr, rcvbuf)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, 0, fmt.Errorf("proxy: listen %s: %w", addr, err)
		}
		if i == 0 && addr != "" {
			// Port 0: the other sockets must join the port the first got.
			addr = c.LocalAddr().String()
		}
		conns = append(conns, c)
		got = g
	}
	return conns, got, nil
}
