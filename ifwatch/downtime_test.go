package ifwatch_test

import (
	"testing"
	"time"

	"github.com/netpulse/netpulse/ifwatch"
)

func TestDowntime(t *testing.T) {
	utc := func(mo time.Month, day, h, m int) time.Time { return time.Date(2026, mo, day, h, m, 0, 0, time.UTC) }
	k1, k2, k3 := key("192.0.2.1", 1), key("192.0.2.2", 1), key("2001:db8::3", 1)
	nov := ifwatch.Month(2026, time.November, nil)
	out := func(k ifwatch.Key, start, end time.Time) ifwatch.Outage {
		return ifwatch.Outage{Key: k, Start: start, End: end}
	}
	type row struct {
		key      ifwatch.Key
		from, to time.Time
		downtime time.Duration
		outages  int
		open     bool
	}
	for _, tc := range []struct {
		name    string
		period  ifwatch.Period
		now     time.Time
		keys    []ifwatch.KnownKey
		outages []ifwatch.Outage
		want    []row
	}{
		{
			name:   "clipped to the period; outages outside count nothing",
			period: nov, now: utc(12, 15, 0, 0),
			keys: []ifwatch.KnownKey{{Key: k1, FirstSeen: utc(1, 1, 0, 0)}},
			outages: []ifwatch.Outage{
				out(k1, utc(10, 31, 22, 0), utc(11, 1, 1, 30)), // 1h30 in November
				out(k1, utc(11, 30, 23, 0), utc(12, 1, 0, 15)), // 1h
				out(k1, utc(10, 1, 0, 0), utc(10, 2, 0, 0)),    // October only
				out(k1, utc(12, 1, 0, 0), utc(12, 2, 0, 0)),    // December only
			},
			want: []row{{k1, utc(11, 1, 0, 0), utc(12, 1, 0, 0), 150 * time.Minute, 2, false}},
		},
		{
			name:   "an open outage counts up to now, and the period ends at now",
			period: nov, now: utc(11, 20, 12, 0),
			keys:    []ifwatch.KnownKey{{Key: k1, FirstSeen: utc(1, 1, 0, 0)}},
			outages: []ifwatch.Outage{out(k1, utc(11, 20, 10, 0), time.Time{})},
			want:    []row{{k1, utc(11, 1, 0, 0), utc(11, 20, 12, 0), 2 * time.Hour, 1, true}},
		},
		{
			name:   "an open outage that began before the period counts from its start",
			period: nov, now: utc(12, 3, 0, 0),
			keys:    []ifwatch.KnownKey{{Key: k1, FirstSeen: utc(1, 1, 0, 0)}},
			outages: []ifwatch.Outage{out(k1, utc(10, 1, 0, 0), time.Time{})},
			want:    []row{{k1, utc(11, 1, 0, 0), utc(12, 1, 0, 0), 30 * 24 * time.Hour, 1, true}},
		},
		{
			name:   "overlapping outages of one key count once",
			period: nov, now: utc(12, 3, 0, 0),
			keys: []ifwatch.KnownKey{{Key: k1, FirstSeen: utc(1, 1, 0, 0)}},
			outages: []ifwatch.Outage{
				out(k1, utc(11, 5, 10, 0), utc(11, 5, 12, 0)),
				out(k1, utc(11, 5, 11, 0), utc(11, 5, 13, 0)),
				out(k1, utc(11, 5, 11, 30), utc(11, 5, 11, 45)),
				out(k1, utc(11, 5, 13, 0), utc(11, 5, 14, 0)), // touches: 10:00-14:00 in all
				out(k1, utc(11, 6, 0, 0), utc(11, 6, 0, 0)),   // empty: not counted
			},
			want: []row{{k1, utc(11, 1, 0, 0), utc(12, 1, 0, 0), 4 * time.Hour, 4, false}},
		},
		{
			name:   "a key first seen in the period is counted from then; one seen after it is left out",
			period: nov, now: utc(12, 3, 0, 0),
			keys: []ifwatch.KnownKey{
				{Key: k1, FirstSeen: utc(11, 16, 0, 0)},
				{Key: k2, FirstSeen: utc(12, 1, 0, 0)},
			},
			want: []row{{k1, utc(11, 16, 0, 0), utc(12, 1, 0, 0), 0, 0, false}},
		},
		{
			name:   "a key with outages but not in keys counts from its first outage; keys come out sorted",
			period: nov, now: utc(12, 3, 0, 0),
			keys: []ifwatch.KnownKey{{Key: k3, FirstSeen: utc(1, 1, 0, 0)}, {Key: k1, FirstSeen: utc(1, 1, 0, 0)}},
			outages: []ifwatch.Outage{
				out(k2, utc(11, 10, 0, 0), utc(11, 10, 1, 0)),
				out(k2, utc(11, 9, 0, 0), utc(11, 9, 1, 0)), // out of order
			},
			want: []row{
				{k1, utc(11, 1, 0, 0), utc(12, 1, 0, 0), 0, 0, false},
				{k2, utc(11, 9, 0, 0), utc(12, 1, 0, 0), 2 * time.Hour, 2, false},
				{k3, utc(11, 1, 0, 0), utc(12, 1, 0, 0), 0, 0, false},
			},
		},
		{
			name:   "a month to come counts nothing",
			period: ifwatch.Month(2027, time.January, nil), now: utc(12, 3, 0, 0),
			keys: []ifwatch.KnownKey{{Key: k1, FirstSeen: utc(1, 1, 0, 0)}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, tot := ifwatch.Downtime(tc.period, tc.now, tc.keys, tc.outages)
			if len(got) != len(tc.want) {
				t.Fatalf("%d rows %+v, want %d", len(got), got, len(tc.want))
			}
			var sum time.Duration
			for i, w := range tc.want {
				g := got[i]
				if g.Key != w.key || !g.From.Equal(w.from) || !g.To.Equal(w.to) || g.Downtime != w.downtime || g.Outages != w.outages || g.Open != w.open {
					t.Errorf("row %d: %s %s-%s %v %d %v; want %s %s-%s %v %d %v", i, g.Key, ts(g.From), ts(g.To), g.Downtime, g.Outages, g.Open,
						w.key, ts(w.from), ts(w.to), w.downtime, w.outages, w.open)
				}
				sum += w.downtime
			}
			if tot.Downtime != sum || tot.Keys != len(tc.want) {
				t.Errorf("totals %+v, want downtime %v over %d keys", tot, sum, len(tc.want))
			}
		})
	}
}

