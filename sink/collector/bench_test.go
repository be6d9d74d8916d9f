package collector

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/decoder"
	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/wire/wiretest"
	"golang.org/x/sys/unix"
)

// TestReceiverProcess is not a test: it is the receiver process of
// BenchmarkSink/receiver=process (wiretest.StartProcess).
func TestReceiverProcess(t *testing.T) { wiretest.ServeProcess(t) }

// benchRecords decodes real captures (NetFlow v9 and IPFIX from softflowd
// and pmacct) into records as the proxy hands them to the sink.
func benchRecords(b *testing.B) []flow.Record {
	var out []flow.Record
	for _, name := range []string{"softflowd-v9", "softflowd-ipfix", "pmacct-v9", "pmacct-ipfix"} {
		dgs, err := capture.ReadAllUDP(filepath.Join("..", "..", "testdata", "captures", name+".pcap"))
		if err != nil {
			b.Fatal(err)
		}
		d := decoder.New(decoder.DefaultConfig())
		for _, dg := range dgs {
			d.Decode(dg.Src.Addr(), dg.Time, dg.Payload, func(r *flow.Record) {
				r.DeviceID = 7
				out = append(out, *r)
			})
		}
	}
	return out
}

// BenchmarkSink pushes real records through the sink as fast as it takes
// them, to a receiver in this process or in a process of its own, and
// reports records/s (wall clock), rec/cpu-s (records per CPU-second of
// this process: the sink, plus the receiver when it is in-process) and,
// for the receiver process, its CPU per million records. One op is one
// record.
func BenchmarkSink(b *testing.B) {
	recs := benchRecords(b)
	for _, where := range []string{"inproc", "process"} {
		b.Run("receiver="+where, func(b *testing.B) {
			pki := wiretest.NewPKI(b)
			var url string
			var recvCPU func() time.Duration
			if where == "inproc" {
				srv := wiretest.NewServer(b, pki, wiretest.Options{CountOnly: true})
				url = srv.URL
			} else {
				p := wiretest.StartProcess(b, pki, "TestReceiverProcess")
				url = p.URL
				recvCPU = func() time.Duration { d, _ := p.CPU(); return d }
			}
			cfg := DefaultConfig()
			cfg.URL, cfg.Token, cfg.CAFile, cfg.ProxyName = url, wiretest.Token, pki.CAFile, wiretest.Proxy
			cfg.FlushInterval = 100 * time.Millisecond
			s, err := New(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			// A first batch opens the connection.
			s.Write(recs[:1])
			for deadline := time.Now().Add(10 * time.Second); s.Stats().Delivered != 1 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			var r0 time.Duration
			if recvCPU != nil {
				r0 = recvCPU()
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0, start := processCPU(), time.Now()
			for left := b.N; left > 0; {
				off := (b.N - left) % len(recs)
				part := recs[off:min(len(recs), off+min(left, 512))]
				n := s.Write(part)
				left -= n
				if n == 0 {
					time.Sleep(200 * time.Microsecond) // queue full: the sink is the bottleneck
				}
			}
			if err := s.Stop(context.Background()); err != nil {
				b.Fatal(err)
			}
			el, cpu := time.Since(start), processCPU()-cpu0
			b.StopTimer()
			if st := s.Stats(); st.Delivered != uint64(b.N)+1 {
				b.Fatalf("delivered %d of %d", st.Delivered, b.N+1)
			}
			b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
			b.ReportMetric(float64(b.N)/cpu.Seconds(), "rec/cpu-s")
			if recvCPU != nil {
				b.ReportMetric((recvCPU()-r0).Seconds()/float64(b.N)*1e6, "recv-cpu-s/Mrec")
			}
		})
	}
}

// processCPU is this process's user+system CPU time.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
