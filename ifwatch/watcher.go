package ifwatch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// ErrNotRestored is returned by Observe and Tick before Restore.
var ErrNotRestored = errors.New("ifwatch: Restore must be called before Observe or Tick")

// Deps are what a Watcher is given.
type Deps struct {
	// Ledger records the outages and the keys seen. Required.
	Ledger Ledger
	// Now is the clock of silences, damping and confirmations. Default
	// time.Now.
	Now func() time.Time
}

// Watcher merges the sources' observations into one state per key,
// confirms changes with damping, records outages in the ledger and
// returns events for alerts. It does no I/O but the ledger's and starts
// no goroutine: the caller feeds it with Observe and calls Tick
// regularly (every few seconds to a minute: Tick is what notices
// silences). Its methods are safe for concurrent use; ledger calls are
// made with the watcher's lock held.
//
// The rules, in docs/ifwatch.md:
//   - A key is up when any source reported traffic > 0 within down_after.
//   - Zeros never take a key down sooner: a key goes down only when no
//     source has reported traffic for down_after (silence), so the zero
//     of a collector the flow moved away from is ignored whether the new
//     collector reported before or after it.
//   - An oper-down from a counters source takes the key down at once,
//     without waiting for down_after or hold; while it is in force (until
//     an oper-up, or for down_after after the last oper-down report)
//     traffic does not bring the key up.
//   - A key is unknown while no source has told anything about it.
//   - Silence does not take a key down while the source that last saw its
//     traffic is failing (SetSourceFailing): a collector that cannot be
//     polled says nothing about its exporters.
type Watcher struct {
	cfg       Config
	ledger    Ledger
	now       func() time.Time
	downAfter int64 // ns
	hold      int64
	flapWin   int64

	mu        sync.Mutex
	restored  bool
	keys      map[mapKey]*keyState
	sources   []sourceState // ID i+1 is sources[i]; 0 is no source
	sourceIDs map[Source]uint16
	lastSrc   Source // a cache of the last source looked up
	lastID    uint16
	pending   []KnownKey // keys not yet written to the ledger
	stats     Stats
}

type sourceState struct {
	Source
	failing bool
}

// keyState is what the watcher keeps per key. Times are Unix nanoseconds,
// 0 for none.
type keyState struct {
	key Key
	// base is where a silence is counted from when no traffic was seen:
	// when the key was first seen by this process, or its open outage's
	// start after a restart. 0: no source has told anything yet.
	base int64
	// lastPos is the latest traffic; posSince and posCount the run of
	// traffic it ends (observations with no silence of down_after
	// between them).
	lastPos  int64
	posSince int64
	posCount uint32
	// barrier: traffic at or before it does not count (the latest
	// oper-down report).
	barrier int64
	// operAt is the latest oper status report; operSince the first
	// report of the current oper-down.
	operAt    int64
	operSince int64
	operDown  bool
	operSrc   uint16
	// blame is the source that last saw traffic (else the first source
	// that told of the key); zeroAfter says it has reported a zero after
	// that traffic.
	blame     uint16
	zeroAfter bool

	state    State
	since    int64   // when the confirmed state began
	open     *Outage // the open outage while down
	flapping bool
	flaps    []int64 // confirmation times of recent up/down changes
}

// Stats are the watcher's counters and gauges, for metrics.
type Stats struct {
	// Observations counts the observations taken.
	Observations uint64
	// DroppedInvalid counts observations without an exporter address or
	// with a time before 1970; DroppedMaxKeys those of new keys past
	// max_keys.
	DroppedInvalid uint64
	DroppedMaxKeys uint64
	// IgnoredTraffic counts traffic reports that did not count: while an
	// oper-down was in force, or not after the latest oper-down.
	IgnoredTraffic uint64
	// Opened and Closed count outages; Changes the confirmed up/down
	// changes (first confirmations of new keys are not changes).
	Opened, Closed, Changes uint64
	// LedgerErrors counts failed ledger writes; each is retried at the
	// next Observe or Tick of the key.
	LedgerErrors uint64
	// Keys by confirmed state, and flapping.
	Keys, Up, Down, Unknown, Flapping int
}

// New checks cfg and builds a watcher; it reads nothing. Call Restore
// before anything else.
func New(cfg Config, deps Deps) (*Watcher, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Ledger == nil {
		return nil, errors.New("ifwatch: no ledger")
	}
	w := &Watcher{
		cfg:       cfg,
		ledger:    deps.Ledger,
		now:       deps.Now,
		downAfter: int64(cfg.DownAfter),
		hold:      int64(cfg.Hold),
		flapWin:   int64(cfg.FlapWindow),
		keys:      map[mapKey]*keyState{},
		sourceIDs: map[Source]uint16{},
	}
	if w.now == nil {
		w.now = time.Now
	}
	return w, nil
}

