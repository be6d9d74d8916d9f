package rssac

import (
	"bytes"
	"iter"
	"testing"
	"time"

	"github.com/netpulse/netpulse/probe/result"
)

// A synthetic October 2026: 3 vantage points × 8928 five-minute slots ×
// 13 servers, each with four SOA queries (udp4, udp6, tcp4, tcp6) and one
// correctness query per slot. Every expected value below is worked out by
// hand from the rules of the generator, with the working in a comment.

const (
	octSlots        = 31 * 288 // 8928 slots in October
	octVPs          = 3
	octM            = octVPs * octSlots // 26784 (interval, VP) pairs per combo
	sBase    uint32 = 2026100010
)

var (
	octFrom = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	octVP   = []string{"v1", "v2", "v3"}
)

func rootName(i int) string { return string(rune('a'+i)) + ".root-servers.net" }

func slotTime(t int) time.Time { return octFrom.Add(time.Duration(t) * result.Interval) }

// ser is serial n; S(0) is from before October, S(-1) older still.
func ser(n int) uint32 { return uint32(int64(sBase) + int64(n)) }

// pubSlot is where serial n (1..63) first appears: every 12 hours at
// hh:30 (slot 144(n−1)+6) for n ≤ 62, and n = 63 at 23:20 on the 31st.
func pubSlot(n int) int {
	if n == 63 {
		return 8920
	}
	return 144*(n-1) + 6
}

// delay is how many slots after pubSlot(n) server i serves serial n to
// vantage point v over combo c.
func delay(i, n, c int) int {
	switch i {
	case 2: // c: 2 for odd serials, 3 for even ones
		if n%2 == 1 {
			return 2
		}
		return 3
	case 3: // d: 3, but its udp6 lags at 6
		if c == 1 {
			return 6
		}
		return 3
	case 9: // j: 9 for odd, 10 for even
		if n%2 == 1 {
			return 9
		}
		return 10
	case 12: // m: 14 (70 min, over the threshold)
		return 14
	}
	return i // a 0, b 1, e 4, …, l 11
}

// served is the serial server i answers v with over combo c in slot t.
func served(i, c, t, v int) uint32 {
	if i == 11 && v == 2 && t >= pubSlot(62) {
		return ser(61) // l never serves S(62) (nor S(63)) to v3
	}
	if i == 10 && v == 0 && t < 6 {
		return ser(-1) // k serves v1 S(−1) until 00:30 on the 1st
	}
	hi := 63
	if t < pubSlot(63) {
		hi = min(62, (t-6)/144+1)
	}
	for n := hi; n >= 1 && n >= hi-2; n-- {
		if pubSlot(n)+delay(i, n, c) <= t {
			return ser(n)
		}
	}
	return ser(0)
}

// rttMS: udp 10(i+1) ms (a on udp4 alternates 10 and 12), tcp
// 100 + 10(i+1) ms, except e on tcp4 600 ms and f on tcp4 500 ms.
func rttMS(i, c, t, v int) int {
	switch {
	case i == 0 && c == 0:
		if (t+v)%2 == 0 {
			return 10
		}
		return 12
	case i == 4 && c == 2:
		return 600
	case i == 5 && c == 2:
		return 500
	case c < 2:
		return 10 * (i + 1)
	}
	return 100 + 10*(i+1)
}

// connErrQuery is what the probe writes for a failed connect: Error set,
// a leftover Response (which must not make it "answered"), no Timeout.
var connErrQuery = result.Query{
	Target: rootName(3), Transport: result.UDP, Family: 6, Purpose: result.PurposeSOA,
	Error: "connect: network is unreachable", RTTMS: 1,
	Response: &result.Response{RCode: 0, SOASerial: ser(0), HasSerial: true},
}

