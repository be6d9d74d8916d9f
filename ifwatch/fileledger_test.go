package ifwatch_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/netpulse/netpulse/ifwatch"
	"github.com/netpulse/netpulse/ifwatch/ledgertest"
)

func TestFileLedgerConformance(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ifwatch.Ledger {
		l, err := ifwatch.OpenFileLedger(filepath.Join(t.TempDir(), "ledger.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.CloseFile() })
		return l
	})
}

// TestFileLedgerReopenRules: the durable-ledger rules every store ledger
// passes.
func TestFileLedgerReopenRules(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	var l *ifwatch.FileLedger
	open := func() ifwatch.Ledger {
		var err error
		if l, err = ifwatch.OpenFileLedger(path); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.CloseFile() })
		return l
	}
	ledgertest.Reopen(t, open, func() ifwatch.Ledger { l.CloseFile(); return open() }, nil)
}

// TestFileLedgerReopen: what was written is there after a restart, and a
// torn last line (a crash mid-write) is dropped, not fatal.
func TestFileLedgerReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l, err := ifwatch.OpenFileLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	k := ifwatch.Key{Exporter: netip.MustParseAddr("192.0.2.1"), IfIndex: 3}
	k2 := ifwatch.Key{Exporter: netip.MustParseAddr("2001:db8::1"), IfIndex: 7}
	if err := l.AddKeys(ctx, []ifwatch.KnownKey{{Key: k, FirstSeen: t0}, {Key: k2, FirstSeen: t0}}); err != nil {
		t.Fatal(err)
	}
	o1, _ := l.Open(ctx, ifwatch.Outage{Key: k, Start: t0.Add(time.Hour), OpenedAt: t0.Add(time.Hour + 5*time.Minute), Cause: "silence"})
	if err := l.Close(ctx, o1.ID, t0.Add(2*time.Hour), t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	o2, _ := l.Open(ctx, ifwatch.Outage{Key: k2, Start: t0.Add(3 * time.Hour), OpenedAt: t0.Add(3 * time.Hour)})
	l.CloseFile()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"op":"close","id":2,"en`)
	f.Close()

	l, err = ifwatch.OpenFileLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.CloseFile()
	open, _ := l.OpenOutages(ctx)
	if len(open) != 1 || open[0].ID != o2.ID || open[0].Key != k2 {
		t.Fatalf("open outages after reopen: %+v", open)
	}
	all, _ := l.Overlapping(ctx, t0, t0.Add(24*time.Hour))
	if len(all) != 2 || !all[0].End.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("outages after reopen: %+v", all)
	}
	if keys, _ := l.Keys(ctx); len(keys) != 2 {
		t.Fatalf("keys after reopen: %+v", keys)
	}
	// Appending after the torn line was dropped works.
	if err := l.Close(ctx, o2.ID, t0.Add(4*time.Hour), t0.Add(4*time.Hour)); err != nil {
		t.Fatal(err)
	}
	l.CloseFile()
	l, err = ifwatch.OpenFileLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	if open, _ := l.OpenOutages(ctx); len(open) != 0 {
		t.Fatalf("still open: %+v", open)
	}
	l.CloseFile()
	// A bad line in the middle is an error, not silently skipped.
	data, _ := os.ReadFile(path)
	os.WriteFile(path, append([]byte("garbage\n"), data...), 0o600)
	if _, err := ifwatch.OpenFileLedger(path); err == nil {
		t.Fatal("corrupt ledger accepted")
	}
}
