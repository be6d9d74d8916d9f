package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/internal/chtest"
	"github.com/netpulse/netpulse/rssac"
	"github.com/netpulse/netpulse/rssac/rstore"
	"github.com/netpulse/netpulse/rssac/rstore/rstoretest"
	"github.com/netpulse/netpulse/store"
)

func TestRSSACSuite(t *testing.T) {
	type opened struct {
		s   *Store
		srv *chtest.Server
		db  string
	}
	var mu sync.Mutex
	stores := map[rstore.Store]opened{}
	rstoretest.Run(t, rstoretest.Harness{
		Open: func(t testing.TB) rstore.Store {
			s, srv, db := open(t, store.Retention{})
			r := s.RSSAC()
			mu.Lock()
			stores[r] = opened{s, srv, db}
			mu.Unlock()
			return r
		},
		Reopen: func(t testing.TB, r rstore.Store) rstore.Store {
			mu.Lock()
			o := stores[r]
			mu.Unlock()
			if err := o.s.Close(); err != nil {
				t.Fatal(err)
			}
			// Merges must change nothing a reader sees.
			o.srv.MustQuery(t, "OPTIMIZE TABLE "+o.db+".rssac_runs FINAL")
			o.srv.MustQuery(t, "OPTIMIZE TABLE "+o.db+".rssac_observations FINAL")
			s := openOn(t, o.srv, o.db, store.Retention{})
			r2 := s.RSSAC()
			mu.Lock()
			stores[r2] = opened{s, o.srv, o.db}
			mu.Unlock()
			return r2
		},
	})
}

// TestRSSACRetryAfterPartialInsert: an AddRun that stopped after writing
// the observations and before the runs row leaves a run that readers do
// not see; its retry completes it without writing the observations
// again; a third attempt is a duplicate.
func TestRSSACRetryAfterPartialInsert(t *testing.T) {
	s, srv, db := open(t, store.Retention{})
	r := s.RSSAC()
	ctx := context.Background()
	slot := rstoretest.Oct
	key := rstoretest.Key("001", slot)
	obs := rstoretest.Synth("001", slot, 57)
	// The first half of an AddRun, as a crash would leave it.
	if err := s.insertColumns(ctx, "rssac_observations", rssacObsColumns, obsColumns(obs), key.String()); err != nil {
		t.Fatal(err)
	}
	got, err := rstore.Collect(r.Observations(ctx, slot, slot.AddDate(0, 1, 0)))
	if err != nil || len(got) != 0 {
		t.Fatalf("a run without its runs row: %d observations visible (%v), want none", len(got), err)
	}
	if runs, err := r.Runs(ctx, slot, slot.AddDate(0, 1, 0)); err != nil || len(runs) != 0 {
		t.Fatalf("Runs of a half-written run: %+v, %v", runs, err)
	}
	if err := r.AddRun(ctx, key, obs); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if err := r.AddRun(ctx, key, obs); !errors.Is(err, rstore.ErrDuplicate) {
		t.Fatalf("third attempt: %v, want ErrDuplicate", err)
	}
	if n := strings.TrimSpace(srv.MustQuery(t, "SELECT count() FROM "+db+".rssac_observations")); n != "57" {
		t.Errorf("%s observation rows, want 57: the retry wrote them again", n)
	}
	got, err = rstore.Collect(r.Observations(ctx, slot, slot.AddDate(0, 1, 0)))
	if err != nil {
		t.Fatal(err)
	}
	rstoretest.Sort(got)
	rstoretest.Sort(obs)
	if d := rstoretest.Diff(got, obs); d != "" {
		t.Error(d)
	}
}

