package ifwatch_test

import (
	"context"
	"testing"
	"time"

	"github.com/netpulse/netpulse/ifwatch"
)

// span is a time during which a key gets no traffic report: (From, To),
// both excluded, so From is the last report before and To the first one
// after.
type span struct{ from, to time.Time }

func d(month time.Month, day, h, m int) time.Time {
	return time.Date(2026, month, day, h, m, 0, 0, time.UTC)
}

var (
	never   = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	forever = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
)

func silentAt(t time.Time, spans []span) bool {
	for _, s := range spans {
		if t.After(s.from) && t.Before(s.to) {
			return true
		}
	}
	return false
}

// TestSimulatedMonth runs a watcher minute by minute from 31 October to
// 30 November 2026 18:00 UTC, with an injected clock, and checks every
// event, every outage and the downtime totals exactly against values
// worked out by hand (in the comments). Each minute: the sources report
// (Observe), then Tick.
//
// Keys:
//
//	k1  flow; silent 31 Oct 23:00 to 1 Nov 02:00: an outage across the month boundary
//	k2  flow; a 4-minute gap (damped by down_after), a one-minute blip in an
//	    outage (damped by hold_observations), then three short outages in
//	    50 minutes: flapping, one alert
//	k3  flow; silent from 28 Nov 12:00: still open at report time
//	k4  flow; silent 10 Nov 08:00 to 10:00, and the process restarts from
//	    09:00 to 09:20: one outage, not two
//	k5  an exporter on two remote collectors' stats files (fc-a even
//	    minutes, fc-b odd ones); the flow moves from fc-a to fc-b on
//	    15 Nov 12:00: fc-a reports zero from 12:02, fc-b traffic from
//	    12:03. Nothing goes down.
//	k7  never reported: unknown
//	k8  first seen 20 Nov 00:00 on fc-a with zero bps, never traffic
//	k9  first seen 16 Nov 00:00 with traffic: availability counted from then
//	k10 flow and sFlow counters; oper-down 5 Nov 10:00:30 (down at once),
//	    a late flow report at 10:10 that must not count, oper-up 10:20,
//	    traffic again from 10:21
func TestSimulatedMonth(t *testing.T) {
	var (
		k1  = key("192.0.2.1", 1)
		k2  = key("192.0.2.2", 1)
		k3  = key("192.0.2.3", 1)
		k4  = key("192.0.2.4", 1)
		k5  = key("198.51.100.5", 0)
		k7  = key("192.0.2.7", 1)
		k8  = key("198.51.100.8", 0)
		k9  = key("192.0.2.9", 1)
		k10 = key("192.0.2.10", 1)
	)
	flows := map[ifwatch.Key][]span{
		k1: {{d(10, 31, 23, 0), d(11, 1, 2, 0)}},
		k2: {
			{d(11, 3, 12, 10), d(11, 3, 12, 14)},
			{d(11, 4, 6, 0), d(11, 4, 6, 20)}, {d(11, 4, 6, 20), d(11, 4, 6, 40)},
			{d(11, 6, 14, 0), d(11, 6, 14, 10)}, {d(11, 6, 14, 20), d(11, 6, 14, 30)}, {d(11, 6, 14, 40), d(11, 6, 14, 50)},
		},
		k3:  {{d(11, 28, 12, 0), never}},
		k4:  {{d(11, 10, 8, 0), d(11, 10, 10, 0)}},
		k9:  {{forever, d(11, 16, 0, 0)}},
		k10: {{d(11, 5, 10, 0), d(11, 5, 10, 21)}},
	}
	flowKeys := []ifwatch.Key{k1, k2, k3, k4, k9, k10}
	moved := d(11, 15, 12, 0)
	restartFrom, restartTo := d(11, 10, 9, 0), d(11, 10, 9, 20)
	operDown, operUp := d(11, 5, 10, 0), d(11, 5, 10, 20)
	start, now := d(10, 31, 0, 0), d(11, 30, 18, 0)

	cfg := ifwatch.Config{DownAfter: 5 * time.Minute, HoldObservations: 2, FlapCount: 3, FlapWindow: time.Hour}
	h := newHarness(t, cfg, start)
	ctx := context.Background()

	// Checks along the way, after the minute's Tick.
	checks := map[time.Time]func(){
		d(11, 20, 0, 3): func() {
			if s := h.w.Status(k8); s.State != ifwatch.Unknown {
				t.Errorf("k8 3 minutes after first seen with zero bps: %v, want unknown (not down_after yet)", s.State)
			}
		},
		d(11, 10, 10, 5): func() {
			r, err := ifwatch.RecentReport(ctx, h.ledger, h.clk.Now(), 10*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.WentDown) != 0 || len(r.CameUp) != 1 || r.CameUp[0].Key != k4 {
				t.Errorf("recent at 10 Nov 10:05: down %s up %s, want k4 up", outStrings(r.WentDown), outStrings(r.CameUp))
			}
		},
		// k3 went down at 12:00 (Start) but was confirmed at 12:05: a
		// report at 12:14 still lists it, by OpenedAt.
		d(11, 28, 12, 14): func() {
			r, err := ifwatch.RecentReport(ctx, h.ledger, h.clk.Now(), 10*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.WentDown) != 1 || r.WentDown[0].Key != k3 || len(r.CameUp) != 0 {
				t.Errorf("recent at 28 Nov 12:14: down %s up %s, want k3 down", outStrings(r.WentDown), outStrings(r.CameUp))
			}
		},
	}

	stopped := false
	for m := start; !m.After(now); m = m.Add(time.Minute) {
		switch {
		case m.Equal(restartFrom.Add(time.Minute)):
			stopped = true // the process is down: nothing is observed
		case m.Equal(restartTo):
			stopped = false
			h.at(m).restart()
		}
		if stopped {
			continue
		}
		h.at(m)
		var fl, ctr, st []ifwatch.Observation
		for _, k := range flowKeys {
			if !silentAt(m, flows[k]) {
				fl = append(fl, traffic(flowSrc, k, m, 1e6))
			}
		}
		if m.Equal(d(11, 5, 10, 10)) {
			fl = append(fl, traffic(flowSrc, k10, m, 5e5)) // late flow during the oper-down
		}
		switch {
		case m.After(operDown) && m.Before(operUp):
			ctr = append(ctr, oper(sflow, k10, m, ifwatch.OperDown))
		default:
			ctr = append(ctr, oper(sflow, k10, m, ifwatch.OperUp))
		}
		if m.Minute()%2 == 0 { // fc-a's file
			bps := 2e6
			if m.After(moved) {
				bps = 0
			}
			st = append(st, traffic(fcA, k5, m, bps))
			if !m.Before(d(11, 20, 0, 0)) {
				st = append(st, traffic(fcA, k8, m, 0))
			}
		} else { // fc-b's file
			bps := 0.0
			if m.After(moved.Add(2 * time.Minute)) { // from 12:03, after fc-a's first zero
				bps = 2e6
			}
			st = append(st, traffic(fcB, k5, m, bps))
		}
		h.observe(fl...)
		h.observe(ctr...)
		h.observe(st...)
		h.tick()
		if m.Equal(operDown) {
			h.at(m.Add(30 * time.Second))
			ev := h.observe(oper(sflow, k10, h.clk.Now(), ifwatch.OperDown))
			if len(ev) != 1 || ev[0].Kind != ifwatch.EventDown {
				t.Errorf("oper-down: Observe returned %s, want k10 down at once", evStrings(ev))
			}
		}
		if f := checks[m]; f != nil {
			f()
		}
	}

	wantEvents := `` +
		"10-31T23:05:00 192.0.2.1#1 down since 10-31T23:00:00\n" +
		"11-01T02:01:00 192.0.2.1#1 up since 11-01T02:00:00\n" +
		"11-04T06:05:00 192.0.2.2#1 down since 11-04T06:00:00\n" +
		"11-04T06:41:00 192.0.2.2#1 up since 11-04T06:40:00\n" +
		"11-05T10:00:30 192.0.2.10#1 down since 11-05T10:00:30\n" +
		"11-05T10:22:00 192.0.2.10#1 up since 11-05T10:21:00\n" +
		"11-06T14:05:00 192.0.2.2#1 down since 11-06T14:00:00\n" +
		"11-06T14:11:00 192.0.2.2#1 up since 11-06T14:10:00\n" +
		"11-06T14:25:00 192.0.2.2#1 down since 11-06T14:20:00\n" +
		"11-06T14:31:00 192.0.2.2#1 flapping since 11-06T14:30:00\n" +
		"11-06T15:51:00 192.0.2.2#1 stable since 11-06T14:50:00\n" +
		"11-10T08:05:00 192.0.2.4#1 down since 11-10T08:00:00\n" +
		"11-10T10:01:00 192.0.2.4#1 up since 11-10T10:00:00\n" +
		"11-20T00:05:00 198.51.100.8#0 down since 11-20T00:00:00\n" +
		"11-28T12:05:00 192.0.2.3#1 down since 11-28T12:00:00\n"
	if diff := diffLines(evStrings(h.events), wantEvents); diff != "" {
		t.Errorf("events:\n%s", diff)
	}

	wantOutages := `` +
		"192.0.2.1#1 [10-31T23:00:00, 11-01T02:00:00) silence by flow:collector, opened 10-31T23:05:00 closed 11-01T02:01:00\n" +
		"192.0.2.2#1 [11-04T06:00:00, 11-04T06:40:00) silence by flow:collector, opened 11-04T06:05:00 closed 11-04T06:41:00\n" +
		"192.0.2.10#1 [11-05T10:00:30, 11-05T10:21:00) oper-down by counters:sflow, opened 11-05T10:00:30 closed 11-05T10:22:00\n" +
		"192.0.2.2#1 [11-06T14:00:00, 11-06T14:10:00) silence by flow:collector, opened 11-06T14:05:00 closed 11-06T14:11:00\n" +
		"192.0.2.2#1 [11-06T14:20:00, 11-06T14:30:00) silence by flow:collector, opened 11-06T14:25:00 closed 11-06T14:31:00\n" +
		"192.0.2.2#1 [11-06T14:40:00, 11-06T14:50:00) silence by flow:collector, opened 11-06T14:45:00 closed 11-06T14:51:00\n" +
		"192.0.2.4#1 [11-10T08:00:00, 11-10T10:00:00) silence by flow:collector, opened 11-10T08:05:00 closed 11-10T10:01:00\n" +
		"198.51.100.8#0 [11-20T00:00:00, -) zero by statsfile:fc-a, opened 11-20T00:05:00 closed -\n" +
		"192.0.2.3#1 [11-28T12:00:00, -) silence by flow:collector, opened 11-28T12:05:00 closed -\n"
	if diff := diffLines(outStrings(h.outages()), wantOutages); diff != "" {
		t.Errorf("ledger:\n%s", diff)
	}

	// States at the end.
	for k, want := range map[ifwatch.Key]ifwatch.State{
		k1: ifwatch.Up, k2: ifwatch.Up, k3: ifwatch.Down, k4: ifwatch.Up, k5: ifwatch.Up,
		k7: ifwatch.Unknown, k8: ifwatch.Down, k9: ifwatch.Up, k10: ifwatch.Up,
	} {
		if got := h.w.Status(k); got.State != want || got.Flapping {
			t.Errorf("%s: %v (flapping %v), want %v", k, got.State, got.Flapping, want)
		}
	}
	if s := h.w.Status(k5); s.Source != fcB {
		t.Errorf("k5's traffic seen last by %v, want fc-b", s.Source)
	}
	if st := h.w.Stats(); st.Keys != 8 || st.Up != 6 || st.Down != 2 {
		t.Errorf("stats: %d keys, %d up, %d down; want 8 (k7 was never reported), 6, 2", st.Keys, st.Up, st.Down)
	}

	const hr = time.Hour
	type row struct {
		key      ifwatch.Key
		from     time.Time
		downtime time.Duration
		outages  int
		open     bool
	}
	for _, tc := range []struct {
		name    string
		period  ifwatch.Period
		rows    []row
		total   time.Duration
		counted time.Duration
	}{
		{
			// Counted from 1 Nov 00:00 to now, 30 Nov 18:00: 714 h.
			name: "November", period: ifwatch.Month(2026, time.November, time.UTC),
			rows: []row{
				{k1, d(11, 1, 0, 0), 2 * hr, 1, false},           // 00:00-02:00, the rest in October
				{k2, d(11, 1, 0, 0), 70 * time.Minute, 4, false}, // 40 min on 4 Nov, 3 x 10 min on 6 Nov
				{k3, d(11, 1, 0, 0), 54 * hr, 1, true},           // 28 Nov 12:00 to now
				{k4, d(11, 1, 0, 0), 2 * hr, 1, false},           // one outage across the restart
				{k10, d(11, 1, 0, 0), 20*time.Minute + 30*time.Second, 1, false},
				{k9, d(11, 16, 0, 0), 0, 0, false},       // counted from 16 Nov: 354 h
				{k5, d(11, 1, 0, 0), 0, 0, false},        // the moved flow
				{k8, d(11, 20, 0, 0), 258 * hr, 1, true}, // 20 Nov 00:00 to now, all of it
			},
			// 2 h + 70 min + 54 h + 2 h + 20 min 30 s + 258 h
			total: 317*hr + 30*time.Minute + 30*time.Second,
			// six keys x 714 h + 354 h + 258 h
			counted: 6*714*hr + 354*hr + 258*hr,
		},
		{
			// Counted from 31 Oct 00:00 (first seen) to 1 Nov: 24 h.
			name: "October", period: ifwatch.Month(2026, time.October, time.UTC),
			rows: []row{
				{k1, d(10, 31, 0, 0), 1 * hr, 1, false}, // 23:00-24:00
				{k2, d(10, 31, 0, 0), 0, 0, false},
				{k3, d(10, 31, 0, 0), 0, 0, false},
				{k4, d(10, 31, 0, 0), 0, 0, false},
				{k10, d(10, 31, 0, 0), 0, 0, false},
				{k5, d(10, 31, 0, 0), 0, 0, false},
			},
			total:   1 * hr,
			counted: 6 * 24 * hr,
		},
		{
			// 31 Oct 18:00 to 30 Nov 18:00: 720 h.
			name: "rolling 30 days", period: ifwatch.Last30Days(now),
			rows: []row{
				{k1, d(10, 31, 18, 0), 3 * hr, 1, false}, // the whole outage
				{k2, d(10, 31, 18, 0), 70 * time.Minute, 4, false},
				{k3, d(10, 31, 18, 0), 54 * hr, 1, true},
				{k4, d(10, 31, 18, 0), 2 * hr, 1, false},
				{k10, d(10, 31, 18, 0), 20*time.Minute + 30*time.Second, 1, false},
				{k9, d(11, 16, 0, 0), 0, 0, false},
				{k5, d(10, 31, 18, 0), 0, 0, false},
				{k8, d(11, 20, 0, 0), 258 * hr, 1, true},
			},
			total:   318*hr + 30*time.Minute + 30*time.Second,
			counted: 6*720*hr + 354*hr + 258*hr,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ifwatch.DowntimeReport(ctx, h.ledger, tc.period, now)
			if err != nil {
				t.Fatal(err)
			}
			got := map[ifwatch.Key]ifwatch.KeyDowntime{}
			for _, kd := range r.Keys {
				got[kd.Key] = kd
			}
			if len(got) != len(tc.rows) {
				t.Errorf("%d keys, want %d", len(got), len(tc.rows))
			}
			var outages, open, down int
			for _, w := range tc.rows {
				g, ok := got[w.key]
				if !ok {
					t.Errorf("%s missing", w.key)
					continue
				}
				to := earlier(tc.period.To, now)
				if !g.From.Equal(w.from) || !g.To.Equal(to) || g.Downtime != w.downtime || g.Outages != w.outages || g.Open != w.open {
					t.Errorf("%s: from %s to %s downtime %v outages %d open %v; want from %s to %s downtime %v outages %d open %v",
						w.key, ts(g.From), ts(g.To), g.Downtime, g.Outages, g.Open, ts(w.from), ts(to), w.downtime, w.outages, w.open)
				}
				if wa := 1 - float64(w.downtime)/float64(to.Sub(w.from)); g.Availability() != wa {
					t.Errorf("%s: availability %v, want %v", w.key, g.Availability(), wa)
				}
				outages += w.outages
				if w.open {
					open++
				}
				if w.downtime > 0 {
					down++
				}
			}
			tot := r.Total
			if tot.Downtime != tc.total || tot.Counted != tc.counted || tot.Keys != len(tc.rows) ||
				tot.Outages != outages || tot.Open != open || tot.KeysDown != down {
				t.Errorf("total: %+v; want downtime %v counted %v keys %d outages %d open %d keys down %d",
					tot, tc.total, tc.counted, len(tc.rows), outages, open, down)
			}
			if wa := 1 - float64(tc.total)/float64(tc.counted); tot.Availability() != wa {
				t.Errorf("total availability %v, want %v", tot.Availability(), wa)
			}
		})
	}
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
