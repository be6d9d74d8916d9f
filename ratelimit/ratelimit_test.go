package ratelimit

import (
	"errors"
	"math"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// segment is a stretch of steady offered load, in multiples of Max.
type segment struct {
	ratio float64
	dur   time.Duration
}

// result sums what a simulation offered and kept.
type result struct {
	offered, kept        int
	bytes, packets       float64 // true totals
	estBytes, estPackets float64 // Σ kept x·factor
	perSec               []int   // kept flows in each second
	perInterval          []int   // kept flows in each interval
}

func (r result) keptRate(d time.Duration) float64 { return float64(r.kept) / d.Seconds() }
func (r result) bytesErr() float64                { return r.estBytes/r.bytes - 1 }
func (r result) packetsErr() float64              { return r.estPackets/r.packets - 1 }

// traffic is a table of flow sizes drawn from a heavy-tailed distribution:
// packets log-normal (σ = 1.5, CV ≈ 3), bytes = packets × 40…1500.
type traffic struct{ bytes, packets []float64 }

func newTraffic(seed uint64) traffic {
	rng := rand.New(rand.NewPCG(seed, 0x7ea))
	const n = 1 << 16
	tr := traffic{make([]float64, n), make([]float64, n)}
	for i := range n {
		p := 1 + math.Floor(math.Exp(1+1.5*rng.NormFloat64()))
		tr.packets[i] = p
		tr.bytes[i] = p * float64(40+rng.IntN(1461))
	}
	return tr
}

// simulate offers flows spread uniformly over each segment, each flow with a
// size picked at random from tr, and adds up what admit keeps.
func simulate(admit func(time.Time) (bool, uint32), maxRate int, interval time.Duration, seed uint64, segs []segment) result {
	tr := newTraffic(seed)
	rng := rand.New(rand.NewPCG(seed, 0xf10))
	var r result
	start := t0
	for _, sg := range segs {
		rate := sg.ratio * float64(maxRate)
		n := int(rate * sg.dur.Seconds())
		for i := range n {
			now := start.Add(time.Duration(float64(i) / rate * 1e9))
			j := rng.IntN(len(tr.bytes))
			b, p := tr.bytes[j], tr.packets[j]
			r.offered++
			r.bytes += b
			r.packets += p
			keep, f := admit(now)
			if !keep {
				continue
			}
			r.kept++
			r.estBytes += b * float64(f)
			r.estPackets += p * float64(f)
			el := now.Sub(t0)
			s, k := int(el/time.Second), int(el/interval)
			for len(r.perSec) <= s {
				r.perSec = append(r.perSec, 0)
			}
			for len(r.perInterval) <= k {
				r.perInterval = append(r.perInterval, 0)
			}
			r.perSec[s]++
			r.perInterval[k]++
		}
		start = start.Add(sg.dur)
	}
	return r
}

func seeded(seed uint64) func() uint64 { return rand.New(rand.NewPCG(seed, 0x5eed)).Uint64 }

func mustNew(t testing.TB, cfg Config, rnd func() uint64) *Limiter {
	t.Helper()
	l, err := New(cfg, rnd)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// statMax is Max for the statistical tests: the default, or 400 under the
// race detector, where 24 million flows take minutes. Kept counts are then
// a tenth, their relative noise √10 times larger, still well within bounds.
func statMax() int {
	if raceEnabled {
		return 400
	}
	return DefaultMax
}

// TestOverload is the test: 10×Max for ten minutes of fake time.
// Nothing is left out of the averages, not even the first interval.
func TestOverload(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Max = statMax()
	const dur = 10 * time.Minute
	l := mustNew(t, cfg, seeded(1))
	r := simulate(l.Admit, cfg.Max, cfg.Interval, 1, []segment{{10, dur}})
	kept := r.keptRate(dur) / float64(cfg.Max)
	t.Logf("10×Max: offered %d, kept %.4f×Max, bytes %+.3f%%, packets %+.3f%%", r.offered, kept, 100*r.bytesErr(), 100*r.packetsErr())
	if math.Abs(kept-1) > 0.05 {
		t.Errorf("kept %.4f×Max, want within 5%% of Max", kept)
	}
	if math.Abs(r.bytesErr()) > 0.02 || math.Abs(r.packetsErr()) > 0.02 {
		t.Errorf("bytes off by %+.3f%%, packets by %+.3f%%, want within 2%%", 100*r.bytesErr(), 100*r.packetsErr())
	}
	st := l.Stats()
	if st.Offered != uint64(r.offered) || st.Kept != uint64(r.kept) {
		t.Errorf("Stats offered %d kept %d, want %d %d", st.Offered, st.Kept, r.offered, r.kept)
	}
	if math.Abs(st.Factor-10) > 0.3 || math.Abs(st.Rate/float64(cfg.Max)-10) > 0.3 {
		t.Errorf("Stats factor %.3f rate %.0f, want about 10 and %d", st.Factor, st.Rate, 10*cfg.Max)
	}
}

// TestOverloadSweep runs the same ten minutes across seeds and overload
// ratios, to show the figures are not luck and that the kept rate does not
// depend on the ratio being an integer. Max is 400 to keep it quick; the
// kept count is then 240 000, its binomial sd 0.2 %.
func TestOverloadSweep(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("long; statistics only")
	}
	cfg := DefaultConfig()
	cfg.Max = 400
	const dur = 10 * time.Minute
	for _, ratio := range []float64{1.05, 1.5, 2.5, 7.3, 10, 33.3} {
		for seed := uint64(1); seed <= 5; seed++ {
			l := mustNew(t, cfg, seeded(seed))
			r := simulate(l.Admit, cfg.Max, cfg.Interval, seed, []segment{{ratio, dur}})
			kept := r.keptRate(dur) / float64(cfg.Max)
			t.Logf("%5.2f×Max seed %d: kept %.4f×Max, bytes %+.3f%%, packets %+.3f%%", ratio, seed, kept, 100*r.bytesErr(), 100*r.packetsErr())
			if math.Abs(kept-1) > 0.05 {
				t.Errorf("%.2f×Max seed %d: kept %.4f×Max, want within 5%%", ratio, seed, kept)
			}
			if math.Abs(r.bytesErr()) > 0.02 || math.Abs(r.packetsErr()) > 0.02 {
				t.Errorf("%.2f×Max seed %d: bytes off by %+.3f%%, packets by %+.3f%%, want within 2%%", ratio, seed, 100*r.bytesErr(), 100*r.packetsErr())
			}
		}
	}
}

// TestUnderLimit checks that a device under the limit loses nothing, even
// when its flows come 30 to a datagram, or at random (Poisson) times close
// to the limit.
func TestUnderLimit(t *testing.T) {
	cfg := DefaultConfig()
	for _, tc := range []struct {
		name    string
		ratio   float64
		batch   int
		poisson bool
	}{
		{"half", 0.5, 1, false},
		{"0.99", 0.99, 1, false},
		{"0.9 in datagrams of 30", 0.9, 30, false},
		{"0.95 Poisson", 0.95, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := mustNew(t, cfg, seeded(1))
			rng := rand.New(rand.NewPCG(1, 2))
			rate := tc.ratio * float64(cfg.Max) / float64(tc.batch)
			n := int(rate * (5 * time.Minute).Seconds())
			now := t0
			for i := range n {
				if tc.poisson {
					now = now.Add(time.Duration(rng.ExpFloat64() / rate * 1e9))
				} else {
					now = t0.Add(time.Duration(float64(i) / rate * 1e9))
				}
				for range tc.batch {
					if keep, f := l.Admit(now); !keep || f != 1 {
						t.Fatalf("flow %d at %v: Admit = %v, %d, want true, 1", i, now.Sub(t0), keep, f)
					}
				}
			}
			if st := l.Stats(); st.Factor != 1 {
				t.Errorf("Stats factor %v, want 1", st.Factor)
			}
		})
	}
}

