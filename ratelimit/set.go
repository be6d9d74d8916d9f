package ratelimit

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Set limits many devices, each with its own Limiter, keyed by device ID.
// It is safe for concurrent use.
//
// Device IDs may come from auto-accepted exporters, so the set is bounded:
// it tracks at most MaxDevices devices one by one, and the flows of any
// device beyond that share a single overflow limiter, and so one Max
// between them. Sharing keeps memory bounded, the collector protected and
// the totals unbiased (resampling is unbiased whatever the group), at the
// price of fairness between those devices.
// A device idle for two intervals has no history left in its limiter, so
// such devices are dropped, at most once per interval, to make room.
type Set struct {
	cfg Config
	rnd func() uint64

	devices   sync.Map // uint64 → *Limiter
	n         atomic.Int64
	overflow  *Limiter
	evicted   atomic.Uint64
	nextSweep atomic.Int64

	sweepMu sync.Mutex // one sweep at a time
}

// NewSet returns an empty set. rnd is as for New.
func NewSet(cfg Config, rnd func() uint64) (*Set, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return &Set{cfg: cfg, rnd: rnd, overflow: newLimiter(cfg, rnd)}, nil
}

// Admit is Limiter.Admit for the device with the given ID.
func (s *Set) Admit(id uint64, now time.Time) (keep bool, factor uint32) {
	t := now.UnixNano()
	if t >= s.nextSweep.Load() {
		s.sweep(t)
	}
	if v, ok := s.devices.Load(id); ok {
		return v.(*Limiter).Admit(now)
	}
	return s.add(id).Admit(now)
}

// add returns the limiter of a device not found, creating it if there is
// room, else the overflow limiter.
func (s *Set) add(id uint64) *Limiter {
	for {
		n := s.n.Load()
		if n >= int64(s.cfg.MaxDevices) {
			return s.overflow
		}
		if s.n.CompareAndSwap(n, n+1) {
			break
		}
	}
	v, loaded := s.devices.LoadOrStore(id, newLimiter(s.cfg, s.rnd))
	if loaded { // another caller added it first
		s.n.Add(-1)
	}
	return v.(*Limiter)
}

// sweep drops idle devices. It runs at most once per interval, by the
// first caller past the due time; the others go on.
func (s *Set) sweep(t int64) {
	if !s.sweepMu.TryLock() {
		return
	}
	defer s.sweepMu.Unlock()
	if t < s.nextSweep.Load() {
		return
	}
	s.nextSweep.Store(t + int64(s.cfg.Interval))
	s.devices.Range(func(k, v any) bool {
		if v.(*Limiter).idle(t) && s.devices.CompareAndDelete(k, v) {
			s.n.Add(-1)
			s.evicted.Add(1)
		}
		return true
	})
}

// DeviceStats are the stats of one device's limiter.
type DeviceStats struct {
	ID uint64
	Stats
}

// SetStats describe a set for the health check.
type SetStats struct {
	// Devices are the devices tracked one by one, by ID.
	Devices []DeviceStats
	// Overflow is the limiter shared by devices beyond MaxDevices.
	Overflow Stats
	// Evicted counts devices dropped after two idle intervals.
	Evicted uint64
}

// Stats returns the stats of every device.
func (s *Set) Stats() SetStats {
	var st SetStats
	s.devices.Range(func(k, v any) bool {
		st.Devices = append(st.Devices, DeviceStats{ID: k.(uint64), Stats: v.(*Limiter).Stats()})
		return true
	})
	slices.SortFunc(st.Devices, func(a, b DeviceStats) int { return cmp.Compare(a.ID, b.ID) })
	st.Overflow = s.overflow.Stats()
	st.Evicted = s.evicted.Load()
	return st
}

// Len returns the number of devices tracked one by one.
func (s *Set) Len() int { return int(s.n.Load()) }
