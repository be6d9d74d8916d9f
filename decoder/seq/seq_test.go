package seq

import (
	"net/netip"
	"testing"
	"time"
)

func TestObserve(t *testing.T) {
	k := Key{Exporter: netip.MustParseAddr("192.0.2.1"), Domain: 1}
	now := time.Unix(0, 0)
	tr := NewTracker(0)
	steps := []struct {
		seq, units uint32
		lost       uint64
	}{
		{100, 10, 0}, // first datagram: nothing known
		{110, 10, 0}, // in order
		{125, 5, 5},  // 120..124 lost
		{128, 1, 0},  // late datagram: out of order, expectation kept
		{130, 30, 0}, // in order again
		{5, 1, 0},    // exporter restarted: far behind is a reset
		{6, 1, 0},
		{0xffffffff, 2, 0}, // reset again
		{1, 1, 0},          // wrap across 2^32 is in order
	}
	for i, s := range steps {
		if got := tr.Observe(k, s.seq, s.units, now); got != s.lost {
			t.Errorf("step %d seq %d: lost %d, want %d", i, s.seq, got, s.lost)
		}
	}
	st, _ := tr.Stream(k)
	want := Stats{Datagrams: 9, Lost: 5, OutOfOrder: 1, Resets: 2, LastSeen: now}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
}

func TestResync(t *testing.T) {
	k := Key{Exporter: netip.MustParseAddr("192.0.2.1")}
	tr := NewTracker(0)
	tr.Observe(k, 10, 5, time.Time{})
	if lost := tr.Resync(k, 20, time.Time{}); lost != 5 {
		t.Errorf("resync lost %d, want 5", lost)
	}
	// Whatever the held datagram carried, the next one is not loss.
	if lost := tr.Observe(k, 90, 1, time.Time{}); lost != 0 {
		t.Errorf("after resync lost %d, want 0", lost)
	}
}

func TestBounded(t *testing.T) {
	tr := NewTracker(3)
	for i := 0; i < 10; i++ {
		tr.Observe(Key{Domain: uint32(i)}, 1, 1, time.Unix(int64(i), 0))
	}
	if n := len(tr.Snapshot()); n != 3 {
		t.Errorf("%d streams kept, want 3", n)
	}
	if tr.Evicted() != 7 {
		t.Errorf("evicted %d, want 7", tr.Evicted())
	}
	if _, ok := tr.Stream(Key{Domain: 9}); !ok {
		t.Error("newest stream was evicted")
	}
}
