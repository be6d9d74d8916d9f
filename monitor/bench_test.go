package monitor

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPoll1000 polls 1,000 simulated proxies (in-process loopback
// listeners serving netpulse's health text from health/testdata) per
// round, as one interval does. cpu-s/round is the process's user+system
// CPU per round, the simulated proxies' share included; run it with
// -cpu 1 (and taskset -c 0) for "one core". maxrss-MB is the process's
// peak resident set, test binary and listeners included.
func BenchmarkPoll1000(b *testing.B) {
	text, err := os.ReadFile("../health/testdata/netpulse.txt")
	if err != nil {
		b.Fatal(err)
	}
	const n = 1000
	var targets []Target
	for i := range n {
		targets = append(targets, Target{Name: fmt.Sprintf("p%04d", i), IP: "127.0.0.1", Port: textServer(b, text)})
	}
	c := testConfig(targets...)
	c.ReadTimeout = 10 * time.Second
	c.ConnectTimeout = 5 * time.Second
	c.Rules.StaleAfter = -1
	m := newMonitor(b, c, nil)
	ctx := context.Background()
	m.Round(ctx) // warm up
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ReportAllocs()
	b.ResetTimer()
	rounds := 0
	for b.Loop() {
		for _, r := range m.Round(ctx) {
			if r.Status != NotGood && r.Status != Up {
				b.Fatalf("%s: %d %q %s", r.Target.Name, r.Status, r.State, r.Err)
			}
		}
		rounds++
	}
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()) + time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano())
	b.ReportMetric(cpu.Seconds()/float64(rounds), "cpu-s/round")
	b.ReportMetric(float64(ru1.Maxrss)/1024, "maxrss-MB")
}
