package ifwatch_test

import (
	"context"
	"errors"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netpulse/netpulse/ifwatch"
)

var t0 = time.Date(2026, 11, 18, 10, 0, 0, 0, time.UTC)

func minute(m float64) time.Time { return t0.Add(time.Duration(m * float64(time.Minute))) }

var kA = key("192.0.2.1", 7)

// step is one moment of a scenario: the clock is set to at, the
// observations are given, then Tick runs.
type step struct {
	at  float64 // minutes after t0
	obs []ifwatch.Observation
}

// run plays steps: at each step the clock is set to its time, its
// observations are given and Tick runs; Tick also runs at every whole
// minute, until the last step or until, whichever is later.
func run(t *testing.T, cfg ifwatch.Config, until float64, steps ...step) *harness {
	t.Helper()
	h := newHarness(t, cfg, t0)
	i := 0
	for m := 0.0; m <= until || i < len(steps); m++ {
		for i < len(steps) && steps[i].at <= m {
			h.at(minute(steps[i].at))
			h.observe(steps[i].obs...)
			h.tick()
			i++
		}
		h.at(minute(m)).tick()
	}
	return h
}

func tr(src ifwatch.Source, m float64, bps float64) ifwatch.Observation {
	return traffic(src, kA, minute(m), bps)
}

func every(from, to, stepMin float64, f func(m float64) ifwatch.Observation) []step {
	var s []step
	for m := from; m <= to; m += stepMin {
		s = append(s, step{at: m, obs: []ifwatch.Observation{f(m)}})
	}
	return s
}

