// Package ledgertest checks an ifwatch.Ledger implementation against the
// rules the interface documents, so that the in-memory ledger and the
// durable ones (DuckDB, ClickHouse) behave the same. A store's test calls
// Run with a function that returns an empty ledger.
package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/ifwatch"
)

// Run runs the checks as subtests. newLedger must return an empty ledger
// each time it is called; it may register cleanups with t.
func Run(t *testing.T, newLedger func(t *testing.T) ifwatch.Ledger) {
	for _, tc := range []struct {
		name string
		f    func(*testing.T, ifwatch.Ledger)
	}{
		{"OpenClose", testOpenClose},
		{"OneOpenPerKey", testOneOpenPerKey},
		{"Invalid", testInvalid},
		{"Overlapping", testOverlapping},
		{"OpenOutages", testOpenOutages},
		{"Keys", testKeys},
		{"Concurrent", testConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, newLedger(t)) })
	}
}

// T0 is the base time of the checks, with microseconds: ledgers must keep
// those.
var T0 = time.Date(2026, 11, 1, 0, 0, 0, 123456000, time.UTC)

func at(m int) time.Time { return T0.Add(time.Duration(m) * time.Minute) }

func key(i int) ifwatch.Key {
	return ifwatch.Key{Exporter: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), IfIndex: uint32(i)}
}

var src = ifwatch.Source{Name: "fc-ams", Kind: ifwatch.KindStatsFile}

func outage(k, start int) ifwatch.Outage {
	return ifwatch.Outage{Key: key(k), Start: at(start), Source: src, Cause: ifwatch.CauseZero, OpenedAt: at(start + 5)}
}

// Same tells whether two outages are equal, times compared as instants.
func Same(a, b ifwatch.Outage) bool {
	return a.ID == b.ID && a.Key == b.Key && a.Start.Equal(b.Start) && a.End.Equal(b.End) &&
		a.Source == b.Source && a.Cause == b.Cause && a.OpenedAt.Equal(b.OpenedAt) && a.ClosedAt.Equal(b.ClosedAt)
}

func format(os []ifwatch.Outage) string {
	s := "["
	for i, o := range os {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("{%d %s %s-%s}", o.ID, o.Key, o.Start.UTC().Format(time.RFC3339Nano), o.End.UTC().Format(time.RFC3339Nano))
	}
	return s + "]"
}

func mustOpen(t *testing.T, l ifwatch.Ledger, o ifwatch.Outage) ifwatch.Outage {
	t.Helper()
	got, err := l.Open(context.Background(), o)
	if err != nil {
		t.Fatalf("Open(%s): %v", o.Key, err)
	}
	return got
}

func mustClose(t *testing.T, l ifwatch.Ledger, id ifwatch.OutageID, end, closed time.Time) {
	t.Helper()
	if err := l.Close(context.Background(), id, end, closed); err != nil {
		t.Fatalf("Close(%d): %v", id, err)
	}
}

