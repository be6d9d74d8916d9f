package zone

import (
	"bytes"
	"cmp"
	"container/list"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/miekg/dns"
)

// Config is the archive's configuration. Zero values mean the default;
// DefaultConfig lists them.
type Config struct {
	// Dir holds the zone files and the index. Required.
	Dir string `yaml:"dir"`
	// Origin is the zone's apex. Default "." (the root zone).
	Origin string `yaml:"origin"`
	// MaxBytes and MaxRRs bound one zone version (see Limits). Default
	// 64 MiB and 1,000,000.
	MaxBytes int64 `yaml:"max_bytes"`
	MaxRRs   int   `yaml:"max_rrs"`
	// CacheZones is how many parsed versions are kept in memory, least
	// recently used out first. A correctness check needs the versions of
	// the last 48 hours: four to six of the root zone. Default 8.
	CacheZones int `yaml:"cache_zones"`
}

// DefaultConfig returns the defaults, without Dir.
func DefaultConfig() Config {
	l := DefaultLimits()
	return Config{Origin: ".", MaxBytes: l.MaxBytes, MaxRRs: l.MaxRRs, CacheZones: 8}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.Origin == "" {
		c.Origin = d.Origin
	}
	c.Origin = CanonicalName(c.Origin)
	if c.MaxBytes <= 0 {
		c.MaxBytes = d.MaxBytes
	}
	if c.MaxRRs <= 0 {
		c.MaxRRs = d.MaxRRs
	}
	if c.CacheZones <= 0 {
		c.CacheZones = d.CacheZones
	}
}

func (c *Config) limits() Limits { return Limits{MaxBytes: c.MaxBytes, MaxRRs: c.MaxRRs} }

// Entry is one stored version.
type Entry struct {
	Serial uint32 `json:"serial"`
	// FirstSeen is when the archive first got this serial.
	FirstSeen time.Time `json:"first_seen"`
	// File is the zone file's name in the archive's directory.
	File string `json:"file"`
	// Bytes is the size of the zone's text, RRs its record count.
	Bytes int64 `json:"bytes"`
	RRs   int   `json:"rrs"`
}

// index is the archive's index file.
type index struct {
	Version    int       `json:"version"`
	Origin     string    `json:"origin"`
	LastGrowth time.Time `json:"last_growth"`
	Zones      []Entry   `json:"zones"`
}

const (
	indexFile    = "index.json"
	indexVersion = 1
)

// Archive stores zone versions in a directory: one gzip-compressed file
// per SOA serial, "<serial>.zone.gz", holding the text as fetched, and
// index.json mapping each serial to the time it was first seen. Both are
// written atomically (temporary file, fsync, rename), zone file first, so
// a crash loses at most the version being added. Its methods are safe
// for concurrent use.
type Archive struct {
	cfg Config
	log *slog.Logger

	mu         sync.Mutex
	entries    []Entry // by FirstSeen, then Serial
	bySerial   map[uint32]int
	lastGrowth time.Time
	cache      *lru
}

