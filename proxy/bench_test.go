package proxy

import (
	"context"
	"net/netip"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/device"
	"github.com/netpulse/netpulse/proxy/benchtool"
	"github.com/netpulse/netpulse/sink"
	"github.com/netpulse/netpulse/sink/collector"
	"github.com/netpulse/netpulse/wire/wiretest"
)

// The benchmarks below blast a capture's datagrams over loopback, with
// sendmmsg from a sender goroutine locked to its own thread, at a
// receiver: the proxy with one socket (one reader, one decode worker)
// and the null or collector sink, or a bare recvmmsg reader (the most one
// socket gets from the kernel). One op is one pass over the capture's
// datagrams. The sender sends b.N passes as fast as it can; the clock
// stops when the last record is delivered. docs/performance.md, "Proxy",
// has the method and the figures.
//
// Metrics:
//   - flows/s: exported flows delivered per wall-clock second (netpulse's
//     reverse biflow halves and sFlow counter records converted away).
//   - flows/cpu-s: the same per CPU second of the process minus the sender
//     thread (its sendmmsg calls include the kernel's loopback delivery).
//     With sink=https the collector receiver runs in a process of its own
//     (wiretest.StartProcess), not counted here: recv-cpu-s/Mflow is its
//     CPU time per million flows.
//   - sent-dg/s: the sender's rate. When the receiver keeps up, the sender
//     is the bottleneck.
//   - kdrop%: datagrams the kernel dropped (socket buffer full), qdrop%:
//     datagrams the proxy dropped (its queue full), sinkdrop%: records the
//     sink refused; all in % of what was sent.
//   - allocs/flow: heap allocations of the process per flow.

var (
	benchCapMu sync.Mutex
	benchCaps  = map[string][]capture.Datagram{}
)

func benchCaptures(b *testing.B) map[string][]capture.Datagram {
	benchCapMu.Lock()
	defer benchCapMu.Unlock()
	if len(benchCaps) == 0 {
		for _, f := range captures(b) {
			dgs, err := capture.ReadAllUDP(f)
			if err != nil {
				b.Fatal(err)
			}
			benchCaps[strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))] = dgs
		}
	}
	return benchCaps
}

func eachCapture(b *testing.B, fn func(b *testing.B, dgs []capture.Datagram, prof benchtool.Profile)) {
	caps := benchCaptures(b)
	for _, f := range captures(b) {
		name := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
		dgs := caps[name]
		b.Run("capture="+name, func(b *testing.B) { fn(b, dgs, benchtool.ProfileOf(dgs)) })
	}
}

// BenchmarkProxy measures the proxy end to end.
func BenchmarkProxy(b *testing.B) {
	for _, s := range []string{"null", "https"} {
		b.Run("sink="+s, func(b *testing.B) {
			eachCapture(b, func(b *testing.B, dgs []capture.Datagram, prof benchtool.Profile) {
				benchProxy(b, s, dgs, prof, 0)
			})
		})
	}
}

// BenchmarkBareReader measures receiving alone, with the same sender:
// reader=proxy is the proxy's reader (blocking recvmmsg, batches, linger)
// with a worker that decodes nothing, reader=xnet a plain Go loop of
// golang.org/x/net ReadBatch calls on a netpoller socket that only counts.
func BenchmarkBareReader(b *testing.B) {
	for _, kind := range []string{"proxy", "xnet"} {
		b.Run("reader="+kind, func(b *testing.B) {
			eachCapture(b, func(b *testing.B, dgs []capture.Datagram, prof benchtool.Profile) {
				var addr netip.AddrPort
				var count func() uint64
				if kind == "xnet" {
					r, err := benchtool.ListenBare(DefaultConfig().RcvBufSize)
					if err != nil {
						b.Fatal(err)
					}
					defer r.Close()
					addr, count = r.Addr(), r.Datagrams.Load
				} else {
					addr, count = bareProxyReader(b)
				}
				benchBare(b, addr, count, dgs, prof)
			})
		})
	}
}

// bareProxyReader starts the proxy's reader on 127.0.0.1 with a worker
// that only hands the batches back; it stops when b ends.
func bareProxyReader(b *testing.B) (netip.AddrPort, func() uint64) {
	cfg := DefaultConfig()
	socks, got, err := sockets(netip.MustParseAddrPort("127.0.0.1:0"), 1, cfg.RcvBufSize)
	if err != nil {
		b.Fatal(err)
	}
	r := newReader(socks[0], cfg.Queue)
	r.now, r.rcvbuf = time.Now, got
	var n atomic.Uint64
	r.count = func(_ *deviceStats, dgs, _ uint64) { n.Add(dgs) }
	done := make(chan struct{})
	go r.run()
	go func() {
		defer close(done)
		for bt := range r.queue {
			r.release(bt)
		}
	}()
	b.Cleanup(func() {
		socks[0].shutdown()
		<-done
	})
	return socks[0].addr, n.Load
}

