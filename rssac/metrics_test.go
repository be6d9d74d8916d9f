package rssac

import (
	"iter"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netpulse/netpulse/probe/result"
)

var testFrom = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)

func customPeriod(slots int) Period {
	return Period{From: testFrom, To: testFrom.Add(time.Duration(slots) * result.Interval), Kind: PeriodCustom}
}

func at(slot int) time.Time { return testFrom.Add(time.Duration(slot) * result.Interval) }

// obsv is a compact SOA observation for the small tests.
func obsv(slot int, vp, server, combo string, out Outcome, rttMS float64, serial uint32) Observation {
	ci := slices.IndexFunc(combos[:], func(c struct {
		name      string
		transport string
		family    int
	}) bool {
		return c.name == combo
	})
	o := Observation{Slot: at(slot), VP: vp, Server: server, Transport: combos[ci].transport, Family: combos[ci].family,
		Kind: KindSOA, Outcome: out}
	if out != Timeout {
		o.RTT = time.Duration(rttMS * float64(time.Millisecond))
	}
	if out == Answered && serial != 0 {
		o.Serial, o.HasSerial = serial, true
	}
	return o
}

func TestMedian(t *testing.T) {
	walk := func(v []uint32) func(func(uint32)) {
		return func(f func(uint32)) {
			for _, x := range v {
				f(x)
			}
		}
	}
	for _, tc := range []struct {
		in   []uint32
		want float64
	}{
		{[]uint32{5}, 5},
		{[]uint32{3, 1, 2}, 2},            // odd: the middle one
		{[]uint32{4, 1, 3, 2}, 2.5},       // even: mean of 2 and 3
		{[]uint32{7, 1}, 4},               // even, two values
		{[]uint32{2, 2, 2, 2}, 2},         // all tied
		{[]uint32{3, 2, 2, 1}, 2},         // tie across the middle
		{[]uint32{1, 1, 2, 9, 9, 9}, 5.5}, // middle values 2 and 9
		{[]uint32{0, 1 << 16, 1<<16 - 1, 1 << 17}, (1<<16 - 1 + 1<<16) / 2.0}, // middle values in two radix buckets
		{[]uint32{math.MaxUint32, math.MaxUint32 - 1}, math.MaxUint32 - 0.5},
		{[]uint32{0, 0, 0}, 0},
	} {
		if got := medianU32(len(tc.in), walk(tc.in)); got != tc.want {
			t.Errorf("medianU32(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   []int32
		want float64
	}{
		{[]int32{-3, 5, 1}, 1}, {[]int32{12, 0, 3, 9}, 6}, {[]int32{13}, 13}, {[]int32{2, 2, 1}, 2},
	} {
		if got := median(slices.Clone(tc.in)); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	// The radix select against a plain sort, on random multisets of
	// every parity, narrow (many ties) and wide.
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		v := make([]uint32, 1+rng.IntN(300))
		for j := range v {
			switch i % 3 {
			case 0:
				v[j] = rng.Uint32N(5)
			case 1:
				v[j] = 60000 + rng.Uint32N(20000)
			default:
				v[j] = rng.Uint32()
			}
		}
		s := slices.Clone(v)
		slices.Sort(s)
		n := len(s)
		want := float64(s[n/2])
		if n%2 == 0 {
			want = (float64(s[n/2-1]) + float64(s[n/2])) / 2
		}
		if got := medianU32(n, walk(v)); got != want {
			t.Fatalf("medianU32(%v) = %v, want %v", v, got, want)
		}
	}
}

// TestAvailabilityAndLatency checks the per-server and system formulas on
// one interval that a hand can follow, with k = 3.
func TestAvailabilityAndLatency(t *testing.T) {
	obs := []Observation{
		// x answers twice on udp4 (two addresses): 30 ms and 10 ms.
		obsv(0, "v1", "x", "udp4", Answered, 30, 1),
		obsv(0, "v1", "x", "udp4", Answered, 10, 1),
		// y answers in 20 ms; z is REFUSED (unavailable, its 1 ms is no
		// latency measurement); w times out.
		obsv(0, "v1", "y", "udp4", Answered, 20, 1),
		obsv(0, "v1", "z", "udp4", RCodeError, 1, 0),
		obsv(0, "v1", "w", "udp4", Timeout, 0, 0),
		// tcp4: every server times out.
		obsv(0, "v1", "x", "tcp4", Timeout, 0, 0),
		obsv(0, "v1", "y", "tcp4", Timeout, 0, 0),
		// udp6: v2 sees all four; 40, 50, 60, 70 ms.
		obsv(0, "v2", "w", "udp6", Answered, 40, 1),
		obsv(0, "v2", "x", "udp6", Answered, 50, 1),
		obsv(0, "v2", "y", "udp6", Answered, 60, 1),
		obsv(0, "v2", "z", "udp6", Answered, 70.0004, 1), // kept to the microsecond: 70.000 ms
	}
	r, err := Compute(customPeriod(1), Config{K: 3}, slices.Values(obs))
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) *ServerResult {
		for i := range r.Servers {
			if r.Servers[i].Server == name {
				return &r.Servers[i]
			}
		}
		t.Fatalf("no server %s", name)
		return nil
	}
	// Per server udp4: x 2/2 answered, median (10+30)/2 = 20 ms over 2.
	x := get("x").Transports[0]
	checkMetric(t, "x udp4 availability", x.Availability, 1, 2, 0.96, true)
	checkMetric(t, "x udp4 latency", x.Latency, 20, 2, 250, true)
	z := get("z").Transports[0]
	checkMetric(t, "z udp4 availability", z.Availability, 0, 1, 0.96, false)
	checkNoData(t, "z udp4 latency", z.Latency)
	if z.RCodeErrors != 1 || z.Timeouts != 0 {
		t.Errorf("z: %+v", z)
	}
	w := get("w").Transports[0]
	checkMetric(t, "w udp4 availability", w.Availability, 0, 1, 0.96, false)
	// A server with no query on a combo has no data there, and fails.
	checkNoData(t, "w tcp4 availability", get("w").Transports[2].Availability)
	checkMetric(t, "z udp6 latency", get("z").Transports[1].Latency, 70, 1, 250, true)

	// System udp4: one (interval, VP), r = 2 servers (x once, however
	// many answers), Σ min(3, 2) ÷ Σ 3 = 2/3. Lowest k of what there is:
	// x's best 10 and y's 20 → 15 ms.
	s := r.System.Transports[0]
	if s.AvailableSum != 2 || s.RequiredSum != 3 || s.Intervals != 1 || s.IntervalsBelowK != 1 {
		t.Errorf("system udp4: %+v", s)
	}
	checkMetric(t, "system udp4 availability", s.Availability, 2.0/3, 1, 0.99999, false)
	checkMetric(t, "system udp4 latency", s.Latency, 15, 2, 150, true)
	// udp6: r = 4 ≥ 3 → 3/3; lowest 3 of 40, 50, 60, 70 → 50.
	s = r.System.Transports[1]
	checkMetric(t, "system udp6 availability", s.Availability, 1, 1, 0.99999, true)
	checkMetric(t, "system udp6 latency", s.Latency, 50, 3, 150, true)
	// tcp4: all timeouts → 0 of 3, and no latency at all.
	s = r.System.Transports[2]
	checkMetric(t, "system tcp4 availability", s.Availability, 0, 1, 0.99999, false)
	checkNoData(t, "system tcp4 latency", s.Latency)
	// tcp6: never queried → no interval, no data.
	checkNoData(t, "system tcp6 availability", r.System.Transports[3].Availability)
}

// TestConnectionErrors feeds probe result documents through FromRun:
// a connection error is a timeout even when a partial response is kept.
func TestConnectionErrors(t *testing.T) {
	q := func(address string, mod func(*result.Query)) result.Query {
		x := result.Query{Target: "x", Address: address, Port: 53, Family: 4, Transport: result.UDP, Purpose: result.PurposeSOA,
			QName: ".", QType: "SOA", RTTMS: 12,
			Response: &result.Response{RCode: 0, RCodeName: "NOERROR", SOASerial: 7, HasSerial: true}}
		mod(&x)
		return x
	}
	run := &result.Run{Version: result.Version, VP: "v1", Slot: at(0), Queries: []result.Query{
		q("192.0.2.1", func(*result.Query) {}),
		q("192.0.2.2", func(x *result.Query) { x.Timeout, x.RTTMS, x.Response = true, 0, nil }),
		q("192.0.2.3", func(x *result.Query) { x.Error, x.RTTMS, x.Response = "connection refused", 0, nil }),
		q("192.0.2.4", func(x *result.Query) { x.Error = "read: connection reset by peer" }),
		q("192.0.2.5", func(x *result.Query) {
			x.Response.RCode, x.Response.RCodeName, x.Response.HasSerial = 5, "REFUSED", false
		}),
	}}
	if err := run.Validate(); err != nil {
		t.Fatal(err)
	}
	r, err := Compute(customPeriod(1), Config{}, slices.Values(FromRun(run)))
	if err != nil {
		t.Fatal(err)
	}
	tr := r.Servers[0].Transports[0]
	if tr.Sent != 5 || tr.Answered != 1 || tr.Timeouts != 3 || tr.RCodeErrors != 1 {
		t.Errorf("sent/answered/timeouts/rcode = %d/%d/%d/%d, want 5/1/3/1", tr.Sent, tr.Answered, tr.Timeouts, tr.RCodeErrors)
	}
	checkMetric(t, "availability", tr.Availability, 0.2, 5, 0.96, false)
	checkMetric(t, "latency", tr.Latency, 12, 1, 250, true)
}

// pubCase describes, per "vp/server" (all four combos) or
// "vp/server/combo" (one combo, overriding), the serial answered in each
// slot from slot `from` on: 0 is a timeout, gone no observation at all.
type pubCase struct {
	name   string
	cfg    Config
	from   int
	slots  int // period length
	series map[string][]uint32
	want   map[string]pubWant
	counts func(Counts) bool
}

type pubWant struct {
	median float64 // minutes; -1 no data
	counts PublicationCounts
}

const gone = math.MaxUint32

func (pc pubCase) observations() iter.Seq[Observation] {
	return func(yield func(Observation) bool) {
		for key, ser := range pc.series {
			parts := strings.Split(key, "/")
			cs := []string{"udp4", "udp6", "tcp4", "tcp6"}
			if len(parts) == 3 {
				cs = parts[2:]
			}
			for _, c := range cs {
				if len(parts) == 2 {
					if _, ok := pc.series[key+"/"+c]; ok {
						continue
					}
				}
				for j, s := range ser {
					var o Observation
					switch s {
					case gone:
						continue
					case 0:
						o = obsv(pc.from+j, parts[0], parts[1], c, Timeout, 0, 0)
					default:
						o = obsv(pc.from+j, parts[0], parts[1], c, Answered, 10, s)
					}
					if !yield(o) {
						return
					}
				}
			}
		}
	}
}

// rep repeats s n times.
func rep(s uint32, n int) []uint32 { return slices.Repeat([]uint32{s}, n) }

func cat(parts ...[]uint32) []uint32 { return slices.Concat(parts...) }

func TestPublicationLatency(t *testing.T) {
	hour := Config{History: time.Hour}
	for _, pc := range []pubCase{{
		// S2 first at slot 1 (y), S3 at slot 3 (x, which skips S2: "or a
		// higher one"). x: S2 at 3 → 10 min, S3 at 3 → 0. y: S2 → 0, S3
		// at 5 → 10. S1 is already served at the first slot: undated.
		name: "delays and a skipped serial", slots: 10,
		series: map[string][]uint32{
			"v1/x": cat(rep(1, 3), rep(3, 7)),
			"v1/y": cat(rep(1, 1), rep(2, 4), rep(3, 5)),
		},
		want:   map[string]pubWant{"x": {5, PublicationCounts{Exact: 2}}, "y": {5, PublicationCounts{Exact: 2}}},
		counts: func(c Counts) bool { return c.Serials == 2 && c.UndatedSerials == 1 },
	}, {
		// The latency is the lowest serial over all transports: x's tcp6
		// serves S2 two slots after its other combos.
		name: "lowest over transports", slots: 6,
		series: map[string][]uint32{
			"v1/x":      cat(rep(1, 2), rep(2, 4)),
			"v1/x/tcp6": cat(rep(1, 4), rep(2, 2)),
			"v1/y":      cat(rep(1, 1), rep(2, 5)),
		},
		want: map[string]pubWant{"x": {15, PublicationCounts{Exact: 1}}, "y": {0, PublicationCounts{Exact: 1}}},
	}, {
		// A timed-out transport is not in the lowest serial: x's tcp6
		// times out at slot 2, so S2 counts as served there (5 min); its
		// old serial at slot 3 does not make a second sample.
		name: "timeouts are not serials", slots: 6,
		series: map[string][]uint32{
			"v1/x":      cat(rep(1, 2), rep(2, 4)),
			"v1/x/tcp6": {1, 1, 0, 1, 2, 2},
			"v1/y":      cat(rep(1, 1), rep(2, 5)),
		},
		want: map[string]pubWant{"x": {5, PublicationCounts{Exact: 1}}, "y": {0, PublicationCounts{Exact: 1}}},
	}, {
		// x is seen on S1 at slot 0, then not at all until slot 5: the
		// delay from S2's first appearance (2) is 3 slots.
		name: "gap after being seen behind", slots: 8,
		series: map[string][]uint32{
			"v1/x": {1, gone, gone, gone, gone, 2, 2, 2},
			"v1/y": {1, 1, 2, 2, 2, 2, 2, 2},
		},
		want: map[string]pubWant{"x": {15, PublicationCounts{Exact: 1}}, "y": {0, PublicationCounts{Exact: 1}}},
	}, {
		// x's first answer, at slot 4, already has S2 (first seen at 2):
		// when x got it is unknown.
		name: "first seen already caught up", slots: 8,
		series: map[string][]uint32{
			"v1/x": {0, 0, 0, 0, 2, 2, 2, 2},
			"v1/y": {1, 1, 2, 2, 2, 2, 2, 2},
		},
		want: map[string]pubWant{"x": {-1, PublicationCounts{Unmeasurable: 1}}, "y": {0, PublicationCounts{Exact: 1}}},
	}, {
		// History: y serves S2 from 30 min before the period; x from
		// slot 2 → 8 slots = 40 min, counted in the period. y caught up
		// in the history: no sample here.
		name: "first appearance in the history", cfg: hour, from: -12, slots: 6,
		series: map[string][]uint32{
			"v1/x": cat(rep(1, 14), rep(2, 4)),
			"v1/y": cat(rep(1, 6), rep(2, 12)),
		},
		want:   map[string]pubWant{"x": {40, PublicationCounts{Exact: 1}}, "y": {-1, PublicationCounts{}}},
		counts: func(c Counts) bool { return c.History == 2*12*4 && c.UndatedSerials == 1 },
	}, {
		// The same from FirstSeen alone: y, already on S2 at the first
		// slot, is unmeasurable; S1 is undated.
		name: "first appearance from FirstSeen", slots: 6,
		cfg: Config{FirstSeen: map[uint32]time.Time{2: testFrom.Add(-30 * time.Minute)}},
		series: map[string][]uint32{
			"v1/x": cat(rep(1, 2), rep(2, 4)),
			"v1/y": rep(2, 6),
		},
		want: map[string]pubWant{"x": {40, PublicationCounts{Exact: 1}}, "y": {-1, PublicationCounts{Unmeasurable: 1}}},
	}, {
		// Without either, S2 is already served at the first slot: undated.
		name: "undated", slots: 6,
		series: map[string][]uint32{
			"v1/x": cat(rep(1, 2), rep(2, 4)),
			"v1/y": rep(2, 6),
		},
		want:   map[string]pubWant{"x": {-1, PublicationCounts{}}, "y": {-1, PublicationCounts{}}},
		counts: func(c Counts) bool { return c.Serials == 0 && c.UndatedSerials == 2 },
	}, {
		// x catches up in the history: nothing in the period.
		name: "caught up in the history", cfg: hour, from: -12, slots: 6,
		series: map[string][]uint32{
			"v1/x": cat(rep(1, 9), rep(2, 9)),
			"v1/y": cat(rep(1, 6), rep(2, 12)),
		},
		want: map[string]pubWant{"x": {-1, PublicationCounts{}}, "y": {-1, PublicationCounts{}}},
	}, {
		// y answers udp4 once with a forged serial 99. With the archive's
		// serials as the list of genuine ones it is ignored. (S1, dated an
		// hour before, is already served at the first slot: unmeasurable.)
		name: "strict serials", slots: 30,
		cfg: Config{StrictSerials: true, FirstSeen: map[uint32]time.Time{1: testFrom.Add(-time.Hour), 2: at(1)}},
		series: map[string][]uint32{
			"v1/x":      cat(rep(1, 2), rep(2, 28)),
			"v1/y":      cat(rep(1, 1), rep(2, 29)),
			"v1/y/udp4": cat(rep(1, 1), rep(2, 2), []uint32{99}, rep(2, 26)),
		},
		want:   map[string]pubWant{"x": {5, PublicationCounts{Exact: 1, Unmeasurable: 1}}, "y": {0, PublicationCounts{Exact: 1, Unmeasurable: 1}}},
		counts: func(c Counts) bool { return c.UnknownSerials == 1 },
	}, {
		// Without it, 99 is a serial nobody serves in full (y's other
		// combos stay on 2): both are behind from slot 3 to the end, at
		// least 30 − 3 = 27 slots = 135 min > 65 → counted at 135. x:
		// 5 and 135 → 70 min.
		name: "forged serial", slots: 30,
		series: map[string][]uint32{
			"v1/x":      cat(rep(1, 2), rep(2, 28)),
			"v1/y":      cat(rep(1, 1), rep(2, 29)),
			"v1/y/udp4": cat(rep(1, 1), rep(2, 2), []uint32{99}, rep(2, 26)),
		},
		want: map[string]pubWant{"x": {70, PublicationCounts{Exact: 1, Censored: 1}}, "y": {67.5, PublicationCounts{Exact: 1, Censored: 1}}},
	}, {
		// x is last seen behind S2 (first at slot 1) at slot 19, then v1
		// sends nothing more: at least 19 slots = 95 min → censored at 95.
		// For v2 it is last seen behind at slot 10: at least 50 min ≤ 65 →
		// pending.
		name: "never catches up", slots: 30,
		series: map[string][]uint32{
			"v1/x": cat(rep(1, 20), rep(gone, 10)),
			"v2/x": cat(rep(1, 11), rep(gone, 19)),
			"v1/y": cat(rep(1, 1), rep(2, 29)),
		},
		want: map[string]pubWant{"x": {95, PublicationCounts{Censored: 1, Pending: 1}}, "y": {0, PublicationCounts{Exact: 1}}},
	}, {
		// v1 sees x behind S2 only in the history and not at all in the
		// period: neither pending nor censored here. v2 first sees x in
		// the period, already on S2: unmeasurable.
		name: "behind only in the history", cfg: hour, from: -12, slots: 6,
		series: map[string][]uint32{
			"v1/x": cat(rep(1, 12), rep(gone, 6)),
			"v2/x": cat(rep(gone, 12), rep(2, 6)),
			"v1/y": cat(rep(1, 6), rep(2, 12)),
		},
		want: map[string]pubWant{"x": {-1, PublicationCounts{Unmeasurable: 1}}, "y": {-1, PublicationCounts{}}},
	}, {
		// x serves S2 at slot 2, then an old instance answers S1 again:
		// one sample, from the first time.
		name: "regression", slots: 8,
		series: map[string][]uint32{
			"v1/x": {1, 1, 2, 1, 1, 2, 2, 2},
			"v1/y": {1, 2, 2, 2, 2, 2, 2, 2},
		},
		want: map[string]pubWant{"x": {5, PublicationCounts{Exact: 1}}, "y": {0, PublicationCounts{Exact: 1}}},
	}} {
		t.Run(pc.name, func(t *testing.T) {
			r, err := Compute(customPeriod(pc.slots), pc.cfg, pc.observations())
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range r.Servers {
				w, ok := pc.want[s.Server]
				if !ok {
					t.Fatalf("unexpected server %s", s.Server)
				}
				if s.PublicationCounts != w.counts {
					t.Errorf("%s counts %+v, want %+v", s.Server, s.PublicationCounts, w.counts)
				}
				if w.median < 0 {
					checkNoData(t, s.Server, s.PublicationLatency)
				} else {
					checkMetric(t, s.Server, s.PublicationLatency, w.median, w.counts.Exact+w.counts.Censored, 65, w.median <= 65)
				}
			}
			if len(r.Servers) != len(pc.want) {
				t.Errorf("%d servers, want %d", len(r.Servers), len(pc.want))
			}
			if pc.counts != nil && !pc.counts(r.Counts) {
				t.Errorf("counts %+v", r.Counts)
			}
		})
	}
}

// TestBoundaries: a month counts 23:55 on its last day and not 00:00 on
// the next; an ISO week may cross the month.
func TestBoundaries(t *testing.T) {
	// One answered udp4 query every 5 minutes from 25 October 23:55 to
	// 2 November 00:00, both included.
	from, to := time.Date(2026, 10, 25, 23, 55, 0, 0, time.UTC), time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	seq := func(yield func(Observation) bool) {
		for s := from; !s.After(to); s = s.Add(result.Interval) {
			if !yield(Observation{Slot: s, VP: "v1", Server: "x", Transport: "udp", Family: 4, Kind: KindSOA, Outcome: Answered, RTT: time.Millisecond}) {
				return
			}
		}
	}
	for _, tc := range []struct {
		p             Period
		sent, outside int64
	}{
		// 2026-W44 is Monday 26 October to Monday 2 November: 7 × 288;
		// 25 Oct 23:55 and 2 Nov 00:00 are outside.
		{WeekPeriod(2026, 44), 7 * 288, 2},
		// October holds 26 Oct 00:00 to 31 Oct 23:55 of it: 6 × 288 (and
		// 25 Oct 23:55); 1 Nov 00:00 onwards, 289, is outside.
		{MonthPeriod(2026, 10), 6*288 + 1, 289},
		// November: 1 Nov 00:00 to 2 Nov 00:00, the rest outside.
		{MonthPeriod(2026, 11), 288 + 1, 6*288 + 1},
	} {
		r, err := Compute(tc.p, Config{}, seq)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Servers[0].Transports[0].Sent; got != tc.sent || r.Counts.Outside != tc.outside {
			t.Errorf("%s: sent %d outside %d, want %d %d", tc.p.Name(), got, r.Counts.Outside, tc.sent, tc.outside)
		}
	}
}

func TestPeriods(t *testing.T) {
	d := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		in       string
		from, to time.Time
		kind     string
	}{
		{"2026-10", d(2026, 10, 1), d(2026, 11, 1), PeriodMonth},
		{"2026-12", d(2026, 12, 1), d(2027, 1, 1), PeriodMonth},
		{"2028-02", d(2028, 2, 1), d(2028, 3, 1), PeriodMonth},
		{"2026-W01", d(2025, 12, 29), d(2026, 1, 5), PeriodWeek}, // week 1 holds 4 January
		{"2026-W44", d(2026, 10, 26), d(2026, 11, 2), PeriodWeek},
		{"2026-W53", d(2026, 12, 28), d(2027, 1, 4), PeriodWeek}, // 2026 starts on a Thursday: 53 weeks
		{"2027-W01", d(2027, 1, 4), d(2027, 1, 11), PeriodWeek},
	} {
		p, err := ParsePeriod(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if !p.From.Equal(tc.from) || !p.To.Equal(tc.to) || p.Kind != tc.kind || p.Name() != tc.in {
			t.Errorf("%s: %v–%v %s %s", tc.in, p.From, p.To, p.Kind, p.Name())
		}
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", tc.in, err)
		}
	}
	if MonthPeriod(2026, 10).Slots() != 8928 || WeekPeriod(2026, 44).Slots() != 2016 {
		t.Error("slots")
	}
	for _, bad := range []string{"", "2026", "2026-13", "2026-00", "2026-1", "2026-W00", "2026-W54", "2025-W53",
		"2026/10", "+026-10", "2026-W4x", "2026-10 ", "0000-01", "2026-w01"} {
		if _, err := ParsePeriod(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	for _, p := range []Period{
		{},
		{From: testFrom, To: testFrom, Kind: PeriodCustom},
		{From: testFrom, To: testFrom.Add(time.Minute), Kind: PeriodCustom},
		{From: testFrom, To: testFrom.Add(400 * 24 * time.Hour), Kind: PeriodCustom},
		{From: testFrom, To: testFrom.Add(time.Hour), Kind: "year"},
	} {
		if p.Validate() == nil {
			t.Errorf("%+v valid", p)
		}
		if _, err := Compute(p, Config{}, slices.Values([]Observation(nil))); err == nil {
			t.Errorf("Compute accepted %+v", p)
		}
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []Config{
		{K: -1}, {K: MaxServers + 1}, {MaxVPs: -1}, {History: -time.Hour}, {History: time.Minute}, {History: 40 * 24 * time.Hour},
		{Servers: []string{"a", "a"}}, {Servers: []string{""}},
		{Thresholds: Thresholds{Availability: 1.5}}, {Thresholds: Thresholds{SystemCorrectness: -1}},
		{Thresholds: Thresholds{LatencyUDP: -time.Millisecond}},
	} {
		if _, err := Compute(customPeriod(1), c, slices.Values([]Observation(nil))); err == nil {
			t.Errorf("config %+v accepted", c)
		}
	}
	// The expected server set: others are dropped and counted; an
	// expected server never seen has no data and fails.
	obs := []Observation{
		obsv(0, "v1", "a", "udp4", Answered, 1, 1),
		obsv(0, "v1", "rogue", "udp4", Answered, 1, 1),
	}
	r, err := Compute(customPeriod(1), Config{Servers: []string{"b", "a"}}, slices.Values(obs))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Servers) != 2 || r.Servers[0].Server != "b" || r.Servers[1].Server != "a" || r.Counts.UnknownServer != 1 {
		t.Fatalf("servers %+v counts %+v", r.Servers, r.Counts)
	}
	if r.Servers[0].Pass || r.Servers[0].Transports[0].Availability.Value != nil {
		t.Errorf("b: %+v", r.Servers[0])
	}
	// Limits are errors, not silent truncation.
	many := func(n int, server bool) iter.Seq[Observation] {
		return func(yield func(Observation) bool) {
			for i := range n {
				o := obsv(0, "v", "s", "udp4", Answered, 1, 1)
				if server {
					o.Server += string(rune('A' + i))
				} else {
					o.VP += string(rune('A' + i))
				}
				if !yield(o) {
					return
				}
			}
		}
	}
	if _, err := Compute(customPeriod(1), Config{}, many(MaxServers+1, true)); err == nil {
		t.Error("65 servers accepted")
	}
	if _, err := Compute(customPeriod(1), Config{MaxVPs: 3}, many(4, false)); err == nil {
		t.Error("4 VPs accepted with MaxVPs 3")
	}
	if _, err := Compute(customPeriod(1), Config{}, many(MaxServers, true)); err != nil {
		t.Errorf("64 servers: %v", err)
	}
}

// FuzzCompute: no observation, however odd, makes Compute panic, and the
// counts always add up.
func FuzzCompute(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte("\x00\x00\x01\x01\x04\x01\x01\x00\x00\x00\x10\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var obs []Observation
		for len(data) >= 8 {
			b := data[:8]
			data = data[8:]
			o := Observation{
				Slot:      testFrom.Add(time.Duration(int8(b[0])) * result.Interval).Add(time.Duration(b[1]%4) * time.Minute * time.Duration(b[1]>>7)),
				VP:        string(rune('a' + b[2]%4)),
				Server:    string(rune('a' + b[3]%5)),
				Transport: []string{"udp", "tcp", "", "quic"}[b[4]%4],
				Family:    int(b[4]>>2) % 8,
				Kind:      Kind(b[5] % 4),
				Outcome:   Outcome(b[5] >> 2 % 5),
				Verdict:   Verdict(b[5] >> 5 % 4),
				Retry:     b[5]&0x80 != 0,
				RTT:       time.Duration(int16(uint16(b[6])<<8|uint16(b[7]))) * time.Millisecond * 100,
				Serial:    uint32(b[6] % 8),
				HasSerial: b[7]&1 == 1,
			}
			if b[2] == 0xff {
				o.VP = ""
			}
			obs = append(obs, o)
		}
		cfg := Config{K: 2, History: time.Hour, FirstSeen: map[uint32]time.Time{3: testFrom.Add(-time.Hour * 24 * 365 * 100)}}
		r, err := Compute(customPeriod(12), cfg, slices.Values(obs))
		if err != nil {
			t.Fatal(err)
		}
		c := r.Counts
		if c.Observations+c.History+c.Outside+c.Invalid+c.UnknownServer != int64(len(obs)) || c.SOA+c.Correctness != c.Observations {
			t.Fatalf("counts do not add up to %d: %+v", len(obs), c)
		}
		for _, s := range r.Servers {
			for _, tr := range s.Transports {
				if tr.Sent != tr.Answered+tr.RCodeErrors+tr.Timeouts {
					t.Fatalf("%s: %+v", s.Server, tr)
				}
			}
		}
	})
}

func FuzzParsePeriod(f *testing.F) {
	for _, s := range []string{"2026-10", "2026-W44", "2026-W53", "9999-12", "1970-W01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePeriod(s)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("%q: parsed to an invalid period: %v", s, err)
		}
		if p.Name() != s {
			t.Fatalf("%q: name %q", s, p.Name())
		}
	})
}
