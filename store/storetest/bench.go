package storetest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/store"
)

// BenchRowsEnv names the environment variable that sets how many rows the
// query benchmarks load (see BenchRows).
const BenchRowsEnv = "NETPULSE_BENCH_ROWS"

// BenchRows returns the number of rows a benchmark loads: $NETPULSE_BENCH_ROWS
// when set (the documented figures use 100000000), else def.
func BenchRows(tb testing.TB, def int) int {
	tb.Helper()
	s := os.Getenv(BenchRowsEnv)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive number of rows", BenchRowsEnv, s)
	}
	return n
}

// NewBenchGenerator decodes the captures and returns a generator whose
// records are received from start, perSecond a second.
func NewBenchGenerator(tb testing.TB, start time.Time, perSecond int, prefix string) *Generator {
	tb.Helper()
	base, err := CaptureRecords(CapturesDir(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return NewGenerator(base, start, perSecond, prefix)
}

// BenchInsert measures Insert of batches of size records from gen, and
// reports the rate as rows/s. The records are made before the clock
// starts: only the store's work is measured (and its allocations, with
// -benchmem).
func BenchInsert(b *testing.B, st store.Store, gen *Generator, size int) {
	const pool = 8
	batches := make([]store.Batch, pool)
	for i := range batches {
		batches[i] = gen.Batch(make([]flow.Record, size))
	}
	ctx := context.Background()
	rows := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		bt := batches[i%pool]
		// A new id for every insert; the records may repeat.
		bt.ID = fmt.Sprintf("%s-bench-%d", bt.ID, i)
		if err := st.Insert(ctx, bt); err != nil {
			b.Fatal(err)
		}
		rows += size
	}
	// ns/op is per batch; rows/s is the figure to quote.
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// Load inserts n records from gen in batches of size records, and
// returns the rows per second it took.
func Load(tb testing.TB, st store.Store, gen *Generator, n, size int) float64 {
	tb.Helper()
	ctx := context.Background()
	recs := make([]flow.Record, size)
	start := time.Now()
	for left := n; left > 0; left -= size {
		b := gen.Batch(recs[:min(size, left)])
		if err := st.Insert(ctx, b); err != nil {
			tb.Fatalf("load: %v", err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// BenchQuery runs q over and over and reports, besides the time per
// query, how many stored rows it covers per second (rows is the number of
// raw rows in q's range).
func BenchQuery(b *testing.B, st store.Store, q store.Query, rows int64) {
	ctx := context.Background()
	b.ReportAllocs()
	var table store.Table
	for b.Loop() {
		res, err := st.Query(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Rows) == 0 {
			b.Fatalf("Query(%s): no rows", describe(q))
		}
		table = res.Table
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	b.Logf("Query(%s) over %d rows, answered from %s", describe(q), rows, table)
}

// BenchTopN is BenchQuery for a top-10 query by bytes over q's range.
func BenchTopN(b *testing.B, st store.Store, q store.Query, rows int64) {
	q.Step, q.OrderBy, q.Limit = 0, store.MetricBytes, 10
	BenchQuery(b, st, q, rows)
}

// ReportDisk reports the store's size on disk per million flows as
// bytes/Mflows (Info.DiskBytes over the raw rows, rollups and batch ids
// included). Call it after Maintain, so that the engine has written its
// data out.
func ReportDisk(b *testing.B, st store.Store) {
	in, err := st.Info(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	raw := in.Rows[store.TableRaw]
	if in.DiskBytes < 0 || raw == 0 {
		b.Logf("disk size unknown (%d bytes, %d rows)", in.DiskBytes, raw)
		return
	}
	b.ReportMetric(float64(in.DiskBytes)/(float64(raw)/1e6), "bytes/Mflows")
	b.Logf("%d flows, %d bytes on disk (%.1f bytes/flow); rows: %v", raw, in.DiskBytes, float64(in.DiskBytes)/float64(raw), in.Rows)
}

// BenchQueries is the query set both engines' benchmarks run over the
// rows loaded in [from, to): the size on disk, top-N from the raw table
// and the rollups, series and a filtered total (docs/storage.md).
func BenchQueries(b *testing.B, st store.Store, from, to time.Time, rows int64) {
	b.Run("Disk", func(b *testing.B) {
		for b.Loop() {
			if _, err := st.Info(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		ReportDisk(b, st)
	})
	for _, c := range []struct {
		name  string
		q     store.Query
		table store.Table
	}{
		{"TopSrcAddr", store.Query{GroupBy: []store.Dim{store.DimSrcAddr}}, store.TableRaw},
		{"TopSrcDstAddr", store.Query{GroupBy: []store.Dim{store.DimSrcAddr, store.DimDstAddr}}, store.TableRaw},
		{"TopDstPortProto", store.Query{GroupBy: []store.Dim{store.DimDstPort, store.DimProto}}, store.TableRaw},
		{"TopExporterInIf", store.Query{GroupBy: []store.Dim{store.DimExporter, store.DimInIf}}, store.TableHour},
		{"TopDstCountry/1m", store.Query{GroupBy: []store.Dim{store.DimDstCountry}, Table: store.TableMinute}, store.TableMinute},
		{"TopDstCountry/raw", store.Query{GroupBy: []store.Dim{store.DimDstCountry}, Table: store.TableRaw}, store.TableRaw},
	} {
		b.Run(c.name, func(b *testing.B) {
			q := c.q
			q.From, q.To = from, to
			if got := store.PickTable(&q, store.Retention{}, time.Now()); got != c.table {
				b.Fatalf("PickTable = %s, want %s", got, c.table)
			}
			BenchTopN(b, st, q, rows)
		})
	}
	b.Run("SeriesTop5Exporter/1m", func(b *testing.B) {
		q := store.Query{From: from, To: to, Step: time.Minute, GroupBy: []store.Dim{store.DimExporter}, OrderBy: store.MetricBytes, Limit: 5}
		BenchQuery(b, st, q, rows)
	})
	b.Run("SeriesTop5SrcAddr/raw", func(b *testing.B) {
		q := store.Query{From: from, To: to, Step: 5 * time.Minute, GroupBy: []store.Dim{store.DimSrcAddr}, OrderBy: store.MetricBytes, Limit: 5}
		BenchQuery(b, st, q, rows)
	})
	b.Run("FilteredTotal/raw", func(b *testing.B) {
		q := store.Query{From: from, To: to, Filters: []store.Filter{{Dim: store.DimProto, Op: store.OpEq, Values: []string{"6"}}, {Dim: store.DimSrcInternal, Op: store.OpEq, Values: []string{"true"}}}, Table: store.TableRaw}
		BenchQuery(b, st, q, rows)
	})
}
