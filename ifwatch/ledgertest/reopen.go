package ledgertest

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/netpulse/netpulse/ifwatch"
)

// Reopen checks that a durable ledger outlives its process: an outage open
// when the ledger is closed is open, with its ID, after reopen; a second
// outage of its key is refused; new IDs go on growing; closing works;
// known keys keep their first-seen time. open returns the ledger before;
// reopen closes whatever holds it and returns it opened again. settle,
// when not nil, runs after the close (ClickHouse merges parts there, to
// prove reads do not depend on merges).
func Reopen(t *testing.T, open func() ifwatch.Ledger, reopen func() ifwatch.Ledger, settle func()) {
	t.Helper()
	ctx := context.Background()
	start := time.Date(2026, 11, 1, 10, 0, 0, 123456000, time.UTC)
	key := ifwatch.Key{Exporter: netip.MustParseAddr("2001:db8::7"), IfIndex: 7}
	o := ifwatch.Outage{Key: key, Start: start, Source: ifwatch.Source{Name: "flows", Kind: ifwatch.KindFlow},
		Cause: ifwatch.CauseSilence, OpenedAt: start.Add(5 * time.Minute)}
	l := open()
	first, err := l.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.AddKeys(ctx, []ifwatch.KnownKey{{Key: key, FirstSeen: start.Add(-time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	l = reopen()
	open1, err := l.OpenOutages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(open1) != 1 || !Same(open1[0], first) {
		t.Fatalf("OpenOutages after reopening = %+v, want %+v", open1, first)
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
	if settle != nil {
		settle()
	}
	got, err := l.Overlapping(ctx, start, start.Add(2*time.Hour))
	if err != nil || len(got) != 2 || got[0].ID != first.ID || !got[0].End.Equal(start.Add(time.Hour)) || !got[1].IsOpen() {
		t.Errorf("Overlapping after Close = %+v, %v", got, err)
	}
	keys, err := l.Keys(ctx)
	if err != nil || len(keys) != 1 || keys[0].Key != key || !keys[0].FirstSeen.Equal(start.Add(-time.Hour)) {
		t.Errorf("Keys after reopening = %v, %v", keys, err)
	}
}
