package demo

import (
	"testing"
	"time"
)

// BenchmarkSimulateMinute simulates one minute of the default devices at
// the evening peak (about 19,000 flow records), encoding included: what
// Run costs per minute of demo.
func BenchmarkSimulateMinute(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		s, err := New(testConfig())
		if err != nil {
			b.Fatal(err)
		}
		run(s, t0, time.Minute, 100*time.Millisecond)
	}
}
