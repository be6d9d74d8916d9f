package netflow

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// samplerKey names a sampler: an exporter's domain and the sampler ID its
// options data gives (0 when the options record names no sampler, which
// makes it the domain's default).
type samplerKey struct {
	exporter netip.Addr
	domain   uint32
	sampler  uint32
}

// maxSamplers bounds the table, which is keyed by data from the network.
const maxSamplers = 1 << 16

// samplingTable keeps what options data says: sampling rates per sampler,
// and the exporter's system init time (IE 160), which IPFIX uptime-based
// timestamps are relative to.
type samplingTable struct {
	mu    sync.RWMutex
	rates map[samplerKey]uint32
	init  map[samplerKey]uint64 // sampler is always 0 here
	// nRates and nInit are len(rates) and len(init), read without the
	// lock: most exporters send no options data, and their lookups then
	// take no lock at all.
	nRates, nInit atomic.Int32
}

func newSamplingTable() *samplingTable {
	return &samplingTable{rates: make(map[samplerKey]uint32), init: make(map[samplerKey]uint64)}
}

func (s *samplingTable) setRate(k samplerKey, rate uint32) {
	s.mu.Lock()
	if _, ok := s.rates[k]; ok || len(s.rates) < maxSamplers {
		s.rates[k] = rate
		s.nRates.Store(int32(len(s.rates)))
	}
	s.mu.Unlock()
}

// rate returns the rate of the record's sampler, falling back to the
// domain's default; 0 means unknown.
func (s *samplingTable) rate(exporter netip.Addr, domain, sampler uint32, hasSampler bool) uint32 {
	if s.nRates.Load() == 0 {
		return 0
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.rates) == 0 {
		return 0
	}
	if hasSampler {
		if r, ok := s.rates[samplerKey{exporter, domain, sampler}]; ok {
			return r
		}
	}
	return s.rates[samplerKey{exporter, domain, 0}]
}

func (s *samplingTable) setInit(exporter netip.Addr, domain uint32, ms uint64) {
	s.mu.Lock()
	k := samplerKey{exporter: exporter, domain: domain}
	if _, ok := s.init[k]; ok || len(s.init) < maxSamplers {
		s.init[k] = ms
		s.nInit.Store(int32(len(s.init)))
	}
	s.mu.Unlock()
}

func (s *samplingTable) initTime(exporter netip.Addr, domain uint32) (uint64, bool) {
	if s.nInit.Load() == 0 {
		return 0, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ms, ok := s.init[samplerKey{exporter: exporter, domain: domain}]
	return ms, ok
}
