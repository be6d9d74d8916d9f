// Package ratelimit keeps the flows each device sends under a rate limit by
// resampling them without bias, as kproxy does with -max (flows per second
// per device, default 4000) and -sampleInterval (the span "across which any
// flow downsampling should occur", default 15 s).
//
// # Resampling
//
// When a device offers more than Max flows per second, each flow is kept at
// random with a probability p < 1, and a kept flow carries an integer
// factor F by which the caller multiplies its sampling rate. A sum over kept
// flows of x·F (x being bytes or packets, already scaled by the exporter's
// sampling rate) is a Horvitz–Thompson estimator of the sum over all flows
// when, for every flow,
//
//	E[F·1{kept}] = 1.                                                  (1)
//
// Integer factors and keep probability p are reconciled by randomised
// rounding. With the 64-bit uniform random number u drawn for the flow and
// the threshold K = ⌊p·2⁶⁴⌋, write 2⁶⁴ = a·K + r with 0 ≤ r < K (integer
// division, computed exactly). Then
//
//	u <  r        keep, F = a+1
//	r ≤ u < K     keep, F = a
//	u ≥ K         drop
//
// so P(kept) = K/2⁶⁴ ≈ p and E[F·1{kept}] = ((a+1)·r + a·(K−r))/2⁶⁴ =
// (a·K + r)/2⁶⁴ = 1 exactly: (1) holds with no floating-point rounding.
// Given that it is kept, a flow's factor is a or a+1 with mean 1/P(kept).
//
// Proof of unbiasedness: p is chosen from flows that came before (see the
// estimator below), and u is drawn afresh, independent of them, so (1)
// holds conditionally on everything that happened before the flow. By linearity
// E[Σ x_i·F_i·1{kept_i}] = Σ x_i, however often p changed in the interval,
// and whichever p a flow saw when workers raced on the same device.
//
// Why this rounding and not a fixed integer N (keep one flow in N, F = N):
// with N = ⌈rate/Max⌉ the kept rate is rate/N, which is Max·0.91 at 7.3×Max
// (N = 8) and Max·0.53 at 1.05×Max (N = 2): half the licence wasted in the
// worst case. Randomised rounding keeps Max flows per second in expectation
// at any overload. It is also the best integer scheme: among all ways to
// give kept flows integer factors that satisfy (1) with P(kept) = p, the
// variance p·E[F²|kept] − 1 of a flow's estimate (per unit x²) is smallest
// when F|kept takes the two integers around 1/p, because for an integer
// variable F with mean μ = a + f (a = ⌊μ⌋), (F−a)(F−a−1) ≥ 0 gives
// E[F²] ≥ μ² + f(1−f). The price over an ideal real factor 1/p is at most
// p/4 per flow, next to 1/p − 1 that any resampling at p costs.
//
// # The estimator
//
// Time is cut into intervals of length T (Interval), each into 15 slots of
// length S = T/15 (1 s by default). The first interval starts at the
// device's first flow. The budget of an interval is B = Max·T flows. At a
// checkpoint the limiter estimates the rate R̂ the device offers and sets
//
//	p = min(1, Max/R̂)
//
// for the flows that follow, so that kept ≈ offered·Max/R̂ = B per interval
// in a steady state, whatever the overload ratio. R̂ is the larger of
//
//   - the window rate, the flows of the last T seconds: with c the flows
//     of the current interval so far, e the time elapsed in it and C the
//     flows of the previous interval, R_w = (c + C·(T−e)/T)/T. In the
//     first interval there is no C, and R_w = c/max(e, S), the running
//     rate. R_w is smooth (it averages up to 15 slots), and a steady device
//     is limited from it.
//   - the recent rate, from the n flows since the last checkpoint, d time
//     ago: R_s = (n − 2√n)/max(d, S/16). It catches a burst within a slot
//     rather than an interval late. Two Poisson standard deviations are
//     taken off so that, for a steady device, the noise of a single slot
//     does not win over R_w (taking the larger of two noisy estimates
//     would bias R̂ up and the kept rate down).
//
// Checkpoints happen at the first flow after the slot ends (S after the
// previous checkpoint), at the first flow of a new interval (which moves c
// to C; after an idle interval, C = 0), and early, within the slot, when the
// flows since the last checkpoint reach A = max(2·R̂, Max)·S: the device
// offers at least twice the rate the current p was made for (or, when not
// limited, a whole slot's budget). A burst from below the limit therefore
// passes unresampled for at most about Max·S flows (one second's budget by
// default) before it is limited, including from a cold start: a new device
// starts with p = 1 and A = Max·S. A device is resampled only when it
// sent more than an interval's budget over the last T (R_w > Max) or more
// than a slot's budget since the last checkpoint (R_s > Max needs
// n ≥ Max·S: from a regular checkpoint, d ≥ S and n − 2√n > Max·d; from
// an early one, n ≥ A ≥ Max·S). Flows bunched within a slot, as exporters
// send them, do not count as a burst.
//
// After a burst ends, R_w decays linearly to the new rate over one
// interval, so the device stays resampled, below Max, for up to T: the
// limiter is quick to protect the collector and slow to trust a drop.
// Totals stay unbiased throughout; only their variance pays.
//
// Accuracy: in a steady overload R̂ is exact but for Poisson noise, so the
// kept count per interval is binomial with mean B (sd √B, 0.4 % of B at
// the defaults). The first interval keeps up to about Max·S flows more.
//
// # Cost
//
// Admit takes one atomic pointer load, one atomic add, one random number
// and, when the flow is kept, one more atomic add; it allocates nothing.
// Checkpoints, a few per slot at most, take a mutex and publish a new
// immutable decision.
package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults, as kproxy's -max and -sampleInterval.
const (
	DefaultMax        = 4000
	DefaultInterval   = 15 * time.Second
	DefaultMaxDevices = 100000
)

