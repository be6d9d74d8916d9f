package probe

import (
	"context"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/internal/diskusage"
	"github.com/netpulse/netpulse/probe/result"
)

// fakeClock is an injected clock: Sleep moves it forward at once.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
	// onSleep, when set, is called after each sleep with the new time.
	onSleep func(now time.Time)
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	if d > 0 {
		c.t = c.t.Add(d)
	}
	c.sleeps = append(c.sleeps, d)
	now, f := c.t, c.onSleep
	c.mu.Unlock()
	if f != nil {
		f(now)
	}
	return ctx.Err()
}

// testConfig is a configuration for tests: the given targets, output in
// a temporary folder, no traceroute, no listener, short timeout.
func testConfig(t *testing.T, targets ...Target) Config {
	t.Helper()
	c := DefaultConfig()
	c.VP = "001"
	c.OutputDir = t.TempDir()
	c.Targets = targets
	c.Timeout = time.Second
	c.Traceroute.Method = "off"
	c.Listen = "none"
	c.TLDs = []string{"com", "net", "org"}
	return c
}

// newTestProbe builds a probe with a seeded generator and a disk that is
// never full.
func newTestProbe(t *testing.T, cfg Config, deps Deps) *Probe {
	t.Helper()
	if deps.Rand == nil {
		deps.Rand = rand.New(rand.NewPCG(1, 2))
	}
	if deps.Disk == nil {
		deps.Disk = diskusage.Func(func(string) (float64, error) { return 0.1, nil })
	}
	p, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// readRun decodes a written result file.
func readRun(t *testing.T, path string) *result.Run {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := result.Decode(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}

// queriesOf returns the run's queries to target with purpose.
func queriesOf(r *result.Run, target, purpose string) []result.Query {
	var out []result.Query
	for _, q := range r.Queries {
		if q.Target == target && q.Purpose == purpose {
			out = append(out, q)
		}
	}
	return out
}
