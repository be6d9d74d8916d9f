// Package rstoretest checks an rstore.Store implementation against the
// rules rstore documents, so that the memory, DuckDB and ClickHouse
// engines behave the same; and it loads a month of synthetic runs for the
// engines' scale benchmarks (Scale).
package rstoretest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/rssac"
	"github.com/netpulse/netpulse/rssac/rstore"
)

// Harness opens stores for the checks.
type Harness struct {
	// Open returns an empty store, closed (by the harness) when t ends.
	Open func(t testing.TB) rstore.Store
	// Reopen closes s and opens it again on the same data. Nil for an
	// engine that keeps nothing (Memory): the reopen check is skipped.
	Reopen func(t testing.TB, s rstore.Store) rstore.Store
}

// Run runs the checks as subtests.
func Run(t *testing.T, h Harness) {
	for _, tc := range []struct {
		name string
		f    func(*testing.T, Harness)
	}{
		{"RoundTrip", testRoundTrip},
		{"Duplicate", testDuplicate},
		{"Invalid", testInvalid},
		{"EmptyRun", testEmptyRun},
		{"MonthBoundaries", testMonthBoundaries},
		{"Runs", testRuns},
		{"Concurrent", testConcurrent},
		{"EarlyBreak", testEarlyBreak},
		{"Reopen", testReopen},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, h) })
	}
}

// Oct is the first slot of October 2026, the month most checks use.
var Oct = time.Date(2026, time.October, 1, 0, 0, 0, 0, time.UTC)

// Synth returns n observations of run (vp, slot), deterministic in their
// arguments, that between them use every value of every field: both kinds,
// transports and families, the three outcomes and verdicts, retries,
// serials with and without HasSerial (up to the largest uint32), and RTTs
// with nanoseconds.
func Synth(vp string, slot time.Time, n int) []rssac.Observation {
	out := make([]rssac.Observation, n)
	seed := uint64(slot.Unix()/300) * 2654435761
	for _, c := range vp {
		seed = seed*31 + uint64(c)
	}
	for i := range out {
		x := seed + uint64(i)*0x9e3779b97f4a7c15
		x ^= x >> 29
		srv := i % 13
		o := rssac.Observation{
			Slot:      slot,
			VP:        vp,
			Server:    string(rune('a'+srv)) + ".root-servers.net",
			Transport: []string{"udp", "tcp"}[i%2],
			Family:    []int{4, 6}[(i/2)%2],
			Kind:      rssac.KindSOA,
			Outcome:   rssac.Outcome(1 + x%3),
		}
		if o.Family == 4 {
			o.Address = fmt.Sprintf("198.51.100.%d", srv+1)
		} else {
			o.Address = fmt.Sprintf("2001:db8::%x", srv+1)
		}
		if i%5 == 4 {
			o.Kind = rssac.KindCorrectness
			o.Verdict = rssac.Verdict(x % 3)
			o.Retry = o.Transport == "tcp" && x%7 == 0
		}
		if o.Outcome != rssac.Timeout {
			o.RTT = time.Duration(1000 + x%400_000_000) // up to 0.4 s, in ns
		}
		if o.Kind == rssac.KindSOA && o.Outcome == rssac.Answered {
			o.Serial, o.HasSerial = 2026100100+uint32(x%4), true
			if x%11 == 0 {
				o.Serial = ^uint32(0)
			}
		}
		out[i] = o
	}
	return out
}

// Key is the run key of (vp, slot).
func Key(vp string, slot time.Time) rstore.RunKey { return rstore.RunKey{VP: vp, Slot: slot} }

func add(t testing.TB, s rstore.Store, vp string, slot time.Time, obs []rssac.Observation) {
	t.Helper()
	if err := s.AddRun(context.Background(), Key(vp, slot), obs); err != nil {
		t.Fatalf("AddRun(%s): %v", Key(vp, slot), err)
	}
}

// read returns the observations of [from, to), sorted.
func read(t testing.TB, s rstore.Store, from, to time.Time) []rssac.Observation {
	t.Helper()
	got, err := rstore.Collect(s.Observations(context.Background(), from, to))
	if err != nil {
		t.Fatalf("Observations(%s, %s): %v", from, to, err)
	}
	Sort(got)
	return got
}