func soa(i, c, t, v int) Observation {
	o := Observation{
		Slot: slotTime(t), VP: octVP[v], Server: rootName(i), Address: "192.0.2.1",
		Transport: combos[c].transport, Family: combos[c].family, Kind: KindSOA,
		Outcome: Answered, RTT: time.Duration(rttMS(i, c, t, v)) * time.Millisecond,
		Serial: served(i, c, t, v), HasSerial: true,
	}
	timeout := func() { o.Outcome, o.RTT, o.Serial, o.HasSerial = Timeout, 0, 0, false }
	switch {
	case i == 1 && c == 0 && t%25 == 0: // b: udp4 times out every 25th slot
		timeout()
	case i == 2 && c == 3 && t%10 == 0: // c: tcp6 REFUSED every 10th slot
		o.Outcome, o.RTT, o.Serial, o.HasSerial = RCodeError, 999*time.Millisecond, 0, false
	case i == 3 && c == 1 && v == 0 && t < 288: // d: v1 cannot reach it over IPv6 on the 1st
		o = FromQuery(octVP[v], slotTime(t), &connErrQuery)
	case i == 12 && c == 1: // m: udp6 never answers
		timeout()
	case v == 1 && c == 0 && i >= 6 && i <= 11 && t >= 2592 && t < 2604: // g–l: udp4 outage for v2, 10 Oct 00:00–01:00
		timeout()
	}
	return o
}

// correctness yields server i's correctness queries for slot t.
func correctness(i, t, v int, yield func(Observation) bool) bool {
	c := (t + i) % 4
	o := Observation{
		Slot: slotTime(t), VP: octVP[v], Server: rootName(i), Address: "192.0.2.1",
		Transport: combos[c].transport, Family: combos[c].family, Kind: KindCorrectness,
		Outcome: Answered, RTT: 20 * time.Millisecond, Verdict: Correct,
	}
	switch {
	case i == 7 && t == 100 && v == 0: // h: one wrong answer
		o.Verdict = Incorrect
	case i == 8 && t%7 == 0: // i: the archive could not decide every 7th
		o.Verdict = Unchecked
	case i == 9 && t%50 == 0, i == 11 && t == 500 && v == 1: // j, l: truncated over UDP, retried over TCP
		o.Transport, o.Family, o.Verdict = result.UDP, 4, Incorrect
		if !yield(o) {
			return false
		}
		o.Transport, o.Retry, o.Verdict = result.TCP, true, Correct
		if i == 11 { // l's retry times out
			o.Outcome, o.Verdict, o.RTT = Timeout, Unchecked, 0
		}
	case i == 10 && t%20 == 0: // k: no answer every 20th
		o.Outcome, o.Verdict, o.RTT = Timeout, Unchecked, 0
	case i == 12 && t%9 == 0: // m: NXDOMAIN-style RCODE, judged correct
		o.Outcome = RCodeError
	}
	return yield(o)
}