// Config returns the configuration in force, defaults filled in.
func (w *Watcher) Config() Config { return w.cfg }

// Restore loads the known keys and the open outages from the ledger, so
// that a restart does not split an outage in two: a key with an open
// outage is down from the outage's start, and the outage is closed when
// traffic comes back. Other known keys are unknown until a source tells
// of them; their first-seen time stays the ledger's. What happened while
// no watcher ran is not known and not counted, except that an open
// outage runs on. Restore replaces any state the watcher had.
func (w *Watcher) Restore(ctx context.Context) error {
	keys, err := w.ledger.Keys(ctx)
	if err != nil {
		return fmt.Errorf("ifwatch: restore: keys: %w", err)
	}
	open, err := w.ledger.OpenOutages(ctx)
	if err != nil {
		return fmt.Errorf("ifwatch: restore: open outages: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.keys = make(map[mapKey]*keyState, len(keys))
	w.pending = nil
	for _, k := range keys {
		w.keys[mk(k.Key)] = &keyState{key: k.Key}
	}
	for _, o := range open {
		ks := w.keys[mk(o.Key)]
		if ks == nil { // an outage of a key the ledger did not list
			ks = &keyState{key: o.Key}
			w.keys[mk(o.Key)] = ks
			w.pending = append(w.pending, KnownKey{o.Key, o.Start})
		}
		if ks.open != nil {
			continue // a ledger must not have two; keep the first
		}
		st := o.Start.UnixNano()
		ks.open = &o
		ks.state, ks.since, ks.base = Down, st, st
		ks.blame = w.sourceID(o.Source)
		ks.zeroAfter = o.Cause == CauseZero
	}
	w.restored = true
	return nil
}

// SetSourceFailing tells whether a source is failing (a collector that
// cannot be polled, a file missing): while it is, silence does not take
// down the keys whose traffic it saw last; they keep their state until
// it reports again. A source is healthy until told otherwise.
func (w *Watcher) SetSourceFailing(s Source, failing bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if id := w.sourceID(s); id != 0 {
		w.sources[id-1].failing = failing
	}
}

// Observe takes observations, in any order across sources, and returns
// the events they confirm (an oper-down at once, an up after
// hold_observations). A ledger error stops nothing: the other
// observations are taken, the change is retried at the key's next
// Observe or Tick, and the first error is returned.
func (w *Watcher) Observe(ctx context.Context, obs ...Observation) ([]Event, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.restored {
		return nil, ErrNotRestored
	}
	nowT := w.now()
	now := nowT.UnixNano()
	var events []Event
	var errs errCount
	for i := range obs {
		ks := w.apply(&obs[i], nowT, now)
		if ks == nil {
			continue
		}
		var err error
		events, err = w.evaluate(ctx, ks, now, events)
		errs.add(err)
	}
	return events, errs.err()
}

// Tick writes the new keys to the ledger, confirms the changes that time
// alone brings (silences, holds, the end of flapping) and returns their
// events, ordered by key.
func (w *Watcher) Tick(ctx context.Context) ([]Event, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.restored {
		return nil, ErrNotRestored
	}
	now := w.now().UnixNano()
	var errs errCount
	if len(w.pending) > 0 {
		if err := w.ledger.AddKeys(ctx, w.pending); err != nil {
			w.stats.LedgerErrors++
			errs.add(fmt.Errorf("ifwatch: add %d keys: %w", len(w.pending), err))
		} else if cap(w.pending) > 1024 {
			w.pending = nil // a burst of new keys: do not keep its room
		} else {
			w.pending = w.pending[:0]
		}
	}
	var events []Event
	for _, ks := range w.keys {
		var err error
		events, err = w.evaluate(ctx, ks, now, events)
		errs.add(err)
		if ks.flapping && now-ks.flaps[len(ks.flaps)-1] >= w.flapWin {
			ks.flapping, ks.flaps = false, ks.flaps[:0]
			ev := Event{Kind: EventStable, Key: ks.key, Time: tm(now), State: ks.state, Since: tm(ks.since)}
			if ks.open != nil {
				ev.Outage = *ks.open
			}
			events = append(events, ev)
		}
	}
	slices.SortStableFunc(events, func(a, b Event) int { return a.Key.Compare(b.Key) })
	return events, errs.err()
}

// apply records one observation and returns its key's state, or nil when
// the observation is dropped.
func (w *Watcher) apply(o *Observation, nowT time.Time, now int64) *keyState {
	if !o.Key.Exporter.IsValid() || (!o.Time.IsZero() && o.Time.Before(epoch)) {
		w.stats.DroppedInvalid++
		return nil
	}
	t := now
	if !o.Time.IsZero() && o.Time.Before(nowT) {
		t = o.Time.UnixNano() // a time in the future is taken as now
	}
	mkey := mk(o.Key)
	ks := w.keys[mkey]
	if ks == nil {
		if len(w.keys) >= w.cfg.MaxKeys {
			w.stats.DroppedMaxKeys++
			return nil
		}
		ks = &keyState{key: Key{Exporter: o.Key.Exporter.Unmap().WithZone(""), IfIndex: o.Key.IfIndex}}
		w.keys[mkey] = ks
		w.pending = append(w.pending, KnownKey{ks.key, tm(now)})
	}
	w.stats.Observations++
	src := w.sourceID(o.Source)
	if ks.base == 0 {
		ks.base = now
	}
	if ks.blame == 0 {
		ks.blame = src
	}
	switch o.Oper {
	case OperDown:
		if t >= ks.operAt {
			if !ks.operDown || t-ks.operAt >= w.downAfter {
				ks.operSince, ks.operSrc = t, src // a new oper-down
			}
			ks.operDown, ks.operAt = true, t
			ks.barrier, ks.posCount = t, 0
		}
	case OperUp:
		if t >= ks.operAt {
			ks.operDown, ks.operAt = false, t
		}
	}
	pos, zero := o.traffic()
	switch {
	case pos:
		if (ks.operDown && now-ks.operAt < w.downAfter) || t <= ks.barrier {
			w.stats.IgnoredTraffic++
			break
		}
		if t > ks.lastPos {
			if ks.posCount == 0 || t-ks.lastPos >= w.downAfter {
				ks.posSince, ks.posCount = t, 1 // a new run
			} else if ks.posCount < math.MaxUint32 {
				ks.posCount++
			}
			ks.lastPos, ks.blame, ks.zeroAfter = t, src, false
		} else if ks.posCount > 0 && t >= ks.posSince && ks.posCount < math.MaxUint32 {
			ks.posCount++ // late, but within the run
		}
	case zero:
		if src == ks.blame && t > ks.lastPos {
			ks.zeroAfter = true
		}
	}
	return ks
}

// raw is the key's state by the rules, before damping: the state, its
// cause when down, and since when.
func (w *Watcher) raw(ks *keyState, now int64) (State, Cause, int64) {
	if ks.base == 0 {
		return Unknown, "", 0
	}
	if ks.operDown && now-ks.operAt < w.downAfter {
		return Down, CauseOperDown, ks.operSince
	}
	if ks.lastPos > ks.barrier && now-ks.lastPos < w.downAfter {
		return Up, "", ks.posSince
	}
	ref := ks.lastPos
	if ref == 0 {
		ref = ks.base
	}
	if now-ref < w.downAfter {
		// Not down_after since the key was first seen (or since traffic
		// seen before an oper-down that has ended): not up, not down yet.
		return Unknown, "", 0
	}
	if ks.blame != 0 && w.sources[ks.blame-1].failing {
		return Unknown, "", 0
	}
	if ks.zeroAfter {
		return Down, CauseZero, ref
	}
	return Down, CauseSilence, ref
}

// evaluate confirms a change of the key's state when damping allows,
// writes it to the ledger and appends its event.
func (w *Watcher) evaluate(ctx context.Context, ks *keyState, now int64, events []Event) ([]Event, error) {
	k := ks.key
	st, cause, since := w.raw(ks, now)
	if st == Unknown || st == ks.state {
		return events, nil
	}
	var o Outage
	switch st {
	case Down:
		if cause != CauseOperDown && now < since+w.downAfter+w.hold {
			return events, nil
		}
		src := ks.blame
		if cause == CauseOperDown {
			src = ks.operSrc
		}
		o = Outage{Key: k, Start: tm(since), Source: w.source(src), Cause: cause, OpenedAt: tm(now)}
		var err error
		if o, err = w.ledger.Open(ctx, o); err != nil {
			w.stats.LedgerErrors++
			return events, fmt.Errorf("ifwatch: open outage of %s: %w", k, err)
		}
		w.stats.Opened++
		ks.open = &o
	case Up:
		if int64(ks.posCount) < int64(w.cfg.HoldObservations) || now-ks.posSince < w.hold {
			return events, nil
		}
		if ks.open != nil {
			since = max(since, ks.open.Start.UnixNano())
			err := w.ledger.Close(ctx, ks.open.ID, tm(since), tm(now))
			if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNotFound) {
				w.stats.LedgerErrors++
				return events, fmt.Errorf("ifwatch: close outage %d of %s: %w", ks.open.ID, k, err)
			}
			// Closed, or closed or removed by someone else: the key is up
			// either way.
			w.stats.Closed++
			o = *ks.open
			o.End, o.ClosedAt = tm(since), tm(now)
			ks.open = nil
		}
	}
	prev := ks.state
	ks.state, ks.since = st, since
	kind := EventUp
	if st == Down {
		kind = EventDown
	}
	ev := Event{Kind: kind, Key: k, Time: tm(now), State: st, Since: tm(since), Outage: o}
	if prev == Unknown {
		// A first confirmation: a new key, or the first report after a
		// restart. Only a key that is down is news.
		if st == Down {
			events = append(events, ev)
		}
		return events, nil
	}
	w.stats.Changes++
	ks.flaps = recentFlaps(ks.flaps, now-w.flapWin, w.cfg.FlapCount+1)
	ks.flaps = append(ks.flaps, now)
	switch {
	case ks.flapping:
		// held back until EventStable
	case len(ks.flaps) > w.cfg.FlapCount:
		ks.flapping = true
		ev.Kind = EventFlapping
		events = append(events, ev)
	default:
		events = append(events, ev)
	}
	return events, nil
}

// recentFlaps drops the times at or before cut, and the oldest ones so
// that one more fits in limit.
func recentFlaps(f []int64, cut int64, limit int) []int64 {
	i := 0
	for i < len(f) && (f[i] <= cut || len(f)-i >= limit) {
		i++
	}
	if i == 0 {
		return f
	}
	return append(f[:0], f[i:]...)
}

// Status is a key's confirmed state.
type Status struct {
	Key   Key
	State State
	// Since is when the state began; zero while unknown.
	Since time.Time
	// Flapping is set from EventFlapping to EventStable.
	Flapping bool
	// LastTraffic is the latest traffic seen by this process, and Source
	// the source that saw it (else the first to tell of the key).
	LastTraffic time.Time
	Source      Source
	// Outage is the open outage while down.
	Outage *Outage
}

// Status returns one key's status; a key never seen is Unknown.
func (w *Watcher) Status(k Key) Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	ks := w.keys[mk(k)]
	if ks == nil {
		return Status{Key: k}
	}
	return w.status(ks)
}

