//go:build cgo

package duckdb

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/store"
	"github.com/netpulse/netpulse/store/storetest"
)

// benchDir is where the benchmarks' files go: $NETPULSE_BENCH_DIR, else
// the test's temporary directory. A big run wants a disk with room (100
// million flows take a few GB).
func benchDir(b *testing.B) string {
	if d := os.Getenv("NETPULSE_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "duckdb-bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	return b.TempDir()
}

func openBench(b *testing.B) *Store {
	s, err := Open(filepath.Join(benchDir(b), "flows.duckdb"), Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkInsert measures Insert (batch id, raw rows, both rollups summed
// in Go, all in one transaction) of batches of records generated from the
// real captures, in rows/s, from one writer.
func BenchmarkInsert(b *testing.B) {
	// 5000 is the proxy's default batch size.
	for _, size := range []int{1000, 5000, 20000, 100000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			st := openBench(b)
			gen := storetest.NewBenchGenerator(b, time.Now().Add(-2*time.Hour), 10000, "ins")
			storetest.BenchInsert(b, st, gen, size)
		})
	}
}

// BenchmarkInsertParallel is BenchmarkInsert with two writers, as when
// two proxies send at once: DuckDB appends in parallel and commits one
// transaction at a time.
func BenchmarkInsertParallel(b *testing.B) {
	const writers, size = 2, 10000
	st := openBench(b)
	gen := storetest.NewBenchGenerator(b, time.Now().Add(-2*time.Hour), 10000, "par")
	pool := make([]store.Batch, 8)
	for i := range pool {
		pool[i] = gen.Batch(make([]flow.Record, size))
	}
	b.ReportAllocs()
	b.ResetTimer()
	var n int
	for b.Loop() {
		var wg sync.WaitGroup
		for w := range writers {
			bt := pool[(n+w)%len(pool)]
			bt.ID = fmt.Sprintf("%s-%d-%d", bt.ID, n, w)
			wg.Go(func() {
				if err := st.Insert(context.Background(), bt); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		n++
	}
	b.ReportMetric(float64(n*writers*size)/b.Elapsed().Seconds(), "rows/s")
}

// benchSpan is the time range the query benchmarks' rows are spread over.
const benchSpan = 6 * time.Hour

// BenchmarkQuery loads NETPULSE_BENCH_ROWS rows (default 1 million; the
// documented figures use 100 million) generated from the real captures
// over 6 hours, runs Maintain (compaction, checkpoint), reports the size
// on disk per million flows, and measures queries over the whole range.
// The query names are those of the ClickHouse benchmark.
func BenchmarkQuery(b *testing.B) {
	n := storetest.BenchRows(b, 1_000_000)
	st := openBench(b)
	from := time.Now().UTC().Truncate(time.Hour).Add(-benchSpan)
	to := from.Add(benchSpan)
	perSecond := max(1, int(int64(n)/int64(benchSpan/time.Second)))
	gen := storetest.NewBenchGenerator(b, from, perSecond, "load")
	start := time.Now()
	rate := storetest.Load(b, st, gen, n, 100000)
	loaded := time.Since(start)
	start = time.Now()
	if err := st.Maintain(context.Background(), time.Now()); err != nil {
		b.Fatal(err)
	}
	maintained := time.Since(start)
	// The parent of sub-benchmarks prints no log: report the load in one.
	b.Run("Load", func(b *testing.B) {
		for b.Loop() {
		}
		b.ReportMetric(rate, "rows/s")
		b.ReportMetric(maintained.Seconds(), "maintain-s")
		b.Logf("loaded %d records in %v (batches of 100000, one writer); Maintain (compaction, checkpoint) took %v",
			n, loaded.Round(time.Millisecond), maintained.Round(time.Millisecond))
	})
	in, err := st.Info(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	rows := in.Rows[store.TableRaw]
	b.Logf("DuckDB %s, %d flow rows over [%s, %s), rows %v", in.Version, rows, from.Format(time.RFC3339), to.Format(time.RFC3339), in.Rows)

	storetest.BenchQueries(b, st, from, to, rows)
}
