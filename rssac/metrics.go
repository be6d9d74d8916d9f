package rssac

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/netpulse/netpulse/probe/result"
)

// The metric definitions, and where they depart from the public
// implementation, are in docs/rssac.md. The comments here say how.

// Period kinds.
const (
	PeriodMonth  = "month"
	PeriodWeek   = "week"
	PeriodCustom = "custom"
)

// MaxPeriod bounds a period's span: the per-interval state is sized by it.
const MaxPeriod = 366 * 24 * time.Hour

// Period is the half-open interval [From, To) a report covers, in UTC.
type Period struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	Kind string    `json:"kind"`
}

// MonthPeriod is the calendar month (UTC). Out-of-range months normalise
// as time.Date does (month 13 is January of the next year).
func MonthPeriod(year int, month time.Month) Period {
	from := time.Date(year, month, 1, 0, 0, 0, 0, time.UTC)
	return Period{From: from, To: from.AddDate(0, 1, 0), Kind: PeriodMonth}
}

// WeekPeriod is ISO 8601 week `week` of `year`: Monday 00:00 UTC to the
// next Monday. Week 1 is the week that holds 4 January; out-of-range weeks
// normalise by counting weeks from week 1.
func WeekPeriod(year, week int) Period {
	jan4 := time.Date(year, time.January, 4, 0, 0, 0, 0, time.UTC)
	monday := jan4.AddDate(0, 0, -((int(jan4.Weekday()) + 6) % 7))
	from := monday.AddDate(0, 0, 7*(week-1))
	return Period{From: from, To: from.AddDate(0, 0, 7), Kind: PeriodWeek}
}

// ParsePeriod reads "2026-10" (a month) or "2026-W44" (an ISO week), as
// the report command's --month and --week take them.
func ParsePeriod(s string) (Period, error) {
	bad := func(why string) (Period, error) {
		return Period{}, fmt.Errorf("rssac: period %q: %s (want YYYY-MM or YYYY-Www)", s, why)
	}
	if len(s) < 7 || len(s) > 8 || s[4] != '-' {
		return bad("malformed")
	}
	year, err := digits(s[:4])
	if err != nil || year < 1970 || year > 9998 {
		return bad("bad year")
	}
	if s[5] == 'W' {
		if len(s) != 8 {
			return bad("malformed week")
		}
		w, err := digits(s[6:])
		if err != nil || w < 1 || w > 53 {
			return bad("bad week")
		}
		p := WeekPeriod(year, w)
		if y, wk := p.From.ISOWeek(); y != year || wk != w {
			return bad(fmt.Sprintf("%d has no week %d", year, w))
		}
		return p, nil
	}
	if len(s) != 7 {
		return bad("malformed month")
	}
	m, err := digits(s[5:])
	if err != nil || m < 1 || m > 12 {
		return bad("bad month")
	}
	return MonthPeriod(year, time.Month(m)), nil
}

// digits parses a string of ASCII digits only (no sign, no spaces).
func digits(s string) (int, error) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not digits")
		}
	}
	return strconv.Atoi(s)
}

// Name is the period as ParsePeriod reads it ("2026-10", "2026-W44"), or
// "FROM/TO" for a custom period.
func (p Period) Name() string {
	switch p.Kind {
	case PeriodMonth:
		return p.From.UTC().Format("2006-01")
	case PeriodWeek:
		y, w := p.From.ISOWeek()
		return fmt.Sprintf("%04d-W%02d", y, w)
	}
	return p.From.UTC().Format(time.RFC3339) + "/" + p.To.UTC().Format(time.RFC3339)
}

// Slots is the number of 5-minute intervals in the period.
func (p Period) Slots() int { return int(p.To.Sub(p.From) / result.Interval) }

// Contains reports whether t is in [From, To).
func (p Period) Contains(t time.Time) bool { return !t.Before(p.From) && t.Before(p.To) }

// Validate checks that the period is non-empty, at most MaxPeriod long,
// and starts and ends on 5-minute boundaries.
func (p Period) Validate() error {
	switch {
	case p.From.IsZero() || p.To.IsZero():
		return errors.New("rssac: period: from and to are required")
	case !p.To.After(p.From):
		return fmt.Errorf("rssac: period: to %s is not after from %s", p.To.Format(time.RFC3339), p.From.Format(time.RFC3339))
	case p.To.Sub(p.From) > MaxPeriod:
		return fmt.Errorf("rssac: period: %s is longer than %s", p.To.Sub(p.From), MaxPeriod)
	case !p.From.Equal(result.SlotOf(p.From)) || !p.To.Equal(result.SlotOf(p.To)):
		return errors.New("rssac: period: from and to must be on 5-minute boundaries")
	}
	switch p.Kind {
	case PeriodMonth, PeriodWeek, PeriodCustom:
	default:
		return fmt.Errorf("rssac: period: kind %q (want month, week or custom)", p.Kind)
	}
	return nil
}