// Statuses returns every key's status, ordered by key.
func (w *Watcher) Statuses() []Status {
	w.mu.Lock()
	out := make([]Status, 0, len(w.keys))
	for _, ks := range w.keys {
		out = append(out, w.status(ks))
	}
	w.mu.Unlock()
	slices.SortFunc(out, func(a, b Status) int { return a.Key.Compare(b.Key) })
	return out
}

func (w *Watcher) status(ks *keyState) Status {
	s := Status{Key: ks.key, State: ks.state, Since: tm(ks.since), Flapping: ks.flapping,
		LastTraffic: tm(ks.lastPos), Source: w.source(ks.blame)}
	if ks.open != nil {
		o := *ks.open
		s.Outage = &o
	}
	return s
}

// Stats returns the counters, and counts the keys by state.
func (w *Watcher) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.stats
	s.Keys = len(w.keys)
	for _, ks := range w.keys {
		switch ks.state {
		case Up:
			s.Up++
		case Down:
			s.Down++
		default:
			s.Unknown++
		}
		if ks.flapping {
			s.Flapping++
		}
	}
	return s
}

// sourceID interns a source; 0 when there are too many (sources come
// from the configuration, so that does not happen).
func (w *Watcher) sourceID(s Source) uint16 {
	if s == (Source{}) {
		return 0
	}
	if w.lastID != 0 && s == w.lastSrc {
		return w.lastID
	}
	id, ok := w.sourceIDs[s]
	if !ok {
		if len(w.sources) >= math.MaxUint16 {
			return 0
		}
		w.sources = append(w.sources, sourceState{Source: s})
		id = uint16(len(w.sources))
		w.sourceIDs[s] = id
	}
	w.lastSrc, w.lastID = s, id
	return id
}

func (w *Watcher) source(id uint16) Source {
	if id == 0 {
		return Source{}
	}
	return w.sources[id-1].Source
}

var epoch = time.Unix(0, 0)

// tm turns Unix nanoseconds into a UTC time; 0 is the zero time.
func tm(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// errCount keeps the first of several errors and counts them.
type errCount struct {
	first error
	n     int
}

func (e *errCount) add(err error) {
	if err == nil {
		return
	}
	if e.first == nil {
		e.first = err
	}
	e.n++
}

func (e *errCount) err() error {
	switch e.n {
	case 0:
		return nil
	case 1:
		return e.first
	}
	return fmt.Errorf("%w (and %d more ledger errors)", e.first, e.n-1)
}