func cat(ss ...[]step) []step {
	var out []step
	for _, s := range ss {
		out = append(out, s...)
	}
	// stable sort by time
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].at < out[j-1].at; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func TestMergeRules(t *testing.T) {
	cfg := ifwatch.Config{DownAfter: 5 * time.Minute, HoldObservations: 2}
	for _, tc := range []struct {
		name    string
		cfg     *ifwatch.Config
		until   float64
		steps   []step
		events  string
		outages string
		check   func(*testing.T, *harness)
	}{
		{
			name:  "silence: down down_after after the last traffic, dated from it",
			until: 20,
			steps: every(0, 3, 1, func(m float64) ifwatch.Observation { return tr(flowSrc, m, 1e6) }),
			// Up from minute 1 (second report), silent after 3, down at 8.
			events:  "11-18T10:08:00 192.0.2.1#7 down since 11-18T10:03:00\n",
			outages: "192.0.2.1#7 [11-18T10:03:00, -) silence by flow:collector, opened 11-18T10:08:00 closed -\n",
		},
		{
			name:  "zeros do not take a key down sooner than silence; the cause is zero",
			until: 20,
			steps: cat(
				every(0, 4, 2, func(m float64) ifwatch.Observation { return tr(fcA, m, 1e6) }),
				every(6, 20, 2, func(m float64) ifwatch.Observation { return tr(fcA, m, 0) })),
			events:  "11-18T10:09:00 192.0.2.1#7 down since 11-18T10:04:00\n",
			outages: "192.0.2.1#7 [11-18T10:04:00, -) zero by statsfile:fc-a, opened 11-18T10:09:00 closed -\n",
		},
		{
			name:  "moved flow: fc-a goes to zero before fc-b reports traffic; nothing is down",
			until: 30,
			steps: cat(
				every(0, 10, 2, func(m float64) ifwatch.Observation { return tr(fcA, m, 1e6) }),
				every(12, 30, 2, func(m float64) ifwatch.Observation { return tr(fcA, m, 0) }),
				every(1, 11, 2, func(m float64) ifwatch.Observation { return tr(fcB, m, 0) }),
				every(13, 29, 2, func(m float64) ifwatch.Observation { return tr(fcB, m, 3e6) })),
		},
		{
			name:  "moved flow, new collector first: its traffic, then the old one's zero",
			until: 30,
			steps: cat(
				every(0, 10, 2, func(m float64) ifwatch.Observation { return tr(fcA, m, 1e6) }),
				every(10.5, 30, 2, func(m float64) ifwatch.Observation { return tr(fcB, m, 3e6) }),
				every(12, 30, 2, func(m float64) ifwatch.Observation { return tr(fcA, m, 0) })),
		},
		{
			name:  "moved flow, then the new collector goes silent: down, blamed on it",
			until: 30,
			steps: cat(
				every(0, 10, 2, func(m float64) ifwatch.Observation { return tr(fcA, m, 1e6) }),
				every(12, 30, 2, func(m float64) ifwatch.Observation { return tr(fcA, m, 0) }),
				every(11, 15, 2, func(m float64) ifwatch.Observation { return tr(fcB, m, 3e6) })),
			events:  "11-18T10:20:00 192.0.2.1#7 down since 11-18T10:15:00\n",
			outages: "192.0.2.1#7 [11-18T10:15:00, -) silence by statsfile:fc-b, opened 11-18T10:20:00 closed -\n",
		},
		{
			name:  "a gap shorter than down_after is not an outage",
			until: 20,
			steps: cat(
				every(0, 5, 1, func(m float64) ifwatch.Observation { return tr(flowSrc, m, 1e6) }),
				every(9.5, 20, 1, func(m float64) ifwatch.Observation { return tr(flowSrc, m, 1e6) })),
		},
		{
			name:  "one report with traffic in an outage does not end it (hold_observations 2)",
			until: 40,
			steps: cat(
				every(0, 2, 1, func(m float64) ifwatch.Observation { return tr(flowSrc, m, 1e6) }),
				[]step{{at: 15, obs: []ifwatch.Observation{tr(flowSrc, 15, 1e6)}}},
				every(30, 40, 1, func(m float64) ifwatch.Observation { return tr(flowSrc, m, 1e6) })),
			events: "11-18T10:07:00 192.0.2.1#7 down since 11-18T10:02:00\n" +
				"11-18T10:31:00 192.0.2.1#7 up since 11-18T10:30:00\n",
			outages: "192.0.2.1#7 [11-18T10:02:00, 11-18T10:30:00) silence by flow:collector, opened 11-18T10:07:00 closed 11-18T10:31:00\n",
		},
		{
			name:  "hold: a silence must last down_after + hold; an outage shorter than that is damped",
			cfg:   &ifwatch.Config{DownAfter: 5 * time.Minute, Hold: 3 * time.Minute, HoldObservations: 1},
			until: 40,
			steps: cat(
				every(0, 2, 1, func(m float64) ifwatch.Observation { return tr(flowSrc, m, 1e6) }),
				every(9, 12, 1, func(m float64) ifwatch.Observation { return tr(flowSrc, m, 1e6) }), // back at 9 < 2+5+3
				every(30, 40, 1, func(m float64) ifwatch.Observation { return tr(flowSrc, m, 1e6) })),
			// Silent after 12: raw down at 17, confirmed at 20. Traffic at
			// 30: up confirmed at 33 (hold 3 min, 1 observation).
			events: "11-18T10:20:00 192.0.2.1#7 down since 11-18T10:12:00\n" +
				"11-18T10:33:00 192.0.2.1#7 up since 11-18T10:30:00\n",
			outages: "192.0.2.1#7 [11-18T10:12:00, 11-18T10:30:00) silence by flow:collector, opened 11-18T10:20:00 closed 11-18T10:33:00\n",
		},
		{
			name:    "a key seen only with zeros is down from when it was first seen",
			until:   10,
			steps:   every(0, 10, 2, func(m float64) ifwatch.Observation { return tr(fcA, m, 0) }),
			events:  "11-18T10:05:00 192.0.2.1#7 down since 11-18T10:00:00\n",
			outages: "192.0.2.1#7 [11-18T10:00:00, -) zero by statsfile:fc-a, opened 11-18T10:05:00 closed -\n",
		},
		{
			name:    "reports without traffic figures make a key known, not up",
			until:   10,
			steps:   every(0, 10, 1, func(m float64) ifwatch.Observation { return oper(sflow, kA, minute(m), ifwatch.OperUp) }),
			events:  "11-18T10:05:00 192.0.2.1#7 down since 11-18T10:00:00\n",
			outages: "192.0.2.1#7 [11-18T10:00:00, -) silence by counters:sflow, opened 11-18T10:05:00 closed -\n",
		},
		{
			name:  "oper-down: down at once; traffic reported during it does not count",
			until: 30,
			steps: cat(
				// Flow reports go on during the oper-down (late or stale
				// flows): they must not count.
				every(0, 30, 1, func(m float64) ifwatch.Observation { return tr(flowSrc, m, 1e6) }),
				[]step{{at: 10.5, obs: []ifwatch.Observation{oper(sflow, kA, minute(10.5), ifwatch.OperDown)}}},
				every(11.5, 17.5, 1, func(m float64) ifwatch.Observation { return oper(sflow, kA, minute(m), ifwatch.OperDown) }),
				[]step{{at: 18.5, obs: []ifwatch.Observation{oper(sflow, kA, minute(18.5), ifwatch.OperUp)}}}),
			// Up again from the first traffic after the oper-up (19),
			// confirmed by the second (20).
			events: "11-18T10:10:30 192.0.2.1#7 down since 11-18T10:10:30\n" +
				"11-18T10:20:00 192.0.2.1#7 up since 11-18T10:19:00\n",
			outages: "192.0.2.1#7 [11-18T10:10:30, 11-18T10:19:00) oper-down by counters:sflow, opened 11-18T10:10:30 closed 11-18T10:20:00\n",
			check: func(t *testing.T, h *harness) {
				if n := h.w.Stats().IgnoredTraffic; n != 8 {
					t.Errorf("%d traffic reports ignored, want 8 (minutes 11 to 18)", n)
				}
			},
		},
		{
			name:  "a stale oper-down (the counters source stopped) lets traffic count again after down_after",
			until: 30,
			steps: cat(
				every(0, 30, 1, func(m float64) ifwatch.Observation { return tr(flowSrc, m, 1e6) }),
				[]step{{at: 10.5, obs: []ifwatch.Observation{oper(sflow, kA, minute(10.5), ifwatch.OperDown)}}}),
			// The oper-down is in force until 15:30; the traffic at 16
			// and 17 brings the key up.
			events: "11-18T10:10:30 192.0.2.1#7 down since 11-18T10:10:30\n" +
				"11-18T10:17:00 192.0.2.1#7 up since 11-18T10:16:00\n",
			outages: "192.0.2.1#7 [11-18T10:10:30, 11-18T10:16:00) oper-down by counters:sflow, opened 11-18T10:10:30 closed 11-18T10:17:00\n",
		},
		{
			name:  "observations from the future are taken as now, out of order ones do not move time back",
			until: 12,
			steps: []step{
				{at: 0, obs: []ifwatch.Observation{tr(flowSrc, 30, 1e6)}}, // future: taken as 0
				{at: 1, obs: []ifwatch.Observation{tr(flowSrc, 1, 1e6), tr(flowSrc, 0.5, 1e6)}},
			},
			events:  "11-18T10:06:00 192.0.2.1#7 down since 11-18T10:01:00\n",
			outages: "192.0.2.1#7 [11-18T10:01:00, -) silence by flow:collector, opened 11-18T10:06:00 closed -\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			if tc.cfg != nil {
				c = *tc.cfg
			}
			h := run(t, c, tc.until, tc.steps...)
			if diff := diffLines(evStrings(h.events), tc.events); diff != "" {
				t.Errorf("events:\n%s", diff)
			}
			if diff := diffLines(outStrings(h.outages()), tc.outages); diff != "" {
				t.Errorf("outages:\n%s", diff)
			}
			if tc.check != nil {
				tc.check(t, h)
			}
		})
	}
}