// Limits on what Compute keeps state for.
const (
	// MaxServers bounds the server set: availability keeps a 64-bit set of
	// the servers that answered in each interval.
	MaxServers = 64
	// MaxHistory bounds Config.History.
	MaxHistory = 31 * 24 * time.Hour
)

// Thresholds are the RSSAC047 v2 pass marks. Ratios are fractions in
// (0, 1]; a ratio passes when it is at least its threshold, a latency when
// it is at most its threshold.
type Thresholds struct {
	// Per server (RSSAC047 §5).
	Availability       float64       // 0.96
	LatencyUDP         time.Duration // 250 ms
	LatencyTCP         time.Duration // 500 ms
	Correctness        float64       // 1
	PublicationLatency time.Duration // 65 min
	// Root server system (RSSAC047 §6).
	SystemAvailability       float64       // 0.99999
	SystemLatencyUDP         time.Duration // 150 ms
	SystemLatencyTCP         time.Duration // 300 ms
	SystemCorrectness        float64       // 1
	SystemPublicationLatency time.Duration // 35 min
}

// DefaultThresholds are RSSAC047 v2's.
func DefaultThresholds() Thresholds {
	return Thresholds{
		Availability:             0.96,
		LatencyUDP:               250 * time.Millisecond,
		LatencyTCP:               500 * time.Millisecond,
		Correctness:              1,
		PublicationLatency:       65 * time.Minute,
		SystemAvailability:       0.99999,
		SystemLatencyUDP:         150 * time.Millisecond,
		SystemLatencyTCP:         300 * time.Millisecond,
		SystemCorrectness:        1,
		SystemPublicationLatency: 35 * time.Minute,
	}
}

// Config says how Compute aggregates. A zero field takes its default,
// except History and FirstSeen, whose zero means none.
type Config struct {
	// K is how many servers the system needs (RSSAC047 §4.9: 8 of 13).
	K int
	// Servers is the expected server set, in report order. Observations of
	// other servers are dropped and counted; an expected server with no
	// observation is reported with no data (and fails). Empty: every
	// server observed in the period, sorted by name.
	Servers []string
	// Thresholds; a zero field takes DefaultThresholds' value.
	Thresholds Thresholds
	// FirstSeen holds serials' first appearance known from elsewhere (the
	// zone archive, or an earlier report's data). A serial's first
	// appearance is the earlier of this and the first slot in which any
	// server answered any vantage point with it.
	FirstSeen map[uint32]time.Time
	// StrictSerials makes FirstSeen the list of genuine serials: an answer
	// with any other serial is bogus and not used for publication latency
	// (RSSAC047 §5.4 step 1). Without it a single forged answer with a
	// high serial would hold every server "behind" until the period ends.
	StrictSerials bool
	// History is how far before the period observations are still used,
	// for publication latency only: they give serials' first appearance
	// and what each server served each vantage point just before the
	// period. Older observations are ignored. Zero: none.
	History time.Duration
	// MaxVPs bounds the vantage points (the state is per vantage point);
	// more is an error. Default 256.
	MaxVPs int
}

// DefaultConfig is RSSAC047 v2's k and thresholds, with a day of history.
func DefaultConfig() Config {
	return Config{K: 8, Thresholds: DefaultThresholds(), History: 24 * time.Hour, MaxVPs: 256}
}

