// Package benchtool holds what the proxy benchmarks share (see
// docs/performance.md, "Proxy"): a loopback UDP blaster that replays a
// capture's datagrams with sendmmsg, a bare recvmmsg reader that measures
// what the kernel can hand over, CPU-time helpers and a capture's flow
// count. Every packet goes to 127.0.0.1 or ::1 only: any other destination
// is refused.
package benchtool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/decoder"
	"github.com/netpulse/netpulse/flow"
)

// CheckLoopback refuses every destination but 127.0.0.1 and ::1.
func CheckLoopback(dst netip.AddrPort) error {
	a := dst.Addr().Unmap()
	if a != netip.MustParseAddr("127.0.0.1") && a != netip.IPv6Loopback() {
		return fmt.Errorf("benchtool: destination %v refused: only 127.0.0.1 and ::1", dst)
	}
	if dst.Port() == 0 {
		return fmt.Errorf("benchtool: destination %v: no port", dst)
	}
	return nil
}

// Profile is what one steady-state pass over a capture holds, as
// netpulse's decoder sees it (templates known).
type Profile struct {
	Datagrams int
	Bytes     int
	// Flows are exported flow records: NetFlow/IPFIX data records and
	// sFlow flow samples, the figure docs/performance.md compares on.
	Flows int
	// Records adds what netpulse emits besides: reverse biflow halves and
	// sFlow counter records.
	Records int
	// FlowRecords are the flow records among Records (reverse halves in,
	// counter records out): what netpulse_proxy_flows_forwarded_total
	// counts.
	FlowRecords int
}

// FlowsPerRecord converts records delivered by the proxy into flows.
func (p Profile) FlowsPerRecord() float64 { return float64(p.Flows) / float64(p.Records) }

// FlowsPerFlowRecord converts netpulse_proxy_flows_forwarded_total into
// flows.
func (p Profile) FlowsPerFlowRecord() float64 { return float64(p.Flows) / float64(p.FlowRecords) }

// FlowsPerDatagram converts datagrams into the flows they carry, on
// average.
func (p Profile) FlowsPerDatagram() float64 { return float64(p.Flows) / float64(p.Datagrams) }

// ProfileOf decodes the datagrams twice and counts the second pass.
func ProfileOf(dgs []capture.Datagram) Profile {
	d := decoder.New(decoder.DefaultConfig())
	var p Profile
	for pass := 0; pass < 2; pass++ {
		p = Profile{Datagrams: len(dgs)}
		for _, dg := range dgs {
			p.Bytes += len(dg.Payload)
			d.Decode(dg.Src.Addr(), dg.Time, dg.Payload, func(r *flow.Record) {
				p.Records++
				if r.Kind == flow.KindFlow {
					p.FlowRecords++
					if !r.Reverse {
						p.Flows++
					}
				}
			})
		}
	}
	return p
}

// Payloads returns the datagrams' payloads.
func Payloads(dgs []capture.Datagram) [][]byte {
	out := make([][]byte, len(dgs))
	for i := range dgs {
		out[i] = dgs[i].Payload
	}
	return out
}

// ProcessCPU is the user+system CPU time of the whole process.
func ProcessCPU() time.Duration { return rusage(unix.RUSAGE_SELF) }

// ThreadCPU is the user+system CPU time of the calling thread; it means
// something only with runtime.LockOSThread.
func ThreadCPU() time.Duration { return rusage(unix.RUSAGE_THREAD) }

func rusage(who int) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

type v6Writer struct{ *ipv6.PacketConn }

func (w v6Writer) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	return w.PacketConn.WriteBatch(ms, flags)
}

// Sender replays payloads to one loopback destination from one connected
// socket, with sendmmsg.
type Sender struct {
	conn *net.UDPConn
	w    batchWriter
	msgs []ipv4.Message // whole passes, at least sendBatch long
	pass int            // datagrams in one pass
}

// sendBatch is the most datagrams one sendmmsg call sends.
const sendBatch = 64

// NewSender opens a socket connected to dst, which must be loopback.
func NewSender(dst netip.AddrPort, payloads [][]byte) (*Sender, error) {
	if err := CheckLoopback(dst); err != nil {
		return nil, err
	}
	if len(payloads) == 0 {
		return nil, errors.New("benchtool: nothing to send")
	}
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		return nil, err
	}
	conn.SetWriteBuffer(4 << 20)
	s := &Sender{conn: conn, pass: len(payloads)}
	if dst.Addr().Unmap().Is4() {
		s.w = ipv4.NewPacketConn(conn)
	} else {
		s.w = v6Writer{ipv6.NewPacketConn(conn)}
	}
	for len(s.msgs) < sendBatch*4 {
		for _, p := range payloads {
			s.msgs = append(s.msgs, ipv4.Message{Buffers: [][]byte{p}})
		}
	}
	return s, nil
}

// Close closes the socket.
func (s *Sender) Close() error { return s.conn.Close() }

