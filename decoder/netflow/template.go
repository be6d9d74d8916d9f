package netflow

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// variableLength marks an IPFIX field whose length is carried in each
// record (RFC 7011 section 7).
const variableLength = 0xffff

// Field is one field specifier of a template.
type Field struct {
	ID         uint16 `json:"id"`
	Length     uint16 `json:"len"`
	Enterprise uint32 `json:"pen,omitempty"`
}

// Template is a data or options template. It is immutable once built, so
// decoders read it without locks; a new definition replaces it whole.
type Template struct {
	ID uint16 `json:"id"`
	// ScopeCount is the number of scope fields at the start of an options
	// template; 0 for a data template. Options says which one it is.
	Options    bool    `json:"options,omitempty"`
	ScopeCount int     `json:"scope,omitempty"`
	Fields     []Field `json:"fields"`
	// minLen is the shortest record: fixed fields plus one length byte per
	// variable-length field.
	minLen   int
	variable bool
	// ops are the fields the decoder reads, with their offsets when every
	// field has a fixed length; used says which fields those are.
	ops   []fieldOp
	kinds []fkind
	v9    bool
}

// fieldOp is one field to read from a fixed-length record.
type fieldOp struct {
	kind fkind
	id   uint16
	off  int
	len  int
}

func newTemplate(version uint16, id uint16, options bool, scope int, fields []Field) *Template {
	t := &Template{ID: id, Options: options, ScopeCount: scope, Fields: fields, v9: version == 9}
	t.compile()
	return t
}

// compile works out which fields matter and where they are, once per
// template rather than once per record.
func (t *Template) compile() {
	t.minLen, t.variable = 0, false
	t.ops, t.kinds = t.ops[:0], make([]fkind, len(t.Fields))
	for i, f := range t.Fields {
		// v9 options scope fields are scope types (system, interface…),
		// not information elements: they are skipped.
		if !(t.v9 && t.Options && i < t.ScopeCount) {
			t.kinds[i] = kindOf(f)
		}
		if t.kinds[i] != kNone && !t.variable && f.Length != variableLength {
			t.ops = append(t.ops, fieldOp{kind: t.kinds[i], id: f.ID, off: t.minLen, len: int(f.Length)})
		}
		if f.Length == variableLength {
			t.variable = true
			t.minLen++
		} else {
			t.minLen += int(f.Length)
		}
	}
	if t.variable {
		t.ops = nil
	}
}

func (t *Template) equal(o *Template) bool {
	return t.ID == o.ID && t.Options == o.Options && t.ScopeCount == o.ScopeCount && slices.Equal(t.Fields, o.Fields)
}

// TemplateKey identifies a template: exporter address, observation domain
// (the v9 source ID), protocol version (9 or 10) and template ID. The
// exporter's source port is deliberately not part of it: routers change it.
type TemplateKey struct {
	Exporter netip.Addr
	Domain   uint32
	Version  uint16
	ID       uint16
}

type templateEntry struct {
	t       *Template
	learned time.Time
}

// TemplateCache holds templates. It is safe for concurrent use and bounded:
// when full, the template learned longest ago is evicted.
type TemplateCache struct {
	mu        sync.RWMutex
	max       int
	m         map[TemplateKey]templateEntry
	learned   uint64
	changed   uint64
	withdrawn uint64
	evicted   uint64
}

// NewTemplateCache returns a cache of at most max templates.
func NewTemplateCache(max int) *TemplateCache {
	if max <= 0 {
		max = DefaultConfig().MaxTemplates
	}
	return &TemplateCache{max: max, m: make(map[TemplateKey]templateEntry)}
}

// Get returns the template for k, or nil.
func (c *TemplateCache) Get(k TemplateKey) *Template {
	c.mu.RLock()
	e := c.m[k]
	c.mu.RUnlock()
	return e.t
}

