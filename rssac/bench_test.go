//go:build unix

package rssac

import (
	"iter"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// benchMonth yields a month of runs from nVP vantage points to the 13
// root servers: per slot and server, four SOA queries and one correctness
// query (≈ 11.6 M observations for 20 vantage points), with response
// times from a cheap generator, a timeout now and then, and a serial
// published twice a day that each server picks up after a few slots.
func benchMonth(nVP int) iter.Seq[Observation] {
	vps := make([]string, nVP)
	for v := range vps {
		vps[v] = string(rune('A'+v/26)) + string(rune('A'+v%26))
	}
	var names [13]string
	for i := range names {
		names[i] = rootName(i)
	}
	return func(yield func(Observation) bool) {
		x := uint32(1)
		for t := range octSlots {
			slot := slotTime(t)
			for _, vp := range vps {
				for i, name := range names {
					for c := range 4 {
						x = x*1664525 + 1013904223
						o := Observation{Slot: slot, VP: vp, Server: name, Transport: combos[c].transport, Family: combos[c].family,
							Kind: KindSOA, Outcome: Answered, RTT: time.Duration(5000+x>>20) * time.Microsecond}
						if x%1000 == 0 {
							o.Outcome, o.RTT = Timeout, 0
						} else {
							n := (t - i) / 144
							o.Serial, o.HasSerial = sBase+uint32(max(n, 0)), true
						}
						if !yield(o) {
							return
						}
					}
					o := Observation{Slot: slot, VP: vp, Server: name, Transport: combos[t%4].transport, Family: combos[t%4].family,
						Kind: KindCorrectness, Outcome: Answered, RTT: 30 * time.Millisecond, Verdict: Correct}
					if !yield(o) {
						return
					}
				}
			}
		}
	}
}

// peakHeap samples the heap's size every millisecond until stop.
func peakHeap() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}

// BenchmarkComputeMonth is Compute over 20 vantage points × a month of
// runs (20 × 8928 slots × 13 servers × 5 queries = 11.6 M observations),
// generated on the fly. It reports observations per second and the peak
// heap (live and not yet collected) while it runs.
func BenchmarkComputeMonth(b *testing.B) {
	const nVP = 20
	p := MonthPeriod(2026, 10)
	b.ReportAllocs()
	runtime.GC()
	stop := peakHeap()
	cpu0 := cpuTime()
	var r *Report
	for b.Loop() {
		var err error
		r, err = Compute(p, Config{}, benchMonth(nVP))
		if err != nil {
			b.Fatal(err)
		}
	}
	cpu := cpuTime() - cpu0
	peak := stop()
	n := r.Counts.Observations
	if n != nVP*octSlots*13*5 {
		b.Fatalf("%d observations", n)
	}
	b.ReportMetric(float64(n), "obs/op")
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "obs/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	// CPU time of the whole process (GC included) per op: unlike wall
	// time it does not count waiting for a core on a shared machine.
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGenerate is the generator alone, to subtract from the above.
func BenchmarkGenerate(b *testing.B) {
	var n int
	cpu0 := cpuTime()
	defer func() { b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op") }()
	for b.Loop() {
		for o := range benchMonth(20) {
			if o.Outcome == Answered {
				n++
			}
		}
	}
	_ = n
}
