package proxy

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/decoder"
	"github.com/netpulse/netpulse/device"
	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/sink"
)

// memSink keeps everything it is given.
type memSink struct {
	mu   sync.Mutex
	recs []flow.Record
	cap  int // refuse beyond this many, when > 0
}

func (m *memSink) Name() string                { return "mem" }
func (m *memSink) Start(context.Context) error { return nil }
func (m *memSink) Stop(context.Context) error  { return nil }
func (m *memSink) Stats() sink.Stats           { return sink.Stats{} }
func (m *memSink) Write(recs []flow.Record) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(recs)
	if m.cap > 0 && len(m.recs)+n > m.cap {
		n = max(0, m.cap-len(m.recs))
	}
	m.recs = append(m.recs, recs[:n]...)
	return n
}
func (m *memSink) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.recs)
}

func testConfig() Config {
	c := DefaultConfig()
	c.Port = 0
	c.Sockets = 2
	c.Max = 0
	return c
}

func localDevice(t *testing.T, id uint64) *device.Registry {
	t.Helper()
	s, err := device.NewSet([]device.Device{{ID: id, Name: "lo", IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, FlowType: "ipfix"}})
	if err != nil {
		t.Fatal(err)
	}
	return device.NewRegistry(s)
}

func captures(t testing.TB) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "captures", "*.pcap"))
	files = slices.DeleteFunc(files, func(f string) bool { return filepath.Base(f) == "traffic.pcap" })
	if len(files) == 0 {
		t.Fatal("no captures")
	}
	return files
}

// replay sends the capture's datagrams to addr from one loopback socket.
func replay(t testing.TB, dgs []capture.Datagram, addr netip.AddrPort) {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, dg := range dgs {
		if _, err := c.Write(dg.Payload); err != nil {
			t.Fatal(err)
		}
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReplayCaptures replays every real-exporter capture over loopback
// into a proxy: every record the decoder finds in the capture must reach
// the sink, with the device set.
func TestReplayCaptures(t *testing.T) {
	for _, path := range captures(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			dgs, err := capture.ReadAllUDP(path)
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			d := decoder.New(decoder.DefaultConfig())
			for _, dg := range dgs {
				d.Decode(dg.Src.Addr(), dg.Time, dg.Payload, func(*flow.Record) { want++ })
			}
			mem := &memSink{}
			p, err := New(testConfig(), Deps{Registry: localDevice(t, 7), Sinks: []sink.Sink{mem}})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			replay(t, dgs, p.Addr())
			waitFor(t, "records", func() bool { return mem.len() >= want })
			if err := p.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := mem.len(); got != want {
				t.Errorf("%d records, want %d", got, want)
			}
			for _, r := range mem.recs {
				if r.DeviceID != 7 {
					t.Fatalf("record without its device: %+v", r)
				}
			}
			if got := p.flowsIn.Load(); int(got) > want {
				t.Errorf("flows in %d > %d", got, want)
			}
		})
	}
}

func TestUnregisteredDropped(t *testing.T) {
	mem := &memSink{}
	p, err := New(testConfig(), Deps{Sinks: []sink.Sink{mem}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	dgs, _ := capture.ReadAllUDP(filepath.Join("..", "testdata", "captures", "softflowd-v5.pcap"))
	replay(t, dgs[:3], p.Addr())
	waitFor(t, "unregistered drops", func() bool { return p.dropped[1].Load() == 3 })
	if mem.len() != 0 {
		t.Errorf("%d records from an unregistered source", mem.len())
	}
	if l := p.registry.UnregisteredList(time.Now()); len(l) != 1 || l[0].Addr != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("unregistered list %+v", l)
	}
}

func TestAcceptUnregistered(t *testing.T) {
	mem := &memSink{}
	cfg := testConfig()
	cfg.AcceptUnregistered = true
	p, err := New(cfg, Deps{Sinks: []sink.Sink{mem}})
	if err != nil {
		t.Fatal(err)
	}
	p.Start(context.Background())
	defer p.Stop(context.Background())
	dgs, _ := capture.ReadAllUDP(filepath.Join("..", "testdata", "captures", "softflowd-v5.pcap"))
	replay(t, dgs[:1], p.Addr())
	waitFor(t, "records", func() bool { return mem.len() > 0 })
	if id := mem.recs[0].DeviceID; id != autoID(netip.MustParseAddr("127.0.0.1")) || id>>63 != 1 {
		t.Errorf("auto device id %x", id)
	}
}

func TestSinkFullCounted(t *testing.T) {
	mem := &memSink{cap: 10}
	p, err := New(testConfig(), Deps{Registry: localDevice(t, 9), Sinks: []sink.Sink{mem}})
	if err != nil {
		t.Fatal(err)
	}
	p.Start(context.Background())
	dgs, _ := capture.ReadAllUDP(filepath.Join("..", "testdata", "captures", "softflowd-v5.pcap"))
	replay(t, dgs, p.Addr())
	waitFor(t, "all flows", func() bool { return p.flowsIn.Load() == 417 })
	p.Stop(context.Background())
	ds := p.stats.lookup(9)
	if out, full := ds.flowsOut.Load(), ds.droppedFlows[4].Load(); out != 10 || out+full != 417 {
		t.Errorf("forwarded %d, sink-full drops %d; want 10 and 407", out, full)
	}
}

func TestParseTee(t *testing.T) {
	for _, tc := range []struct {
		in       string
		src, dst string
		bad      bool
	}{
		{in: "127.0.0.1:2055", dst: "127.0.0.1:2055"},
		{in: "127.0.0.2:127.0.0.1:2055", src: "127.0.0.2", dst: "127.0.0.1:2055"},
		{in: "[::1]:2055", dst: "[::1]:2055"},
		{in: "[::1]:[::1]:2055", src: "::1", dst: "[::1]:2055"},
		{in: "nope", bad: true},
		{in: "127.0.0.1", bad: true},
	} {
		src, dst, err := parseTee(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		if tc.bad {
			continue
		}
		if dst.String() != tc.dst || (tc.src != "" && src.String() != tc.src) {
			t.Errorf("%q: got %v %v", tc.in, src, dst)
		}
	}
}
