package goflow2bench

import (
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netsampler/goflow2/v2/format"
	protoproducer "github.com/netsampler/goflow2/v2/producer/proto"
	"github.com/netsampler/goflow2/v2/utils"

	"github.com/netpulse/netpulse/proxy/benchtool"
)

// atomicTransport counts what reaches goflow2's transport; the decode
// workers call it while the benchmark reads it.
type atomicTransport struct{ msgs, bytes atomic.Uint64 }

func (t *atomicTransport) Send(key, data []byte) error {
	t.msgs.Add(1)
	t.bytes.Add(uint64(len(data)))
	return nil
}

type dropCounter struct{ n atomic.Uint64 }

func (d *dropCounter) Dropped(utils.Message) { d.n.Add(1) }

// BenchmarkGoflow2UDP is goflow2's collector path from the socket on:
// utils.UDPReceiver (one socket, one decode worker, as netpulse's proxy
// with Sockets 1), the flow pipe, the protobuf producer with the default
// mapping, the "bin" format and a transport that only counts. The same
// sender as proxy's BenchmarkProxy blasts b.N passes of a capture over
// loopback; the metrics mean the same (proxy/bench_test.go).
//
// Its queue is 4096 datagrams (goflow2's command defaults to 1,000,000,
// each in a 9000-byte buffer: under overload that is up to 9 GB, see
// bench/proxy-rss.sh); the figures are throughput, which the queue length
// does not change once it is full.
func BenchmarkGoflow2UDP(b *testing.B) {
	for _, name := range captureNames() {
		b.Run("capture="+name, func(b *testing.B) { benchGoflow2UDP(b, name) })
	}
}

func benchGoflow2UDP(b *testing.B, name string) {
	dgs := loadCapture(b, name)
	var cfg *protoproducer.ProducerConfig
	cfgm, err := cfg.Compile()
	if err != nil {
		b.Fatal(err)
	}
	prod, err := protoproducer.CreateProtoProducer(cfgm, protoproducer.CreateSamplingSystem)
	if err != nil {
		b.Fatal(err)
	}
	f, err := format.FindFormat("bin")
	if err != nil {
		b.Fatal(err)
	}
	tr := &atomicTransport{}
	pipe := utils.NewFlowPipe(&utils.PipeConfig{Format: f, Transport: tr, Producer: prod})
	drops := &dropCounter{}
	recv, err := utils.NewUDPReceiver(&utils.UDPReceiverConfig{Sockets: 1, Workers: 1, QueueSize: 4096, ReceiverCallback: drops})
	if err != nil {
		b.Fatal(err)
	}
	var decoded atomic.Uint64
	decode := func(msg interface{}) error {
		decoded.Add(1)
		return pipe.DecodeFlow(msg)
	}
	// goflow2 takes a port number: find a free one on loopback.
	probe, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	addr := probe.LocalAddr().(*net.UDPAddr).AddrPort()
	probe.Close()
	if err := recv.Start("127.0.0.1", int(addr.Port()), decode); err != nil {
		b.Fatal(err)
	}
	defer recv.Stop()
	snd, err := benchtool.NewSender(addr, benchtool.Payloads(dgs))
	if err != nil {
		b.Fatal(err)
	}
	defer snd.Close()
	progress := func() uint64 { return decoded.Load() + drops.n.Load() + tr.msgs.Load() }
	if err := snd.Prime(); err != nil {
		b.Fatal(err)
	}
	primed := func() bool { return decoded.Load() == uint64(len(dgs)) }
	benchtool.WaitUntil(primed, 10*time.Second)
	benchtool.Settle(progress, benchtool.Drained(addr.Port()), 100*time.Millisecond, 10*time.Second)
	if !primed() {
		b.Fatalf("priming: %d of %d datagrams decoded", decoded.Load(), len(dgs))
	}
	dec0, drop0, msg0 := decoded.Load(), drops.n.Load(), tr.msgs.Load()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	b.ResetTimer()
	cpu0, start := benchtool.ProcessCPU(), time.Now()
	res := make(chan benchtool.Result)
	go func() { res <- snd.Blast(b.Context(), benchtool.Options{Passes: b.N}) }()
	sent := <-res
	end := benchtool.Settle(progress, benchtool.Drained(addr.Port()), 300*time.Millisecond, 20*time.Second)
	cpu := benchtool.ProcessCPU() - cpu0 - sent.ThreadCPU
	b.StopTimer()
	runtime.ReadMemStats(&m1)
	qdrop := drops.n.Load() - drop0
	got := decoded.Load() - dec0 + qdrop
	flows := float64(tr.msgs.Load() - msg0)
	el := end.Sub(start).Seconds()
	b.ReportMetric(flows/el, "flows/s")
	if cpu > 0 {
		b.ReportMetric(flows/cpu.Seconds(), "flows/cpu-s")
	}
	b.ReportMetric(float64(sent.Datagrams)/sent.Elapsed.Seconds(), "sent-dg/s")
	b.ReportMetric(pct(sent.Datagrams-min(got, sent.Datagrams), sent.Datagrams), "kdrop%")
	b.ReportMetric(pct(qdrop, sent.Datagrams), "qdrop%")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/max(flows, 1), "allocs/flow")
}

func pct(part, whole uint64) float64 {
	if whole == 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}