// slotsPerInterval cuts an interval into slots: the time between regular
// checkpoints, and the span of the recent rate. Fifteen gives 1 s slots at
// the default interval.
const slotsPerInterval = 15

// minKeep is the smallest keep threshold, out of 2⁶⁴: it caps the factor at
// 2³¹ so that a+1 fits in a uint32 with room to spare.
const minKeep = 1 << 33

// Config sets the limit.
type Config struct {
	// Max is the flows per second each device may send, averaged over
	// Interval; above it flows are resampled. 0 means no limit. Default
	// 4000 (kproxy's -max).
	Max int `yaml:"max"`
	// Interval is the span over which the rate is measured and resampling
	// happens. Default 15s (kproxy's -sampleInterval).
	Interval time.Duration `yaml:"interval"`
	// MaxDevices bounds the devices a Set tracks one by one; devices past
	// it share one limiter. Default 100000.
	MaxDevices int `yaml:"max_devices"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{Max: DefaultMax, Interval: DefaultInterval, MaxDevices: DefaultMaxDevices}
}

// Validate checks the configuration. The interval must leave slots of at
// least 10 ms, so that rates are measured over more than clock jitter.
func (c Config) Validate() error {
	switch {
	case c.Max < 0:
		return fmt.Errorf("ratelimit.max: %d: want 0 (no limit) or more", c.Max)
	case c.Max > math.MaxInt32:
		return fmt.Errorf("ratelimit.max: %d: want at most %d flows per second", c.Max, math.MaxInt32)
	case c.Interval < 150*time.Millisecond || c.Interval > 24*time.Hour:
		return fmt.Errorf("ratelimit.interval: %v: want between 150ms and 24h (default %v)", c.Interval, DefaultInterval)
	case c.MaxDevices < 1:
		return fmt.Errorf("ratelimit.max_devices: %d: want 1 or more (default %d)", c.MaxDevices, DefaultMaxDevices)
	}
	return nil
}

// ErrConfig is wrapped by New and NewSet when the configuration is invalid.
var ErrConfig = errors.New("ratelimit: invalid configuration")

// decision is what Admit needs, published as a whole at each checkpoint so
// that the hot path reads it with one atomic load and no lock.
type decision struct {
	// next is when the next regular checkpoint is due, in Unix ns.
	next int64
	// alarm is the number of flows since the last checkpoint that forces
	// an early one.
	alarm int64
	// all means p = 1: keep every flow with factor 1.
	all bool
	// keep, rem and a: keep when u < keep, with factor a+1 when u < rem,
	// else a; a·keep + rem = 2⁶⁴.
	keep, rem uint64
	a         uint32
	// rate is R̂ in flows per second, for Stats.
	rate float64
}

// newDecision builds the keep thresholds for probability p.
func newDecision(p float64) decision {
	if !(p < 1-1e-12) { // also catches NaN
		return decision{all: true, a: 1}
	}
	k := uint64(minKeep)
	if p*0x1p64 > minKeep {
		k = uint64(p * 0x1p64)
	}
	a, r := bits.Div64(1, 0, k) // 2⁶⁴ = a·k + r
	return decision{keep: k, rem: r, a: uint32(a)}
}

// Limiter limits the flows of one device. It is safe for concurrent use.
type Limiter struct {
	dec  atomic.Pointer[decision]
	slot atomic.Int64 // flows since the last checkpoint
	kept atomic.Uint64
	// last is the time of the last checkpoint, readable without mu; no
	// flow came after last + S.
	last atomic.Int64

	rnd      func() uint64
	max      float64 // flows/s; 0 = no limit
	interval int64   // T in ns
	slotLen  int64   // S in ns

	mu      sync.Mutex
	started bool
	start   int64   // current interval's start, Unix ns
	cur     int64   // flows of the current interval before the slot
	prev    int64   // flows of the previous interval
	hasPrev bool    // prev is known: not in the first interval
	offered uint64  // flows before the slot, since the start
	p       float64 // the current keep probability, for Stats
}

// New returns a limiter for one device. rnd draws uniform 64-bit numbers;
// it must be safe for concurrent use if Admit is; nil means
// math/rand/v2.Uint64. Tests pass a seeded source to be deterministic.
func New(cfg Config, rnd func() uint64) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return newLimiter(cfg, rnd), nil
}

func newLimiter(cfg Config, rnd func() uint64) *Limiter {
	if rnd == nil {
		rnd = rand.Uint64
	}
	l := &Limiter{
		rnd:      rnd,
		max:      float64(cfg.Max),
		interval: int64(cfg.Interval),
		slotLen:  int64(cfg.Interval) / slotsPerInterval,
		p:        1,
	}
	// The first Admit takes a checkpoint, which starts the first interval.
	l.dec.Store(&decision{next: math.MinInt64, alarm: math.MaxInt64, all: true, a: 1})
	return l
}

// Admit decides whether to keep a flow offered at now, and by what factor
// to multiply the sampling rate of a kept flow so that byte and packet
// totals stay unbiased. The factor is 1 when the device is under the
// limit and at most 2³¹. now is when the flow was received; it need not
// be monotonic across callers.
func (l *Limiter) Admit(now time.Time) (keep bool, factor uint32) {
	t := now.UnixNano()
	d := l.dec.Load()
	if t >= d.next {
		d = l.checkpoint(t, false)
	}
	if l.slot.Add(1) >= d.alarm {
		d = l.checkpoint(t, true)
	}
	if d.all {
		l.kept.Add(1)
		return true, 1
	}
	u := l.rnd()
	if u >= d.keep {
		return false, 0
	}
	l.kept.Add(1)
	if u < d.rem {
		return true, d.a + 1
	}
	return true, d.a
}

// checkpoint re-estimates the rate and publishes a new decision. byCount
// says the flows since the last checkpoint reached the alarm.
func (l *Limiter) checkpoint(t int64, byCount bool) *decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.dec.Load()
	if t < d.next && (!byCount || l.slot.Load() < d.alarm) {
		return d // another caller took this checkpoint
	}
	if !l.started {
		l.started = true
		l.start = t
		l.last.Store(t)
	}
	last := l.last.Load()
	if t < last { // a caller with an older clock reading
		t = last
	}
	n := l.slot.Swap(0)
	l.offered += uint64(n)
	l.cur += n
	T, S := l.interval, l.slotLen
	if t-l.start >= T {
		k := (t - l.start) / T
		l.prev = l.cur
		if k > 1 { // whole intervals without a flow
			l.prev = 0
		}
		l.hasPrev = true
		l.cur = 0
		l.start += k * T
	}

	sec := func(ns int64) float64 { return float64(ns) / 1e9 }
	e := t - l.start
	var rw float64
	if l.hasPrev {
		rw = (float64(l.cur) + float64(l.prev)*float64(T-e)/float64(T)) / sec(T)
	} else {
		rw = float64(l.cur) / sec(max(e, S))
	}
	var rs float64
	if n > 0 {
		rs = (float64(n) - 2*math.Sqrt(float64(n))) / sec(max(t-last, S/16))
	}
	rate := max(rw, rs, 0)

	p := 1.0
	if l.max > 0 && rate > l.max {
		p = l.max / rate
	}
	nd := newDecision(p)
	nd.rate = rate
	nd.next = min(t+S, l.start+T)
	nd.alarm = math.MaxInt64
	if l.max > 0 {
		nd.alarm = int64(min(math.Ceil(max(2*rate, l.max)*sec(S)), 1<<62))
	}
	l.p = p
	l.last.Store(t)
	l.dec.Store(&nd)
	return &nd
}

// Stats describes a limiter for the health check.
type Stats struct {
	// Offered is the number of flows offered since the limiter started.
	Offered uint64
	// Kept is the number of them kept.
	Kept uint64
	// Rate is the estimated offered rate R̂, in flows per second.
	Rate float64
	// Factor is 1/p, the mean factor of kept flows now; 1 when the device
	// is under the limit.
	Factor float64
	// Last is the time of the last checkpoint, as of which Rate and
	// Factor hold; the device has sent no flow since Last + Interval/15.
	Last time.Time
}

// Stats returns the limiter's counters and current estimate.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{
		Offered: l.offered + uint64(l.slot.Load()),
		Kept:    l.kept.Load(),
		Rate:    l.dec.Load().rate,
		Factor:  1 / l.p,
		Last:    time.Unix(0, l.last.Load()),
	}
}

// idle reports whether no flow came in the two intervals before t: the
// limiter then holds no history, and dropping it loses nothing.
func (l *Limiter) idle(t int64) bool {
	return l.last.Load()+l.slotLen < t-2*l.interval
}
