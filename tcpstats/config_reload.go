package tcpstats

import (
	"slices"
	"strconv"
)

// reconfigure changes the service ports and top-K bounds of a Metrics in
// use, keeping every counter whose series stays: a port kept keeps its
// counts, a new port starts at 0, and a removed port's series go away
// (its later traffic counts as "other"). The caller must keep Recorder
// calls out while it runs (Live.Reload holds pause), because Packet reads
// the port table without the lock.
func (m *Metrics) reconfigure(cfg MetricsConfig) {
	cfg = cfg.withDefaults()
	m.mu.Lock()
	defer m.mu.Unlock()
	services := make([]string, 0, len(cfg.ServicePorts)+1)
	for _, p := range cfg.ServicePorts {
		services = append(services, strconv.Itoa(int(p)))
	}
	services = append(services, "other")
	// from[i] is the old index of new service i, or -1.
	from := make([]int, len(services))
	for i, s := range services {
		from[i] = slices.Index(m.services, s)
	}
	for _, im := range m.ifaces {
		for d := 0; d < 2; d++ {
			im.packets[d] = remap(im.packets[d], from, func() uint64 { return 0 })
			im.payload[d] = remap(im.payload[d], from, func() uint64 { return 0 })
			im.flags[d] = remap(im.flags[d], from, func() [NumFlags]uint64 { return [NumFlags]uint64{} })
		}
		im.started = remap(im.started, from, func() uint64 { return 0 })
		im.rtt = remap(im.rtt, from, func() histogram { return newHistogram(len(rttBuckets)) })
	}
	other := uint8(len(cfg.ServicePorts))
	for i := range m.svcOf {
		m.svcOf[i] = other
	}
	for i, p := range cfg.ServicePorts {
		m.svcOf[p] = uint8(i)
	}
	m.services = services
	m.cfg = cfg
	if len(m.top) > cfg.TopK {
		m.top = m.top[:cfg.TopK]
	}
}

// remap builds the per-service slice for new services from the old one.
func remap[T any](old []T, from []int, zero func() T) []T {
	out := make([]T, len(from))
	for i, j := range from {
		if j >= 0 && j < len(old) {
			out[i] = old[j]
		} else {
			out[i] = zero()
		}
	}
	return out
}

// removeInterface drops an interface's series, when it leaves the
// configuration.
func (m *Metrics) removeInterface(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.ifaces, name)
	m.order = slices.DeleteFunc(m.order, func(n string) bool { return n == name })
}
