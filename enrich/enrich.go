// Package enrich adds what the proxy knows about a flow's addresses:
// whether each is in the operator's internal networks (kproxy's
// -my_network), its reverse-DNS name from a given server (-dns, with the
// internal: rule), and its country and AS from MaxMind-format databases.
//
// Nothing here may slow the packet path. Reverse DNS is asynchronous and
// best effort: Apply answers from the cache, and an address not in it is
// queued for a lookup (or skipped and counted when the queue is full); its
// name appears on later flows. GeoIP answers are cached too.
package enrich

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/netpulse/netpulse/flow"
)

// Config configures enrichment. The zero value does nothing.
type Config struct {
	// MyNetworks mark addresses as internal (SrcInternal/DstInternal).
	MyNetworks []netip.Prefix `yaml:"my_network"`
	// DNS is the server for reverse lookups, host:port, UDP. With the
	// prefix "internal:" only RFC 1918 addresses are looked up.
	DNS string `yaml:"dns"`
	// DNSCacheTTL is how long a name (or the lack of one) is kept.
	// Default 24h, as kproxy.
	DNSCacheTTL time.Duration `yaml:"dns_cache_ttl"`
	// DNSTimeout bounds one lookup. Default 2s.
	DNSTimeout time.Duration `yaml:"dns_timeout"`
	// DNSWorkers is how many lookups run at once. Default 4.
	DNSWorkers int `yaml:"dns_workers"`
	// DNSQueue bounds the addresses waiting for a lookup. Default 10000.
	DNSQueue int `yaml:"dns_queue"`
	// DNSCacheSize bounds the name cache. Default 1,000,000 entries.
	DNSCacheSize int `yaml:"dns_cache_size"`
	// GeoIP is a MaxMind-format country (or city) database file.
	GeoIP string `yaml:"geoip"`
	// ASN is a MaxMind-format ASN database file; it fills the AS of flows
	// whose exporter gave none.
	ASN string `yaml:"asn"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{DNSCacheTTL: 24 * time.Hour, DNSTimeout: 2 * time.Second, DNSWorkers: 4, DNSQueue: 10000, DNSCacheSize: 1_000_000}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.DNSCacheTTL <= 0 {
		c.DNSCacheTTL = d.DNSCacheTTL
	}
	if c.DNSTimeout <= 0 {
		c.DNSTimeout = d.DNSTimeout
	}
	if c.DNSWorkers <= 0 {
		c.DNSWorkers = d.DNSWorkers
	}
	if c.DNSQueue <= 0 {
		c.DNSQueue = d.DNSQueue
	}
	if c.DNSCacheSize <= 0 {
		c.DNSCacheSize = d.DNSCacheSize
	}
}

// ParseDNS splits kproxy's -dns value: "[internal:]host:port".
func ParseDNS(s string) (server string, internalOnly bool, err error) {
	if rest, ok := strings.CutPrefix(s, "internal:"); ok {
		s, internalOnly = rest, true
	}
	if _, err := netip.ParseAddrPort(s); err != nil {
		return "", false, fmt.Errorf("dns %q: want [internal:]IP:PORT", s)
	}
	return s, internalOnly, nil
}

// ParseNetworks parses kproxy's -my_network: comma-separated CIDRs.
func ParseNetworks(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("my_network %q: %w", f, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Stats are the enricher's counters.
type Stats struct {
	DNSHits, DNSMisses, DNSQueued, DNSSkipped uint64
	DNSLookups, DNSFailures, DNSNames         uint64
	GeoLookups                                uint64
}

// Enricher applies the configuration to records. Apply is safe for
// concurrent use.
type Enricher struct {
	cfg          Config
	log          *slog.Logger
	dnsServer    string
	internalOnly bool
	now          func() time.Time

	names *nameCache
	queue chan netip.Addr
	wg    sync.WaitGroup
	stop  context.CancelFunc

	geo, asn *maxminddb.Reader
	geoCache *geoCache

	hits, misses, queued, skipped atomic.Uint64
	lookups, failures, found      atomic.Uint64
	geoLookups                    atomic.Uint64
}

// New checks the configuration and opens the databases.
func New(cfg Config, log *slog.Logger) (*Enricher, error) {
	cfg.fill()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Enricher{cfg: cfg, log: log, now: time.Now}
	if cfg.DNS != "" {
		srv, internal, err := ParseDNS(cfg.DNS)
		if err != nil {
			return nil, fmt.Errorf("enrich: %w", err)
		}
		e.dnsServer, e.internalOnly = srv, internal
		e.names = newNameCache(cfg.DNSCacheSize)
		e.queue = make(chan netip.Addr, cfg.DNSQueue)
	}
	var err error
	if cfg.GeoIP != "" {
		if e.geo, err = maxminddb.Open(cfg.GeoIP); err != nil {
			return nil, fmt.Errorf("enrich: geoip %s: %w", cfg.GeoIP, err)
		}
	}
	if cfg.ASN != "" {
		if e.asn, err = maxminddb.Open(cfg.ASN); err != nil {
			e.Close()
			return nil, fmt.Errorf("enrich: asn %s: %w", cfg.ASN, err)
		}
	}
	if e.geo != nil || e.asn != nil {
		e.geoCache = newGeoCache(1 << 20)
	}
	return e, nil
}

// Start starts the reverse-DNS workers.
func (e *Enricher) Start(ctx context.Context) error {
	if e.queue == nil {
		return nil
	}
	ctx, e.stop = context.WithCancel(ctx)
	client := &dns.Client{Net: "udp", Timeout: e.cfg.DNSTimeout}
	for i := 0; i < e.cfg.DNSWorkers; i++ {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case a := <-e.queue:
					e.resolve(ctx, client, a)
				}
			}
		}()
	}
	return nil
}

// Stop stops the workers and closes the databases.
func (e *Enricher) Stop(context.Context) error {
	if e.stop != nil {
		e.stop()
	}
	e.wg.Wait()
	return e.Close()
}

// Close closes the databases.
func (e *Enricher) Close() error {
	var errs []error
	if e.geo != nil {
		errs = append(errs, e.geo.Close())
	}
	if e.asn != nil {
		errs = append(errs, e.asn.Close())
	}
	return errors.Join(errs...)
}

// Stats returns the counters.
func (e *Enricher) Stats() Stats {
	return Stats{
		DNSHits: e.hits.Load(), DNSMisses: e.misses.Load(), DNSQueued: e.queued.Load(), DNSSkipped: e.skipped.Load(),
		DNSLookups: e.lookups.Load(), DNSFailures: e.failures.Load(), DNSNames: e.found.Load(),
		GeoLookups: e.geoLookups.Load(),
	}
}

// Active reports whether Apply does anything.
func (e *Enricher) Active() bool {
	return len(e.cfg.MyNetworks) > 0 || e.queue != nil || e.geoCache != nil
}

// Apply enriches r in place.
func (e *Enricher) Apply(r *flow.Record) {
	if r.Kind != flow.KindFlow {
		return
	}
	if len(e.cfg.MyNetworks) > 0 {
		r.SrcInternal = e.internal(r.SrcAddr)
		r.DstInternal = e.internal(r.DstAddr)
	}
	if e.queue != nil {
		r.SrcHostname = e.name(r.SrcAddr)
		r.DstHostname = e.name(r.DstAddr)
	}
	if e.geoCache != nil {
		if g := e.geoOf(r.SrcAddr); g != nil {
			r.SrcCountry = g.country
			if r.SrcAS == 0 {
				r.SrcAS = g.asn
			}
		}
		if g := e.geoOf(r.DstAddr); g != nil {
			r.DstCountry = g.country
			if r.DstAS == 0 {
				r.DstAS = g.asn
			}
		}
	}
}

func (e *Enricher) internal(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range e.cfg.MyNetworks {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

var rfc1918 = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
}

// lookable reports whether a may be sent to the DNS server: with
// internal:, only RFC 1918 addresses are, as kproxy documents.
func (e *Enricher) lookable(a netip.Addr) bool {
	if !a.IsValid() || a.IsUnspecified() {
		return false
	}
	if !e.internalOnly {
		return true
	}
	a = a.Unmap()
	for _, p := range rfc1918 {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// name answers from the cache, or queues a lookup without waiting.
func (e *Enricher) name(a netip.Addr) string {
	if !e.lookable(a) {
		return ""
	}
	now := e.now()
	if n, ok := e.names.get(a, now); ok {
		e.hits.Add(1)
		return n
	}
	e.misses.Add(1)
	if !e.names.pending(a, now, now.Add(e.cfg.DNSTimeout*2)) {
		return "" // already queued
	}
	select {
	case e.queue <- a:
		e.queued.Add(1)
	default:
		e.names.unpend(a)
		e.skipped.Add(1)
	}
	return ""
}

func (e *Enricher) resolve(ctx context.Context, c *dns.Client, a netip.Addr) {
	arpa, err := dns.ReverseAddr(a.String())
	if err != nil {
		return
	}
	m := new(dns.Msg)
	m.SetQuestion(arpa, dns.TypePTR)
	m.RecursionDesired = true
	e.lookups.Add(1)
	resp, _, err := c.ExchangeContext(ctx, m, e.dnsServer)
	name := ""
	if err != nil {
		e.failures.Add(1)
		// A failure is cached briefly, not for a day: the server may be
		// back soon, and retrying every flow would flood it.
		e.names.put(a, "", e.now().Add(time.Minute))
		return
	}
	for _, rr := range resp.Answer {
		if ptr, ok := rr.(*dns.PTR); ok {
			name = strings.TrimSuffix(ptr.Ptr, ".")
			break
		}
	}
	if name != "" {
		e.found.Add(1)
	}
	e.names.put(a, name, e.now().Add(e.cfg.DNSCacheTTL))
}

// nameCache is a bounded map of reverse names. An entry with an empty
// name and a zero expiry is a pending lookup.
type nameCache struct {
	mu  sync.RWMutex
	max int
	m   map[netip.Addr]nameEntry
}

type nameEntry struct {
	name    string
	expires time.Time
	pending bool
}

func newNameCache(max int) *nameCache {
	return &nameCache{max: max, m: make(map[netip.Addr]nameEntry)}
}

func (c *nameCache) get(a netip.Addr, now time.Time) (string, bool) {
	c.mu.RLock()
	e, ok := c.m[a]
	c.mu.RUnlock()
	if !ok || e.pending || now.After(e.expires) {
		return "", false
	}
	return e.name, true
}

// pending marks a as being looked up, until deadline; it returns false
// when a lookup is already under way.
func (c *nameCache) pending(a netip.Addr, now, deadline time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[a]; ok && e.pending && now.Before(e.expires) {
		return false
	}
	c.makeRoom()
	c.m[a] = nameEntry{pending: true, expires: deadline}
	return true
}

func (c *nameCache) unpend(a netip.Addr) {
	c.mu.Lock()
	if e, ok := c.m[a]; ok && e.pending {
		delete(c.m, a)
	}
	c.mu.Unlock()
}

func (c *nameCache) put(a netip.Addr, name string, expires time.Time) {
	c.mu.Lock()
	c.makeRoom()
	c.m[a] = nameEntry{name: name, expires: expires}
	c.mu.Unlock()
}

// makeRoom drops arbitrary entries when the cache is full: simple, and a
// full cache of a day's names is refilled as flows come.
func (c *nameCache) makeRoom() {
	if len(c.m) < c.max {
		return
	}
	n := c.max / 8
	for k := range c.m {
		delete(c.m, k)
		if n--; n <= 0 {
			break
		}
	}
}

type geoEntry struct {
	country string
	asn     uint32
}

// geoCache keeps GeoIP answers: a database lookup and decode costs a
// microsecond and allocates, a map hit does neither.
type geoCache struct {
	mu  sync.RWMutex
	max int
	m   map[netip.Addr]*geoEntry
}

func newGeoCache(max int) *geoCache { return &geoCache{max: max, m: make(map[netip.Addr]*geoEntry)} }

func (e *Enricher) geoOf(a netip.Addr) *geoEntry {
	if !a.IsValid() {
		return nil
	}
	c := e.geoCache
	c.mu.RLock()
	g, ok := c.m[a]
	c.mu.RUnlock()
	if ok {
		return g
	}
	e.geoLookups.Add(1)
	g = &geoEntry{}
	if e.geo != nil {
		var rec struct {
			Country struct {
				ISOCode string `maxminddb:"iso_code"`
			} `maxminddb:"country"`
		}
		if err := e.geo.Lookup(a.Unmap()).Decode(&rec); err == nil {
			g.country = rec.Country.ISOCode
		}
	}
	if e.asn != nil {
		var rec struct {
			ASN uint32 `maxminddb:"autonomous_system_number"`
		}
		if err := e.asn.Lookup(a.Unmap()).Decode(&rec); err == nil {
			g.asn = rec.ASN
		}
	}
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[a] = g
	c.mu.Unlock()
	return g
}