// Open opens the archive in cfg.Dir, creating the directory when needed,
// and reads its index. A nil log discards.
func Open(cfg Config, log *slog.Logger) (*Archive, error) {
	cfg.fill()
	if cfg.Dir == "" {
		return nil, errors.New("zone: archive: dir is required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("zone: archive: %w", err)
	}
	a := &Archive{cfg: cfg, log: log, bySerial: map[uint32]int{}, cache: newLRU(cfg.CacheZones)}
	data, err := os.ReadFile(filepath.Join(cfg.Dir, indexFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return a, nil
	case err != nil:
		return nil, fmt.Errorf("zone: archive: %w", err)
	}
	var idx index
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&idx); err != nil {
		return nil, fmt.Errorf("zone: archive: index %s: %w (move it away to start a new archive)", filepath.Join(cfg.Dir, indexFile), err)
	}
	if idx.Version != indexVersion {
		return nil, fmt.Errorf("zone: archive: index version %d, this build reads %d", idx.Version, indexVersion)
	}
	if idx.Origin != cfg.Origin {
		return nil, fmt.Errorf("zone: archive: %s holds zone %q, configured origin is %q", cfg.Dir, idx.Origin, cfg.Origin)
	}
	for _, e := range idx.Zones {
		if _, dup := a.bySerial[e.Serial]; dup || e.File != fileName(e.Serial) {
			return nil, fmt.Errorf("zone: archive: index: bad or repeated entry for serial %d", e.Serial)
		}
		a.entries = append(a.entries, e)
		a.bySerial[e.Serial] = -1
	}
	a.sortLocked()
	a.lastGrowth = idx.LastGrowth
	return a, nil
}

// Config is the configuration in use, defaults filled.
func (a *Archive) Config() Config { return a.cfg }

func fileName(serial uint32) string { return fmt.Sprintf("%d.zone.gz", serial) }

func (a *Archive) sortLocked() {
	slices.SortStableFunc(a.entries, func(x, y Entry) int {
		if c := x.FirstSeen.Compare(y.FirstSeen); c != 0 {
			return c
		}
		return cmp.Compare(x.Serial, y.Serial)
	})
	for i, e := range a.entries {
		a.bySerial[e.Serial] = i
	}
}

// Add parses and checks a zone's text and stores it, first seen at
// seenAt. When its serial is already stored it does nothing (the first
// time seen stays) and returns the stored entry and false. A zone that
// does not parse, has no SOA at the configured origin, or is past the
// limits is refused with an error and nothing is stored.
func (a *Archive) Add(text []byte, seenAt time.Time) (Entry, bool, error) {
	z, err := Parse(bytes.NewReader(text), a.cfg.Origin, a.cfg.limits())
	if err != nil {
		return Entry{}, false, err
	}
	return a.store(z, text, seenAt)
}

// AddRRs stores a zone given as records (a transfer's, without the
// closing SOA), rendered as text one record per line.
func (a *Archive) AddRRs(rrs []dns.RR, seenAt time.Time) (Entry, bool, error) {
	var b bytes.Buffer
	for _, rr := range rrs {
		b.WriteString(rr.String())
		b.WriteByte('\n')
		if int64(b.Len()) > a.cfg.MaxBytes {
			return Entry{}, false, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, a.cfg.MaxBytes)
		}
	}
	return a.Add(b.Bytes(), seenAt)
}

func (a *Archive) store(z *Zone, text []byte, seenAt time.Time) (Entry, bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if i, ok := a.bySerial[z.Serial()]; ok {
		return a.entries[i], false, nil
	}
	e := Entry{Serial: z.Serial(), FirstSeen: seenAt.UTC(), File: fileName(z.Serial()), Bytes: int64(len(text)), RRs: z.RRCount()}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(text); err != nil {
		return Entry{}, false, fmt.Errorf("zone: archive: %w", err)
	}
	if err := zw.Close(); err != nil {
		return Entry{}, false, fmt.Errorf("zone: archive: %w", err)
	}
	if err := writeAtomic(filepath.Join(a.cfg.Dir, e.File), gz.Bytes()); err != nil {
		return Entry{}, false, fmt.Errorf("zone: archive: serial %d: %w", e.Serial, err)
	}
	idx := index{Version: indexVersion, Origin: a.cfg.Origin, LastGrowth: seenAt.UTC(), Zones: append(slices.Clone(a.entries), e)}
	data, err := json.MarshalIndent(idx, "", " ")
	if err != nil {
		return Entry{}, false, fmt.Errorf("zone: archive: %w", err)
	}
	if err := writeAtomic(filepath.Join(a.cfg.Dir, indexFile), data); err != nil {
		return Entry{}, false, fmt.Errorf("zone: archive: index: %w", err)
	}
	a.entries = append(a.entries, e)
	a.bySerial[e.Serial] = -1
	a.sortLocked()
	a.lastGrowth = idx.LastGrowth
	a.cache.put(e.Serial, z)
	a.log.Info("zone: new serial stored", "serial", e.Serial, "rrs", e.RRs, "bytes", e.Bytes)
	return e, true, nil
}

// writeAtomic replaces path with data: a temporary file in the same
// directory, synced, renamed over path, and the directory synced.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Get returns the parsed zone of a stored serial, from the cache or read
// from its file.
func (a *Archive) Get(serial uint32) (*Zone, error) {
	a.mu.Lock()
	i, ok := a.bySerial[serial]
	var e Entry
	if ok {
		e = a.entries[i]
	}
	z := a.cache.get(serial)
	a.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("zone: archive: serial %d is not stored", serial)
	}
	if z != nil {
		return z, nil
	}
	z, err := a.load(e)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.cache.put(serial, z)
	a.mu.Unlock()
	return z, nil
}

