//go:build cgo

package duckdb

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/netpulse/netpulse/ifwatch"
	"github.com/netpulse/netpulse/ifwatch/ledgertest"
)

func TestLedgerSuite(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ifwatch.Ledger {
		s, _ := openTest(t, Config{})
		return s.Ledger()
	})
}

// TestLedgerReopen: the ledger outlives the store.
func TestLedgerReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flows.duckdb")
	s, err := Open(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if l1, l2 := s.Ledger(), s.Ledger(); l1 != l2 {
		t.Error("Store.Ledger returned two ledgers")
	}
	ledgertest.Reopen(t, func() ifwatch.Ledger { return s.Ledger() }, func() ifwatch.Ledger {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if s, err = Open(path, Config{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s.Ledger()
	}, nil)
}

// BenchmarkLedgerMonthlyReport: the monthly downtime report (query +
// downtime math) over a month of ledger in DuckDB. Keys from
// NETPULSE_BENCH_KEYS (default 2,000), three outages each, 1 % open.
func BenchmarkLedgerMonthlyReport(b *testing.B) {
	keys := 2000
	if v, err := strconv.Atoi(os.Getenv("NETPULSE_BENCH_KEYS")); err == nil && v > 0 {
		keys = v
	}
	ctx := context.Background()
	s, err := Open(filepath.Join(b.TempDir(), "flows.duckdb"), Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l := s.Ledger()
	month := ifwatch.Month(2026, time.November, time.UTC)
	known := make([]ifwatch.KnownKey, keys)
	load := time.Now()
	for i := range known {
		known[i] = ifwatch.KnownKey{Key: ifwatch.Key{Exporter: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), IfIndex: uint32(i%48 + 1)}, FirstSeen: month.From.Add(-time.Hour)}
	}
	if err := l.AddKeys(ctx, known); err != nil {
		b.Fatal(err)
	}
	for i, k := range known {
		for j := range 3 {
			start := month.From.Add(time.Duration(i%600)*time.Minute + time.Duration(j)*9*24*time.Hour)
			o, err := l.Open(ctx, ifwatch.Outage{Key: k.Key, Start: start, OpenedAt: start.Add(5 * time.Minute), Cause: ifwatch.CauseSilence,
				Source: ifwatch.Source{Name: "flows", Kind: ifwatch.KindFlow}})
			if err != nil {
				b.Fatal(err)
			}
			if j == 2 && i%100 == 0 {
				continue // still open
			}
			end := start.Add(time.Duration(10+i%50) * time.Minute)
			if err := l.Close(ctx, o.ID, end, end.Add(time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Logf("%d keys, %d outages written in %v", keys, keys*3, time.Since(load).Round(time.Millisecond))
	now := month.To.Add(-time.Hour)
	b.ResetTimer()
	for b.Loop() {
		rep, err := ifwatch.DowntimeReport(ctx, l, month, now)
		if err != nil {
			b.Fatal(err)
		}
		if len(rep.Keys) != keys {
			b.Fatalf("%d keys in the report, want %d", len(rep.Keys), keys)
		}
	}
}