// Len returns the number of templates.
func (c *TemplateCache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

// put stores t and reports whether it replaced a different definition.
func (c *TemplateCache) put(k TemplateKey, t *Template, now time.Time) (changed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.learned++
	old, ok := c.m[k]
	if ok && !old.t.equal(t) {
		changed = true
		c.changed++
	}
	if !ok && len(c.m) >= c.max {
		var oldest TemplateKey
		var when time.Time
		first := true
		for kk, e := range c.m {
			if first || e.learned.Before(when) {
				oldest, when, first = kk, e.learned, false
			}
		}
		delete(c.m, oldest)
		c.evicted++
	}
	c.m[k] = templateEntry{t: t, learned: now}
	return changed
}

// touch records that the template for k was seen again unchanged.
func (c *TemplateCache) touch(k TemplateKey, now time.Time) {
	c.mu.Lock()
	if e, ok := c.m[k]; ok {
		e.learned = now
		c.m[k] = e
	}
	c.learned++
	c.mu.Unlock()
}

// withdraw removes one template (all=false), or every template of the
// exporter, domain and version whose kind matches options (all=true), as
// IPFIX withdrawal messages ask (RFC 7011 section 8.1).
func (c *TemplateCache) withdraw(k TemplateKey, all, options bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !all {
		if _, ok := c.m[k]; ok {
			delete(c.m, k)
			c.withdrawn++
		}
		return
	}
	for kk, e := range c.m {
		if kk.Exporter == k.Exporter && kk.Domain == k.Domain && kk.Version == k.Version && e.t.Options == options {
			delete(c.m, kk)
			c.withdrawn++
		}
	}
}

type cacheStats struct{ learned, changed, withdrawn, evicted uint64 }

func (c *TemplateCache) stats() cacheStats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return cacheStats{c.learned, c.changed, c.withdrawn, c.evicted}
}

// savedTemplate is one line of the persisted cache.
type savedTemplate struct {
	Exporter netip.Addr `json:"exporter"`
	Domain   uint32     `json:"domain"`
	Version  uint16     `json:"version"`
	Learned  time.Time  `json:"learned"`
	Template
}

// templateFileVersion is written in the first line of a saved cache.
const templateFileVersion = 1

// WriteTo writes the cache as JSON lines: a header line, then one template
// per line. It is what a proxy saves so that a restart decodes at once.
func (c *TemplateCache) WriteTo(w io.Writer) (int64, error) {
	c.mu.RLock()
	lines := make([]savedTemplate, 0, len(c.m))
	for k, e := range c.m {
		lines = append(lines, savedTemplate{Exporter: k.Exporter, Domain: k.Domain, Version: k.Version, Learned: e.learned, Template: *e.t})
	}
	c.mu.RUnlock()
	slices.SortFunc(lines, func(a, b savedTemplate) int {
		if c := a.Exporter.Compare(b.Exporter); c != 0 {
			return c
		}
		if a.Domain != b.Domain {
			return int(a.Domain) - int(b.Domain)
		}
		if a.Version != b.Version {
			return int(a.Version) - int(b.Version)
		}
		return int(a.ID) - int(b.ID)
	})
	cw := &countWriter{w: w}
	enc := json.NewEncoder(cw)
	if err := enc.Encode(map[string]int{"netpulse_templates": templateFileVersion}); err != nil {
		return cw.n, err
	}
	for i := range lines {
		if err := enc.Encode(&lines[i]); err != nil {
			return cw.n, err
		}
	}
	return cw.n, nil
}

// ReadFrom loads templates written by WriteTo, adding them to the cache. A
// malformed file is an error naming the line; templates before it are kept.
func (c *TemplateCache) ReadFrom(r io.Reader) (int64, error) {
	cr := &countReader{r: r}
	sc := bufio.NewScanner(cr)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<22)
	line := 0
	for sc.Scan() {
		line++
		if line == 1 {
			var h map[string]int
			if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h["netpulse_templates"] != templateFileVersion {
				return cr.n, fmt.Errorf("netflow: template file: line 1 is not a version %d header", templateFileVersion)
			}
			continue
		}
		var s savedTemplate
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return cr.n, fmt.Errorf("netflow: template file: line %d: %w", line, err)
		}
		if !s.Exporter.IsValid() || (s.Version != 9 && s.Version != 10) || s.ID < 256 ||
			len(s.Fields) == 0 || s.ScopeCount > len(s.Fields) || len(s.Fields) > 65535/4 {
			return cr.n, fmt.Errorf("netflow: template file: line %d: invalid template", line)
		}
		t := newTemplate(s.Version, s.ID, s.Options, s.ScopeCount, s.Fields)
		c.put(TemplateKey{Exporter: s.Exporter, Domain: s.Domain, Version: s.Version, ID: s.ID}, t, s.Learned)
	}
	if err := sc.Err(); err != nil {
		return cr.n, fmt.Errorf("netflow: template file: %w", err)
	}
	return cr.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