// normalize fills defaults and checks the config.
func (c Config) normalize() (Config, error) {
	d := DefaultConfig()
	if c.K == 0 {
		c.K = d.K
	}
	if c.K < 1 || c.K > MaxServers {
		return c, fmt.Errorf("rssac: config: k = %d (want 1 to %d)", c.K, MaxServers)
	}
	if c.MaxVPs == 0 {
		c.MaxVPs = d.MaxVPs
	}
	if c.MaxVPs < 1 {
		return c, fmt.Errorf("rssac: config: max VPs %d (want at least 1)", c.MaxVPs)
	}
	if c.History < 0 || c.History > MaxHistory || c.History%result.Interval != 0 {
		return c, fmt.Errorf("rssac: config: history %s (want a multiple of 5m, at most %s)", c.History, MaxHistory)
	}
	if len(c.Servers) > MaxServers {
		return c, fmt.Errorf("rssac: config: %d servers (at most %d)", len(c.Servers), MaxServers)
	}
	seen := make(map[string]bool, len(c.Servers))
	for _, s := range c.Servers {
		if s == "" || seen[s] {
			return c, fmt.Errorf("rssac: config: server %q empty or listed twice", s)
		}
		seen[s] = true
	}
	t, dt := &c.Thresholds, d.Thresholds
	for _, f := range []struct {
		name string
		v    *float64
		def  float64
	}{
		{"availability", &t.Availability, dt.Availability},
		{"correctness", &t.Correctness, dt.Correctness},
		{"system availability", &t.SystemAvailability, dt.SystemAvailability},
		{"system correctness", &t.SystemCorrectness, dt.SystemCorrectness},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if !(*f.v > 0 && *f.v <= 1) {
			return c, fmt.Errorf("rssac: config: %s threshold %g (want a fraction in (0, 1])", f.name, *f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"latency UDP", &t.LatencyUDP, dt.LatencyUDP},
		{"latency TCP", &t.LatencyTCP, dt.LatencyTCP},
		{"publication latency", &t.PublicationLatency, dt.PublicationLatency},
		{"system latency UDP", &t.SystemLatencyUDP, dt.SystemLatencyUDP},
		{"system latency TCP", &t.SystemLatencyTCP, dt.SystemLatencyTCP},
		{"system publication latency", &t.SystemPublicationLatency, dt.SystemPublicationLatency},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 0 {
			return c, fmt.Errorf("rssac: config: %s threshold %s is negative", f.name, *f.v)
		}
	}
	return c, nil
}

// combos are the transport × family pairs, in report order.
var combos = [4]struct {
	name      string
	transport string
	family    int
}{
	{"udp4", result.UDP, 4},
	{"udp6", result.UDP, 6},
	{"tcp4", result.TCP, 4},
	{"tcp6", result.TCP, 6},
}

func comboOf(transport string, family int) int {
	i := 0
	switch transport {
	case result.UDP:
	case result.TCP:
		i = 2
	default:
		return -1
	}
	switch family {
	case 4:
		return i
	case 6:
		return i + 1
	}
	return -1
}

// Compute aggregates the observations of p into the RSSAC047 v2 metrics.
// The observations may come in any order. State is kept per server,
// transport and family (the response times, for the medians) and per
// vantage point and interval (for the system metrics and publication
// latency), never per observation.
func Compute(p Period, cfg Config, obs iter.Seq[Observation]) (*Report, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	c := newComputer(p, cfg)
	for o := range obs {
		if err := c.add(&o); err != nil {
			return nil, err
		}
	}
	return c.report(), nil
}

// computer is Compute's state. Slot indexes count 5-minute intervals from
// base (the start of the history window); the period starts at index hist.
type computer struct {
	p      Period
	cfg    Config
	base   time.Time
	hist   int // slots of history
	nslots int // history + period
	nper   int // period slots

	fixed     bool // server set fixed by cfg.Servers
	serverIdx map[string]int
	servers   []*serverAcc
	vpIdx     map[string]int
	vps       []*vpAcc
	// The last server and vantage point looked up: observations come in
	// runs, and comparing a string to itself is cheap.
	lastServer string
	lastSI     int
	lastVP     string
	lastV      *vpAcc
	// firstSeen is each serial's first appearance in the observations, as
	// a slot index; dataStart is the first slot with any serial.
	firstSeen map[uint32]int
	dataStart int
	// The last serial looked up in firstSeen, and its first slot.
	lastSerial uint32
	lastFirst  int
	lastOK     bool
	counts     Counts
}

type serverAcc struct {
	name     string
	inPeriod bool
	combos   [4]comboAcc
	corr     CorrectnessCounts
}

type comboAcc struct {
	sent, answered, rcodeErrors, timeouts int64
	// rtts holds the response times of the available answers, in
	// microseconds: 4 bytes per answer, exact to the microsecond.
	rtts chunks
}

// chunks is a list of uint32 that grows without copying.
type chunks [][]uint32

const chunkLen = 8192

func (c *chunks) add(v uint32) {
	n := len(*c)
	if n == 0 || len((*c)[n-1]) == chunkLen {
		*c = append(*c, make([]uint32, 0, chunkLen))
		n++
	}
	(*c)[n-1] = append((*c)[n-1], v)
}

func (c chunks) len() int {
	n := 0
	for _, b := range c {
		n += len(b)
	}
	return n
}

func (c chunks) each(f func(uint32)) {
	for _, b := range c {
		for _, v := range b {
			f(v)
		}
	}
}

// vpAcc is one vantage point's per-interval state.
type vpAcc struct {
	name     string
	inPeriod bool
	// Per combo, per period slot (allocated on the first in-period SOA
	// observation): whether the vantage point queried at all, which
	// servers answered, and the k lowest response times.
	queried [4][]uint64 // bit set over slots
	up      [4][]uint64 // set of server indexes
	low     [4]lowK
	// Per server index: the lowest serial answered in each slot (history
	// included), and the correctness retry cells per period slot.
	serial []*serialTrack
	corr   [][]uint8
}

// lowK keeps, per slot, the k lowest response times of distinct servers.
type lowK struct {
	vals []uint32 // slot*k + j
	srv  []uint8
	n    []uint8
}

// add offers server si's response time v for slot. A server appears at
// most once per slot, with its lowest time: the set kept is always the k
// lowest of the per-server minima (a value dropped or evicted is never
// below the set's largest, which only shrinks).
func (l *lowK) add(slot, k, si int, v uint32) {
	b := slot * k
	n := int(l.n[slot])
	vals, srv := l.vals[b:b+n], l.srv[b:b+n]
	for j := range srv {
		if int(srv[j]) == si {
			vals[j] = min(vals[j], v)
			return
		}
	}
	if n < k {
		l.vals[b+n], l.srv[b+n] = v, uint8(si)
		l.n[slot]++
		return
	}
	mj := 0
	for j := 1; j < n; j++ {
		if vals[j] > vals[mj] {
			mj = j
		}
	}
	if v < vals[mj] {
		vals[mj], srv[mj] = v, uint8(si)
	}
}

// serialTrack is the lowest serial a server answered a vantage point with
// in each slot, over every transport and family (RSSAC047 v2 §5.4 step 1).
type serialTrack struct {
	min []uint32
	has []uint64
}

// Correctness cell bits, per (vantage point, server, period slot): the
// first non-retry UDP query's class, and whether a TCP retry was seen.
const (
	cellClassMask = 0x3 // the UDP query's class
	cellUDP       = 0x4
	cellRetry     = 0x8
)

// Correctness classes.
const (
	classUnchecked = iota
	classCorrect
	classIncorrect
	classNoResponse
)

func newComputer(p Period, cfg Config) *computer {
	hist := int(cfg.History / result.Interval)
	c := &computer{
		p:         p,
		cfg:       cfg,
		base:      p.From.Add(-cfg.History),
		hist:      hist,
		nper:      p.Slots(),
		nslots:    hist + p.Slots(),
		serverIdx: make(map[string]int),
		vpIdx:     make(map[string]int),
		firstSeen: make(map[uint32]int),
		dataStart: math.MaxInt,
	}
	c.counts.Slots = c.nper
	if len(cfg.Servers) > 0 {
		c.fixed = true
		for _, s := range cfg.Servers {
			c.serverIdx[s] = len(c.servers)
			c.servers = append(c.servers, &serverAcc{name: s, inPeriod: true})
		}
	}
	return c
}

func (c *computer) server(name string) (int, error) {
	if name == c.lastServer { // never "": add rejects that first
		return c.lastSI, nil
	}
	if i, ok := c.serverIdx[name]; ok {
		c.lastServer, c.lastSI = name, i
		return i, nil
	}
	if c.fixed {
		return -1, nil
	}
	if len(c.servers) == MaxServers {
		return -1, fmt.Errorf("rssac: more than %d servers (next: %q)", MaxServers, name)
	}
	i := len(c.servers)
	c.serverIdx[name] = i
	c.servers = append(c.servers, &serverAcc{name: name})
	return i, nil
}

func (c *computer) vp(name string) (*vpAcc, error) {
	if name == c.lastVP && c.lastV != nil {
		return c.lastV, nil
	}
	if i, ok := c.vpIdx[name]; ok {
		c.lastVP, c.lastV = name, c.vps[i]
		return c.vps[i], nil
	}
	if len(c.vps) == c.cfg.MaxVPs {
		return nil, fmt.Errorf("rssac: more than %d vantage points (next: %q); raise Config.MaxVPs", c.cfg.MaxVPs, name)
	}
	v := &vpAcc{name: name}
	c.vpIdx[name] = len(c.vps)
	c.vps = append(c.vps, v)
	return v, nil
}

// periodState allocates a vantage point's per-interval state.
func (c *computer) periodState(v *vpAcc) {
	if v.up[0] != nil {
		return
	}
	k, words := c.cfg.K, (c.nper+63)/64
	for i := range combos {
		v.queried[i] = make([]uint64, words)
		v.up[i] = make([]uint64, c.nper)
		v.low[i] = lowK{vals: make([]uint32, c.nper*k), srv: make([]uint8, c.nper*k), n: make([]uint8, c.nper)}
	}
}

func (c *computer) add(o *Observation) error {
	ci := comboOf(o.Transport, o.Family)
	if o.VP == "" || o.Server == "" || ci < 0 || (o.Kind != KindSOA && o.Kind != KindCorrectness) ||
		o.Outcome < Answered || o.Outcome > Timeout || o.Verdict > Incorrect || o.RTT < 0 {
		c.counts.Invalid++
		return nil
	}
	d := o.Slot.Sub(c.base)
	if d%result.Interval != 0 {
		c.counts.Invalid++
		return nil
	}
	if d < 0 || !o.Slot.Before(c.p.To) {
		c.counts.Outside++
		return nil
	}
	slot := int(d / result.Interval)
	inPeriod := slot >= c.hist
	usesSerial := o.Kind == KindSOA && o.Outcome == Answered && o.HasSerial
	if !inPeriod && !usesSerial {
		c.counts.Outside++ // history serves publication latency only
		return nil
	}
	si, err := c.server(o.Server)
	if err != nil {
		return err
	}
	if si < 0 {
		c.counts.UnknownServer++
		return nil
	}
	v, err := c.vp(o.VP)
	if err != nil {
		return err
	}
	if inPeriod {
		c.counts.Observations++
		c.servers[si].inPeriod = true
		v.inPeriod = true
	} else {
		c.counts.History++
	}
	if usesSerial {
		c.serial(v, si, slot, o.Serial)
	}
	if !inPeriod {
		return nil
	}
	ps := slot - c.hist
	if o.Kind == KindCorrectness {
		c.counts.Correctness++
		c.correctness(v, si, ps, o)
		return nil
	}
	c.counts.SOA++
	c.periodState(v)
	ca := &c.servers[si].combos[ci]
	ca.sent++
	v.queried[ci][ps/64] |= 1 << (ps % 64)
	switch o.Outcome {
	case Answered:
		us := o.RTT.Round(time.Microsecond) / time.Microsecond
		us = min(us, math.MaxUint32)
		ca.answered++
		ca.rtts.add(uint32(us))
		v.up[ci][ps] |= 1 << si
		v.low[ci].add(ps, c.cfg.K, si, uint32(us))
	case RCodeError:
		// Unavailable, and "equivalent to a timeout" (RSSAC047 §5.1), so
		// its response time is not a latency measurement either.
		ca.rcodeErrors++
	default:
		ca.timeouts++
	}
	return nil
}

func (c *computer) serial(v *vpAcc, si, slot int, serial uint32) {
	if c.cfg.StrictSerials {
		if _, ok := c.cfg.FirstSeen[serial]; !ok {
			c.counts.UnknownSerials++
			return
		}
	}
	// Most answers carry the serial of the one before, seen no later.
	if serial != c.lastSerial || slot < c.lastFirst || !c.lastOK {
		f, ok := c.firstSeen[serial]
		if !ok || slot < f {
			f = slot
			c.firstSeen[serial] = f
		}
		c.lastSerial, c.lastFirst, c.lastOK = serial, f, true
		c.dataStart = min(c.dataStart, slot)
	}
	for len(v.serial) <= si {
		v.serial = append(v.serial, nil)
	}
	t := v.serial[si]
	if t == nil {
		t = &serialTrack{min: make([]uint32, c.nslots), has: make([]uint64, (c.nslots+63)/64)}
		v.serial[si] = t
	}
	w, b := slot/64, uint64(1)<<(slot%64)
	if t.has[w]&b == 0 || serial < t.min[slot] {
		t.min[slot] = serial
	}
	t.has[w] |= b
}

func (c *computer) correctness(v *vpAcc, si, ps int, o *Observation) {
	class := classUnchecked
	switch {
	case o.Outcome == Timeout:
		// No response within the timeout: not a correctness measurement
		// (RSSAC047 §5.3), whatever the verdict field says.
		class = classNoResponse
	case o.Verdict == Correct:
		class = classCorrect
	case o.Verdict == Incorrect:
		class = classIncorrect
	}
	c.servers[si].corr.addClass(class, 1)
	for len(v.corr) <= si {
		v.corr = append(v.corr, nil)
	}
	if v.corr[si] == nil {
		v.corr[si] = make([]uint8, c.nper)
	}
	cell := &v.corr[si][ps]
	switch {
	case o.Retry:
		*cell |= cellRetry
	case o.Transport == result.UDP && *cell&cellUDP == 0:
		*cell |= cellUDP | uint8(class)
	}
}

func (cc *CorrectnessCounts) addClass(class int, n int64) {
	switch class {
	case classCorrect:
		cc.Correct += n
	case classIncorrect:
		cc.Incorrect += n
	case classNoResponse:
		cc.NoResponse += n
	default:
		cc.Unchecked += n
	}
}

// report finishes the aggregation.
func (c *computer) report() *Report {
	c.supersede()
	r := &Report{
		Period: c.p,
		Name:   c.p.Name(),
		Config: ReportConfig{
			K:                  c.cfg.K,
			ExpectedServers:    slices.Clone(c.cfg.Servers),
			HistoryMinutes:     int(c.cfg.History / time.Minute),
			FirstSeenSerials:   len(c.cfg.FirstSeen),
			StrictSerials:      c.cfg.StrictSerials,
			LatencyPrecisionMS: 0.001,
		},
		Servers: []ServerResult{},
	}
	order := make([]int, 0, len(c.servers))
	for i, s := range c.servers {
		if s.inPeriod {
			order = append(order, i)
		}
	}
	if !c.fixed {
		slices.SortFunc(order, func(a, b int) int { return strings.Compare(c.servers[a].name, c.servers[b].name) })
	}
	pub := c.publication() // counts serials
	r.Counts = c.counts
	for _, v := range c.vps {
		if v.inPeriod {
			r.Counts.VantagePoints++
		}
	}
	r.Counts.Servers = len(order)

	th := c.cfg.Thresholds
	var sysCorr CorrectnessCounts
	var sysPub []int32
	var sysPubCounts PublicationCounts
	for _, si := range order {
		s := c.servers[si]
		sr := ServerResult{Server: s.name, Pass: true}
		for ci, cb := range combos {
			ca := &s.combos[ci]
			tr := TransportResult{
				Transport: cb.transport, Family: cb.family,
				Sent: ca.sent, Answered: ca.answered, RCodeErrors: ca.rcodeErrors, Timeouts: ca.timeouts,
			}
			tr.Availability = ratioMetric(ca.answered, ca.sent, th.Availability)
			lt := th.LatencyUDP
			if cb.transport == result.TCP {
				lt = th.LatencyTCP
			}
			tr.Latency = latencyMetric(ca.rtts.len(), ca.rtts.each, lt)
			ca.rtts = nil
			sr.Pass = sr.Pass && tr.Availability.Pass && tr.Latency.Pass
			sr.Transports = append(sr.Transports, tr)
		}
		sr.CorrectnessCounts = s.corr
		sr.Correctness = ratioMetric(s.corr.Correct, s.corr.Correct+s.corr.Incorrect, th.Correctness)
		ps := pub[si]
		sr.PublicationCounts = ps.counts
		sr.PublicationLatency = publicationMetric(ps.samples, th.PublicationLatency)
		sr.Pass = sr.Pass && sr.Correctness.Pass && sr.PublicationLatency.Pass
		r.Servers = append(r.Servers, sr)

		sysCorr.add(s.corr)
		sysPub = append(sysPub, ps.samples...)
		sysPubCounts.add(ps.counts)
	}

	sys := SystemResult{K: c.cfg.K, Pass: true}
	for ci, cb := range combos {
		st := c.system(ci)
		st.Transport, st.Family = cb.transport, cb.family
		st.Availability = ratioMetric(st.AvailableSum, st.RequiredSum, th.SystemAvailability)
		st.Availability.Count = st.Intervals
		lt := th.SystemLatencyUDP
		if cb.transport == result.TCP {
			lt = th.SystemLatencyTCP
		}
		n, each := c.lowest(ci)
		st.Latency = latencyMetric(n, each, lt)
		for _, v := range c.vps {
			v.low[ci] = lowK{}
		}
		sys.Pass = sys.Pass && st.Availability.Pass && st.Latency.Pass
		sys.Transports = append(sys.Transports, st)
	}
	sys.CorrectnessCounts = sysCorr
	sys.Correctness = ratioMetric(sysCorr.Correct, sysCorr.Correct+sysCorr.Incorrect, th.SystemCorrectness)
	sys.PublicationCounts = sysPubCounts
	sys.PublicationLatency = publicationMetric(sysPub, th.SystemPublicationLatency)
	sys.Pass = sys.Pass && sys.Correctness.Pass && sys.PublicationLatency.Pass
	r.System = sys
	return r
}

// supersede drops each truncated UDP correctness query that a TCP retry
// replaced: the retry is the measurement (RSSAC047 §5.3 [hjw]).
func (c *computer) supersede() {
	for _, v := range c.vps {
		for si, cells := range v.corr {
			for _, cell := range cells {
				if cell&cellRetry != 0 && cell&cellUDP != 0 {
					cc := &c.servers[si].corr
					cc.addClass(int(cell&cellClassMask), -1)
					cc.Superseded++
				}
			}
		}
	}
}

// system sums RSS availability for one combo: over every (interval,
// vantage point) in which the vantage point queried at all, r is the
// number of servers that answered with RCODE 0; the metric is
// Σ min(k, r) ÷ Σ k (RSSAC047 §6.1).
func (c *computer) system(ci int) SystemTransport {
	var st SystemTransport
	k := int64(c.cfg.K)
	for _, v := range c.vps {
		q := v.queried[ci]
		for w, word := range q {
			for word != 0 {
				b := bits.TrailingZeros64(word)
				word &= word - 1
				r := int64(bits.OnesCount64(v.up[ci][w*64+b]))
				st.Intervals++
				st.AvailableSum += min(k, r)
				st.RequiredSum += k
				if r < k {
					st.IntervalsBelowK++
				}
			}
		}
	}
	return st
}

// lowest pools the k lowest response times of every (interval, vantage
// point) for one combo (RSSAC047 §6.2), or all of them where fewer than k
// servers answered: it returns their number and a walk over them.
func (c *computer) lowest(ci int) (int, func(func(uint32))) {
	n := 0
	for _, v := range c.vps {
		for _, x := range v.low[ci].n {
			n += int(x)
		}
	}
	k := c.cfg.K
	return n, func(f func(uint32)) {
		for _, v := range c.vps {
			l := &v.low[ci]
			for s, x := range l.n {
				for _, val := range l.vals[s*k : s*k+int(x)] {
					f(val)
				}
			}
		}
	}
}

type pubResult struct {
	samples []int32 // publication latencies, in slots
	counts  PublicationCounts
}

// publication computes each server's publication latency samples
// (RSSAC047 v2 §5.4). For each vantage point and server, walking its
// slots in order, with m(t) the lowest serial it answered in slot t over
// every transport and family: serial S, first seen at slot F(S), is
// published to that pair at the first slot t ≥ F(S) with m(t) ≥ S, and
// the sample is t − F(S). Serials already served in the first slot of the
// data, and not known from Config.FirstSeen to be older, have no usable
// first appearance and are left out. A sample counts in the period in
// which t falls, and only when it is measurable: the pair was seen serving
// an older serial before, or t is F(S) itself (otherwise the pair may
// have caught up unseen, before the data starts). A pair still behind at
// the end of the data, last seen behind at slot L in the period, is
// censored: its latency is at least L + 1 − F(S); when that bound already
// exceeds the per-server threshold it is counted at the bound (a certain
// fail), otherwise it is left pending for the next period.
func (c *computer) publication() []pubResult {
	out := make([]pubResult, len(c.servers))
	type serialFirst struct {
		serial uint32
		first  int
	}
	var ser []serialFirst
	for s, f := range c.firstSeen {
		if t, ok := c.cfg.FirstSeen[s]; ok {
			f = min(f, c.slotOf(t))
		}
		if f == c.dataStart {
			// Already served when the data starts: published then or at
			// any time before, so there is nothing to measure from.
			c.counts.UndatedSerials++
			continue
		}
		ser = append(ser, serialFirst{s, f})
	}
	for s, t := range c.cfg.FirstSeen {
		if _, ok := c.firstSeen[s]; ok {
			continue
		}
		if f := c.slotOf(t); f < c.nslots {
			ser = append(ser, serialFirst{s, f})
		}
	}
	c.counts.Serials = len(ser)
	slices.SortFunc(ser, func(a, b serialFirst) int {
		if a.first != b.first {
			return a.first - b.first
		}
		return int(int64(a.serial) - int64(b.serial))
	})
	limit := int(c.cfg.Thresholds.PublicationLatency / result.Interval) // in slots

	type pending struct {
		serial    uint32
		first     int
		lagBefore bool // seen serving an older serial before F(S)
		lastLag   int  // last slot ≥ F(S) seen behind, or -1
	}
	var pend []pending
	for _, v := range c.vps {
		for si, t := range v.serial {
			if t == nil {
				continue
			}
			pr := &out[si]
			pend = pend[:0]
			next := 0
			low, seen := uint32(0), false // lowest serial seen so far
			for w, word := range t.has {
				for word != 0 {
					b := bits.TrailingZeros64(word)
					word &= word - 1
					slot := w*64 + b
					m := t.min[slot]
					for ; next < len(ser) && ser[next].first <= slot; next++ {
						s := ser[next]
						pend = append(pend, pending{s.serial, s.first, seen && low < s.serial, -1})
					}
					keep := pend[:0]
					for _, pe := range pend {
						if m < pe.serial {
							pe.lastLag = slot
							keep = append(keep, pe)
							continue
						}
						if !(pe.lagBefore || pe.lastLag >= 0 || slot == pe.first) {
							if slot >= c.hist {
								pr.counts.Unmeasurable++
							}
							continue
						}
						if slot >= c.hist {
							pr.samples = append(pr.samples, int32(slot-pe.first))
							pr.counts.Exact++
						}
					}
					pend = keep
					if !seen || m < low {
						low, seen = m, true
					}
				}
			}
			for _, pe := range pend {
				if pe.lastLag < c.hist {
					continue // not seen behind in the period
				}
				if bound := pe.lastLag + 1 - pe.first; bound > limit {
					pr.samples = append(pr.samples, int32(bound))
					pr.counts.Censored++
				} else {
					pr.counts.Pending++
				}
			}
		}
	}
	return out
}

// slotOf is t's slot index from base, clamped to the int32 range the
// samples use (a first appearance years before the period is still
// "long ago").
func (c *computer) slotOf(t time.Time) int {
	d := result.SlotOf(t).Sub(c.base) / result.Interval
	return int(max(min(d, math.MaxInt32/2), math.MinInt32/2))
}

// ratioMetric is good ÷ total, passing when at least threshold.
func ratioMetric(good, total int64, threshold float64) Metric {
	m := Metric{Unit: UnitRatio, Count: total, Threshold: threshold}
	if total > 0 {
		v := float64(good) / float64(total)
		m.Value = &v
		m.Pass = v >= threshold
	}
	return m
}

// latencyMetric is the median of the n response times (µs) that each
// walks, in milliseconds, passing when at most threshold.
func latencyMetric(n int, each func(func(uint32)), threshold time.Duration) Metric {
	m := Metric{Unit: UnitMS, Count: int64(n), Threshold: float64(threshold) / float64(time.Millisecond)}
	if n > 0 {
		v := medianU32(n, each) / 1000
		m.Value = &v
		m.Pass = v <= m.Threshold
	}
	return m
}

// publicationMetric is the median publication latency in minutes, passing
// when at most threshold. It sorts samples (in slots).
func publicationMetric(samples []int32, threshold time.Duration) Metric {
	m := Metric{Unit: UnitMinutes, Count: int64(len(samples)), Threshold: threshold.Minutes()}
	if len(samples) > 0 {
		v := median(samples) * result.Interval.Minutes()
		m.Value = &v
		m.Pass = v <= m.Threshold
	}
	return m
}

// Medians: the middle value of an odd count, the mean of the two middle
// values of an even count (as Python's statistics.median, which the
// public implementation uses). Exact: the values are far below 2^53.

// median sorts v and returns its median. v must not be empty.
func median(v []int32) float64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return float64(v[n/2])
	}
	return (float64(v[n/2-1]) + float64(v[n/2])) / 2
}

