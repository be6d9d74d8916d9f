package proxy

import (
	"sync"
	"time"
)

// meterBucket is the width of one meter slot.
const meterBucket = 10 * time.Second

// meterSlots covers 15 minutes plus the slot being filled.
const meterSlots = 15*60/10 + 1

// meter counts events in 10-second slots over the last 15 minutes, for
// the health check's In1/In15/Out1/Out15: flows per second averaged over
// the last 1 and 15 minutes of completed slots. Callers add once per
// datagram, not per flow, so a mutex costs little.
type meter struct {
	mu    sync.Mutex
	slots [meterSlots]struct {
		epoch int64
		n     uint64
	}
}

func slotOf(t time.Time) int64 { return t.UnixNano() / int64(meterBucket) }

func (m *meter) add(now time.Time, n uint64) {
	e := slotOf(now)
	i := int(e % meterSlots)
	m.mu.Lock()
	if m.slots[i].epoch != e {
		m.slots[i].epoch, m.slots[i].n = e, 0
	}
	m.slots[i].n += n
	m.mu.Unlock()
}

// rate returns events per second over the window's completed slots
// before now (the slot being filled is left out so a rate does not dip at
// the start of every slot).
func (m *meter) rate(now time.Time, window time.Duration) float64 {
	slots := int64(window / meterBucket)
	cur := slotOf(now)
	var sum uint64
	m.mu.Lock()
	for e := cur - slots; e < cur; e++ {
		s := m.slots[int(e%meterSlots)]
		if s.epoch == e {
			sum += s.n
		}
	}
	m.mu.Unlock()
	return float64(sum) / window.Seconds()
}
