//go:build cgo

package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/store"
	"github.com/netpulse/netpulse/store/storetest"
)

// harness opens stores in files of the test's temporary directory.
func harness() storetest.Harness {
	type opened struct {
		path string
		cfg  Config
	}
	files := map[store.Store]opened{}
	open := func(t testing.TB, path string, cfg Config) store.Store {
		t.Helper()
		s, err := Open(path, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		files[s] = opened{path, cfg}
		return s
	}
	return storetest.Harness{
		Open: func(t testing.TB, r store.Retention) store.Store {
			return open(t, filepath.Join(t.TempDir(), "flows.duckdb"), Config{Retention: r})
		},
		Reopen: func(t testing.TB, s store.Store) store.Store {
			o := files[s]
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, o.path, o.cfg)
		},
	}
}

func TestStore(t *testing.T) {
	storetest.Run(t, harness())
}

func openTest(t *testing.T, cfg Config) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "flows.duckdb")
	s, err := Open(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func columns(t *testing.T, s *Store, table string) []string {
	t.Helper()
	rows, err := s.db.Query(`SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	return cols
}

// TestSchemaMatchesContract checks the tables against store.Dims and
// store.RollupDims, which the SQL builder trusts to be columns.
func TestSchemaMatchesContract(t *testing.T) {
	if SchemaVersion != len(migrations) {
		t.Fatalf("SchemaVersion %d, %d migrations", SchemaVersion, len(migrations))
	}
	s, _ := openTest(t, Config{})
	want := []string{"time"}
	for _, d := range store.Dims {
		want = append(want, string(d))
		columnOf(d) // panics for a dimension without a column kind
	}
	want = append(want, "flow_start", "flow_end", "sequence", "sampling_rate", "scale", "bytes", "packets", "batch_id")
	if got := columns(t, s, "flows"); !slices.Equal(got, want) {
		t.Errorf("flows columns:\n got %q\nwant %q", got, want)
	}
	want = []string{"time"}
	for _, d := range store.RollupDims {
		want = append(want, string(d))
	}
	want = append(want, "bytes", "packets", "flows")
	for _, table := range []string{"flows_1m", "flows_1h"} {
		if got := columns(t, s, table); !slices.Equal(got, want) {
			t.Errorf("%s columns:\n got %q\nwant %q", table, got, want)
		}
	}
	if got := columns(t, s, "if_counters"); len(got) != 38 {
		t.Errorf("if_counters has %d columns, the inserter writes 38", len(got))
	}
}

func TestMigrations(t *testing.T) {
	s, path := openTest(t, Config{})
	var n, v int
	var applied time.Time
	if err := s.db.QueryRow(`SELECT count(*), max(version), max(applied) FROM schema_migrations`).Scan(&n, &v, &applied); err != nil {
		t.Fatal(err)
	}
	if n != SchemaVersion || v != SchemaVersion || time.Since(applied) > time.Hour || time.Since(applied) < 0 {
		t.Errorf("schema_migrations: %d rows, version %d, applied %v", n, v, applied)
	}
	// Opening again applies nothing.
	s.Close()
	s, err := Open(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != SchemaVersion {
		t.Errorf("after reopening: %d rows (%v)", n, err)
	}
	// A file from a newer netpulse is refused.
	if _, err := s.db.Exec(`INSERT INTO schema_migrations VALUES (?, now())`, SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(path, Config{})
	if err == nil || !strings.Contains(err.Error(), "newer") || !strings.Contains(err.Error(), path) {
		t.Errorf("Open of a newer schema: %v", err)
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []Config{{Threads: -1}, {MemoryLimit: "lots"}, {MemoryLimit: "1GB'; DROP TABLE flows"}} {
		if s, err := Open(filepath.Join(dir, "bad.duckdb"), c); err == nil {
			s.Close()
			t.Errorf("Open(%+v): no error", c)
		}
	}
	if _, err := Open("", Config{}); err == nil {
		t.Error("Open(\"\"): no error")
	}
	s, err := Open(filepath.Join(dir, "ok.duckdb"), Config{Threads: 1, MemoryLimit: "256MB"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var threads int64
	var limit string
	if err := s.db.QueryRow(`SELECT current_setting('threads'), current_setting('memory_limit')`).Scan(&threads, &limit); err != nil {
		t.Fatal(err)
	}
	if threads != 1 || !strings.Contains(limit, "MiB") {
		t.Errorf("threads %d, memory_limit %q", threads, limit)
	}
}

// TestClock checks that PickTable sees the injected time: a year later,
// only the hour rollup still holds today's data.
func TestClock(t *testing.T) {
	now := time.Now().Truncate(time.Hour)
	later := now.Add(365 * 24 * time.Hour)
	s, _ := openTest(t, Config{Now: func() time.Time { return later }})
	q := store.Query{From: now.Add(-time.Hour), To: now, Step: time.Minute}
	res, err := s.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if res.Table != store.TableRaw {
		t.Errorf("minute steps a year back answered from %s, want %s", res.Table, store.TableRaw)
	}
	q.Step = time.Hour
	if res, err = s.Query(context.Background(), q); err != nil || res.Table != store.TableHour {
		t.Errorf("hour steps a year back answered from %s (%v), want %s", res.Table, err, store.TableHour)
	}
}

func rollupRows(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func flowAt(t time.Time, bytes uint64) flow.Record {
	return flow.Record{Kind: flow.KindFlow, Type: flow.TypeIPFIX, TimeReceived: t, Exporter: netip.MustParseAddr("192.0.2.1"),
		Proto: 6, Bytes: bytes, Packets: 1, SamplingRate: 10}
}

// TestCompaction checks that Maintain merges the rollup rows that batches
// wrote for one bucket and key, and keeps the sums.
func TestCompaction(t *testing.T) {
	s, _ := openTest(t, Config{})
	ctx := context.Background()
	now := time.Now().UTC()
	t0 := now.Add(-30 * time.Minute).Truncate(time.Minute)
	for i := range 20 {
		b := store.Batch{ID: fmt.Sprint(i), Proxy: "p", Received: now, Records: []flow.Record{
			flowAt(t0.Add(time.Duration(i)*time.Second), 100), flowAt(t0.Add(time.Minute), 1),
		}}
		if err := s.Insert(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if m, h := rollupRows(t, s, "flows_1m"), rollupRows(t, s, "flows_1h"); m != 40 || h != 20 {
		t.Fatalf("before Maintain: %d minute rows, %d hour rows, want 40 and 20", m, h)
	}
	if err := s.Maintain(ctx, now); err != nil {
		t.Fatal(err)
	}
	if m := rollupRows(t, s, "flows_1m"); m != 2 {
		t.Errorf("after Maintain: %d minute rows, want 2", m)
	}
	if h := rollupRows(t, s, "flows_1h"); h > 2 {
		t.Errorf("after Maintain: %d hour rows, want 1 or 2", h)
	}
	for _, table := range []store.Table{store.TableMinute, store.TableHour} {
		res, err := s.Query(ctx, store.Query{From: t0.Truncate(time.Hour), To: t0.Truncate(time.Hour).Add(2 * time.Hour), Table: table})
		if err != nil {
			t.Fatal(err)
		}
		if want := (store.Row{Bytes: 20 * 101 * 10, Packets: 40 * 10, Flows: 40 * 10}); len(res.Rows) != 1 || res.Rows[0].Bytes != want.Bytes || res.Rows[0].Packets != want.Packets || res.Rows[0].Flows != want.Flows {
			t.Errorf("%s after compaction: %+v, want %+v", table, res.Rows, want)
		}
	}
}

// TestMaintainDuringInserts runs Maintain (retention, compaction,
// checkpoints) and queries while batches go in, and checks that no batch
// is lost or counted twice.
func TestMaintainDuringInserts(t *testing.T) {
	s, _ := openTest(t, Config{})
	ctx := context.Background()
	now := time.Now().UTC()
	t0 := now.Add(-20 * time.Minute)
	const writers, batches, per = 3, 30, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			recs := make([]flow.Record, per)
			for i := range batches {
				for j := range recs {
					recs[j] = flowAt(t0.Add(time.Duration(i*per+j)*time.Millisecond), 3)
				}
				if err := s.Insert(ctx, store.Batch{ID: fmt.Sprintf("%d-%d", w, i), Proxy: "p", Received: now, Records: recs}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	maintained := make(chan int)
	go func() {
		n := 0
		defer func() { maintained <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := s.Maintain(ctx, now); err != nil {
				t.Error(err)
				return
			}
			if _, err := s.Query(ctx, store.Query{From: t0.Truncate(time.Hour), To: now.Add(time.Hour).Truncate(time.Hour), GroupBy: []store.Dim{store.DimExporter}}); err != nil {
				t.Error(err)
				return
			}
			n++
		}
	}()
	wg.Wait()
	close(stop)
	t.Logf("%d rounds of Maintain during the inserts", <-maintained)
	if err := s.Maintain(ctx, now); err != nil {
		t.Fatal(err)
	}
	want := store.Row{Bytes: writers * batches * per * 3 * 10, Packets: writers * batches * per * 10, Flows: writers * batches * per * 10}
	for _, table := range []store.Table{store.TableRaw, store.TableMinute, store.TableHour} {
		res, err := s.Query(ctx, store.Query{From: t0.Truncate(time.Hour), To: now.Add(time.Hour).Truncate(time.Hour), Table: table})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Rows) != 1 || res.Rows[0].Bytes != want.Bytes || res.Rows[0].Packets != want.Packets || res.Rows[0].Flows != want.Flows {
			t.Errorf("%s: %+v, want %+v", table, res.Rows, want)
		}
	}
}

// TestRawColumns reads back the columns that no query returns: flow
// times, sequence, sampling, batch id, and the counter samples.
func TestRawColumns(t *testing.T) {
	s, _ := openTest(t, Config{})
	ctx := context.Background()
	at := time.Date(2026, 11, 1, 10, 0, 0, 123456000, time.UTC)
	f := flowAt(at, 1000)
	f.FlowStart, f.FlowEnd, f.Sequence, f.SamplingRate, f.ResampleFactor = at.Add(-time.Minute), at.Add(-time.Second), 77, 40, 4
	noTimes := flowAt(at, 5)
	noTimes.SamplingRate = 0
	c := flow.Record{Kind: flow.KindCounters, TimeReceived: at, Exporter: netip.MustParseAddr("2001:db8::9"), DeviceID: 3,
		Counters: flow.Counters{IfIndex: 4, IfSpeed: 1e10, IfOperUp: true, InOctets: 1 << 60, OutErrors: 2,
			HasEthernet: true, Ethernet: flow.EthernetCounters{FCSErrors: 6, SymbolErrors: 8}}}
	plain := c
	plain.Counters.HasEthernet, plain.Counters.IfIndex = false, 5
	if err := s.Insert(ctx, store.Batch{ID: "b1", Proxy: "edge", Received: at, Records: []flow.Record{f, c, noTimes, plain}}); err != nil {
		t.Fatal(err)
	}
	rows, err := s.db.Query(`SELECT time, flow_start, flow_end, sequence, sampling_rate, scale, bytes, packets, batch_id, proxy, exporter
FROM flows ORDER BY bytes DESC`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var tm time.Time
		var start, end sql.NullTime
		var seq, rate, scale uint32
		var bytes, packets uint64
		var batch, proxy string
		var exp []byte
		if err := rows.Scan(&tm, &start, &end, &seq, &rate, &scale, &bytes, &packets, &batch, &proxy, &exp); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %v/%v %v/%v %d %d %d %d %d %s %s %x", tm.Format(time.RFC3339Nano), start.Valid, start.Time.Format(time.RFC3339),
			end.Valid, end.Time.Format(time.RFC3339), seq, rate, scale, bytes, packets, batch, proxy, exp))
	}
	want := []string{
		"2026-11-01T10:00:00.123456Z true/2026-11-01T09:59:00Z true/2026-11-01T09:59:59Z 77 40 40 1000 1 b1 edge c0000201",
		"2026-11-01T10:00:00.123456Z false/0001-01-01T00:00:00Z false/0001-01-01T00:00:00Z 0 0 1 5 1 b1 edge c0000201",
	}
	if !slices.Equal(got, want) {
		t.Errorf("flows:\n got %q\nwant %q", got, want)
	}
	var n int
	var fcs, symbol sql.NullInt64
	var octets uint64
	var exp []byte
	if err := s.db.QueryRow(`SELECT count(*) OVER (), eth_fcs_errors, eth_symbol_errors, in_octets, exporter FROM if_counters ORDER BY if_index LIMIT 1`).Scan(&n, &fcs, &symbol, &octets, &exp); err != nil {
		t.Fatal(err)
	}
	if n != 2 || fcs.Int64 != 6 || symbol.Int64 != 8 || octets != 1<<60 || netip.AddrFrom16([16]byte(exp)).String() != "2001:db8::9" {
		t.Errorf("if_counters: %d rows, fcs %v symbol %v in_octets %d exporter %x", n, fcs, symbol, octets, exp)
	}
	if err := s.db.QueryRow(`SELECT eth_fcs_errors FROM if_counters WHERE if_index = 5`).Scan(&fcs); err != nil || fcs.Valid {
		t.Errorf("if_counters without Ethernet: eth_fcs_errors %v (%v), want NULL", fcs, err)
	}
}