func benchBare(b *testing.B, addr netip.AddrPort, count func() uint64, dgs []capture.Datagram, prof benchtool.Profile) {
	snd, err := benchtool.NewSender(addr, benchtool.Payloads(dgs))
	if err != nil {
		b.Fatal(err)
	}
	defer snd.Close()
	d0 := count()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	b.ResetTimer()
	cpu0, start := benchtool.ProcessCPU(), time.Now()
	res := blast(snd, benchtool.Options{Passes: b.N})
	end := benchtool.Settle(count, benchtool.Drained(addr.Port()), 20*time.Millisecond, 10*time.Second)
	cpu := benchtool.ProcessCPU() - cpu0 - res.ThreadCPU
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	got := count() - d0
	el := end.Sub(start).Seconds()
	flows := float64(got) * prof.FlowsPerDatagram()
	b.ReportMetric(float64(got)/el, "dg/s")
	b.ReportMetric(flows/el, "flows/s")
	if cpu > 0 {
		b.ReportMetric(flows/cpu.Seconds(), "flows/cpu-s")
	}
	b.ReportMetric(float64(res.Datagrams)/res.Elapsed.Seconds(), "sent-dg/s")
	b.ReportMetric(pct(res.Datagrams-min(got, res.Datagrams), res.Datagrams), "kdrop%")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/max(flows, 1), "allocs/flow")
}

// BenchmarkProxyPaced checks that nothing is lost below capacity: it
// measures the proxy's capacity (null sink) for a second, then sends at
// half of it. lost% should be 0.
func BenchmarkProxyPaced(b *testing.B) {
	rates := map[string]float64{}
	eachCapture(b, func(b *testing.B, dgs []capture.Datagram, prof benchtool.Profile) {
		key := b.Name()
		if rates[key] == 0 {
			rates[key] = probeCapacity(b, dgs)
		}
		benchProxy(b, "null", dgs, prof, rates[key]/2)
	})
}

// probeCapacity blasts the null-sink proxy for a second and returns the
// datagrams/s it decoded.
func probeCapacity(b *testing.B, dgs []capture.Datagram) float64 {
	p, _, _, stop := startBenchProxy(b, "null")
	defer stop()
	snd, err := benchtool.NewSender(p.Addr(), benchtool.Payloads(dgs))
	if err != nil {
		b.Fatal(err)
	}
	defer snd.Close()
	decoded := func() uint64 { return p.datagrams.Load() - p.droppedDatagrams.Load() }
	d0, start := decoded(), time.Now()
	blast(snd, benchtool.Options{Duration: time.Second})
	end := benchtool.Settle(decoded, idle(p), 20*time.Millisecond, 10*time.Second)
	return float64(decoded()-d0) / end.Sub(start).Seconds()
}

// idle reports whether the proxy has nothing left to read or decode.
func idle(p *Proxy) func() bool {
	drained := benchtool.Drained(p.Addr().Port())
	return func() bool {
		for _, r := range p.readers {
			if len(r.queue) > 0 || len(r.free) < cap(r.free) {
				return false
			}
		}
		return drained()
	}
}

func pct(part, whole uint64) float64 {
	if whole == 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}

// blast runs the sender on a goroutine of its own (Blast locks it to a
// thread) and waits for it.
func blast(s *benchtool.Sender, o benchtool.Options) benchtool.Result {
	ch := make(chan benchtool.Result)
	go func() { ch <- s.Blast(context.Background(), o) }()
	return <-ch
}

// TestReceiverProcess is not a test: it is the collector receiver process
// of BenchmarkProxy/sink=https (wiretest.StartProcess).
func TestReceiverProcess(t *testing.T) { wiretest.ServeProcess(t) }

