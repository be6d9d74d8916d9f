package demo

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netpulse/netpulse/decoder"
	"github.com/netpulse/netpulse/device"
	"github.com/netpulse/netpulse/flow"
)

type received struct {
	from    netip.AddrPort
	payload []byte
}

// listen opens a UDP listener on 127.0.0.1 and a reader that passes what
// it receives on the returned channel, closed when the listener is.
func listen(t *testing.T) (*net.UDPConn, <-chan received) {
	t.Helper()
	l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	l.SetReadBuffer(4 << 20)
	ch := make(chan received, 1<<14)
	go func() {
		defer close(ch)
		buf := make([]byte, 1<<16)
		for {
			n, from, err := l.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			ch <- received{from, append([]byte(nil), buf[:n]...)}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for range ch {
		}
	})
	return l, ch
}

// TestRun runs the simulator over real UDP sockets to a listener on
// 127.0.0.1: datagrams come from each device's own 127.0.1.N address, of
// its protocol, and once Run returns the listener has received and decoded
// everything Totals says was sent.
func TestRun(t *testing.T) {
	l, ch := listen(t)
	cfg := testConfig()
	cfg.FlowsPerSecond = 2000
	cfg.Tick = 10 * time.Millisecond
	cfg.ExportInterval = 50 * time.Millisecond
	s := newSim(t, cfg)
	devs := map[netip.Addr]device.Device{}
	for _, d := range s.Devices() {
		devs[d.IPs[0]] = d
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, l.LocalAddr().(*net.UDPAddr).AddrPort()) }()

	dec := decoder.New(decoder.DefaultConfig())
	heard := map[netip.Addr]int{}
	var got Count
	var n uint64
	take := func(dg received) {
		n++
		src := dg.from.Addr().Unmap()
		d, ok := devs[src]
		if !ok {
			t.Fatalf("datagram from %v, no simulated device's address", dg.from)
		}
		heard[src]++
		if typ := decoder.Detect(dg.payload); typ.String() != d.FlowType {
			t.Fatalf("datagram from %v (%s): detected %v", src, d.FlowType, typ)
		}
		if err := dec.Decode(src, time.Now(), dg.payload, func(r *flow.Record) {
			if r.Kind == flow.KindFlow {
				got.Add(r)
			}
		}); err != nil {
			t.Fatalf("datagram from %v: %v", src, err)
		}
	}
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for len(heard) < len(devs) || n < 100 {
		select {
		case dg := <-ch:
			take(dg)
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		case <-timeout.C:
			t.Fatalf("heard from %d of %d devices: %v", len(heard), len(devs), heard)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	tot := s.Totals()
	for n < tot.Datagrams {
		select {
		case dg := <-ch:
			take(dg)
		case <-timeout.C:
			t.Fatalf("received %d of %d datagrams", n, tot.Datagrams)
		}
	}
	if tot.SendErrors != 0 {
		t.Errorf("%d send errors", tot.SendErrors)
	}
	if got != tot.Flows {
		t.Errorf("decoded %+v\n Totals %+v", got, tot.Flows)
	}
	t.Logf("%d datagrams from %d sources, %d flows", n, len(heard), got.Flows)
}

// TestRefusesNonLoopback: Run and WritePcap refuse any target that is not
// a loopback address, before they open or generate anything; and devices
// must send from loopback addresses.
func TestRefusesNonLoopback(t *testing.T) {
	for _, target := range []string{
		"192.0.2.1:2055", "10.0.0.1:2055", "8.8.8.8:53", "0.0.0.0:2055", "255.255.255.255:2055",
		"224.0.0.1:2055", "[2001:db8::1]:2055", "[::]:2055", "[::ffff:192.0.2.1]:2055", "[fe80::1%lo]:2055",
	} {
		ap := netip.MustParseAddrPort(target)
		if err := CheckTarget(ap); err == nil || !strings.Contains(err.Error(), "not a loopback address") {
			t.Errorf("CheckTarget(%s): %v", target, err)
		}
		s := newSim(t, testConfig())
		if err := s.Run(context.Background(), ap); err == nil || !strings.Contains(err.Error(), "not a loopback address") {
			t.Errorf("Run(%s): %v", target, err)
		}
		if err := s.WritePcap(io.Discard, t0, time.Minute, ap); err == nil {
			t.Errorf("WritePcap(%s): no error", target)
		}
		if tot := s.Totals(); tot.Datagrams != 0 || !s.Start().IsZero() {
			t.Errorf("%s: %d datagrams sent, clock started %v", target, tot.Datagrams, s.Start())
		}
	}
	var zero netip.AddrPort
	if err := CheckTarget(zero); err == nil {
		t.Error("CheckTarget accepts no address")
	}
	if err := CheckTarget(netip.MustParseAddrPort("127.0.0.1:0")); err == nil {
		t.Error("CheckTarget accepts port 0")
	}
	for _, target := range []string{"127.0.0.1:2055", "127.255.255.254:1", "[::1]:2055", "[::ffff:127.0.0.1]:2055"} {
		if err := CheckTarget(netip.MustParseAddrPort(target)); err != nil {
			t.Errorf("CheckTarget(%s): %v", target, err)
		}
	}
	// ::1 is loopback, but IPv4 sources cannot reach it.
	s := newSim(t, testConfig())
	if err := s.Run(context.Background(), netip.MustParseAddrPort("[::1]:2055")); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("Run([::1]:2055) with IPv4 sources: %v", err)
	}

	cfg := testConfig()
	cfg.Devices = DefaultDevices()
	cfg.Devices[2].Source = netip.MustParseAddr("192.0.2.3")
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("New with a source of 192.0.2.3: %v", err)
	}
}