// TestUnlimited checks that Max 0 keeps everything.
func TestUnlimited(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Max = 0
	l := mustNew(t, cfg, seeded(1))
	for i := range 1_000_000 { // over 3 s, at 1e6/3 flows/s
		if keep, f := l.Admit(t0.Add(time.Duration(i) * 3 * time.Microsecond)); !keep || f != 1 {
			t.Fatalf("flow %d: Admit = %v, %d, want true, 1", i, keep, f)
		}
	}
	if st := l.Stats(); st.Offered != 1_000_000 || st.Kept != 1_000_000 || math.Abs(st.Rate-1e6/3) > 1e4 {
		t.Errorf("Stats = %+v, want 1e6 offered and kept at 333 333/s", st)
	}
}

// TestBurst takes a device from half its limit to ten times it and back,
// twice, starting cold with a burst. Kept flows stay bounded and totals
// unbiased over the run. At a burst edge a second may keep up to about
// 2×Max (a slot's budget before the early checkpoint, then Max) and an
// interval its budget B plus Max·S; the bounds add 6 sd of binomial noise.
func TestBurst(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Max = statMax()
	segs := []segment{
		{10, 2 * time.Minute}, // cold start into a burst
		{0.5, 2 * time.Minute},
		{10, 2 * time.Minute},
		{0.5, 2*time.Minute + 7*time.Second}, // off the interval grid
		{10, time.Minute},
		{0.5, time.Minute},
	}
	var dur time.Duration
	for _, s := range segs {
		dur += s.dur
	}
	seeds := uint64(3)
	if testing.Short() || raceEnabled {
		seeds = 1
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		l := mustNew(t, cfg, seeded(seed))
		r := simulate(l.Admit, cfg.Max, cfg.Interval, seed, segs)
		maxSec, maxInt := 0, 0
		for _, k := range r.perSec {
			maxSec = max(maxSec, k)
		}
		for _, k := range r.perInterval {
			maxInt = max(maxInt, k)
		}
		budget := float64(cfg.Max) * cfg.Interval.Seconds()
		t.Logf("seed %d: kept %.3f×Max on average, max second %.3f×Max, max interval %.3f budgets, bytes %+.3f%%, packets %+.3f%%",
			seed, r.keptRate(dur)/float64(cfg.Max), float64(maxSec)/float64(cfg.Max), float64(maxInt)/budget, 100*r.bytesErr(), 100*r.packetsErr())
		m := float64(cfg.Max)
		if lim := 2*m + 6*math.Sqrt(2*m); float64(maxSec) > lim {
			t.Errorf("seed %d: a second kept %d flows, want at most %.0f", seed, maxSec, lim)
		}
		if lim := budget + m*cfg.Interval.Seconds()/slotsPerInterval + 6*math.Sqrt(budget); float64(maxInt) > lim {
			t.Errorf("seed %d: an interval kept %d flows, want at most %.0f", seed, maxInt, lim)
		}
		if math.Abs(r.bytesErr()) > 0.02 || math.Abs(r.packetsErr()) > 0.02 {
			t.Errorf("seed %d: bytes off by %+.3f%%, packets by %+.3f%%, want within 2%%", seed, 100*r.bytesErr(), 100*r.packetsErr())
		}
	}
}