// Text returns a stored version's text as it was fetched.
func (a *Archive) Text(serial uint32) ([]byte, error) {
	a.mu.Lock()
	i, ok := a.bySerial[serial]
	var e Entry
	if ok {
		e = a.entries[i]
	}
	a.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("zone: archive: serial %d is not stored", serial)
	}
	return a.readText(e)
}

func (a *Archive) readText(e Entry) ([]byte, error) {
	f, err := os.Open(filepath.Join(a.cfg.Dir, e.File))
	if err != nil {
		return nil, fmt.Errorf("zone: archive: serial %d: %w", e.Serial, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("zone: archive: %s: %w", e.File, err)
	}
	text, err := io.ReadAll(io.LimitReader(zr, a.cfg.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("zone: archive: %s: %w", e.File, err)
	}
	if int64(len(text)) > a.cfg.MaxBytes {
		return nil, fmt.Errorf("zone: archive: %s: %w", e.File, ErrTooLarge)
	}
	return text, nil
}

func (a *Archive) load(e Entry) (*Zone, error) {
	text, err := a.readText(e)
	if err != nil {
		return nil, err
	}
	z, err := Parse(bytes.NewReader(text), a.cfg.Origin, a.cfg.limits())
	if err != nil {
		return nil, fmt.Errorf("zone: archive: %s: %w", e.File, err)
	}
	if z.Serial() != e.Serial {
		return nil, fmt.Errorf("zone: archive: %s holds serial %d", e.File, z.Serial())
	}
	return z, nil
}

// Entry returns the entry of a stored serial.
func (a *Archive) Entry(serial uint32) (Entry, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	i, ok := a.bySerial[serial]
	if !ok {
		return Entry{}, false
	}
	return a.entries[i], true
}

// Entries returns every stored version, oldest first seen first.
func (a *Archive) Entries() []Entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.entries)
}

// Since returns the versions first seen at or after t, oldest first.
func (a *Archive) Since(t time.Time) []Entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	i, _ := slices.BinarySearchFunc(a.entries, t, func(e Entry, t time.Time) int { return e.FirstSeen.Compare(t) })
	return slices.Clone(a.entries[i:])
}

// InEffect returns the versions that were the archive's newest at some
// time in [from, to]: those first seen in that span, and the one first
// seen last before from (it was still current at from). Oldest first.
func (a *Archive) InEffect(from, to time.Time) []Entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	i, _ := slices.BinarySearchFunc(a.entries, from, func(e Entry, t time.Time) int { return e.FirstSeen.Compare(t) })
	if i > 0 {
		i--
	}
	var out []Entry
	for _, e := range a.entries[i:] {
		if e.FirstSeen.After(to) {
			break
		}
		out = append(out, e)
	}
	return out
}

// Latest returns the version first seen last.
func (a *Archive) Latest() (Entry, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.entries) == 0 {
		return Entry{}, false
	}
	return a.entries[len(a.entries)-1], true
}

// Count is the number of stored versions.
func (a *Archive) Count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.entries)
}

// LastGrowth is when the last new serial was added (the seenAt given to
// Add), zero for an empty archive. The collector's watchdog alerts when
// it gets old.
func (a *Archive) LastGrowth() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastGrowth
}

// lru is a small least-recently-used cache of parsed zones. The caller
// holds the archive's lock.
type lru struct {
	max   int
	order *list.List // of uint32, front most recent
	items map[uint32]*lruItem
}

type lruItem struct {
	z  *Zone
	el *list.Element
}

func newLRU(max int) *lru { return &lru{max: max, order: list.New(), items: map[uint32]*lruItem{}} }

func (c *lru) get(serial uint32) *Zone {
	it := c.items[serial]
	if it == nil {
		return nil
	}
	c.order.MoveToFront(it.el)
	return it.z
}

func (c *lru) put(serial uint32, z *Zone) {
	if it := c.items[serial]; it != nil {
		it.z = z
		c.order.MoveToFront(it.el)
		return
	}
	c.items[serial] = &lruItem{z: z, el: c.order.PushFront(serial)}
	for c.order.Len() > c.max {
		el := c.order.Back()
		c.order.Remove(el)
		delete(c.items, el.Value.(uint32))
	}
}

// len is how many zones are in memory.
func (c *lru) len() int { return c.order.Len() }
