package clickhouse

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/netpulse/netpulse/ifwatch"
	"github.com/netpulse/netpulse/ifwatch/ledgertest"
	"github.com/netpulse/netpulse/store"
)

func TestLedgerSuite(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ifwatch.Ledger {
		s, _, _ := open(t, store.Retention{})
		return s.Ledger()
	})
}

// TestLedgerReopen checks that the ledger outlives the store: an outage
// open when the store is closed is open, with its ID, when it is opened
// again, and IDs go on growing (from the largest in the table).
func TestLedgerReopen(t *testing.T) {
	ctx := context.Background()
	s, srv, db := open(t, store.Retention{})
	if l1, l2 := s.Ledger(), s.Ledger(); l1 != l2 {
		t.Error("Store.Ledger returned two ledgers")
	}
	start := time.Date(2026, 11, 1, 10, 0, 0, 123456000, time.UTC)
	key := ifwatch.Key{Exporter: netip.MustParseAddr("2001:db8::7"), IfIndex: 7}
	o := ifwatch.Outage{Key: key, Start: start, Source: ifwatch.Source{Name: "flows", Kind: ifwatch.KindFlow},
		Cause: ifwatch.CauseSilence, OpenedAt: start.Add(5 * time.Minute)}
	first, err := s.Ledger().Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ledger().AddKeys(ctx, []ifwatch.KnownKey{{Key: key, FirstSeen: start.Add(-time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openOn(t, srv, db, store.Retention{})
	l := s.Ledger()
	open, err := l.OpenOutages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || !ledgertest.Same(open[0], first) {
		t.Fatalf("OpenOutages after reopening = %+v, want %+v", open, first)
	}
	if _, err := l.Open(ctx, o); err == nil {
		t.Error("a second open outage of the key after reopening")
	}
	other := o
	other.Key.IfIndex = 8
	second, err := l.Open(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if second.ID <= first.ID {
		t.Errorf("ID after reopening %d, want more than %d", second.ID, first.ID)
	}
	if err := l.Close(ctx, first.ID, start.Add(time.Hour), start.Add(time.Hour+time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Merged or not, the ledger reads the same.
	srv.MustQuery(t, "OPTIMIZE TABLE "+db+".ifwatch_outages FINAL")
	got, err := l.Overlapping(ctx, start, start.Add(2*time.Hour))
	if err != nil || len(got) != 2 || got[0].ID != first.ID || !got[0].End.Equal(start.Add(time.Hour)) || !got[1].IsOpen() {
		t.Errorf("Overlapping after Close and a merge = %+v, %v", got, err)
	}
	keys, err := l.Keys(ctx)
	if err != nil || len(keys) != 1 || keys[0].Key != key || !keys[0].FirstSeen.Equal(start.Add(-time.Hour)) {
		t.Errorf("Keys after reopening = %v, %v", keys, err)
	}
}
