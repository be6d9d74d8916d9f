package rstore

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/netpulse/netpulse/rssac"
)

// Memory is a Store in memory: nothing survives the process. Tests use
// it, and so does a collector that runs RSSAC ingest without a store.
type Memory struct {
	mu     sync.RWMutex
	runs   map[memKey][]rssac.Observation // never changed once stored
	closed bool
}

// memKey is RunKey with the slot as Unix seconds, so that equal instants
// in different locations are one key.
type memKey struct {
	vp   string
	slot int64
}

var _ Store = (*Memory)(nil)

// ErrClosed is returned by a Memory store's methods after Close.
var ErrClosed = errors.New("rstore: store closed")

// NewMemory returns an empty store.
func NewMemory() *Memory { return &Memory{runs: map[memKey][]rssac.Observation{}} }

// AddRun implements Store.
func (m *Memory) AddRun(ctx context.Context, key RunKey, obs []rssac.Observation) error {
	if err := Check(key, obs); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("rstore: add run %s: %w", key, err)
	}
	k := memKey{key.VP, key.Slot.Unix()}
	// A copy, with the slots in UTC: the caller may reuse obs.
	stored := slices.Clone(obs)
	for i := range stored {
		stored[i].Slot = stored[i].Slot.UTC()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if _, ok := m.runs[k]; ok {
		return fmt.Errorf("rstore: add run %s: %w", key, ErrDuplicate)
	}
	if stored == nil {
		stored = []rssac.Observation{}
	}
	m.runs[k] = stored
	return nil
}

// inRange returns the runs whose slot is in [from, to), under the read
// lock; the slices are never changed, so they are read after it.
func (m *Memory) inRange(from, to time.Time) (map[memKey][]rssac.Observation, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	f, t := from.Unix(), to.Unix()
	out := map[memKey][]rssac.Observation{}
	for k, obs := range m.runs {
		if k.slot >= f && k.slot < t {
			out[k] = obs
		}
	}
	return out, nil
}

// Observations implements Store. Slots are whole seconds, so comparing
// Unix seconds is exact for them; a range end with a fraction of a second
// is rounded up, so [from, to) still holds.
func (m *Memory) Observations(ctx context.Context, from, to time.Time) iter.Seq2[rssac.Observation, error] {
	if err := CheckRange(from, to); err != nil {
		return Fail(err)
	}
	return func(yield func(rssac.Observation, error) bool) {
		runs, err := m.inRange(ceilSecond(from), ceilSecond(to))
		if err != nil {
			yield(rssac.Observation{}, err)
			return
		}
		for _, obs := range runs {
			if err := ctx.Err(); err != nil {
				yield(rssac.Observation{}, err)
				return
			}
			for _, o := range obs {
				if !yield(o, nil) {
					return
				}
			}
		}
	}
}

// Runs implements Store.
func (m *Memory) Runs(ctx context.Context, from, to time.Time) ([]VPRuns, error) {
	if err := CheckRange(from, to); err != nil {
		return nil, err
	}
	runs, err := m.inRange(ceilSecond(from), ceilSecond(to))
	if err != nil {
		return nil, err
	}
	byVP := map[string]*VPRuns{}
	for k, obs := range runs {
		slot := time.Unix(k.slot, 0).UTC()
		v := byVP[k.vp]
		if v == nil {
			v = &VPRuns{VP: k.vp, First: slot, Last: slot}
			byVP[k.vp] = v
		}
		v.Runs++
		v.Observations += int64(len(obs))
		if slot.Before(v.First) {
			v.First = slot
		}
		if slot.After(v.Last) {
			v.Last = slot
		}
	}
	out := make([]VPRuns, 0, len(byVP))
	for _, v := range byVP {
		out = append(out, *v)
	}
	slices.SortFunc(out, func(a, b VPRuns) int { return strings.Compare(a.VP, b.VP) })
	return out, nil
}

// Close implements Store: later calls fail with ErrClosed.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.runs = nil
	return nil
}

// ceilSecond rounds t up to a whole second: a whole-second slot is at or
// after t exactly when it is at or after ceilSecond(t).
func ceilSecond(t time.Time) time.Time {
	if tr := t.Truncate(time.Second); !tr.Equal(t) {
		return tr.Add(time.Second)
	}
	return t
}