func TestUnknown(t *testing.T) {
	h := newHarness(t, ifwatch.Config{}, t0)
	if s := h.w.Status(kA); s.State != ifwatch.Unknown || !s.Since.IsZero() || s.Outage != nil {
		t.Errorf("a key never seen: %+v, want unknown", s)
	}
	h.observe(tr(fcA, 0, 0))
	h.at(minute(4)).tick()
	if s := h.w.Status(kA); s.State != ifwatch.Unknown {
		t.Errorf("zeros for less than down_after: %v, want unknown", s.State)
	}
	if got := h.w.Statuses(); len(got) != 1 || got[0].Key != kA {
		t.Errorf("Statuses = %+v, want the one key", got)
	}
	// A new key's first confirmed state is up: no event.
	k := key("2001:db8::1", 3)
	h.at(minute(4)).observe(traffic(flowSrc, k, minute(4), 1), traffic(flowSrc, k, minute(4), 1))
	if s := h.w.Status(k); s.State != ifwatch.Up || !s.Since.Equal(minute(4)) || s.Source != flowSrc || !s.LastTraffic.Equal(minute(4)) {
		t.Errorf("new key with traffic: %+v", s)
	}
	if len(h.events) != 0 {
		t.Errorf("events %s, want none", evStrings(h.events))
	}
}

