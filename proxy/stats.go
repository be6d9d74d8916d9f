package proxy

import (
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Drop reasons, the values of the reason label of
// netpulse_proxy_flows_dropped_total.
const (
	reasonQueueFull    = "queue_full"   // the receive queue was full (datagrams)
	reasonUnregistered = "unregistered" // source not in the registry
	reasonDecode       = "decode_error" // malformed datagram
	reasonRateLimit    = "rate_limit"   // resampled away under -max
	reasonSinkFull     = "sink_full"    // a sink's queue refused it
)

var reasons = []string{reasonQueueFull, reasonUnregistered, reasonDecode, reasonRateLimit, reasonSinkFull}

// maxSources bounds the source addresses remembered per device.
const maxSources = 16

// deviceStats are one device's counters. Everything is atomic or under
// its own small lock: several workers update the same device.
type deviceStats struct {
	id        uint64
	datagrams atomic.Uint64
	bytes     atomic.Uint64
	flowsIn   atomic.Uint64
	flowsOut  atomic.Uint64
	// droppedDatagrams counts datagrams lost before decoding (queue full);
	// droppedFlows counts flows by reason.
	droppedDatagrams atomic.Uint64
	droppedFlows     [5]atomic.Uint64
	lastSeen         atomic.Int64 // unix nanoseconds
	highwater        atomic.Int64 // the deepest receive queue its datagrams met
	in, out          meter

	mu      sync.Mutex
	sources []netip.Addr
}

func (d *deviceStats) seen(src netip.Addr, now time.Time) {
	d.lastSeen.Store(now.UnixNano())
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.sources {
		if s == src {
			return
		}
	}
	if len(d.sources) < maxSources {
		d.sources = append(d.sources, src)
		sort.Slice(d.sources, func(i, j int) bool { return d.sources[i].Less(d.sources[j]) })
	}
}

func (d *deviceStats) sourceList() []netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]netip.Addr(nil), d.sources...)
}

func (d *deviceStats) drop(reason string, n uint64) {
	for i, r := range reasons {
		if r == reason {
			d.droppedFlows[i].Add(n)
			return
		}
	}
}

func (d *deviceStats) markHighwater(depth int) {
	for {
		cur := d.highwater.Load()
		if int64(depth) <= cur || d.highwater.CompareAndSwap(cur, int64(depth)) {
			return
		}
	}
}

// statsTable holds every device's counters, created on first use.
type statsTable struct {
	mu sync.RWMutex
	m  map[uint64]*deviceStats
}

func newStatsTable() *statsTable { return &statsTable{m: make(map[uint64]*deviceStats)} }

func (t *statsTable) get(id uint64) *deviceStats {
	t.mu.RLock()
	d := t.m[id]
	t.mu.RUnlock()
	if d != nil {
		return d
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if d = t.m[id]; d == nil {
		d = &deviceStats{id: id}
		t.m[id] = d
	}
	return d
}

func (t *statsTable) lookup(id uint64) *deviceStats {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.m[id]
}

// forget drops devices that are no longer registered.
func (t *statsTable) forget(keep func(id uint64) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id := range t.m {
		if !keep(id) {
			delete(t.m, id)
		}
	}
}

func (t *statsTable) all() []*deviceStats {
	t.mu.RLock()
	out := make([]*deviceStats, 0, len(t.m))
	for _, d := range t.m {
		out = append(out, d)
	}
	t.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}