// startBenchProxy starts a one-socket proxy on 127.0.0.1 with the null
// sink or the collector sink to a receiver process over HTTPS; recvCPU
// is the receiver's CPU time (nil with the null sink).
func startBenchProxy(b *testing.B, sinkName string) (p *Proxy, s sink.Sink, recvCPU func() time.Duration, stop func()) {
	cfg := DefaultConfig()
	cfg.Host, cfg.Port, cfg.Sockets, cfg.Max = "127.0.0.1", 0, 1, 0
	s = &sink.Null{}
	if sinkName == "https" {
		pki := wiretest.NewPKI(b)
		rp := wiretest.StartProcess(b, pki, "TestReceiverProcess")
		recvCPU = func() time.Duration { d, _ := rp.CPU(); return d }
		cc := collector.DefaultConfig()
		cc.URL, cc.CAFile, cc.Token, cc.ProxyName = rp.URL, pki.CAFile, wiretest.Token, wiretest.Proxy
		cc.FlushInterval = 50 * time.Millisecond
		c, err := collector.New(cc, nil)
		if err != nil {
			b.Fatal(err)
		}
		s = c
	}
	set, err := device.NewSet([]device.Device{{ID: 7, Name: "lo", IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}})
	if err != nil {
		b.Fatal(err)
	}
	p, err = New(cfg, Deps{Registry: device.NewRegistry(set), Sinks: []sink.Sink{s}})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	return p, s, recvCPU, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			b.Error(err)
		}
	}
}

// benchProxy blasts b.N passes at the proxy (rate 0: as fast as possible)
// and reports what arrived.
func benchProxy(b *testing.B, sinkName string, dgs []capture.Datagram, prof benchtool.Profile, rate float64) {
	p, s, recvCPU, stop := startBenchProxy(b, sinkName)
	defer stop()
	snd, err := benchtool.NewSender(p.Addr(), benchtool.Payloads(dgs))
	if err != nil {
		b.Fatal(err)
	}
	defer snd.Close()
	delivered := func() uint64 { return s.Stats().Delivered }
	progress := func() uint64 { return p.datagrams.Load() + p.flowsIn.Load() + delivered() }
	// Templates and sampling rates first.
	if err := snd.Prime(); err != nil {
		b.Fatal(err)
	}
	primed := func() bool { return p.datagrams.Load() == uint64(len(dgs)) && delivered() > 0 }
	benchtool.WaitUntil(primed, 10*time.Second)
	benchtool.Settle(progress, idle(p), 100*time.Millisecond, 10*time.Second)
	if !primed() {
		b.Fatalf("priming: %d of %d datagrams received, %d records delivered", p.datagrams.Load(), len(dgs), delivered())
	}
	dg0, drop0, rec0, sd0 := p.datagrams.Load(), p.droppedDatagrams.Load(), delivered(), p.dropped[reasonIndex(reasonSinkFull)].Load()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	var rcpu0 time.Duration
	if recvCPU != nil {
		rcpu0 = recvCPU()
	}
	b.ResetTimer()
	cpu0, start := benchtool.ProcessCPU(), time.Now()
	res := blast(snd, benchtool.Options{Passes: b.N, Rate: rate})
	end := benchtool.Settle(progress, idle(p), 300*time.Millisecond, 20*time.Second)
	cpu := benchtool.ProcessCPU() - cpu0 - res.ThreadCPU
	b.StopTimer()
	runtime.ReadMemStats(&m1)

	got := p.datagrams.Load() - dg0
	qdrop := p.droppedDatagrams.Load() - drop0
	recs := delivered() - rec0
	sinkDrop := p.dropped[reasonIndex(reasonSinkFull)].Load() - sd0
	el := end.Sub(start).Seconds()
	flows := float64(recs) * prof.FlowsPerRecord()
	b.ReportMetric(flows/el, "flows/s")
	if cpu > 0 {
		b.ReportMetric(flows/cpu.Seconds(), "flows/cpu-s")
	}
	b.ReportMetric(float64(res.Datagrams)/res.Elapsed.Seconds(), "sent-dg/s")
	b.ReportMetric(pct(res.Datagrams-min(got, res.Datagrams), res.Datagrams), "kdrop%")
	b.ReportMetric(pct(qdrop, res.Datagrams), "qdrop%")
	b.ReportMetric(pct(sinkDrop, uint64(float64(res.Datagrams)*float64(prof.Records)/float64(prof.Datagrams))), "sinkdrop%")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/max(flows, 1), "allocs/flow")
	if recvCPU != nil && flows > 0 {
		b.ReportMetric((recvCPU()-rcpu0).Seconds()/flows*1e6, "recv-cpu-s/Mflow")
	}
	if rate > 0 {
		lost := res.Datagrams - min(res.Datagrams, got-qdrop)
		b.ReportMetric(rate, "rate-dg/s")
		b.ReportMetric(float64(lost), "lost-dg")
		if lost > 0 {
			b.Logf("paced at %.0f datagrams/s: %d of %d datagrams lost (%d in the kernel, %d in the queue)",
				rate, lost, res.Datagrams, res.Datagrams-min(got, res.Datagrams), qdrop)
		}
	}
}

func reasonIndex(r string) int {
	for i, x := range reasons {
		if x == r {
			return i
		}
	}
	panic("unknown reason " + r)
}