// TestMonthBoundaryInZone splits an outage at a local midnight, in a
// zone whose October has a daylight saving change (25 Oct 2026, 745
// hours).
func TestMonthBoundaryInZone(t *testing.T) {
	ams, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Skipf("no tzdata: %v", err)
	}
	k := key("192.0.2.1", 1)
	oct, nov := ifwatch.Month(2026, time.October, ams), ifwatch.Month(2026, time.November, ams)
	if got := oct.To.Sub(oct.From); got != 745*time.Hour {
		t.Errorf("October 2026 in Amsterdam lasts %v, want 745h", got)
	}
	if !oct.To.Equal(nov.From) || oct.Name != "2026-10" {
		t.Errorf("months %+v and %+v do not meet", oct, nov)
	}
	// 31 Oct 22:30 CET (21:30 UTC) to 1 Nov 00:45 CET (31 Oct 23:45
	// UTC): 1h30 in October and 45 min in November by Amsterdam's
	// calendar; by UTC's it is all October.
	o := ifwatch.Outage{Key: k, Start: time.Date(2026, 10, 31, 22, 30, 0, 0, ams), End: time.Date(2026, 11, 1, 0, 45, 0, 0, ams)}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	keys := []ifwatch.KnownKey{{Key: k, FirstSeen: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
	a, _ := ifwatch.Downtime(oct, now, keys, []ifwatch.Outage{o})
	b, _ := ifwatch.Downtime(nov, now, keys, []ifwatch.Outage{o})
	if a[0].Downtime != 90*time.Minute || b[0].Downtime != 45*time.Minute || a[0].Downtime+b[0].Downtime != o.End.Sub(o.Start) {
		t.Errorf("split %v + %v, want 1h30m0s + 45m0s", a[0].Downtime, b[0].Downtime)
	}
	if got := a[0].Counted(); got != 745*time.Hour {
		t.Errorf("October counted over %v, want 745h", got)
	}
	utcOct, _ := ifwatch.Downtime(ifwatch.Month(2026, time.October, time.UTC), now, keys, []ifwatch.Outage{o})
	if utcOct[0].Downtime != o.End.Sub(o.Start) {
		t.Errorf("by UTC's calendar October has %v, want it all", utcOct[0].Downtime)
	}
	if p := ifwatch.MonthOf(o.End, ams); p.Name != "2026-11" {
		t.Errorf("MonthOf = %+v", p)
	}
	if p := ifwatch.Last30Days(now); p.Name != "last 30d" || p.To.Sub(p.From) != 720*time.Hour {
		t.Errorf("Last30Days = %+v", p)
	}
}