// medianU32 is the median of the n > 0 values that each walks, by a
// two-level radix select (high 16 bits, then low 16 bits): exact, two
// passes over the values, without sorting or copying them.
func medianU32(n int, each func(func(uint32))) float64 {
	lo, hi := n/2, n/2 // the order statistics wanted
	if n%2 == 0 {
		lo = n/2 - 1
	}
	h := make([]uint32, 1<<16)
	each(func(x uint32) { h[x>>16]++ })
	bLo, rLo := rank(h, lo)
	bHi, rHi := rank(h, hi)
	hl, hh := h, h
	clear(hl)
	if bHi != bLo {
		hh = make([]uint32, 1<<16)
	}
	each(func(x uint32) {
		switch uint32(x >> 16) {
		case bLo:
			hl[x&0xffff]++
		case bHi:
			hh[x&0xffff]++
		}
	})
	vLo, _ := rank(hl, rLo)
	vHi, _ := rank(hh, rHi)
	return (float64(bLo<<16|vLo) + float64(bHi<<16|vHi)) / 2
}

// rank finds the bucket of h holding the r-th value (from 0) and the
// value's rank within that bucket.
func rank(h []uint32, r int) (uint32, int) {
	for i, c := range h {
		if r < int(c) {
			return uint32(i), r
		}
		r -= int(c)
	}
	panic("rssac: rank beyond the histogram") // callers count first
}
