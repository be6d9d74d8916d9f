package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/alert"
	"github.com/netpulse/netpulse/internal/diskusage"
)

// recorder is an alert.Sender that keeps what it is sent.
type recorder struct {
	mu     sync.Mutex
	events []alert.Event
}

func (r *recorder) Start(context.Context) error { return nil }
func (r *recorder) Stop(context.Context) error  { return nil }
func (r *recorder) Send(ev alert.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

// take returns the msgids sent since the last call.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		out = append(out, ev.MsgID+" "+ev.SD["rssac@32473"][1].Value)
	}
	r.events = nil
	return out
}

// fakeWorld is what the watchdog watches, set by the test.
type fakeWorld struct {
	mu      sync.Mutex
	now     time.Time
	slots   map[string]time.Time
	zone    time.Time
	disk    float64
	diskErr error
	lastErr error
	since   time.Time // the last LastSlots call's since
}

func (f *fakeWorld) set(fn func(*fakeWorld)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func newWatchdog(t *testing.T, cfg WatchdogConfig, f *fakeWorld, expected ...string) (*Watchdog, *recorder) {
	t.Helper()
	rec := &recorder{}
	w, err := NewWatchdog(cfg, WatchdogDeps{
		LastSlots: func(_ context.Context, since time.Time) (map[string]time.Time, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.since = since
			out := map[string]time.Time{}
			for vp, s := range f.slots {
				if !s.Before(since) {
					out[vp] = s
				}
			}
			return out, f.lastErr
		},
		Expected: expected,
		ZoneLast: func() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.zone },
		DiskPath: "/var/lib/netpulse",
		Disk: diskusage.Func(func(path string) (float64, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if path != "/var/lib/netpulse" {
				return 0, errors.New("wrong path " + path)
			}
			return f.disk, f.diskErr
		}),
		Send: rec,
		Now:  func() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return w, rec
}

func same(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	for _, w := range want {
		seen[w]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// TestWatchdogVPs walks a clock through a vantage point going silent and
// coming back, one that never sends, and one that is forgotten.
func TestWatchdogVPs(t *testing.T) {
	t0 := oct.Add(10 * time.Hour)
	f := &fakeWorld{now: t0, zone: t0, disk: 0.5, slots: map[string]time.Time{"001": t0.Add(-5 * time.Minute), "003": t0.Add(-6 * 24 * time.Hour)}}
	w, rec := newWatchdog(t, WatchdogConfig{}, f, "001", "002")
	step := func(at time.Duration, want ...string) {
		t.Helper()
		f.set(func(f *fakeWorld) { f.now, f.zone = t0.Add(at), t0.Add(at) })
		w.Check(context.Background())
		if got := rec.take(); !same(got, want) {
			t.Errorf("at t0+%v: alerts %q, want %q", at, got, want)
		}
	}
	// 003's last run was 6 days ago: silent, known for another day.
	step(0, "RSSAC-VP-SILENT 003")
	// 001's last slot is t0-5m: at t0+10m it has missed t0 and t0+5m.
	step(10 * time.Minute)
	// At t0+15m it has missed three: alert. 002 has never sent in the
	// three intervals since the watchdog started: alert.
	step(15*time.Minute, "RSSAC-VP-SILENT 001", "RSSAC-VP-SILENT 002")
	step(20 * time.Minute) // no repeat before a day
	if p := w.Problems(); len(p) != 3 || p[0].Subject != "001" || !p[0].Since.Equal(t0.Add(15*time.Minute)) || !strings.Contains(p[0].Message, "no result for 4 runs") {
		t.Errorf("Problems = %+v", p)
	}
	// 001 is back.
	f.set(func(f *fakeWorld) { f.slots["001"] = t0.Add(20 * time.Minute) })
	step(25*time.Minute, "RSSAC-VP-SILENT-OK 001")
	// A day later: 003 is forgotten (no notice); 002's alert repeats;
	// 001 is silent again.
	step(24*time.Hour+15*time.Minute, "RSSAC-VP-SILENT 002", "RSSAC-VP-SILENT 001")
	if f.since != t0.Add(24*time.Hour+15*time.Minute-7*24*time.Hour) {
		t.Errorf("LastSlots since %v, want now - 7 days", f.since)
	}
	for _, p := range w.Problems() {
		if p.Subject == "003" {
			t.Error("a forgotten vantage point is still reported")
		}
	}
	// The store fails: counted, the problems stay as they were.
	f.set(func(f *fakeWorld) { f.lastErr = errors.New("store down") })
	step(24*time.Hour + 20*time.Minute)
	if n := len(w.Problems()); n != 2 || w.errors.Load() != 1 {
		t.Errorf("after a failed check: %d problems, %d errors", n, w.errors.Load())
	}
}

// TestWatchdogZoneAndDisk: the zone archive goes stale after 24 h without
// a new zone and recovers when one comes; the disk goes over 80 % and
// back; a failure to read the disk usage changes nothing.
func TestWatchdogZoneAndDisk(t *testing.T) {
	t0 := oct.Add(10 * time.Hour)
	f := &fakeWorld{now: t0, zone: t0.Add(-2 * time.Hour), disk: 0.79}
	w, rec := newWatchdog(t, WatchdogConfig{}, f)
	step := func(at time.Duration, edit func(*fakeWorld), want ...string) {
		t.Helper()
		f.set(func(f *fakeWorld) {
			f.now = t0.Add(at)
			if edit != nil {
				edit(f)
			}
		})
		w.Check(context.Background())
		if got := rec.take(); !same(got, want) {
			t.Errorf("at t0+%v: alerts %q, want %q", at, got, want)
		}
	}
	// The newest zone is older than the start: counted from the start.
	step(0, nil)
	step(24*time.Hour-time.Minute, nil)
	step(24*time.Hour, nil, "RSSAC-ZONE-STALE root zone")
	step(25*time.Hour, func(f *fakeWorld) { f.zone = t0.Add(25 * time.Hour) }, "RSSAC-ZONE-STALE-OK root zone")
	step(26*time.Hour, func(f *fakeWorld) { f.disk = 0.80 }, "RSSAC-DISK-FULL /var/lib/netpulse")
	step(27*time.Hour, func(f *fakeWorld) { f.diskErr = errors.New("statfs: EIO") })
	if p := w.Problems(); len(p) != 1 || p[0].Check != CheckDiskFull {
		t.Errorf("after a failed disk read: %+v", p)
	}
	step(28*time.Hour, func(f *fakeWorld) { f.diskErr, f.disk = nil, 0.5 }, "RSSAC-DISK-FULL-OK /var/lib/netpulse")
	if w.errors.Load() != 1 || w.alerts[1].Load() != 1 || w.alerts[2].Load() != 1 {
		t.Errorf("errors %d, zone alerts %d, disk alerts %d", w.errors.Load(), w.alerts[1].Load(), w.alerts[2].Load())
	}
}

// TestWatchdogAlertsFile: the alerts reach a real alerts file as JSON
// lines, through an alert.Multi as the collector builds it.
func TestWatchdogAlertsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rssac-alerts.log")
	file, err := alert.NewFile(alert.FileConfig{Path: path}, alert.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	send := alert.Multi{file}
	if err := send.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	now := oct
	w, err := NewWatchdog(WatchdogConfig{}, WatchdogDeps{
		LastSlots: func(context.Context, time.Time) (map[string]time.Time, error) {
			return map[string]time.Time{"001": oct.Add(-time.Hour)}, nil
		},
		Send: send, Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Check(context.Background())
	if err := send.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Severity string `json:"severity"`
		MsgID    string `json:"msgid"`
		Message  string `json:"message"`
		Payload  struct {
			Check   string `json:"check"`
			Subject string `json:"subject"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if ev.Severity != "warning" || ev.MsgID != "RSSAC-VP-SILENT" || ev.Payload.Check != "vp_silent" || ev.Payload.Subject != "001" ||
		!strings.Contains(ev.Message, "no result for 11 runs") {
		t.Errorf("alert line %s", b)
	}
}

// TestWatchdogRun: Run checks at once and returns when its context ends.
func TestWatchdogRun(t *testing.T) {
	called := make(chan struct{}, 1)
	w, err := NewWatchdog(WatchdogConfig{Every: time.Hour}, WatchdogDeps{
		LastSlots: func(context.Context, time.Time) (map[string]time.Time, error) {
			select {
			case called <- struct{}{}:
			default:
			}
			return nil, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		w.Run(ctx)
		close(done)
	}()
	<-called
	cancel()
	<-done
}

func TestWatchdogConfig(t *testing.T) {
	if err := (WatchdogConfig{}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	for _, tc := range []struct {
		cfg WatchdogConfig
		key string
	}{
		{WatchdogConfig{Every: time.Millisecond}, "watchdog.every"},
		{WatchdogConfig{MissedRuns: -1}, "watchdog.missed_runs"},
		{WatchdogConfig{Forget: time.Minute}, "watchdog.forget"},
		{WatchdogConfig{ZoneStale: time.Second}, "watchdog.zone_stale"},
		{WatchdogConfig{DiskThreshold: 80}, "watchdog.disk_threshold"},
		{WatchdogConfig{Repeat: time.Second}, "watchdog.repeat"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.key) {
			t.Errorf("%+v: %v, want an error about %s", tc.cfg, err, tc.key)
		}
	}
	if _, err := NewWatchdog(WatchdogConfig{}, WatchdogDeps{}); err == nil {
		t.Error("no LastSlots accepted")
	}
}
