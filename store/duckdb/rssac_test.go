//go:build cgo

package duckdb

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/netpulse/netpulse/rssac/rstore"
	"github.com/netpulse/netpulse/rssac/rstore/rstoretest"
)

// rssacHarness opens RSSAC stores in files of the test's temporary
// directory; Reopen closes and reopens the flow store under it.
func rssacHarness() rstoretest.Harness {
	files := map[rstore.Store]*Store{}
	return rstoretest.Harness{
		Open: func(t testing.TB) rstore.Store {
			s, err := Open(filepath.Join(t.TempDir(), "flows.duckdb"), Config{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			r := s.RSSAC()
			files[r] = s
			return r
		},
		Reopen: func(t testing.TB, r rstore.Store) rstore.Store {
			s := files[r]
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2, err := Open(s.path, Config{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s2.Close() })
			r2 := s2.RSSAC()
			files[r2] = s2
			return r2
		},
	}
}

func TestRSSACSuite(t *testing.T) { rstoretest.Run(t, rssacHarness()) }

// TestRSSACDuplicateNoRows: a refused duplicate leaves no row behind in
// either table (the transaction is rolled back), and the flow store's
// batch ids are not confused with run keys.
func TestRSSACDuplicateNoRows(t *testing.T) {
	s, _ := openTest(t, Config{})
	r := s.RSSAC()
	ctx := context.Background()
	slot := rstoretest.Oct
	obs := rstoretest.Synth("001", slot, 57)
	if err := r.AddRun(ctx, rstoretest.Key("001", slot), obs); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := r.AddRun(ctx, rstoretest.Key("001", slot), obs); !errors.Is(err, rstore.ErrDuplicate) {
			t.Fatalf("duplicate: %v", err)
		}
	}
	runs, n, err := r.Rows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if runs != 1 || n != 57 {
		t.Errorf("%d runs and %d observations stored, want 1 and 57", runs, n)
	}
}

// BenchmarkRSSACMonth loads the scale — 20 VPs × a 31-day month
// of 5-minute runs × 57 observations, about 10 M rows — into a DuckDB
// file and streams it back (rstoretest.Scale; sizes from the environment
// there). Run it once:
//
//	go test -run - -bench RSSACMonth -benchtime 1x ./store/duckdb
func BenchmarkRSSACMonth(b *testing.B) {
	rstoretest.Scale(b, func(b *testing.B) rstore.Store {
		s, err := Open(filepath.Join(b.TempDir(), "flows.duckdb"), Config{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s.RSSAC()
	}, rstoretest.ScaleFromEnv())
}