func TestFlapping(t *testing.T) {
	// Down 5 minutes after each last report, up at the second report:
	// up for 2 minutes, silent for 6, repeated.
	cfg := ifwatch.Config{DownAfter: 5 * time.Minute, HoldObservations: 2, FlapCount: 3, FlapWindow: 30 * time.Minute}
	var steps []step
	for c := 0.0; c < 8*8; c += 8 {
		steps = append(steps, step{at: c, obs: []ifwatch.Observation{tr(flowSrc, c, 1)}},
			step{at: c + 1, obs: []ifwatch.Observation{tr(flowSrc, c+1, 1)}})
	}
	steps = append(steps, every(64, 110, 1, func(m float64) ifwatch.Observation { return tr(flowSrc, m, 1) })...)
	h := run(t, cfg, 110, steps...)
	// Cycle c: up at c+1 (first cycle: no event, first confirmation),
	// down at c+6 since c+1.
	want := "" +
		"11-18T10:06:00 192.0.2.1#7 down since 11-18T10:01:00\n" +
		"11-18T10:09:00 192.0.2.1#7 up since 11-18T10:08:00\n" +
		"11-18T10:14:00 192.0.2.1#7 down since 11-18T10:09:00\n" +
		"11-18T10:17:00 192.0.2.1#7 flapping since 11-18T10:16:00\n" +
		// steady from 64: the last change is up at 65; stable 30 min later
		"11-18T11:35:00 192.0.2.1#7 stable since 11-18T11:04:00\n"
	if diff := diffLines(evStrings(h.events), want); diff != "" {
		t.Errorf("events:\n%s", diff)
	}
	// The ledger keeps every outage: 8 of them, 2 minutes each.
	os := h.outages()
	if len(os) != 8 {
		t.Fatalf("%d outages, want 8:\n%s", len(os), outStrings(os))
	}
	for _, o := range os {
		if o.Duration(time.Time{}) != 7*time.Minute {
			t.Errorf("outage %s: %v, want 7m (last traffic at c+1, back at c+8)", outString(o), o.Duration(time.Time{}))
		}
	}
	if s := h.w.Status(kA); s.Flapping || s.State != ifwatch.Up {
		t.Errorf("status at the end: %+v", s)
	}
}

func TestSourceFailing(t *testing.T) {
	h := newHarness(t, ifwatch.Config{DownAfter: 5 * time.Minute, HoldObservations: 1}, t0)
	h.observe(tr(fcA, 0, 1e6))
	h.w.SetSourceFailing(fcA, true)
	for m := 1.0; m <= 30; m++ {
		h.at(minute(m)).tick()
	}
	if s := h.w.Status(kA); s.State != ifwatch.Up {
		t.Errorf("while the only source is failing: %v, want up (held)", s.State)
	}
	// Back, and reporting zero: down, from its last traffic.
	h.w.SetSourceFailing(fcA, false)
	h.at(minute(31)).observe(tr(fcA, 31, 0))
	h.tick()
	want := "192.0.2.1#7 [11-18T10:00:00, -) zero by statsfile:fc-a, opened 11-18T10:31:00 closed -\n"
	if diff := diffLines(outStrings(h.outages()), want); diff != "" {
		t.Errorf("outages:\n%s", diff)
	}
}

