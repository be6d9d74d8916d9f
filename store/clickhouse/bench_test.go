package clickhouse

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netpulse/netpulse/internal/chtest"
	"github.com/netpulse/netpulse/store"
	"github.com/netpulse/netpulse/store/storetest"
)

// benchServer keeps its data on disk (os.TempDir), not on tmpfs as the
// tests' server does, so that ingest pays for writing parts as it does in
// production. It starts only when a benchmark runs.
var benchServer = chtest.Shared{Options: chtest.Options{Parent: os.TempDir()}}

// BenchmarkInsert measures Insert (raw rows, both rollups through the
// materialized views, the batch id, the duplicate look-up) of batches of
// records generated from the real captures, in rows/s.
func BenchmarkInsert(b *testing.B) {
	for _, size := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			srv, db := benchServer.Database(b)
			st := openOn(b, srv, db, store.Retention{})
			gen := storetest.NewBenchGenerator(b, time.Now().Add(-2*time.Hour), 10000, "ins")
			storetest.BenchInsert(b, st, gen, size)
		})
	}
}

// benchSpan is the time range the query benchmarks' rows are spread over.
const benchSpan = 6 * time.Hour

// BenchmarkQuery loads NETPULSE_BENCH_ROWS rows (default 1 million; the
// documented figures use 100 million) generated from the real captures
// over 6 hours, lets ClickHouse merge them (OPTIMIZE … FINAL, the state
// background merges reach), reports the size on disk per million flows,
// and measures queries over the whole range.
func BenchmarkQuery(b *testing.B) {
	n := storetest.BenchRows(b, 1_000_000)
	srv, db := benchServer.Database(b)
	st := openOn(b, srv, db, store.Retention{})
	from := time.Now().UTC().Truncate(time.Hour).Add(-benchSpan)
	to := from.Add(benchSpan)
	perSecond := max(1, int(int64(n)/int64(benchSpan/time.Second)))
	gen := storetest.NewBenchGenerator(b, from, perSecond, "load")
	start := time.Now()
	rate := storetest.Load(b, st, gen, n, 100000)
	b.Logf("loaded %d records in %v: %.0f rows/s (batches of 100000)", n, time.Since(start).Round(time.Millisecond), rate)
	in, err := st.Info(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("before merges: %d bytes on disk, rows %v", in.DiskBytes, in.Rows)
	start = time.Now()
	optimize(b, srv, db)
	b.Logf("OPTIMIZE … FINAL of every partition took %v; active parts now: %s", time.Since(start).Round(time.Millisecond),
		strings.ReplaceAll(strings.TrimSpace(srv.MustQuery(b, fmt.Sprintf("SELECT table, count() FROM system.parts WHERE database = '%s' AND active GROUP BY table ORDER BY table", db))), "\n", ", "))
	if err := st.Maintain(context.Background(), time.Now()); err != nil {
		b.Fatal(err)
	}
	in, err = st.Info(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	rows := in.Rows[store.TableRaw]
	b.Logf("server %s, %d flow rows over [%s, %s)", srv.Version, rows, from.Format(time.RFC3339), to.Format(time.RFC3339))
	b.Logf("per table (rows, bytes on disk, bytes per flow):\n%s", srv.MustQuery(b, fmt.Sprintf(`SELECT table, sum(rows), sum(bytes_on_disk), round(sum(bytes_on_disk) / %d, 2)
FROM system.parts WHERE database = '%s' AND active GROUP BY table ORDER BY table`, max(rows, 1), db)))
	b.Logf("per column:\n%s", srv.MustQuery(b, fmt.Sprintf(`SELECT table, column, sum(column_data_compressed_bytes) AS c, sum(column_data_uncompressed_bytes) AS u
FROM system.parts_columns WHERE database = '%s' AND active AND table = 'flows' GROUP BY table, column ORDER BY c DESC`, db)))

	storetest.BenchQueries(b, st, from, to, rows)
}

// optimize merges every partition of db into one part, as background
// merges eventually would. 18.16 silently does nothing on OPTIMIZE …
// FINAL without a partition (with custom partitioning), knows no SETTINGS
// clause there to make a no-op an error, and skips a partition that a
// background merge is working on: so it waits for running merges, merges
// one partition at a time, and checks that each has one part left.
func optimize(b *testing.B, srv *chtest.Server, db string) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for round := 0; ; round++ {
		for srv.MustQuery(b, fmt.Sprintf("SELECT count() FROM system.merges WHERE database = '%s'", db)) != "0\n" {
			<-tick.C
		}
		multi := srv.MustQuery(b, fmt.Sprintf(`SELECT table, partition FROM system.parts
WHERE database = '%s' AND active GROUP BY table, partition HAVING count() > 1`, db))
		if strings.TrimSpace(multi) == "" {
			return
		}
		if round == 3 {
			b.Fatalf("partitions still in several parts after 3 rounds of OPTIMIZE:\n%s", multi)
		}
		for _, line := range strings.Split(strings.TrimSpace(multi), "\n") {
			table, partition, _ := strings.Cut(line, "\t")
			srv.MustQuery(b, fmt.Sprintf("OPTIMIZE TABLE %s.%s PARTITION %s FINAL", db, table, partition))
		}
	}
}