// LocalAddr is the source address the receiver sees.
func (s *Sender) LocalAddr() netip.AddrPort { return s.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// Options bound one Blast. It stops at the first limit reached: Passes,
// Duration, or ctx; at least one of Passes and Duration must be set.
type Options struct {
	// Passes is how many times every datagram is sent; 0 is no limit.
	Passes int
	// Duration bounds the blast; 0 is no limit.
	Duration time.Duration
	// Rate is datagrams per second; 0 is as fast as possible.
	Rate float64
}

// Result is what a Blast sent.
type Result struct {
	Datagrams, Bytes uint64
	Elapsed          time.Duration
	// ThreadCPU is the CPU time of the sending thread: the sendmmsg calls,
	// which on loopback include the kernel's delivery to the receiving
	// socket.
	ThreadCPU time.Duration
	// Errors counts failed sendmmsg calls (ENOBUFS and the like).
	Errors int
}

// Blast sends on the calling goroutine, locked to its thread so that the
// sender's CPU time can be told apart from the receiver's.
func (s *Sender) Blast(ctx context.Context, o Options) Result {
	if o.Passes <= 0 && o.Duration <= 0 {
		o.Duration = time.Second
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var res Result
	cpu0 := ThreadCPU()
	start := time.Now()
	var deadline time.Time
	if o.Duration > 0 {
		deadline = start.Add(o.Duration)
	}
	limit := uint64(0)
	if o.Passes > 0 {
		limit = uint64(o.Passes) * uint64(s.pass)
	}
	batch := sendBatch
	if o.Rate > 0 {
		batch = max(1, min(sendBatch, int(o.Rate/20000)))
	}
	i := 0
	for calls := 0; ; calls++ {
		if limit > 0 && res.Datagrams >= limit {
			break
		}
		if calls&15 == 0 {
			if ctx.Err() != nil {
				break
			}
			if !deadline.IsZero() && !time.Now().Before(deadline) {
				break
			}
		}
		if o.Rate > 0 {
			due := start.Add(time.Duration(float64(res.Datagrams) / o.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				if !deadline.IsZero() && due.After(deadline) {
					break
				}
				time.Sleep(d)
			}
		}
		n := min(batch, len(s.msgs)-i)
		if limit > 0 {
			n = min(n, int(limit-res.Datagrams))
		}
		sent, err := s.w.WriteBatch(s.msgs[i:i+n], 0)
		if err != nil {
			res.Errors++
			if errors.Is(err, net.ErrClosed) {
				break
			}
		}
		for _, m := range s.msgs[i : i+max(sent, 0)] {
			res.Bytes += uint64(len(m.Buffers[0]))
		}
		res.Datagrams += uint64(max(sent, 0))
		i += max(sent, 0)
		if i == len(s.msgs) { // s.msgs holds whole passes
			i = 0
		}
	}
	res.Elapsed = time.Since(start)
	res.ThreadCPU = ThreadCPU() - cpu0
	return res
}

// Prime sends one pass slowly, so that templates and sampling rates are
// known before a measurement.
func (s *Sender) Prime() error {
	for i := 0; i < s.pass; i++ {
		if _, err := s.conn.Write(s.msgs[i].Buffers[0]); err != nil {
			return err
		}
		if i%8 == 7 {
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

// BareReader reads datagrams with recvmmsg and only counts them: the most
// a single-socket receiver can get from the kernel.
type BareReader struct {
	conn       *net.UDPConn
	Datagrams  atomic.Uint64
	Bytes      atomic.Uint64
	done       chan struct{}
	RcvBufSize int
}

// ListenBare opens a socket on 127.0.0.1:0 with the receive buffer the
// proxy asks for (16 MiB by default) and starts reading.
func ListenBare(rcvbuf int) (*BareReader, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf) != nil {
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
			}
		})
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &BareReader{conn: pc.(*net.UDPConn), done: make(chan struct{})}
	if raw, err := r.conn.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) {
			r.RcvBufSize, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		})
	}
	go r.run()
	return r, nil
}

// Addr is where to send.
func (r *BareReader) Addr() netip.AddrPort { return r.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (r *BareReader) run() {
	defer close(r.done)
	pc := ipv4.NewPacketConn(r.conn)
	msgs := make([]ipv4.Message, 64)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, 65535)}
	}
	for {
		n, err := pc.ReadBatch(msgs, 0)
		if err != nil {
			return
		}
		b := 0
		for i := 0; i < n; i++ {
			b += msgs[i].N
		}
		r.Datagrams.Add(uint64(n))
		r.Bytes.Add(uint64(b))
	}
}

// Close stops reading.
func (r *BareReader) Close() {
	r.conn.Close()
	<-r.done
}

// WaitUntil polls cond every millisecond until it holds (true) or
// timeout passes (false).
func WaitUntil(cond func() bool, timeout time.Duration) bool {
	end := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// Settle polls progress every millisecond until it has not changed for
// quiet and idle (nil: always) holds, or until timeout, and returns when
// progress last changed.
func Settle(progress func() uint64, idle func() bool, quiet, timeout time.Duration) time.Time {
	last := progress()
	lastAt := time.Now()
	end := lastAt.Add(timeout)
	for {
		time.Sleep(time.Millisecond)
		now := time.Now()
		if v := progress(); v != last {
			last, lastAt = v, now
		} else if (now.Sub(lastAt) >= quiet && (idle == nil || idle())) || now.After(end) {
			return lastAt
		}
	}
}

// RxQueued returns the bytes waiting in the receive queues of the UDP
// sockets bound to port on this host (/proc/net/udp and udp6), so that a
// measurement does not end while a stalled receiver still has datagrams
// to read; -1 when it cannot tell.
func RxQueued(port uint16) int64 {
	total, seen := int64(0), false
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 5 {
				continue
			}
			// local_address is HEXIP:HEXPORT, queues are tx:rx in hex.
			i := strings.LastIndexByte(fs[1], ':')
			lp, err := strconv.ParseUint(fs[1][i+1:], 16, 16)
			if err != nil || uint16(lp) != port {
				continue
			}
			q := strings.SplitN(fs[4], ":", 2)
			if len(q) != 2 {
				continue
			}
			rx, err := strconv.ParseInt(q[1], 16, 64)
			if err != nil {
				continue
			}
			total += rx
			seen = true
		}
	}
	if !seen {
		return -1
	}
	return total
}

// Drained reports whether nothing waits in port's socket buffers.
func Drained(port uint16) func() bool {
	return func() bool { return RxQueued(port) <= 0 }
}