// TestIdleGap checks that an idle device comes back with no stale history:
// after a silence of more than an interval, its previous interval counts as
// empty and it is not resampled.
func TestIdleGap(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Max = 400
	l := mustNew(t, cfg, seeded(1))
	simulate(l.Admit, cfg.Max, cfg.Interval, 1, []segment{{10, time.Minute}})
	back := t0.Add(time.Minute + 2*cfg.Interval)
	rate := 0.5 * float64(cfg.Max)
	for i := range int(rate * 60) {
		now := back.Add(time.Duration(float64(i) / rate * 1e9))
		if keep, f := l.Admit(now); !keep || f != 1 {
			t.Fatalf("flow %d at %v after the gap: Admit = %v, %d, want true, 1", i, now.Sub(back), keep, f)
		}
	}
}

// TestDecision checks that every keep threshold satisfies (1) exactly:
// a·keep + rem = 2⁶⁴, with rem < keep, so E[F·1{kept}] = 1.
func TestDecision(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ps := []float64{0.999999, 0.5, 1 / 7.3, 0.1, 1e-6, 1e-12, 0}
	for range 1000 {
		ps = append(ps, rng.Float64())
	}
	for _, p := range ps {
		d := newDecision(p)
		hi, lo := bits.Mul64(d.keep, uint64(d.a))
		sum, carry := bits.Add64(lo, d.rem, 0)
		if d.all || hi+carry != 1 || sum != 0 || d.rem >= d.keep || d.a+1 < d.a {
			t.Fatalf("p %g: decision %+v: a·keep + rem ≠ 2⁶⁴", p, d)
		}
	}
	for _, p := range []float64{1, 1.5, math.NaN()} {
		if d := newDecision(p); !d.all {
			t.Errorf("p %g: decision %+v, want all", p, d)
		}
	}
}

// TestFactorMean checks by simulation that kept flows carry factors whose
// sum estimates the flow count, at a fractional 1/p.
func TestFactorMean(t *testing.T) {
	d := newDecision(1 / 7.3)
	rnd := seeded(3)
	const n = 10_000_000
	var kept, sum, ceil float64
	for range n {
		u := rnd()
		if u >= d.keep {
			continue
		}
		kept++
		if u < d.rem {
			sum += float64(d.a + 1)
			ceil++
		} else {
			sum += float64(d.a)
		}
	}
	if d.a != 7 || math.Abs(kept/n-1/7.3) > 0.001 || math.Abs(sum/n-1) > 0.005 || math.Abs(ceil/kept-0.3) > 0.005 {
		t.Errorf("a %d, kept %.5f, Σfactor/n %.5f, P(a+1|kept) %.4f; want 7, %.5f, 1, 0.3", d.a, kept/n, sum/n, ceil/kept, 1/7.3)
	}
}