// october yields the month, slots in the order perm gives (slot index →
// slot) and vantage points forwards or backwards, plus observations that
// must be ignored: outside the month and invalid.
func october(perm func(int) int, vpBackwards bool) iter.Seq[Observation] {
	return func(yield func(Observation) bool) {
		extra := []Observation{
			// 23:55 on 30 September and 00:00 on 1 November are outside;
			// S(64) must not become a serial anyone lags behind.
			{Slot: slotTime(-1), VP: "v1", Server: rootName(0), Transport: "udp", Family: 4, Kind: KindSOA, Outcome: Answered, Serial: ser(64), HasSerial: true},
			{Slot: slotTime(-1), VP: "v2", Server: rootName(0), Transport: "udp", Family: 4, Kind: KindSOA, Outcome: Answered, Serial: ser(64), HasSerial: true},
			{Slot: slotTime(-1), VP: "v3", Server: rootName(0), Transport: "udp", Family: 4, Kind: KindSOA, Outcome: Timeout},
			// Invalid: unknown transport, family, unaligned slot, no VP.
			{Slot: slotTime(5), VP: "v1", Server: rootName(0), Transport: "quic", Family: 4, Kind: KindSOA, Outcome: Answered},
			{Slot: slotTime(5), VP: "v1", Server: rootName(0), Transport: "udp", Family: 5, Kind: KindSOA, Outcome: Answered},
			{Slot: slotTime(5).Add(time.Minute), VP: "v1", Server: rootName(0), Transport: "udp", Family: 4, Kind: KindSOA, Outcome: Answered},
			{Slot: slotTime(5), Server: rootName(0), Transport: "udp", Family: 4, Kind: KindSOA, Outcome: Answered},
		}
		for v := range octVPs {
			for _, i := range []int{0, 1} {
				extra = append(extra, Observation{Slot: slotTime(octSlots), VP: octVP[v], Server: rootName(i), Transport: "udp", Family: 4,
					Kind: KindSOA, Outcome: Answered, Serial: ser(64), HasSerial: true, RTT: time.Second})
			}
		}
		for _, o := range extra {
			if !yield(o) {
				return
			}
		}
		for x := range octSlots {
			t := perm(x)
			for vv := range octVPs {
				v := vv
				if vpBackwards {
					v = octVPs - 1 - vv
				}
				for i := range 13 {
					for c := range 4 {
						if !yield(soa(i, c, t, v)) {
							return
						}
					}
					if !correctness(i, t, v, yield) {
						return
					}
				}
			}
		}
	}
}

func octoberConfig() Config {
	return Config{FirstSeen: map[uint32]time.Time{ser(0): octFrom.Add(-30 * time.Minute)}}
}

type wantTransport struct {
	answered, rcode, timeouts int64
	medianMS                  float64 // -1: no data
}

type wantServer struct {
	transports [4]wantTransport
	corr       CorrectnessCounts
	pubMedian  float64 // minutes
	pub        PublicationCounts
	pass       bool
}