// Sort orders observations by every field, so that two sets compare.
func Sort(obs []rssac.Observation) {
	slices.SortFunc(obs, func(a, b rssac.Observation) int {
		return cmp.Or(a.Slot.Compare(b.Slot), strings.Compare(a.VP, b.VP), strings.Compare(a.Server, b.Server),
			strings.Compare(a.Address, b.Address), strings.Compare(a.Transport, b.Transport), cmp.Compare(a.Family, b.Family),
			cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Outcome, b.Outcome), cmp.Compare(a.RTT, b.RTT),
			cmp.Compare(a.Serial, b.Serial), boolCmp(a.HasSerial, b.HasSerial), cmp.Compare(a.Verdict, b.Verdict),
			boolCmp(a.Retry, b.Retry))
	})
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// Diff describes how got differs from want (both sorted), or "".
// Observations are equal when every field is, slots as instants, and the
// slots got are in UTC.
func Diff(got, want []rssac.Observation) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d observations, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Slot.Location() != time.UTC {
			return fmt.Sprintf("observation %d: slot %v not in UTC", i, g.Slot)
		}
		gs, ws := g, w
		gs.Slot, ws.Slot = time.Time{}, time.Time{}
		if !g.Slot.Equal(w.Slot) || gs != ws {
			return fmt.Sprintf("observation %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	return ""
}

func check(t testing.TB, what string, got, want []rssac.Observation) {
	t.Helper()
	want = slices.Clone(want)
	Sort(want)
	if d := Diff(got, want); d != "" {
		t.Errorf("%s: %s", what, d)
	}
}

func testRoundTrip(t *testing.T, h Harness) {
	s := h.Open(t)
	slot := Oct.Add(12 * time.Hour)
	obs := Synth("001", slot, 200)
	// Every field at its extremes besides Synth's mix.
	obs = append(obs, rssac.Observation{Slot: slot, VP: "001", Server: "m.root-servers.net", Address: "2001:7fd::1",
		Transport: "tcp", Family: 6, Kind: rssac.KindCorrectness, Outcome: rssac.RCodeError,
		RTT: 3599*time.Second + 999_999_999, Serial: 0, HasSerial: true, Verdict: rssac.Incorrect, Retry: true},
		rssac.Observation{Slot: slot, VP: "001", Server: "ünïcode.example", Address: "", Transport: "udp", Family: 4,
			Kind: rssac.KindSOA, Outcome: rssac.Answered, RTT: 1, Serial: ^uint32(0), HasSerial: true})
	add(t, s, "001", slot, obs)
	check(t, "read back", read(t, s, slot, slot.Add(5*time.Minute)), obs)
	// A key in another location is the same instant; the slots come back
	// in UTC.
	paris := time.FixedZone("CEST", 2*3600)
	slot2 := slot.Add(5 * time.Minute).In(paris)
	obs2 := Synth("002", slot2, 10)
	add(t, s, "002", slot2, obs2)
	check(t, "read back from a non-UTC key", read(t, s, slot2, slot2.Add(time.Nanosecond)), obs2)
	// A range end inside a slot's second: [from, to) on instants.
	if got := read(t, s, slot.Add(time.Nanosecond), slot.Add(5*time.Minute)); len(got) != 0 {
		t.Errorf("[slot+1ns, slot+5m) has %d observations, want 0", len(got))
	}
	// The data covers every value of every enum.
	seen := map[string]bool{}
	for _, o := range obs {
		seen[fmt.Sprintf("verdict %d", o.Verdict)] = true
		seen[fmt.Sprintf("outcome %d", o.Outcome)] = true
		seen[fmt.Sprintf("retry %v", o.Retry)] = true
		seen[fmt.Sprintf("family %d %s", o.Family, o.Transport)] = true
	}
	for _, want := range []string{"verdict 0", "verdict 1", "verdict 2", "outcome 1", "outcome 2", "outcome 3",
		"retry true", "retry false", "family 4 udp", "family 4 tcp", "family 6 udp", "family 6 tcp"} {
		if !seen[want] {
			t.Errorf("test data lacks %s", want)
		}
	}
	// The caller may reuse its slice: the store kept a copy.
	obs[0].Server = "changed"
	got := read(t, s, slot, slot.Add(5*time.Minute))
	for _, o := range got {
		if o.Server == "changed" {
			t.Error("the store kept the caller's slice")
		}
	}
}

func testDuplicate(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := context.Background()
	slot := Oct.Add(time.Hour)
	obs := Synth("001", slot, 57)
	add(t, s, "001", slot, obs)
	// The same run again, and the same key with other observations: both
	// refused, nothing changed.
	for i, again := range [][]rssac.Observation{obs, Synth("001", slot, 3), nil} {
		err := s.AddRun(ctx, Key("001", slot), again)
		if !errors.Is(err, rstore.ErrDuplicate) {
			t.Errorf("AddRun #%d of a stored key: %v, want ErrDuplicate", i+2, err)
		}
	}
	// The same slot for another VP is another run.
	other := Synth("002", slot, 5)
	add(t, s, "002", slot, other)
	check(t, "after duplicates", read(t, s, slot, slot.Add(5*time.Minute)), append(slices.Clone(obs), other...))
	runs, err := s.Runs(ctx, Oct, Oct.AddDate(0, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	want := []rstore.VPRuns{{VP: "001", Runs: 1, Observations: 57, First: slot, Last: slot}, {VP: "002", Runs: 1, Observations: 5, First: slot, Last: slot}}
	checkRuns(t, runs, want)
}

func checkRuns(t testing.TB, got, want []rstore.VPRuns) {
	t.Helper()
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		g, w := got[i], want[i]
		same = g.VP == w.VP && g.Runs == w.Runs && g.Observations == w.Observations && g.First.Equal(w.First) && g.Last.Equal(w.Last) &&
			g.First.Location() == time.UTC && g.Last.Location() == time.UTC
	}
	if !same {
		t.Errorf("Runs:\n got %+v\nwant %+v", got, want)
	}
}

func testInvalid(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := context.Background()
	slot := Oct.Add(time.Hour)
	good := Synth("001", slot, 3)
	otherVP := Synth("001", slot, 3)
	otherVP[1].VP = "002"
	otherSlot := Synth("001", slot, 3)
	otherSlot[2].Slot = slot.Add(5 * time.Minute)
	for _, tc := range []struct {
		name string
		key  rstore.RunKey
		obs  []rssac.Observation
	}{
		{"no vp", Key("", slot), nil},
		{"long vp", Key(strings.Repeat("x", rstore.MaxVPLen+1), slot), nil},
		{"zero slot", Key("001", time.Time{}), nil},
		{"unaligned slot", Key("001", slot.Add(time.Minute)), nil},
		{"sub-second slot", Key("001", slot.Add(time.Millisecond)), nil},
		{"slot before 1970", Key("001", time.Date(1969, 12, 31, 23, 55, 0, 0, time.UTC)), nil},
		{"slot after 2105", Key("001", time.Date(2106, 1, 1, 0, 0, 0, 0, time.UTC)), nil},
		{"observation of another vp", Key("001", slot), otherVP},
		{"observation of another slot", Key("001", slot), otherSlot},
	} {
		if err := s.AddRun(ctx, tc.key, tc.obs); !errors.Is(err, rstore.ErrInvalid) {
			t.Errorf("%s: AddRun = %v, want ErrInvalid", tc.name, err)
		}
	}
	// Nothing of them was stored: the good run goes in.
	add(t, s, "001", slot, good)
	check(t, "after invalid runs", read(t, s, Oct, Oct.AddDate(0, 1, 0)), good)
	// An empty or reversed range is an error, not an empty answer.
	if _, err := rstore.Collect(s.Observations(ctx, slot, slot)); err == nil {
		t.Error("Observations of an empty range: no error")
	}
	if _, err := s.Runs(ctx, slot.Add(time.Hour), slot); err == nil {
		t.Error("Runs of a reversed range: no error")
	}
}

func testEmptyRun(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := context.Background()
	slot := Oct.Add(2 * time.Hour)
	add(t, s, "007", slot, nil)
	if err := s.AddRun(ctx, Key("007", slot), Synth("007", slot, 4)); !errors.Is(err, rstore.ErrDuplicate) {
		t.Errorf("AddRun after an empty run of the key: %v, want ErrDuplicate", err)
	}
	if got := read(t, s, Oct, Oct.AddDate(0, 1, 0)); len(got) != 0 {
		t.Errorf("%d observations, want 0", len(got))
	}
	runs, err := s.Runs(ctx, Oct, Oct.AddDate(0, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	checkRuns(t, runs, []rstore.VPRuns{{VP: "007", Runs: 1, First: slot, Last: slot}})
}

func testMonthBoundaries(t *testing.T, h Harness) {
	s := h.Open(t)
	nov := Oct.AddDate(0, 1, 0)
	slots := []time.Time{Oct.Add(-5 * time.Minute), Oct, nov.Add(-5 * time.Minute), nov}
	var all [][]rssac.Observation
	for i, slot := range slots {
		obs := Synth("001", slot, 3+i)
		add(t, s, "001", slot, obs)
		all = append(all, obs)
	}
	check(t, "October", read(t, s, Oct, nov), append(slices.Clone(all[1]), all[2]...))
	check(t, "September's last slot", read(t, s, Oct.AddDate(0, -1, 0), Oct), all[0])
	check(t, "November's first slot", read(t, s, nov, nov.AddDate(0, 1, 0)), all[3])
	// Ends in another location name the same instants.
	ny := time.FixedZone("EDT", -4*3600)
	check(t, "October from New York", read(t, s, Oct.In(ny), nov.In(ny)), append(slices.Clone(all[1]), all[2]...))
	runs, err := s.Runs(context.Background(), Oct, nov)
	if err != nil {
		t.Fatal(err)
	}
	checkRuns(t, runs, []rstore.VPRuns{{VP: "001", Runs: 2, Observations: int64(len(all[1]) + len(all[2])), First: Oct, Last: slots[2]}})
}

func testRuns(t *testing.T, h Harness) {
	s := h.Open(t)
	var want []rstore.VPRuns
	for v := range 3 {
		vp := fmt.Sprintf("%03d", v+1)
		w := rstore.VPRuns{VP: vp}
		for i := range 10 + v {
			slot := Oct.Add(time.Duration(i*(v+1)) * 5 * time.Minute)
			n := (i + v) % 4
			add(t, s, vp, slot, Synth(vp, slot, n))
			w.Runs++
			w.Observations += int64(n)
			if i == 0 {
				w.First = slot
			}
			w.Last = slot
		}
		want = append(want, w)
	}
	runs, err := s.Runs(context.Background(), Oct.AddDate(0, -1, 0), Oct.AddDate(0, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	checkRuns(t, runs, want)
	// A range that holds none.
	runs, err = s.Runs(context.Background(), Oct.AddDate(1, 0, 0), Oct.AddDate(1, 1, 0))
	if err != nil || len(runs) != 0 {
		t.Errorf("Runs of an empty year: %+v, %v", runs, err)
	}
}

func testConcurrent(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := context.Background()
	const writers = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored, dups := 0, 0
	var errs []error
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 4 {
				// Every writer adds the same four shared runs, and one
				// run of its own.
				for _, key := range []rstore.RunKey{Key("shared", Oct.Add(time.Duration(i)*5*time.Minute)), Key(fmt.Sprintf("w%d", w), Oct.Add(time.Duration(i)*5*time.Minute))} {
					err := s.AddRun(ctx, key, Synth(key.VP, key.Slot, 7))
					mu.Lock()
					switch {
					case err == nil:
						stored++
					case errors.Is(err, rstore.ErrDuplicate):
						dups++
					default:
						errs = append(errs, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if want := 4 + writers*4; stored != want || dups != (writers-1)*4 {
		t.Errorf("%d runs stored and %d duplicates, want %d and %d", stored, dups, want, (writers-1)*4)
	}
	if got := read(t, s, Oct, Oct.Add(time.Hour)); len(got) != (4+writers*4)*7 {
		t.Errorf("%d observations, want %d", len(got), (4+writers*4)*7)
	}
}

func testEarlyBreak(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := context.Background()
	for i := range 20 {
		slot := Oct.Add(time.Duration(i) * 5 * time.Minute)
		add(t, s, "001", slot, Synth("001", slot, 50))
	}
	// Leaving streams early, many times over, must release what they hold
	// (a connection, a lock): the store goes on working.
	for range 40 {
		for _, err := range s.Observations(ctx, Oct, Oct.Add(time.Hour)) {
			if err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	slot := Oct.Add(2 * time.Hour)
	add(t, s, "001", slot, Synth("001", slot, 5))
	if got := read(t, s, Oct, Oct.Add(3*time.Hour)); len(got) != 20*50+5 {
		t.Errorf("%d observations, want %d", len(got), 20*50+5)
	}
	// A cancelled context ends a stream with its error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := rstore.Collect(s.Observations(cctx, Oct, Oct.Add(3*time.Hour))); err == nil {
		t.Error("Observations with a cancelled context: no error")
	}
}

func testReopen(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("the engine keeps nothing across a reopen")
	}
	s := h.Open(t)
	slot := Oct.Add(24 * time.Hour)
	obs := Synth("001", slot, 57)
	add(t, s, "001", slot, obs)
	s = h.Reopen(t, s)
	check(t, "after reopening", read(t, s, Oct, Oct.AddDate(0, 1, 0)), obs)
	if err := s.AddRun(context.Background(), Key("001", slot), obs); !errors.Is(err, rstore.ErrDuplicate) {
		t.Errorf("AddRun of a run stored before reopening: %v, want ErrDuplicate", err)
	}
	slot2 := slot.Add(5 * time.Minute)
	add(t, s, "001", slot2, Synth("001", slot2, 2))
	runs, err := s.Runs(context.Background(), Oct, Oct.AddDate(0, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	checkRuns(t, runs, []rstore.VPRuns{{VP: "001", Runs: 2, Observations: 59, First: slot, Last: slot2}})
}