// TestConcurrent runs workers on shared devices with the default random
// source, under -race, and checks the counters add up and the factors
// still estimate the offered count.
func TestConcurrent(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Max = 1000
	s, err := NewSet(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	const workers, perWorker, devices = 4, 200_000, 3
	var clock atomic.Int64 // fake ns since t0, advanced by every worker
	var mu sync.Mutex
	var kept, est [devices]float64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var k, e [devices]float64
			for i := range perWorker {
				// 4 workers × 20 µs steps: 50 000 flows/s per device
				// for 3 devices round-robin, far above Max.
				now := t0.Add(time.Duration(clock.Add(5000)))
				dev := (i + w) % devices
				if keep, f := s.Admit(uint64(dev+1), now); keep {
					k[dev]++
					e[dev] += float64(f)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for d := range devices {
				kept[d] += k[d]
				est[d] += e[d]
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	if len(st.Devices) != devices {
		t.Fatalf("%d devices in Stats, want %d", len(st.Devices), devices)
	}
	var offered uint64
	for d, ds := range st.Devices {
		offered += ds.Offered
		if ds.ID != uint64(d+1) || ds.Kept != uint64(kept[d]) {
			t.Errorf("device %d: Stats %+v, want kept %v", d+1, ds, kept[d])
		}
		// The HT estimate of the count has sd √(Σ(F−1)·F) ≈ √(n·F).
		if sd := math.Sqrt(float64(ds.Offered) * ds.Factor); math.Abs(est[d]-float64(ds.Offered)) > 5*sd {
			t.Errorf("device %d: Σfactor %.0f, offered %d: more than 5 sd apart", d+1, est[d], ds.Offered)
		}
	}
	if offered != workers*perWorker {
		t.Errorf("Stats offered %d, want %d", offered, workers*perWorker)
	}
}

// TestSetBound checks that devices beyond MaxDevices share the overflow
// limiter, and that idle devices are dropped to make room.
func TestSetBound(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxDevices = 3
	s, err := NewSet(cfg, seeded(1))
	if err != nil {
		t.Fatal(err)
	}
	for id := uint64(1); id <= 5; id++ {
		s.Admit(id, t0)
	}
	st := s.Stats()
	if s.Len() != 3 || len(st.Devices) != 3 || st.Overflow.Offered != 2 {
		t.Fatalf("Len %d, Stats %+v: want 3 devices and 2 flows in overflow", s.Len(), st)
	}
	// Device 1 keeps sending; 2 and 3 go idle, and are dropped by the
	// first sweep (one per interval) after two idle intervals.
	now := t0
	for now.Sub(t0) < 3*cfg.Interval+2*time.Second {
		now = now.Add(100 * time.Millisecond)
		s.Admit(1, now)
	}
	s.Admit(6, now)
	st = s.Stats()
	var ids []uint64
	for _, d := range st.Devices {
		ids = append(ids, d.ID)
	}
	if len(ids) != 2 || ids[0] != 1 || ids[1] != 6 || st.Evicted != 2 || s.Len() != 2 {
		t.Errorf("devices %v, evicted %d, Len %d; want [1 6], 2, 2", ids, st.Evicted, s.Len())
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{"default", func(*Config) {}, true},
		{"unlimited", func(c *Config) { c.Max = 0 }, true},
		{"negative max", func(c *Config) { c.Max = -1 }, false},
		{"short interval", func(c *Config) { c.Interval = 100 * time.Millisecond }, false},
		{"zero interval", func(c *Config) { c.Interval = 0 }, false},
		{"no devices", func(c *Config) { c.MaxDevices = 0 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tc.ok)
			}
			if _, err := New(cfg, nil); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Errorf("New: %v, want ok %v or ErrConfig", err, tc.ok)
			}
		})
	}
}

func BenchmarkAdmit(b *testing.B) {
	for _, bc := range []struct {
		name  string
		ratio float64
	}{{"under", 0.5}, {"over10x", 10}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := DefaultConfig()
			l := mustNew(b, cfg, nil)
			step := time.Duration(1e9 / (bc.ratio * float64(cfg.Max)))
			now := t0
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(step)
				l.Admit(now)
			}
		})
	}
}

func BenchmarkAdmitParallel(b *testing.B) {
	cfg := DefaultConfig()
	l := mustNew(b, cfg, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		now := t0
		for pb.Next() {
			now = now.Add(10 * time.Microsecond) // 10×Max per worker
			l.Admit(now)
		}
	})
}

func BenchmarkSetAdmit(b *testing.B) {
	cfg := DefaultConfig()
	s, err := NewSet(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		now := t0
		var i uint64
		for b.Loop() {
			now = now.Add(10 * time.Microsecond)
			i++
			s.Admit(1000+i%64, now)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			now := t0
			var i uint64
			for pb.Next() {
				now = now.Add(10 * time.Microsecond)
				i++
				s.Admit(1000+i%64, now)
			}
		})
	})
}