// octoberWant is the hand-worked expectation per server.
func octoberWant() []wantServer {
	w := make([]wantServer, 13)
	for i := range w {
		for c := range 4 {
			ms := float64(10 * (i + 1))
			if c >= 2 {
				ms += 100
			}
			w[i].transports[c] = wantTransport{answered: octM, medianMS: ms}
		}
		w[i].corr = CorrectnessCounts{Correct: octM}
		w[i].pass = true
		// 62 October serials + S(63) (at 23:20 on the 31st) per VP;
		// S(0), dated 23:30 on 30 September by FirstSeen, is already
		// served at the first slot: unmeasurable for all 3 VPs.
		w[i].pub = PublicationCounts{Exact: 3 * 63, Unmeasurable: 3}
		w[i].pubMedian = float64(5 * i)
	}
	// a: udp4 alternates 10/12 ms, 13392 of each: an even count whose two
	// middle values differ, so the median is (10+12)/2.
	w[0].transports[0].medianMS = 11
	// b: udp4 times out when t%25 == 0: slots 0, 25, …, 8925 → 358 per
	// VP, 1074 in all; 25710/26784 = 95.99 % < 96 % → fail.
	w[1].transports[0] = wantTransport{answered: octM - 1074, timeouts: 1074, medianMS: 20}
	w[1].pass = false
	// c: tcp6 REFUSED when t%10 == 0: 893 per VP, 2679 in all; those
	// answers' 999 ms are not latency measurements: 24105 (odd) × 130 ms.
	w[2].transports[3] = wantTransport{answered: octM - 2679, rcode: 2679, medianMS: 130}
	w[2].pass = false
	// c publishes odd serials after 2 slots, even after 3: per VP 32 odd
	// (1…63) and 31 even → 96 × 10 min and 93 × 15 min; 189 samples, the
	// middle (index 94) is 10.
	w[2].pubMedian = 10
	// d: udp6 connection errors for v1 on the 1st: 288 timeouts.
	w[3].transports[1] = wantTransport{answered: octM - 288, timeouts: 288, medianMS: 40}
	// d's udp6 lags 6 slots behind its other combos (3): the latency is
	// the lowest serial over all combos, so 30 min; except v1 on the 1st
	// (S(1), S(2)), when udp6 does not answer: 15 min. 2 × 15, 187 × 30.
	w[3].pubMedian = 30
	// e: tcp4 600 ms > 500 → fail. f: tcp4 500 ms = threshold → pass.
	w[4].transports[2].medianMS = 600
	w[4].pass = false
	w[5].transports[2].medianMS = 500
	// g–l: udp4 outage for v2, 12 slots.
	for i := 6; i <= 11; i++ {
		w[i].transports[0] = wantTransport{answered: octM - 12, timeouts: 12, medianMS: float64(10 * (i + 1))}
	}
	// h: one incorrect answer → 26783/26784 < 100 % → fail.
	w[7].corr = CorrectnessCounts{Correct: octM - 1, Incorrect: 1}
	w[7].pass = false
	// i: unchecked when t%7 == 0: 1276 per VP, 3828 in all.
	w[8].corr = CorrectnessCounts{Correct: octM - 3828, Unchecked: 3828}
	// j: t%50 == 0 (179 per VP, 537) truncated over UDP and judged
	// incorrect, then correct over TCP: the retry replaces it.
	w[9].corr = CorrectnessCounts{Correct: octM, Superseded: 537}
	// k: no answer when t%20 == 0: 447 per VP, 1341.
	w[10].corr = CorrectnessCounts{Correct: octM - 1341, NoResponse: 1341}
	// l: one truncated answer whose retry timed out: neither counts.
	w[11].corr = CorrectnessCounts{Correct: octM - 1, Superseded: 1, NoResponse: 1}
	// i, j, k, l, m: S(63) at slot 8920 needs 8, 9, 10, 11, 14 slots:
	// past 8927, still behind at the end by 8 slots (40 min ≤ 65):
	// pending, not counted.
	for i := 8; i <= 12; i++ {
		w[i].pub.Exact, w[i].pub.Pending = 3*62, 3
	}
	// j: odd serials 9 slots, even 10: 93 × 45 min, 93 × 50 → 47.5.
	w[9].pubMedian = 47.5
	// k: serves v1 S(−1) until slot 6; S(0) first seen at slot −6 → one
	// more sample, 12 slots = 60 min, and one fewer unmeasurable.
	w[10].pub.Exact++
	w[10].pub.Unmeasurable--
	// l: never serves S(62) to v3; last seen behind at slot 8927, so at
	// least 8928 − 8790 = 138 slots = 690 min > 65: counted at 690.
	w[11].pub.Exact--
	w[11].pub.Censored = 1
	// m: udp6 never answers → 0 %, no latency; 14 slots = 70 min
	// publication latency > 65 → fail.
	w[12].transports[1] = wantTransport{timeouts: octM, medianMS: -1}
	w[12].pubMedian = 70
	w[12].pass = false
	return w
}