func TestRestart(t *testing.T) {
	cfg := ifwatch.Config{DownAfter: 5 * time.Minute, HoldObservations: 2}
	kB := key("192.0.2.2", 1)
	h := newHarness(t, cfg, t0)
	h.observe(tr(flowSrc, 0, 1), traffic(flowSrc, kB, t0, 1))
	h.at(minute(1)).observe(tr(flowSrc, 1, 1), traffic(flowSrc, kB, minute(1), 1))
	h.tick()
	for m := 2.0; m <= 10; m++ {
		h.at(minute(m)).observe(traffic(flowSrc, kB, minute(m), 1))
		h.tick()
	}
	// kA down since 1, confirmed at 6.
	h.at(minute(20)).restart()
	if s := h.w.Status(kA); s.State != ifwatch.Down || !s.Since.Equal(minute(1)) || s.Outage == nil {
		t.Fatalf("after the restart kA is %+v, want down since 10:01 with its outage", s)
	}
	if s := h.w.Status(kB); s.State != ifwatch.Unknown {
		t.Errorf("after the restart kB is %v, want unknown until reported", s.State)
	}
	if ev := h.tick(); len(ev) != 0 {
		t.Errorf("restart raised %s", evStrings(ev))
	}
	for m := 21.0; m <= 25; m++ {
		h.at(minute(m)).observe(tr(flowSrc, m, 1), traffic(flowSrc, kB, minute(m), 1))
		h.tick()
	}
	want := "" +
		"11-18T10:06:00 192.0.2.1#7 down since 11-18T10:01:00\n" +
		"11-18T10:22:00 192.0.2.1#7 up since 11-18T10:21:00\n"
	if diff := diffLines(evStrings(h.events), want); diff != "" {
		t.Errorf("events:\n%s", diff)
	}
	wantO := "192.0.2.1#7 [11-18T10:01:00, 11-18T10:21:00) silence by flow:collector, opened 11-18T10:06:00 closed 11-18T10:22:00\n"
	if diff := diffLines(outStrings(h.outages()), wantO); diff != "" {
		t.Errorf("outages:\n%s", diff)
	}
	// First-seen times stay the first process's.
	keys, _ := h.ledger.Keys(context.Background())
	if len(keys) != 2 || !keys[0].FirstSeen.Equal(t0) || !keys[1].FirstSeen.Equal(t0) {
		t.Errorf("keys %+v, want both first seen at %s", keys, t0)
	}
}

func TestRestartStillSilent(t *testing.T) {
	// A key down before the restart and silent after it stays one
	// outage, open, from its original start.
	h := newHarness(t, ifwatch.Config{}, t0)
	h.observe(tr(flowSrc, 0, 1))
	h.at(minute(10)).tick()
	h.at(minute(30)).restart()
	for m := 30.0; m <= 60; m++ {
		h.at(minute(m)).observe(tr(fcA, m, 0))
		h.tick()
	}
	want := "192.0.2.1#7 [11-18T10:00:00, -) silence by flow:collector, opened 11-18T10:10:00 closed -\n"
	if diff := diffLines(outStrings(h.outages()), want); diff != "" {
		t.Errorf("outages:\n%s", diff)
	}
}