// TestRSSACTablesKeptByMaintain: retention never drops RSSAC rows (they
// are kept for the monthly reports, for good), however old.
func TestRSSACTablesKeptByMaintain(t *testing.T) {
	s, _, _ := open(t, store.Retention{})
	r := s.RSSAC()
	ctx := context.Background()
	old := rstoretest.Oct.AddDate(-3, 0, 0)
	if err := r.AddRun(ctx, rstoretest.Key("001", old), rstoretest.Synth("001", old, 5)); err != nil {
		t.Fatal(err)
	}
	if err := s.Maintain(ctx, rstoretest.Oct); err != nil {
		t.Fatal(err)
	}
	got, err := rstore.Collect(r.Observations(ctx, old, old.AddDate(0, 0, 1)))
	if err != nil || len(got) != 5 {
		t.Errorf("after Maintain: %d observations (%v), want 5", len(got), err)
	}
}

// BenchmarkRSSACMonth loads the scale (rstoretest.Scale: 20 VPs ×
// a 31-day month × 57 observations by default) into a ClickHouse on disk
// and streams it back. Run it once:
//
//	go test -run - -bench RSSACMonth -benchtime 1x ./store/clickhouse
func BenchmarkRSSACMonth(b *testing.B) {
	rstoretest.Scale(b, func(b *testing.B) rstore.Store {
		srv, db := benchServer.Database(b)
		return openOn(b, srv, db, store.Retention{}).RSSAC()
	}, rstoretest.ScaleFromEnv())
}

// BenchmarkRSSACStreamMonth measures reading a month back from
// ClickHouse at the scale (20 VPs × 8,928 slots × 57 = 10.2 M
// observations, the sizes of rstoretest.ScaleFromEnv), the read a
// monthly report makes. The month is loaded in bulk (a day per INSERT),
// not run by run: BenchmarkRSSACMonth measures AddRun.
//
//	go test -run - -bench RSSACStreamMonth -benchtime 1x ./store/clickhouse
func BenchmarkRSSACStreamMonth(b *testing.B) {
	cfg := rstoretest.ScaleFromEnv()
	srv, db := benchServer.Database(b)
	s := openOn(b, srv, db, store.Retention{})
	ctx := context.Background()
	templates := make([][]rssac.Observation, cfg.VPs)
	for v := range templates {
		templates[v] = rstoretest.Synth(fmt.Sprint(100+v), cfg.From, cfg.PerRun)
	}
	start := time.Now()
	const perInsert = 288 // slots: a day
	for first := 0; first < cfg.Slots; first += perInsert {
		var obs []rssac.Observation
		var runVP []string
		var runSlot, recv []int64
		var runN []uint32
		for i := first; i < min(first+perInsert, cfg.Slots); i++ {
			slot := cfg.From.Add(time.Duration(i) * 5 * time.Minute)
			for v, tpl := range templates {
				for _, o := range tpl {
					o.Slot = slot
					obs = append(obs, o)
				}
				runVP = append(runVP, tpl[0].VP)
				runSlot, recv, runN = append(runSlot, slot.Unix()), append(recv, slot.Unix()+60), append(runN, uint32(len(templates[v])))
			}
		}
		if err := s.insertColumns(ctx, "rssac_observations", rssacObsColumns, obsColumns(obs), "bulk"); err != nil {
			b.Fatal(err)
		}
		if err := s.insertColumns(ctx, "rssac_runs", rssacRunsColumns, []any{runVP, runSlot, recv, runN}, "bulk"); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("bulk load: %v", time.Since(start).Round(time.Millisecond))
	r := s.RSSAC()
	to := cfg.From.Add(time.Duration(cfg.Slots) * 5 * time.Minute)
	want := int64(cfg.VPs) * int64(cfg.Slots) * int64(cfg.PerRun)
	for b.Loop() {
		start := time.Now()
		var n int64
		for _, err := range r.Observations(ctx, cfg.From, to) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != want {
			b.Fatalf("streamed %d observations, want %d", n, want)
		}
		d := time.Since(start)
		b.ReportMetric(d.Seconds(), "stream_s")
		b.ReportMetric(float64(n)/d.Seconds(), "stream_obs/s")
		b.Logf("streamed %d observations in %v (%.0f obs/s)", n, d.Round(time.Millisecond), float64(n)/d.Seconds())
	}
}