func testOpenClose(t *testing.T, l ifwatch.Ledger) {
	ctx := context.Background()
	a := mustOpen(t, l, outage(1, 0))
	b := mustOpen(t, l, outage(2, 0))
	if a.ID == 0 || b.ID == 0 || a.ID == b.ID {
		t.Fatalf("IDs %d and %d: want two distinct non-zero IDs", a.ID, b.ID)
	}
	want := outage(1, 0)
	want.ID = a.ID
	if !Same(a, want) {
		t.Errorf("Open returned %+v, want %+v", a, want)
	}
	mustClose(t, l, a.ID, at(30), at(31))
	want.End, want.ClosedAt = at(30), at(31)
	got, err := l.Overlapping(ctx, at(0), at(60))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !Same(got[0], want) {
		t.Fatalf("Overlapping after Close = %s, want %+v first", format(got), want)
	}
	if err := l.Close(ctx, a.ID, at(40), at(41)); !errors.Is(err, ifwatch.ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
	got, _ = l.Overlapping(ctx, at(0), at(60))
	if !Same(got[0], want) {
		t.Errorf("a second Close changed the outage: %+v", got[0])
	}
	if err := l.Close(ctx, b.ID+a.ID+100, at(40), at(41)); !errors.Is(err, ifwatch.ErrNotFound) {
		t.Errorf("Close of an unknown ID: %v, want ErrNotFound", err)
	}
	if err := l.Close(ctx, b.ID, at(-1), at(41)); !errors.Is(err, ifwatch.ErrInvalid) {
		t.Errorf("Close with end before start: %v, want ErrInvalid", err)
	}
	open, _ := l.OpenOutages(ctx)
	if len(open) != 1 || open[0].ID != b.ID {
		t.Errorf("after a refused Close, OpenOutages = %s, want only %d", format(open), b.ID)
	}
	// An outage may end where it started (nothing to count, but valid).
	mustClose(t, l, b.ID, at(0), at(1))
}

func testOneOpenPerKey(t *testing.T, l ifwatch.Ledger) {
	ctx := context.Background()
	a := mustOpen(t, l, outage(1, 0))
	if _, err := l.Open(ctx, outage(1, 10)); !errors.Is(err, ifwatch.ErrOpenExists) {
		t.Fatalf("second Open of a key: %v, want ErrOpenExists", err)
	}
	mustClose(t, l, a.ID, at(20), at(21))
	b := mustOpen(t, l, outage(1, 30))
	if b.ID == a.ID {
		t.Errorf("an ID was reused: %d", b.ID)
	}
	got, _ := l.Overlapping(ctx, at(0), at(100))
	if len(got) != 2 {
		t.Errorf("Overlapping = %s, want the two outages (the refused one not recorded)", format(got))
	}
}

func testInvalid(t *testing.T, l ifwatch.Ledger) {
	ctx := context.Background()
	noKey := outage(1, 0)
	noKey.Key = ifwatch.Key{}
	noStart := outage(1, 0)
	noStart.Start = time.Time{}
	ended := outage(1, 0)
	ended.End = at(3)
	for name, o := range map[string]ifwatch.Outage{"no key": noKey, "no start": noStart, "with an end": ended} {
		if _, err := l.Open(ctx, o); !errors.Is(err, ifwatch.ErrInvalid) {
			t.Errorf("Open %s: %v, want ErrInvalid", name, err)
		}
	}
	if err := l.AddKeys(ctx, []ifwatch.KnownKey{{Key: key(1), FirstSeen: at(0)}, {FirstSeen: at(0)}}); !errors.Is(err, ifwatch.ErrInvalid) {
		t.Errorf("AddKeys with an invalid key: %v, want ErrInvalid", err)
	}
	keys, _ := l.Keys(ctx)
	open, _ := l.OpenOutages(ctx)
	if len(keys)+len(open) != 0 {
		t.Errorf("refused writes left %d keys and %d outages", len(keys), len(open))
	}
}

func testOverlapping(t *testing.T, l ifwatch.Ledger) {
	ctx := context.Background()
	// 1: [0, 10) opened at 5, closed at 12
	// 2: [20, 30) opened at 25, closed at 31
	// 3: [40, open) opened at 45
	// 4: [20, 22) same start as 2, later ID
	ids := map[int]ifwatch.OutageID{}
	o := mustOpen(t, l, outage(1, 0))
	mustClose(t, l, o.ID, at(10), at(12))
	ids[1] = o.ID
	o = mustOpen(t, l, outage(2, 20))
	mustClose(t, l, o.ID, at(30), at(31))
	ids[2] = o.ID
	ids[3] = mustOpen(t, l, outage(3, 40)).ID
	o = mustOpen(t, l, outage(4, 20))
	mustClose(t, l, o.ID, at(22), at(22))
	ids[4] = o.ID
	for _, tc := range []struct {
		from, to int
		want     []int
	}{
		{-10, 0, nil},               // ends where 1 starts
		{-10, 1, []int{1}},          // 1 starts inside
		{10, 11, nil},               // 1's End is exclusive
		{11, 12, nil},               // ClosedAt 12 is not in [11, 12)
		{12, 13, []int{1}},          // closed in the range
		{5, 6, []int{1}},            // inside 1, and opened at 5
		{0, 100, []int{1, 2, 4, 3}}, // by Start, then ID
		{21, 22, []int{2, 4}},
		{30, 31, nil},              // 2 ended at 30, closed at 31 (excluded)
		{31, 32, []int{2}},         // closed at 31
		{1000, 2000, []int{3}},     // open outages run on
		{-100, 40, []int{1, 2, 4}}, // 3 starts at the range's end
	} {
		got, err := l.Overlapping(ctx, at(tc.from), at(tc.to))
		if err != nil {
			t.Fatal(err)
		}
		var want []ifwatch.OutageID
		for _, i := range tc.want {
			want = append(want, ids[i])
		}
		var gotIDs []ifwatch.OutageID
		for _, o := range got {
			gotIDs = append(gotIDs, o.ID)
		}
		if fmt.Sprint(gotIDs) != fmt.Sprint(want) {
			t.Errorf("Overlapping(%d, %d) = %v, want %v (%s)", tc.from, tc.to, gotIDs, want, format(got))
		}
	}
}

func testOpenOutages(t *testing.T, l ifwatch.Ledger) {
	ctx := context.Background()
	if got, err := l.OpenOutages(ctx); err != nil || len(got) != 0 {
		t.Fatalf("OpenOutages of an empty ledger = %v, %v", got, err)
	}
	c := mustOpen(t, l, outage(3, 30))
	a := mustOpen(t, l, outage(1, 10))
	b := mustOpen(t, l, outage(2, 20))
	mustClose(t, l, b.ID, at(25), at(26))
	got, err := l.OpenOutages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !Same(got[0], a) || !Same(got[1], c) {
		t.Errorf("OpenOutages = %s, want %d then %d", format(got), a.ID, c.ID)
	}
}

func testKeys(t *testing.T, l ifwatch.Ledger) {
	ctx := context.Background()
	v6 := ifwatch.Key{Exporter: netip.MustParseAddr("2001:db8::1"), IfIndex: 1}
	if err := l.AddKeys(ctx, []ifwatch.KnownKey{{Key: v6, FirstSeen: at(5)}, {Key: key(2), FirstSeen: at(10)}, {Key: key(1), FirstSeen: at(20)}}); err != nil {
		t.Fatal(err)
	}
	// An earlier first-seen time wins, a later one is ignored.
	if err := l.AddKeys(ctx, []ifwatch.KnownKey{{Key: key(2), FirstSeen: at(15)}, {Key: key(1), FirstSeen: at(0)}}); err != nil {
		t.Fatal(err)
	}
	if err := l.AddKeys(ctx, nil); err != nil {
		t.Fatalf("AddKeys(nil): %v", err)
	}
	got, err := l.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []ifwatch.KnownKey{{Key: key(1), FirstSeen: at(0)}, {Key: key(2), FirstSeen: at(10)}, {Key: v6, FirstSeen: at(5)}}
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].Key == want[i].Key && got[i].FirstSeen.Equal(want[i].FirstSeen)
	}
	if !ok {
		t.Errorf("Keys = %v, want %v", got, want)
	}
}

func testConcurrent(t *testing.T, l ifwatch.Ledger) {
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[ifwatch.OutageID]bool{}
	for i := range 8 {
		wg.Go(func() {
			for j := range 5 {
				o, err := l.Open(ctx, outage(i*5+j+1, j))
				if err != nil {
					t.Error(err)
					return
				}
				if err := l.Close(ctx, o.ID, at(j+1), at(j+2)); err != nil {
					t.Error(err)
				}
				_ = l.AddKeys(ctx, []ifwatch.KnownKey{{Key: o.Key, FirstSeen: o.Start}})
				mu.Lock()
				seen[o.ID] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 40 {
		t.Errorf("%d distinct IDs from 40 concurrent Opens", len(seen))
	}
	got, _ := l.Overlapping(ctx, at(-1), at(100))
	keys, _ := l.Keys(ctx)
	if len(got) != 40 || len(keys) != 40 {
		t.Errorf("after concurrent writes: %d outages and %d keys, want 40 and 40", len(got), len(keys))
	}
}