func TestDropped(t *testing.T) {
	h := newHarness(t, ifwatch.Config{MaxKeys: 2}, t0)
	h.observe(
		ifwatch.Observation{Source: flowSrc, Traffic: 1},                                  // no exporter
		ifwatch.Observation{Source: flowSrc, Key: kA, Time: time.Unix(-1, 0), Traffic: 1}, // before 1970
		traffic(flowSrc, key("192.0.2.1", 1), t0, 1),
		traffic(flowSrc, key("192.0.2.1", 2), t0, math.NaN()),
		traffic(flowSrc, key("192.0.2.1", 3), t0, 1), // a third key: over max_keys
		traffic(flowSrc, key("192.0.2.1", 1), time.Time{}, math.Inf(1)),
	)
	s := h.w.Stats()
	if s.DroppedInvalid != 2 || s.DroppedMaxKeys != 1 || s.Observations != 3 || s.Keys != 2 {
		t.Errorf("stats %+v: want 2 invalid, 1 over max_keys, 3 taken, 2 keys", s)
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  ifwatch.Config
		want string
	}{
		{ifwatch.Config{DownAfter: -1}, "down_after"},
		{ifwatch.Config{Hold: -time.Second}, "hold"},
		{ifwatch.Config{HoldObservations: -1}, "hold_observations"},
		{ifwatch.Config{FlapCount: -1}, "flap_count"},
		{ifwatch.Config{MaxKeys: -1}, "max_keys"},
		{ifwatch.Config{TimeZone: "Mars/Olympus"}, "time_zone"},
	} {
		_, err := ifwatch.New(tc.cfg, ifwatch.Deps{Ledger: ifwatch.NewMemLedger()})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
	if _, err := ifwatch.New(ifwatch.Config{}, ifwatch.Deps{}); err == nil {
		t.Error("New without a ledger: no error")
	}
	w, err := ifwatch.New(ifwatch.Config{TimeZone: "Europe/Amsterdam"}, ifwatch.Deps{Ledger: ifwatch.NewMemLedger()})
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Config(); got.DownAfter != 5*time.Minute || got.HoldObservations != 2 || got.MaxKeys != 1_000_000 {
		t.Errorf("defaults not filled: %+v", got)
	}
	if _, err := w.Observe(context.Background()); !errors.Is(err, ifwatch.ErrNotRestored) {
		t.Errorf("Observe before Restore: %v", err)
	}
	if _, err := w.Tick(context.Background()); !errors.Is(err, ifwatch.ErrNotRestored) {
		t.Errorf("Tick before Restore: %v", err)
	}
}

// flakyLedger fails the first n writes.
type flakyLedger struct {
	ifwatch.Ledger
	fail int
}

var errDB = errors.New("database is down")

func (f *flakyLedger) Open(ctx context.Context, o ifwatch.Outage) (ifwatch.Outage, error) {
	if f.fail > 0 {
		f.fail--
		return ifwatch.Outage{}, errDB
	}
	return f.Ledger.Open(ctx, o)
}

func (f *flakyLedger) Close(ctx context.Context, id ifwatch.OutageID, end, closed time.Time) error {
	if f.fail > 0 {
		f.fail--
		return errDB
	}
	return f.Ledger.Close(ctx, id, end, closed)
}

func (f *flakyLedger) AddKeys(ctx context.Context, keys []ifwatch.KnownKey) error {
	if f.fail > 0 {
		f.fail--
		return errDB
	}
	return f.Ledger.AddKeys(ctx, keys)
}

func TestLedgerErrorsAreRetried(t *testing.T) {
	clk := &clock{t: t0}
	fl := &flakyLedger{Ledger: ifwatch.NewMemLedger()}
	w, err := ifwatch.New(ifwatch.Config{HoldObservations: 1}, ifwatch.Deps{Ledger: fl, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := w.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Observe(ctx, tr(flowSrc, 0, 1)); err != nil {
		t.Fatal(err)
	}
	fl.fail = 2 // AddKeys and the Open at 10:05
	clk.Set(minute(5))
	if _, err := w.Tick(ctx); !errors.Is(err, errDB) || !strings.Contains(err.Error(), "1 more") {
		t.Errorf("Tick with the ledger down: %v, want both errors", err)
	}
	if s := w.Status(kA); s.State != ifwatch.Up {
		t.Errorf("a change the ledger refused was confirmed: %v", s.State)
	}
	clk.Set(minute(6))
	ev, err := w.Tick(ctx)
	if err != nil || len(ev) != 1 || !ev[0].Since.Equal(t0) {
		t.Errorf("retry: %s, %v; want the down event since 10:00", evStrings(ev), err)
	}
	fl.fail = 1
	clk.Set(minute(7))
	if _, err := w.Observe(ctx, tr(flowSrc, 7, 1)); !errors.Is(err, errDB) {
		t.Errorf("Observe with the ledger down: %v", err)
	}
	clk.Set(minute(8))
	if ev, err := w.Tick(ctx); err != nil || len(ev) != 1 || ev[0].Kind != ifwatch.EventUp || !ev[0].Since.Equal(minute(7)) {
		t.Errorf("retry of the close: %s, %v", evStrings(ev), err)
	}
	keys, _ := fl.Keys(ctx)
	if len(keys) != 1 || w.Stats().LedgerErrors != 3 {
		t.Errorf("%d keys in the ledger and %d ledger errors, want 1 and 3", len(keys), w.Stats().LedgerErrors)
	}
}

func TestKeyIdentity(t *testing.T) {
	h := newHarness(t, ifwatch.Config{HoldObservations: 2}, t0)
	mapped := ifwatch.Key{Exporter: netip.MustParseAddr("::ffff:192.0.2.1"), IfIndex: 7}
	far := time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC) // past int64 nanoseconds: taken as now
	h.observe(traffic(flowSrc, mapped, far, 1), tr(flowSrc, 0, 1))
	s := h.w.Status(kA)
	if s.State != ifwatch.Up || !s.LastTraffic.Equal(t0) {
		t.Errorf("192.0.2.1 and ::ffff:192.0.2.1 are one key, up since now: %+v", s)
	}
	if got := h.w.Status(mapped); got.Key != kA || got.State != ifwatch.Up { // the canonical key
		t.Errorf("Status of the mapped form: %+v", got)
	}
	h.tick()
	keys, _ := h.ledger.Keys(context.Background())
	if len(keys) != 1 || keys[0].Key != kA {
		t.Errorf("ledger keys %+v, want only %s", keys, kA)
	}
	if got := h.w.Statuses(); len(got) != 1 || got[0].Key != kA {
		t.Errorf("Statuses %+v", got)
	}
}
