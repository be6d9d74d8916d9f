package zone

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/internal/testdns"
)

func openArchive(t testing.TB, dir string, mutate ...func(*Config)) *Archive {
	t.Helper()
	cfg := Config{Dir: dir}
	for _, m := range mutate {
		m(&cfg)
	}
	a, err := Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func serialsOf(es []Entry) []uint32 {
	var out []uint32
	for _, e := range es {
		out = append(out, e.Serial)
	}
	return out
}

// TestArchive: a new serial is stored with its first-seen time, a repeat
// is a no-op, Since and InEffect cut at the 48-hour boundary, and a
// reopened archive has everything.
func TestArchive(t *testing.T) {
	dir := t.TempDir()
	a := openArchive(t, dir)
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC) // the injected clock
	if _, ok := a.Latest(); ok || a.Count() != 0 || !a.LastGrowth().IsZero() {
		t.Fatal("a new archive is not empty")
	}
	for _, v := range []struct {
		serial uint32
		age    time.Duration
	}{{1, 72 * time.Hour}, {2, 49 * time.Hour}, {3, 48 * time.Hour}, {4, 47 * time.Hour}, {5, time.Hour}} {
		e, isNew, err := a.Add([]byte(testdns.RootZoneText(v.serial)), now.Add(-v.age))
		if err != nil || !isNew || e.Serial != v.serial || !e.FirstSeen.Equal(now.Add(-v.age)) || e.RRs != 28 {
			t.Fatalf("add %d: %+v %v %v", v.serial, e, isNew, err)
		}
	}
	// A repeat keeps the first time seen.
	e, isNew, err := a.Add([]byte(testdns.RootZoneText(2)), now)
	if err != nil || isNew || !e.FirstSeen.Equal(now.Add(-49*time.Hour)) {
		t.Fatalf("repeat: %+v %v %v", e, isNew, err)
	}
	check := func(a *Archive) {
		t.Helper()
		if a.Count() != 5 || !a.LastGrowth().Equal(now.Add(-time.Hour)) {
			t.Errorf("count %d, last growth %v", a.Count(), a.LastGrowth())
		}
		if l, _ := a.Latest(); l.Serial != 5 {
			t.Errorf("latest %d", l.Serial)
		}
		// First seen at or after the boundary: 48 h exactly is in.
		if got := serialsOf(a.Since(now.Add(-48 * time.Hour))); !slices.Equal(got, []uint32{3, 4, 5}) {
			t.Errorf("Since(-48h) = %v", got)
		}
		if got := serialsOf(a.Since(now.Add(-48*time.Hour + time.Nanosecond))); !slices.Equal(got, []uint32{4, 5}) {
			t.Errorf("Since(-48h+1ns) = %v", got)
		}
		// In effect over the last 48 h: also 2, current until 3 came.
		if got := serialsOf(a.InEffect(now.Add(-48*time.Hour+time.Minute), now)); !slices.Equal(got, []uint32{3, 4, 5}) {
			t.Errorf("InEffect = %v", got)
		}
		if got := serialsOf(a.InEffect(now.Add(-48*time.Hour-time.Minute), now.Add(-2*time.Hour))); !slices.Equal(got, []uint32{2, 3, 4}) {
			t.Errorf("InEffect earlier = %v", got)
		}
		z, err := a.Get(4)
		if err != nil || z.Serial() != 4 {
			t.Fatalf("get: %v %v", z, err)
		}
		text, err := a.Text(3)
		if err != nil || string(text) != testdns.RootZoneText(3) {
			t.Errorf("text: %v", err)
		}
		if _, err := a.Get(99); err == nil {
			t.Error("got a serial not stored")
		}
	}
	check(a)
	// Reopened, as after a restart: the index and files are read back.
	b := openArchive(t, dir)
	if b.cache.len() != 0 {
		t.Fatal("a reopened archive has zones in memory")
	}
	check(b)
	if !slices.Equal(a.Entries(), b.Entries()) {
		t.Errorf("entries differ after reopen:\n%v\n%v", a.Entries(), b.Entries())
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 6 {
		t.Errorf("files: %v", files) // five zones and the index, no temporary files
	}
}

// TestArchiveRefuses: a zone that is bad, of another origin or too large
// is not stored.
func TestArchiveRefuses(t *testing.T) {
	a := openArchive(t, t.TempDir(), func(c *Config) { c.MaxBytes = 2000 })
	now := time.Now()
	for name, text := range map[string]string{
		"garbage":      "this is not a zone\n",
		"other origin": strings.ReplaceAll(testdns.RootZoneText(1), ".\t86400\tIN\tSOA", "example.\t86400\tIN\tSOA"),
		"too large":    testdns.RootZoneText(1) + strings.Repeat("; padding\n", 200),
	} {
		if _, _, err := a.Add([]byte(text), now); err == nil {
			t.Errorf("%s: stored", name)
		}
	}
	if a.Count() != 0 || !a.LastGrowth().IsZero() {
		t.Errorf("count %d", a.Count())
	}
	// A different origin in the index is refused at open.
	dir := t.TempDir()
	b := openArchive(t, dir)
	if _, _, err := b.Add([]byte(testdns.RootZoneText(1)), now); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Dir: dir, Origin: "example."}, nil); err == nil || !strings.Contains(err.Error(), `configured origin is "example."`) {
		t.Errorf("open with another origin: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, indexFile), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Dir: dir}, nil); err == nil || !strings.Contains(err.Error(), "move it away") {
		t.Errorf("open with a broken index: %v", err)
	}
}

// TestArchiveCache: at most CacheZones zones stay parsed; an evicted one
// is read back from its file.
func TestArchiveCache(t *testing.T) {
	dir := t.TempDir()
	a := openArchive(t, dir, func(c *Config) { c.CacheZones = 2 })
	now := time.Now()
	for s := uint32(1); s <= 3; s++ {
		if _, _, err := a.Add([]byte(testdns.RootZoneText(s)), now.Add(time.Duration(s)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if a.cache.len() != 2 {
		t.Fatalf("%d zones in memory", a.cache.len())
	}
	// Serial 1 was evicted: without its file it cannot be had; serial 3
	// is in memory and needs none.
	for _, s := range []uint32{1, 3} {
		if err := os.Remove(filepath.Join(dir, fileName(s))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Get(1); err == nil {
		t.Error("serial 1 came from memory")
	}
	if z, err := a.Get(3); err != nil || z.Serial() != 3 {
		t.Errorf("serial 3: %v", err)
	}
}

// TestArchiveConcurrent: adds and gets from many goroutines (run with
// -race).
func TestArchiveConcurrent(t *testing.T) {
	a := openArchive(t, t.TempDir(), func(c *Config) { c.CacheZones = 3 })
	now := time.Now()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			for s := uint32(1); s <= 8; s++ {
				if _, _, err := a.Add([]byte(testdns.RootZoneText(s)), now.Add(time.Duration(s)*time.Minute)); err != nil {
					t.Error(err)
				}
				if _, err := a.Get(s); err != nil {
					t.Error(err)
				}
				a.Since(now)
			}
		})
	}
	wg.Wait()
	if a.Count() != 8 {
		t.Errorf("count %d", a.Count())
	}
}