func TestOctober(t *testing.T) {
	if testing.Short() {
		t.Skip("1.7 million observations")
	}
	r, err := Compute(MonthPeriod(2026, 10), octoberConfig(), october(func(x int) int { return x }, false))
	if err != nil {
		t.Fatal(err)
	}
	wantCounts := Counts{
		// 13 × 4 × 26784 SOA; 13 × 26784 correctness + 537 + 1 retries.
		Observations: 13*4*octM + 13*octM + 538, SOA: 13 * 4 * octM, Correctness: 13*octM + 538,
		Outside: 9, Invalid: 4,
		// S(0)…S(63); S(−1) is already served at the first slot.
		Serials: 64, UndatedSerials: 1,
		VantagePoints: 3, Servers: 13, Slots: octSlots,
	}
	if r.Counts != wantCounts {
		t.Errorf("counts:\n got %+v\nwant %+v", r.Counts, wantCounts)
	}
	th := DefaultThresholds()
	want := octoberWant()
	if len(r.Servers) != 13 {
		t.Fatalf("%d servers", len(r.Servers))
	}
	for i, w := range want {
		s := r.Servers[i]
		if s.Server != rootName(i) {
			t.Fatalf("server %d is %s", i, s.Server)
		}
		for c, wt := range w.transports {
			tr := s.Transports[c]
			name := s.Server + " " + combos[c].name
			if tr.Transport != combos[c].transport || tr.Family != combos[c].family {
				t.Errorf("%s: is %s%d", name, tr.Transport, tr.Family)
			}
			if tr.Sent != octM || tr.Answered != wt.answered || tr.RCodeErrors != wt.rcode || tr.Timeouts != wt.timeouts {
				t.Errorf("%s: sent/answered/rcode/timeouts %d/%d/%d/%d, want %d/%d/%d/%d", name,
					tr.Sent, tr.Answered, tr.RCodeErrors, tr.Timeouts, octM, wt.answered, wt.rcode, wt.timeouts)
			}
			checkMetric(t, name+" availability", tr.Availability, float64(wt.answered)/octM, octM, th.Availability,
				float64(wt.answered)/octM >= 0.96)
			lt := 250.0
			if c >= 2 {
				lt = 500
			}
			if wt.medianMS < 0 {
				checkNoData(t, name+" latency", tr.Latency)
			} else {
				checkMetric(t, name+" latency", tr.Latency, wt.medianMS, wt.answered, lt, wt.medianMS <= lt)
			}
		}
		if s.CorrectnessCounts != w.corr {
			t.Errorf("%s correctness counts %+v, want %+v", s.Server, s.CorrectnessCounts, w.corr)
		}
		cn := w.corr.Correct + w.corr.Incorrect
		checkMetric(t, s.Server+" correctness", s.Correctness, float64(w.corr.Correct)/float64(cn), cn, 1, w.corr.Incorrect == 0)
		if s.PublicationCounts != w.pub {
			t.Errorf("%s publication counts %+v, want %+v", s.Server, s.PublicationCounts, w.pub)
		}
		checkMetric(t, s.Server+" publication latency", s.PublicationLatency, w.pubMedian, w.pub.Exact+w.pub.Censored, 65, w.pubMedian <= 65)
		if s.Pass != w.pass {
			t.Errorf("%s pass %v, want %v", s.Server, s.Pass, w.pass)
		}
	}

	sys := r.System
	// System availability, Σ min(8, r) ÷ Σ 8 over 26784 (slot, VP):
	//  udp4: r = 13, minus b when t%25 == 0, minus g–l (6) for v2 in
	//        slots 2592–2603: r = 7 in 11 of them and 6 at slot 2600
	//        (2600 % 25 == 0) → Σ min = 8·26784 − 11 − 2 = 214259.
	//  udp6: m never answers, d not for v1 on the 1st: r ≥ 11 → 100 %.
	//  tcp4: 13. tcp6: 12 when c is REFUSED → 100 %.
	// System latency, the pooled 8 lowest per (slot, VP):
	//  udp4: normally a (10|12), 20…80; when b is out a, 30…90; in the
	//        outage a, 20…60, 130 (7 values) or a, 30…60, 130 at 2600 (6).
	//        N = 26772·8 + 11·7 + 6 = 214259 (odd), middle index 107129.
	//        Cumulative: a 26784, 20 +25710 = 52494, 30 → 79278,
	//        40 → 106062, 50 → 132846 ∋ 107129 → 50 ms. (With k−1 = 7
	//        values, as the public implementation takes, it would be 40.)
	//  udp6: 10…80, but 10, 20, 30, 50…90 for v1 on the 1st (d out):
	//        N = 8M, M = 26784; ≤ 40 holds 4M − 288 values, so both middle
	//        values (indexes 4M−1, 4M) are 50 → 50 ms (not 45).
	//  tcp4: 110, 120, 130, 140, 170, 180, 190, 200 everywhere (e 600 and
	//        f 500 are not among the lowest): (140 + 170)/2 = 155 ms.
	//  tcp6: 110…180, but 110, 120, 140…190 in the 2679 slots c is
	//        REFUSED: ≤ 140 holds 4M − 2679, ≤ 150 holds 5M − 2679, so
	//        both middle values are 150 → 150 ms.
	wantSys := []struct {
		avail            int64
		below            int64
		latCount         int64
		latMS, latThresh float64
	}{
		{214259, 12, 214259, 50, 150},
		{8 * octM, 0, 8 * octM, 50, 150},
		{8 * octM, 0, 8 * octM, 155, 300},
		{8 * octM, 0, 8 * octM, 150, 300},
	}
	for c, w := range wantSys {
		st := sys.Transports[c]
		name := "system " + combos[c].name
		if st.AvailableSum != w.avail || st.RequiredSum != 8*octM || st.Intervals != octM || st.IntervalsBelowK != w.below {
			t.Errorf("%s: Σmin %d Σk %d intervals %d below %d, want %d %d %d %d", name,
				st.AvailableSum, st.RequiredSum, st.Intervals, st.IntervalsBelowK, w.avail, 8*octM, octM, w.below)
		}
		ratio := float64(w.avail) / (8 * octM)
		checkMetric(t, name+" availability", st.Availability, ratio, octM, 0.99999, w.avail == 8*octM)
		checkMetric(t, name+" latency", st.Latency, w.latMS, w.latCount, w.latThresh, true)
	}
	// System correctness: every server's correct and incorrect; h's one
	// incorrect answer fails it.
	var wc CorrectnessCounts
	for _, w := range want {
		wc.add(w.corr)
	}
	if sys.CorrectnessCounts != wc {
		t.Errorf("system correctness counts %+v, want %+v", sys.CorrectnessCounts, wc)
	}
	checkMetric(t, "system correctness", sys.Correctness, float64(wc.Correct)/float64(wc.Correct+1), wc.Correct+1, 1, false)
	// System publication latency: all servers' samples pooled, 2443:
	// 0 ×189, 5 ×189, 10 ×96, 15 ×(93+2), 20 ×189, 25 ×189,
	// 30 ×(187+189) → cumulative 1323 > middle index 1221 → 30 min.
	checkMetric(t, "system publication latency", sys.PublicationLatency, 30, 2443, 35, true)
	if want := (PublicationCounts{Exact: 2442, Censored: 1, Pending: 15, Unmeasurable: 38}); sys.PublicationCounts != want {
		t.Errorf("system publication counts %+v, want %+v", sys.PublicationCounts, want)
	}
	if sys.Pass {
		t.Error("system passes; udp4 availability and correctness fail")
	}

	// The same observations in another order (slots scattered by a
	// stride coprime to 8928, vantage points backwards) give the same
	// report, byte for byte.
	r2, err := Compute(MonthPeriod(2026, 10), octoberConfig(), october(func(x int) int { return x * 1009 % octSlots }, true))
	if err != nil {
		t.Fatal(err)
	}
	var b1, b2 bytes.Buffer
	if err := r.WriteJSON(&b1); err != nil {
		t.Fatal(err)
	}
	if err := r2.WriteJSON(&b2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Error("report depends on the order of the observations")
	}
}

func checkMetric(t *testing.T, name string, m Metric, value float64, count int64, threshold float64, pass bool) {
	t.Helper()
	if m.Value == nil {
		t.Errorf("%s: no value, want %v", name, value)
		return
	}
	if *m.Value != value || m.Count != count || m.Threshold != threshold || m.Pass != pass {
		t.Errorf("%s: value %v count %d threshold %v pass %v, want %v %d %v %v", name, *m.Value, m.Count, m.Threshold, m.Pass, value, count, threshold, pass)
	}
}

func checkNoData(t *testing.T, name string, m Metric) {
	t.Helper()
	if m.Value != nil || m.Count != 0 || m.Pass {
		t.Errorf("%s: %+v, want no data and fail", name, m)
	}
}
