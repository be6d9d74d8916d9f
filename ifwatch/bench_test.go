package ifwatch_test

import (
	"context"
	"io"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/netpulse/netpulse/ifwatch"
)

// benchKeys is 100,000 exporter interfaces: 10,000 exporters with 10
// interfaces each.
func benchKeys(n int) []ifwatch.Key {
	keys := make([]ifwatch.Key, 0, n)
	for e := 0; len(keys) < n; e++ {
		a := netip.AddrFrom4([4]byte{10, byte(e >> 16), byte(e >> 8), byte(e)})
		for i := uint32(1); i <= 10 && len(keys) < n; i++ {
			keys = append(keys, ifwatch.Key{Exporter: a, IfIndex: i})
		}
	}
	return keys
}

// BenchmarkUpdateCycle is one minute of a collector with 100,000
// exporter interfaces: one traffic observation per key from the flow
// source, given in batches of 1,000 (Observe), then Tick. One op is one
// whole cycle. steady: every key stays up. churn: each key is silent
// for 10 minutes in every 100, so each cycle about 1,000 keys go down
// and 1,000 come back up (ledger writes, events).
func BenchmarkUpdateCycle(b *testing.B) {
	const n, batch = 100_000, 1_000
	keys := benchKeys(n)
	for _, churn := range []bool{false, true} {
		name := "steady"
		if churn {
			name = "churn"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			clk := &clock{t: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
			w, err := ifwatch.New(ifwatch.Config{}, ifwatch.Deps{Ledger: ifwatch.NewMemLedger(), Now: clk.Now})
			if err != nil {
				b.Fatal(err)
			}
			if err := w.Restore(ctx); err != nil {
				b.Fatal(err)
			}
			obs := make([]ifwatch.Observation, 0, n)
			cycle := 0
			var events int
			step := func() {
				clk.Set(clk.Now().Add(time.Minute))
				obs = obs[:0]
				for i, k := range keys {
					if churn && ((cycle+i)/10)%10 == 0 {
						continue
					}
					// Time zero: now.
					obs = append(obs, ifwatch.Observation{Source: flowSrc, Key: k, Traffic: 1e6})
				}
				for i := 0; i < len(obs); i += batch {
					ev, err := w.Observe(ctx, obs[i:min(i+batch, len(obs))]...)
					if err != nil {
						b.Fatal(err)
					}
					events += len(ev)
				}
				ev, err := w.Tick(ctx)
				if err != nil {
					b.Fatal(err)
				}
				events += len(ev)
				cycle++
			}
			for range 20 { // every key known, up, and churning
				step()
			}
			events = 0
			obs = obs[:0:0]
			runtime.GC()
			runtime.ReadMemStats(&after)
			// The watcher's memory (and the ledger's, small when steady).
			heapPerKey := float64(after.HeapAlloc-before.HeapAlloc) / n
			obs = make([]ifwatch.Observation, 0, n)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				step()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/key")
			b.ReportMetric(float64(events)/float64(b.N), "events/op")
			b.ReportMetric(heapPerKey, "heap-B/key")
		})
	}
}

// monthLedger is a month of ledger: n keys with three outages each in
// November 2026 (one of them across the start of the month), 1% of keys
// with an outage still open.
func monthLedger(b *testing.B, n int) (*ifwatch.MemLedger, time.Time) {
	ctx := context.Background()
	l := ifwatch.NewMemLedger()
	keys := benchKeys(n)
	first := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	known := make([]ifwatch.KnownKey, len(keys))
	for i, k := range keys {
		known[i] = ifwatch.KnownKey{Key: k, FirstSeen: first}
	}
	if err := l.AddKeys(ctx, known); err != nil {
		b.Fatal(err)
	}
	nov := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	now := nov.AddDate(0, 1, 0).Add(-time.Hour)
	for i, k := range keys {
		off := time.Duration(i%600) * time.Minute
		for j, start := range []time.Time{nov.Add(-30*time.Minute + off), nov.Add(10*24*time.Hour + off), nov.Add(20*24*time.Hour + off)} {
			o, err := l.Open(ctx, ifwatch.Outage{Key: k, Start: start, Source: flowSrc, Cause: ifwatch.CauseSilence, OpenedAt: start.Add(5 * time.Minute)})
			if err != nil {
				b.Fatal(err)
			}
			if j == 2 && i%100 == 0 {
				continue // still open
			}
			end := start.Add(time.Duration(31+i%89) * time.Minute)
			if err := l.Close(ctx, o.ID, end, end.Add(time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
	}
	return l, now
}

// BenchmarkMonthlyReport is the downtime report for a calendar month over
// a ledger of 100,000 keys and 300,000 outages (MemLedger): the ledger
// queries (Keys, Overlapping) and the downtime math; then the same with
// the report written as CSV and as JSON.
func BenchmarkMonthlyReport(b *testing.B) {
	l, now := monthLedger(b, 100_000)
	ctx := context.Background()
	p := ifwatch.Month(2026, time.November, time.UTC)
	for _, f := range []ifwatch.Format{"", ifwatch.FormatCSV, ifwatch.FormatJSON, ifwatch.FormatTable} {
		name := "query"
		if f != "" {
			name = "query+" + string(f)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r, err := ifwatch.DowntimeReport(ctx, l, p, now)
				if err != nil {
					b.Fatal(err)
				}
				if len(r.Keys) != 100_000 || r.Total.Outages != 300_000 {
					b.Fatalf("%d keys, %d outages", len(r.Keys), r.Total.Outages)
				}
				if f != "" {
					if err := r.Write(io.Discard, f); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkDowntime is the downtime math alone, the ledger's rows already
// read.
func BenchmarkDowntime(b *testing.B) {
	l, now := monthLedger(b, 100_000)
	ctx := context.Background()
	p := ifwatch.Month(2026, time.November, time.UTC)
	keys, _ := l.Keys(ctx)
	os, _ := l.Overlapping(ctx, p.From, p.To)
	b.ReportAllocs()
	for b.Loop() {
		ifwatch.Downtime(p, now, keys, os)
	}
}
