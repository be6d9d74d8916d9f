package collector

import (
	"net/netip"
	"slices"
	"sync"
	"time"
)

// ProxyInfo is what the collector knows of one proxy: the proxy registry
// of GET /api/v1/proxies.
type ProxyInfo struct {
	Name string `json:"name"`
	// FirstSeen and LastSeen bound the requests it made (batches and
	// heartbeats); LastBatch is its last batch with records.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	LastBatch time.Time `json:"last_batch,omitzero"`
	// Remote is the address of its last request.
	Remote string `json:"remote,omitempty"`
	// Batches and Records were stored; Duplicates are records dropped as
	// copies of another proxy's; RepeatedBatches were retries of a batch
	// already stored.
	Batches         uint64 `json:"batches"`
	Records         uint64 `json:"records"`
	Duplicates      uint64 `json:"duplicate_records"`
	RepeatedBatches uint64 `json:"repeated_batches"`
	// Devices are the device ids seen in its records (0: unregistered
	// exporters), with each one's last record time.
	Devices map[uint64]time.Time `json:"devices"`
	// Exporters are the exporter addresses seen in its records.
	Exporters map[string]time.Time `json:"exporters"`
}

// Proxies is the proxy registry: which proxies sent what and when.
type Proxies struct {
	mu sync.Mutex
	m  map[string]*ProxyInfo
}

// maxPerProxy bounds the devices and exporters remembered per proxy, so
// that a proxy forwarding spoofed sources cannot grow the registry.
const maxPerProxy = 10000

func newProxies() *Proxies { return &Proxies{m: make(map[string]*ProxyInfo)} }

func (p *Proxies) get(name string, now time.Time) *ProxyInfo {
	pi := p.m[name]
	if pi == nil {
		pi = &ProxyInfo{Name: name, FirstSeen: now, Devices: map[uint64]time.Time{}, Exporters: map[string]time.Time{}}
		p.m[name] = pi
	}
	pi.LastSeen = now
	return pi
}

// seen records a request of a proxy (a heartbeat, or a batch before it is
// looked at).
func (p *Proxies) seen(name, remote string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pi := p.get(name, now)
	pi.Remote = remote
}

// stored records a stored batch.
func (p *Proxies) stored(name string, now time.Time, records, dups int, devices map[uint64]struct{}, exporters map[netip.Addr]struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pi := p.get(name, now)
	pi.Batches++
	pi.Records += uint64(records)
	pi.Duplicates += uint64(dups)
	if records > 0 {
		pi.LastBatch = now
	}
	for d := range devices {
		if _, ok := pi.Devices[d]; ok || len(pi.Devices) < maxPerProxy {
			pi.Devices[d] = now
		}
	}
	for a := range exporters {
		e := a.String()
		if _, ok := pi.Exporters[e]; ok || len(pi.Exporters) < maxPerProxy {
			pi.Exporters[e] = now
		}
	}
}

func (p *Proxies) repeated(name string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.get(name, now).RepeatedBatches++
}

// List returns a copy of the registry, sorted by name.
func (p *Proxies) List() []ProxyInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ProxyInfo, 0, len(p.m))
	for _, pi := range p.m {
		c := *pi
		c.Devices = make(map[uint64]time.Time, len(pi.Devices))
		for k, v := range pi.Devices {
			c.Devices[k] = v
		}
		c.Exporters = make(map[string]time.Time, len(pi.Exporters))
		for k, v := range pi.Exporters {
			c.Exporters[k] = v
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b ProxyInfo) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}
