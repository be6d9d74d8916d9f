package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/internal/chtest"
	"github.com/netpulse/netpulse/store"
	"github.com/netpulse/netpulse/store/storetest"
)

// server is the package's one clickhouse-server. Its time zone has a
// half-hour offset so that any bucketing or partitioning that followed the
// server's zone instead of UTC would show.
var server = chtest.Shared{Options: chtest.Options{Timezone: "Asia/Kolkata"}}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, s := range []*chtest.Shared{&server, &benchServer} {
		if err := s.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// open opens a store on a fresh database of the shared server, closed
// when t ends.
func open(t testing.TB, r store.Retention) (*Store, *chtest.Server, string) {
	t.Helper()
	srv, db := server.Database(t)
	s := openOn(t, srv, db, r)
	return s, srv, db
}

func openOn(t testing.TB, srv *chtest.Server, db string, r store.Retention) *Store {
	t.Helper()
	off := false
	s, err := Open(context.Background(), Config{
		Addresses:   []string{srv.Addr},
		Database:    db,
		Retention:   r,
		Compression: &off,
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSuite(t *testing.T) {
	type opened struct {
		srv *chtest.Server
		db  string
		r   store.Retention
	}
	var mu sync.Mutex
	stores := map[store.Store]opened{}
	storetest.Run(t, storetest.Harness{
		Open: func(t testing.TB, r store.Retention) store.Store {
			s, srv, db := open(t, r)
			mu.Lock()
			stores[s] = opened{srv, db, r}
			mu.Unlock()
			return s
		},
		Reopen: func(t testing.TB, st store.Store) store.Store {
			mu.Lock()
			o, ok := stores[st]
			mu.Unlock()
			if !ok {
				t.Fatal("Reopen of a store the harness did not open")
			}
			if err := st.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			s := openOn(t, o.srv, o.db, o.r)
			mu.Lock()
			stores[s] = o
			mu.Unlock()
			return s
		},
	})
}

// TestMigrationsIdempotent opens the same database three times: the
// schema is created once, its version recorded once, and a later Open
// with another retention keeps the partition lengths the tables were
// created with.
func TestMigrationsIdempotent(t *testing.T) {
	s, srv, db := open(t, store.Retention{})
	want := s.partitions
	for _, r := range []store.Retention{{}, {Raw: time.Hour, Minute: 2 * time.Hour, Hour: 3 * time.Hour}} {
		s2 := openOn(t, srv, db, r)
		if fmt.Sprint(s2.partitions) != fmt.Sprint(want) {
			t.Errorf("partitions after reopening with %+v: %v, want %v", r, s2.partitions, want)
		}
	}
	if got := strings.TrimSpace(srv.MustQuery(t, "SELECT count(), max(version) FROM "+db+".schema_migrations")); got != fmt.Sprintf("%d\t%d", SchemaVersion(), SchemaVersion()) {
		t.Errorf("schema_migrations: %q, want one row of version %d", got, SchemaVersion())
	}
	in, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if in.Schema != SchemaVersion() || in.Engine != "clickhouse" || in.Version != srv.Version {
		t.Errorf("Info = %+v", in)
	}
	// Default retention: 6 h raw partitions, 1 day for minutes, 7 days
	// for hours.
	for table, p := range map[string]int64{"flows": 6 * 3600, "if_counters": 6 * 3600, "batches": 6 * 3600, "flows_1m": 86400, "flows_1h": 7 * 86400} {
		if s.partitions[table] != p {
			t.Errorf("partition length of %s: %d s, want %d", table, s.partitions[table], p)
		}
	}
}

// TestNewerSchema checks that Open refuses a database migrated by a newer
// netpulse rather than writing into a schema it does not know.
func TestNewerSchema(t *testing.T) {
	_, srv, db := open(t, store.Retention{})
	srv.MustQuery(t, fmt.Sprintf("INSERT INTO %s.schema_migrations (version, description, applied) VALUES (%d, 'from the future', now())", db, SchemaVersion()+1))
	off := false
	_, err := Open(context.Background(), Config{Addresses: []string{srv.Addr}, Database: db, Compression: &off})
	if err == nil || !strings.Contains(err.Error(), "upgrade netpulse") {
		t.Errorf("Open over a newer schema: %v, want an error that says to upgrade", err)
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Database: "net-pulse"}, "clickhouse.database"},
		{Config{Database: "1x"}, "clickhouse.database"},
		{Config{Addresses: []string{"localhost"}}, "clickhouse.addresses"},
		{Config{TLS: TLSConfig{Enable: true, CertFile: "x.pem"}}, "clickhouse.tls.cert_file"},
	} {
		_, err := Open(context.Background(), c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%+v): %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
	d := DefaultConfig()
	if d.Addresses[0] != "127.0.0.1:9000" || d.Database != "netpulse" || d.Retention.Raw != store.DefaultRawRetention || !*d.Compression {
		t.Errorf("DefaultConfig() = %+v", d)
	}
}

func TestPartitionLength(t *testing.T) {
	for _, c := range []struct{ keep, want time.Duration }{
		{time.Minute, time.Hour},
		{2 * time.Hour, time.Hour},
		{7 * 24 * time.Hour, 6 * time.Hour},
		{30 * 24 * time.Hour, 24 * time.Hour},
		{400 * 24 * time.Hour, 7 * 24 * time.Hour},
		{5 * 365 * 24 * time.Hour, 28 * 24 * time.Hour},
	} {
		if got := partitionLength(c.keep); got != c.want {
			t.Errorf("partitionLength(%v) = %v, want %v", c.keep, got, c.want)
		}
	}
	for i := 1; i < len(partitionLengths); i++ {
		if partitionLengths[i]%partitionLengths[i-1] != 0 {
			t.Errorf("partition length %v is not a multiple of %v", partitionLengths[i], partitionLengths[i-1])
		}
	}
}

var (
	t0   = time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	addr = netip.MustParseAddr
)

func rec(at time.Time, bytes uint64, fn func(r *flow.Record)) flow.Record {
	r := flow.Record{
		Kind: flow.KindFlow, Type: flow.TypeIPFIX, TimeReceived: at,
		Exporter: addr("192.0.2.1"), SrcAddr: addr("2001:db8::1"), DstAddr: addr("198.51.100.7"),
		Proto: 6, Bytes: bytes, Packets: 1, SamplingRate: 10,
	}
	if fn != nil {
		fn(&r)
	}
	return r
}

func mustQuery(t *testing.T, s *Store, q store.Query) *store.Result {
	t.Helper()
	res, err := s.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	return res
}

// TestAddressesKeptApart checks what an IPv6 column would lose: absent,
// ::, IPv4 and IPv4-mapped IPv6 are four keys, each found by its filter.
func TestAddressesKeptApart(t *testing.T) {
	s, _, _ := open(t, store.Retention{})
	vals := []netip.Addr{{}, addr("::"), addr("10.0.0.1"), addr("::ffff:10.0.0.1"), addr("::1.2.3.4"), addr("2001:db8::1")}
	var recs []flow.Record
	for i, a := range vals {
		recs = append(recs, rec(t0, uint64(1000*(i+1)), func(r *flow.Record) { r.NextHop = a }))
	}
	if err := s.Insert(context.Background(), store.Batch{ID: "a", Proxy: "p", Received: t0, Records: recs}); err != nil {
		t.Fatal(err)
	}
	res := mustQuery(t, s, store.Query{From: t0, To: t0.Add(time.Minute), GroupBy: []store.Dim{store.DimNextHop}})
	if len(res.Rows) != len(vals) {
		t.Fatalf("%d groups, want %d: %+v", len(res.Rows), len(vals), res.Rows)
	}
	for i, a := range vals {
		key := ""
		if a.IsValid() {
			key = a.String()
		}
		// Bytes grow with i, and the order is bytes descending.
		row := res.Rows[len(vals)-1-i]
		if row.Keys[0] != key || row.Bytes != uint64(1000*(i+1))*10 {
			t.Errorf("group %d: %q %d bytes, want %q %d", i, row.Keys[0], row.Bytes, key, 1000*(i+1)*10)
		}
		got := mustQuery(t, s, store.Query{From: t0, To: t0.Add(time.Minute), Filters: []store.Filter{{Dim: store.DimNextHop, Op: store.OpEq, Values: []string{key}}}})
		if len(got.Rows) != 1 || got.Rows[0].Bytes != uint64(1000*(i+1))*10 {
			t.Errorf("filter next_hop = %q: %+v", key, got.Rows)
		}
	}
}

// TestSortTextMatchesGo checks that the SQL text form used to break ties
// prints every key as Go does, on the server (18.16 here).
func TestSortTextMatchesGo(t *testing.T) {
	s, _, db := open(t, store.Retention{})
	var recs []flow.Record
	for i, a := range []string{"2001:db8::1", "::", "::1", "::ffff:1.2.3.4", "::1.2.3.4", "::0.1.0.0", "1::", "1:0:1:0:1:0:1:0",
		"2001:db8:0:0:1:0:0:1", "fe80::1:2", "::ffff:0:1.2.3.4", "64:ff9b::1.2.3.4", "192.0.2.1", "0.0.0.0", "255.255.255.255"} {
		recs = append(recs, rec(t0, 1, func(r *flow.Record) {
			r.SrcAddr = addr(a)
			r.DeviceID = uint64(i) << 60
			r.Type = flow.Type(i % 7)
			r.Direction = flow.Direction(i % 4)
			r.SrcInternal = i%2 == 0
		}))
	}
	recs = append(recs, rec(t0, 1, func(r *flow.Record) { r.SrcAddr = netip.Addr{} }))
	if err := s.Insert(context.Background(), store.Batch{ID: "a", Proxy: "p", Received: t0, Records: recs}); err != nil {
		t.Fatal(err)
	}
	check := []store.Dim{store.DimSrcAddr, store.DimDevice, store.DimFlowType, store.DimDirection, store.DimSrcInternal}
	exprs := make([]string, len(check))
	for i, d := range check {
		exprs[i] = sortText(string(d), dims[d])
	}
	rows, err := s.conn.Query(context.Background(), fmt.Sprintf("SELECT %s, %s FROM %s.flows", strings.Join(exprs, ", "), strings.Join(func() []string {
		n := make([]string, len(check))
		for i, d := range check {
			n[i] = string(d)
		}
		return n
	}(), ", "), db))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		texts := make([]string, len(check))
		vals := make([]any, len(check))
		dest := make([]any, 0, 2*len(check))
		for i := range texts {
			dest = append(dest, &texts[i])
		}
		for i, d := range check {
			vals[i] = scanDest(dims[d])
			dest = append(dest, vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		for i, d := range check {
			if want := keyText(dims[d], vals[i]); texts[i] != want {
				t.Errorf("%s: SQL text %q, Go %q", d, texts[i], want)
			}
		}
		n++
	}
	if err := rows.Err(); err != nil || n != len(recs) {
		t.Fatalf("%d rows, err %v", n, err)
	}
}

// TestRetryCompletesHalfStoredBatch simulates a collector that died after
// the raw insert of a batch and before its batches row: the retry must
// not write the flows again, and must complete the batch.
func TestRetryCompletesHalfStoredBatch(t *testing.T) {
	s, srv, db := open(t, store.Retention{})
	ctx := context.Background()
	b := store.Batch{ID: "half", Proxy: "p", Received: t0, Records: []flow.Record{
		rec(t0, 100, nil), rec(t0.Add(time.Second), 200, nil),
		{Kind: flow.KindCounters, TimeReceived: t0, Exporter: addr("192.0.2.1"), Counters: flow.Counters{IfIndex: 3, InOctets: 5}},
	}}
	// What the first attempt got done before dying: the flows only.
	if err := s.insertFlows(ctx, b, []*flow.Record{&b.Records[0], &b.Records[1]}); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.BatchIDs(ctx, t0.Add(-time.Hour)); len(ids) != 0 {
		t.Fatalf("BatchIDs = %q before the batch is complete", ids)
	}
	if err := s.Insert(ctx, b); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if err := s.Insert(ctx, b); !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("second retry: %v, want ErrDuplicate", err)
	}
	for _, tab := range []store.Table{store.TableRaw, store.TableMinute, store.TableHour} {
		res := mustQuery(t, s, store.Query{From: t0.Truncate(time.Hour), To: t0.Truncate(time.Hour).Add(time.Hour), Table: tab})
		if len(res.Rows) != 1 || res.Rows[0].Bytes != 3000 || res.Rows[0].Flows != 20 {
			t.Errorf("%s: %+v, want 3000 bytes in 20 flows, once", tab, res.Rows)
		}
	}
	if got := strings.TrimSpace(srv.MustQuery(t, "SELECT count() FROM "+db+".if_counters")); got != "1" {
		t.Errorf("if_counters has %s rows, want 1", got)
	}
	if ids, _ := s.BatchIDs(ctx, t0.Add(-time.Hour)); len(ids) != 1 || ids[0] != "half" {
		t.Errorf("BatchIDs = %q, want [half]", ids)
	}
}

// TestBatchAcrossPartitions inserts a batch that straddles a raw
// partition boundary (two INSERTs, two parts), then half of it again as
// an interrupted first attempt would have left it.
func TestBatchAcrossPartitions(t *testing.T) {
	s, srv, db := open(t, store.Retention{Raw: 2 * time.Hour}) // 1 h partitions
	ctx := context.Background()
	edge := t0.Add(time.Hour)
	b := store.Batch{ID: "x", Proxy: "p", Received: edge, Records: []flow.Record{
		rec(edge.Add(-time.Millisecond), 1, nil), rec(edge, 2, nil), rec(edge.Add(time.Minute), 4, nil),
	}}
	if err := s.insertFlows(ctx, b, []*flow.Record{&b.Records[1], &b.Records[2]}); err != nil {
		t.Fatal(err)
	}
	if err := s.Insert(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(srv.MustQuery(t, "SELECT partition, sum(rows) FROM system.parts WHERE active AND database = '"+db+"' AND table = 'flows' GROUP BY partition ORDER BY partition")); got != fmt.Sprintf("%d\t1\n%d\t2", t0.Unix()/3600, edge.Unix()/3600) {
		t.Errorf("raw partitions:\n%s", got)
	}
	res := mustQuery(t, s, store.Query{From: t0, To: edge.Add(time.Hour), Table: store.TableMinute})
	if len(res.Rows) != 1 || res.Rows[0].Bytes != 70 {
		t.Errorf("rollup: %+v, want 70 bytes", res.Rows)
	}
}

// TestHourBucketsInUTC checks, on a server at UTC+05:30, that hour
// rollups and hour steps start on UTC hours.
func TestHourBucketsInUTC(t *testing.T) {
	s, srv, _ := open(t, store.Retention{})
	if tz := strings.TrimSpace(srv.MustQuery(t, "SELECT timezone()")); tz != "Asia/Kolkata" {
		t.Fatalf("server time zone %s", tz)
	}
	at := t0.Add(40 * time.Minute)
	if err := s.Insert(context.Background(), store.Batch{ID: "h", Proxy: "p", Received: at, Records: []flow.Record{rec(at, 1, nil)}}); err != nil {
		t.Fatal(err)
	}
	for _, tab := range []store.Table{store.TableRaw, store.TableMinute, store.TableHour} {
		res := mustQuery(t, s, store.Query{From: t0, To: t0.Add(2 * time.Hour), Step: time.Hour, Table: tab})
		if len(res.Rows) != 1 || !res.Rows[0].Time.Equal(t0) {
			t.Errorf("%s: %+v, want one bucket at %v", tab, res.Rows, t0)
		}
	}
}

// TestMaintainDropsWholePartitions shows the precision of retention: a
// partition goes only when all of it is past the retention.
func TestMaintainDropsWholePartitions(t *testing.T) {
	s, _, _ := open(t, store.Retention{Raw: 2 * time.Hour}) // 1 h raw partitions
	ctx := context.Background()
	var recs []flow.Record
	for m := 0; m < 240; m += 30 {
		recs = append(recs, rec(t0.Add(time.Duration(m)*time.Minute), 1, nil))
	}
	if err := s.Insert(ctx, store.Batch{ID: "m", Proxy: "p", Received: t0, Records: recs}); err != nil {
		t.Fatal(err)
	}
	// At t0+4h10m the cutoff is t0+2h10m: the partitions [t0, t0+1h) and
	// [t0+1h, t0+2h) go; [t0+2h, t0+3h) stays, with its row at t0+2h,
	// older than the cutoff: precision is one partition.
	if err := s.Maintain(ctx, t0.Add(4*time.Hour+10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	res := mustQuery(t, s, store.Query{From: t0, To: t0.Add(4 * time.Hour), Step: 30 * time.Minute, Table: store.TableRaw})
	var got []string
	for _, r := range res.Rows {
		got = append(got, r.Time.Sub(t0).String())
	}
	if want := "2h0m0s 2h30m0s 3h0m0s 3h30m0s"; strings.Join(got, " ") != want {
		t.Errorf("raw buckets after Maintain: %v, want %s", got, want)
	}
}

// TestInsertAndQueryErrors checks errors that name what is wrong.
func TestInsertAndQueryErrors(t *testing.T) {
	s, _, _ := open(t, store.Retention{})
	if err := s.Insert(context.Background(), store.Batch{Proxy: "p"}); err == nil {
		t.Error("Insert of a batch without id: no error")
	}
	_, err := s.Query(context.Background(), store.Query{From: t0, To: t0.Add(time.Hour),
		Filters: []store.Filter{{Dim: store.DimSrcAddr, Op: store.OpEq, Values: []string{"fe80::1%eth0"}}}})
	if err == nil || !strings.Contains(err.Error(), "src_addr") {
		t.Errorf("zoned address filter: %v", err)
	}
}

// TestSchemaCoversContract checks that every dimension of the contract is
// a raw column and in the query whitelist, with a kind that fits its
// column type, and that the rollups have exactly store.RollupDims.
func TestSchemaCoversContract(t *testing.T) {
	wantType := map[kind]string{kindString: "String", kindAddr: "String", kindFlowType: "UInt8", kindDirection: "UInt8", kindBool: "UInt8"}
	for _, d := range store.Dims {
		info, ok := dims[d]
		if !ok {
			t.Errorf("dimension %s missing from the whitelist", d)
			continue
		}
		want := wantType[info.kind]
		if info.kind == kindUint {
			want = fmt.Sprintf("UInt%d", info.bits)
		}
		if got := columnType(string(d)); got != want {
			t.Errorf("column %s is %s, its kind wants %s", d, got, want)
		}
	}
	if len(dims) != len(store.Dims) {
		t.Errorf("whitelist has %d dimensions, the contract %d", len(dims), len(store.Dims))
	}
	cols := rollupColumns()
	if len(cols) != len(store.RollupDims)+4 {
		t.Errorf("rollup columns %v", cols)
	}
}