// TestDevices: the devices register as they are, with a protocol of each
// kind and both unsampled and sampled ones.
func TestDevices(t *testing.T) {
	s := newSim(t, testConfig())
	devs := s.Devices()
	set, err := device.NewSet(devs)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(devs); n < 4 || n > 6 {
		t.Errorf("%d devices by default, want 4 to 6", n)
	}
	types := map[string]int{}
	sampled, unsampled := 0, 0
	for _, d := range devs {
		types[d.FlowType]++
		if d.SampleRate == 1 {
			unsampled++
		} else {
			sampled++
		}
		if len(d.IPs) != 1 || !netip.MustParsePrefix("127.0.1.0/24").Contains(d.IPs[0]) || set.ByIP(d.IPs[0]).ID != d.ID {
			t.Errorf("device %s: addresses %v", d.Name, d.IPs)
		}
	}
	for _, ft := range []string{"netflow5", "netflow9", "ipfix", "sflow5"} {
		if types[ft] == 0 {
			t.Errorf("no %s device", ft)
		}
	}
	if sampled == 0 || unsampled == 0 {
		t.Errorf("%d sampled, %d unsampled devices; want both", sampled, unsampled)
	}
}

// TestValidate names the setting that is wrong.
func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"duplicate id", func(c *Config) { c.Devices[1].ID = c.Devices[0].ID }, "id 9001 used twice"},
		{"duplicate source", func(c *Config) { c.Devices[1].Source = c.Devices[0].Source }, "source 127.0.1.1 used twice"},
		{"flow type", func(c *Config) { c.Devices[0].FlowType = "netflow7" }, "flow_type"},
		{"v5 rate", func(c *Config) { c.Devices[0].SampleRate = 20000 }, "sample_rate 20000"},
		{"no LAN", func(c *Config) { c.Devices[0].Interfaces = c.Devices[0].Interfaces[:2] }, "at least one uplink"},
		{"silence", func(c *Config) { c.SilenceFor = c.SilenceEvery }, "silence_for"},
		{"datagram", func(c *Config) { c.MaxDatagram = 100 }, "max_datagram"},
		{"services", func(c *Config) { c.Services = 751 }, "services 751"},
		{"hosts", func(c *Config) { c.Hosts = 2 * 244 * 2 }, "do not fit"},
		{"sflow ifIndex", func(c *Config) { c.Devices[5].Interfaces[0].Index = 1 << 24 }, "24 bits"},
	} {
		cfg := testConfig()
		cfg.Devices = DefaultDevices()
		c.edit(&cfg)
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error about %q", c.name, err, c.want)
		}
	}
}
