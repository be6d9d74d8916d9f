package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/device"
	"github.com/netpulse/netpulse/sink"
)

// TestSockaddrPort decodes the source addresses recvmmsg writes.
func TestSockaddrPort(t *testing.T) {
	v4 := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: [4]byte{192, 0, 2, 7}}
	*(*[2]byte)(unsafe.Pointer(&v4.Port)) = [2]byte{0x08, 0x07} // 2055, network order
	v6 := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: netip.MustParseAddr("2001:db8::9").As16()}
	*(*[2]byte)(unsafe.Pointer(&v6.Port)) = [2]byte{0x12, 0x83} // 4739
	mapped := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: netip.MustParseAddr("::ffff:10.1.2.3").As16()}
	*(*[2]byte)(unsafe.Pointer(&mapped.Port)) = [2]byte{0x18, 0xc7} // 6343
	var asV6 unix.RawSockaddrInet6
	*(*unix.RawSockaddrInet4)(unsafe.Pointer(&asV6)) = v4
	for _, tc := range []struct {
		name string
		sa   unix.RawSockaddrInet6
		n    uint32
		want string
	}{
		{"ipv4", asV6, unix.SizeofSockaddrInet4, "192.0.2.7:2055"},
		{"ipv6", v6, unix.SizeofSockaddrInet6, "[2001:db8::9]:4739"},
		{"ipv4-mapped", mapped, unix.SizeofSockaddrInet6, "10.1.2.3:6343"},
		{"short ipv4", asV6, 4, "invalid AddrPort"},
		{"short ipv6", v6, 20, "invalid AddrPort"},
		{"unknown family", unix.RawSockaddrInet6{Family: unix.AF_UNIX}, unix.SizeofSockaddrInet6, "invalid AddrPort"},
	} {
		if got := sockaddrPort(&tc.sa, tc.n).String(); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestPause: the reader lingers only under dense traffic, and never long
// enough to fill a quarter of the socket buffer.
func TestPause(t *testing.T) {
	const linger = 10 * time.Millisecond
	for _, tc := range []struct {
		name       string
		since      time.Duration
		dgs, bytes int
		rcvbuf     int
		want       time.Duration
	}{
		{"sparse: one datagram after a long gap", 50 * time.Millisecond, 1, 1400, 32 << 20, 0},
		{"dense: several datagrams", 200 * time.Microsecond, 4, 5600, 32 << 20, linger},
		{"dense: one datagram right after the last", 100 * time.Microsecond, 1, 1400, 32 << 20, linger},
		{"after a pause, traffic continues", 11 * time.Millisecond, 1000, 1400000, 32 << 20, linger},
		// 38.24 MB charged in 11 ms: a quarter of 32 MiB lasts 2.41 ms,
		// halved for a late timer.
		{"heavy traffic: a shorter pause", 11 * time.Millisecond, 10000, 14000000, 32 << 20, 1206520 * time.Nanosecond},
		{"small buffer, heavy traffic: none", 11 * time.Millisecond, 1000, 1400000, 212992, 0},
		// 19 120 bytes charged in 1.1 ms: 53 248 bytes last 3.06 ms, halved.
		{"small buffer, light traffic", 1100 * time.Microsecond, 5, 7000, 212992, 1531715 * time.Nanosecond},
		{"small buffer, a little more: none", 1100 * time.Microsecond, 10, 14000, 212992, 0},
		{"no buffer size known", time.Millisecond, 1000, 1400000, 0, linger},
	} {
		r := &reader{linger: linger, rcvbuf: tc.rcvbuf}
		got := r.pause(tc.since, tc.dgs, tc.bytes)
		if d := got - tc.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("%s: pause %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := (&reader{}).pause(time.Microsecond, 100, 1000); got != 0 {
		t.Errorf("linger off: pause %v", got)
	}
}

// TestReceiveIPv6 replays a capture to a proxy on ::1: sources are read
// from IPv6 socket addresses, and the device is found.
func TestReceiveIPv6(t *testing.T) {
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		c.Close()
	}
	cfg := testConfig()
	cfg.Host = "::1"
	set, err := device.NewSet([]device.Device{{ID: 9, Name: "lo6", IPs: []netip.Addr{netip.IPv6Loopback()}}})
	if err != nil {
		t.Fatal(err)
	}
	m := &memSink{}
	p, err := New(cfg, Deps{Registry: device.NewRegistry(set), Sinks: []sink.Sink{m}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	dgs, err := capture.ReadAllUDP("../testdata/captures/softflowd-v5.pcap")
	if err != nil {
		t.Fatal(err)
	}
	replay(t, dgs, p.Addr())
	waitFor(t, "the capture's 417 flows", func() bool { return m.len() == 417 })
	ds := p.stats.lookup(9)
	if ds == nil || ds.datagrams.Load() != uint64(len(dgs)) || ds.flowsIn.Load() != 417 {
		t.Fatalf("device 9: %+v", ds)
	}
	if src := ds.sourceList(); len(src) != 1 || src[0] != netip.IPv6Loopback() {
		t.Errorf("sources %v, want [::1]", src)
	}
}

// TestShutdownWakesRead: shutdown ends a read that is waiting, long
// before its timeout, and the read says the socket is closed.
func TestShutdownWakesRead(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		s, _, err := openSocket(netip.AddrPortFrom(netip.MustParseAddr(host), 0), 1<<20)
		if err != nil {
			t.Logf("%s: %v", host, err)
			continue
		}
		if err := s.setTimeout(time.Minute); err != nil {
			t.Fatal(err)
		}
		m := newMsgReader(s, [][]byte{make([]byte, 2048)})
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := m.read(true)
			done <- err
		}()
		time.Sleep(20 * time.Millisecond) // let the read block (it would return at once otherwise: also fine)
		s.shutdown()
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("%s: read returned %v, want net.ErrClosed", host, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: read still blocked %v after shutdown", host, time.Since(start))
		}
		if err := s.close(); err != nil {
			t.Error(err)
		}
	}
}

// TestReaderFillsBatches: a backlog is read into full batches, so that a
// short queue with a stalled worker holds it all: with one batch per
// recvmmsg call (64 datagrams) a queue of 2 would have dropped most of it.
func TestReaderFillsBatches(t *testing.T) {
	s, _, err := openSocket(netip.MustParseAddrPort("127.0.0.1:0"), 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := make([]byte, 500)
	for i := 0; i < n; i++ { // the backlog, before the reader starts
		if _, err := c.Write(payload); err != nil {
			t.Fatal(err)
		}
	}
	r := newReader(s, 2)
	r.now = time.Now
	var read, dropped atomic.Uint64
	r.count = func(_ *deviceStats, dgs, _ uint64) { read.Add(dgs) }
	r.dropped = func(*deviceStats) { dropped.Add(1) }
	done := make(chan error, 1)
	go func() { done <- r.run() }()
	waitFor(t, "the backlog read", func() bool { return read.Load() == n })
	// Only now does the worker start.
	s.shutdown()
	got := 0
	for b := range r.queue {
		got += len(b.dgs)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got != n || dropped.Load() != 0 {
		t.Fatalf("%d of %d datagrams queued, %d dropped", got, n, dropped.Load())
	}
}

// TestDualStack: a proxy on :: also receives IPv4, as Go's "udp"
// listeners do.
func TestDualStack(t *testing.T) {
	s, _, err := openSocket(netip.MustParseAddrPort("[::]:0"), 1<<20)
	if err != nil {
		t.Skipf("no IPv6: %v", err)
	}
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), s.addr.Port())))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	m := newMsgReader(s, [][]byte{make([]byte, 16)})
	n, err := m.read(true)
	if err != nil || n != 1 {
		t.Fatalf("read %d, %v", n, err)
	}
	if src, size := m.msg(0); src.Addr() != netip.MustParseAddr("127.0.0.1") || size != 1 {
		t.Errorf("got %d bytes from %v, want 1 from 127.0.0.1", size, src)
	}
	s.shutdown()
	s.close()
}

// TestReaderPushesAfterFullRead: when the traffic stops right after a
// read that filled every buffer (a multiple of 64 datagrams), the batch
// still goes to the worker at once, not when the next datagram comes.
func TestReaderPushesAfterFullRead(t *testing.T) {
	s, _, err := openSocket(netip.MustParseAddrPort("127.0.0.1:0"), 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 2 * batchMsgs
	for i := 0; i < n; i++ { // before the reader starts: two full reads
		if _, err := c.Write(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	r := newReader(s, 4)
	r.now = time.Now
	done := make(chan error, 1)
	go func() { done <- r.run() }()
	defer func() {
		s.shutdown()
		for range r.queue {
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	got := 0
	for got < n {
		select {
		case b := <-r.queue:
			got += len(b.dgs)
			r.release(b)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d datagrams reached the worker", got, n)
		}
	}
}
