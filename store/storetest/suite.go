package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/store"
)

// suite holds what the checks share: the harness, the base time (a whole
// hour six hours ago, so every table's default retention covers the data
// and PickTable is free to pick any table), and one store loaded with
// sharedData that the read-only checks query.
type suite struct {
	h      Harness
	base   time.Time
	shared store.Store
	data   dataset
}

// The shared data: sharedRecords rich records over three hours from
// base, in batches of sharedBatch, from three proxies.
const (
	sharedRecords = 3000
	sharedBatch   = 100
	sharedSpan    = 3 * time.Hour
)

func (s *suite) sharedBatches() []store.Batch {
	rng := rand.New(rand.NewPCG(1, 2))
	recs := richRecords(rng, s.base, sharedSpan, sharedRecords)
	return split(recs, sharedBatch, "shared", "proxy-a", "proxy-b", "proxy-c")
}

func (s *suite) loadShared(t *testing.T) {
	s.shared = s.h.Open(t, store.Retention{})
	bs := s.sharedBatches()
	insert(t, s.shared, bs...)
	s.data.add(bs...)
}

// all is the query of every shared record: three whole hours.
func (s *suite) all() store.Query {
	return store.Query{From: s.base, To: s.base.Add(sharedSpan)}
}

func insert(t testing.TB, st store.Store, bs ...store.Batch) {
	t.Helper()
	for _, b := range bs {
		if err := st.Insert(context.Background(), b); err != nil {
			t.Fatalf("Insert(%s): %v", b.ID, err)
		}
	}
}

func query(t testing.TB, st store.Store, q store.Query) *store.Result {
	t.Helper()
	res, err := st.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("Query(%s): %v", describe(q), err)
	}
	if res == nil {
		t.Fatalf("Query(%s): nil result", describe(q))
	}
	return res
}

func describe(q store.Query) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s, %s)", q.From.UTC().Format(time.RFC3339Nano), q.To.UTC().Format(time.RFC3339Nano))
	if q.Step > 0 {
		fmt.Fprintf(&b, " step %v", q.Step)
	}
	if len(q.GroupBy) > 0 {
		fmt.Fprintf(&b, " group by %v", q.GroupBy)
	}
	for _, f := range q.Filters {
		fmt.Fprintf(&b, " %s %s %q", f.Dim, f.Op, f.Values)
	}
	if q.OrderBy != "" {
		fmt.Fprintf(&b, " order by %s", q.OrderBy)
	}
	if q.Limit > 0 {
		fmt.Fprintf(&b, " limit %d", q.Limit)
	}
	if q.Table != "" {
		fmt.Fprintf(&b, " table %s", q.Table)
	}
	return b.String()
}

// check queries st and compares the rows with the oracle's. Top-N rows
// must come in the oracle's order when ordered is set (the suite's data
// then has no ties), else both sides are sorted by keys first; series
// rows are compared sorted by time and keys. It returns the result.
func check(t testing.TB, st store.Store, d *dataset, q store.Query, ordered bool) *store.Result {
	t.Helper()
	res := query(t, st, q)
	got, want := slices.Clone(res.Rows), d.answer(q)
	switch {
	case q.Step > 0:
		sortSeries(got)
	case !ordered:
		sortSeries(got)
		sortSeries(want)
	}
	if diff := diffRows(got, want); diff != "" {
		t.Errorf("Query(%s) from %s:\n%s", describe(q), res.Table, diff)
	}
	return res
}

func (s *suite) testScaledTotals(t *testing.T) {
	st := s.h.Open(t, store.Retention{})
	t0 := s.base.Add(10 * time.Minute)
	recs := []flow.Record{
		at(t0, 1000, 10, 0, nil), // unknown rate: scale 1
		at(t0, 1000, 10, 1, nil), // 1
		at(t0, 1000, 10, 10, nil),
		at(t0, 1000, 10, 0, func(r *flow.Record) { r.ResampleFactor = 4 }),
		at(t0, 1000, 10, 100, func(r *flow.Record) { r.ResampleFactor = 4 }), // rate already includes the factor
		at(t0, 7, 1, 4294967295, nil),
	}
	b := store.Batch{ID: "scaled", Proxy: "p", Received: t0, Records: recs}
	insert(t, st, b)
	d := dataset{}
	d.add(b)
	q := store.Query{From: s.base, To: s.base.Add(time.Hour)}
	res := check(t, st, &d, q, true)
	// The same sums by hand, so that the oracle's Scale is checked too.
	want := store.Row{
		Bytes:   1000*(1+1+10+4+100) + 7*4294967295,
		Packets: 10*(1+1+10+4+100) + 4294967295,
		Flows:   1 + 1 + 10 + 4 + 100 + 4294967295,
	}
	if diff := diffRows(res.Rows, []store.Row{want}); diff != "" {
		t.Errorf("scaled totals:\n%s", diff)
	}
	for _, tab := range []store.Table{store.TableRaw, store.TableMinute, store.TableHour} {
		q.Table = tab
		check(t, st, &d, q, true)
	}
}

func (s *suite) testEmptyResult(t *testing.T) {
	for _, q := range []store.Query{
		{From: s.base.Add(-2 * time.Hour), To: s.base.Add(-time.Hour)},
		{From: s.base.Add(-2 * time.Hour), To: s.base.Add(-time.Hour), GroupBy: []store.Dim{store.DimProto}},
		{From: s.base.Add(-2 * time.Hour), To: s.base.Add(-time.Hour), Step: time.Minute},
		{From: s.base, To: s.base.Add(sharedSpan), Filters: []store.Filter{{Dim: store.DimProto, Op: store.OpEq, Values: []string{"250"}}}},
		{From: s.base, To: s.base.Add(sharedSpan), Table: store.TableHour, Filters: []store.Filter{{Dim: store.DimProto, Op: store.OpEq, Values: []string{"250"}}}},
	} {
		if res := query(t, s.shared, q); len(res.Rows) != 0 {
			t.Errorf("Query(%s) matches nothing but returned %d rows, want none: first %s", describe(q), len(res.Rows), fmtRow(res.Rows[0]))
		}
	}
}

// groupsOf returns the oracle's distinct keys of dimension d over the
// shared data.
func (s *suite) groupsOf(d store.Dim) []store.Row {
	q := s.all()
	q.GroupBy = []store.Dim{d}
	return s.data.answer(q)
}

func (s *suite) testGroupByEveryDim(t *testing.T) {
	addrDims := []store.Dim{store.DimExporter, store.DimSrcAddr, store.DimDstAddr, store.DimNextHop}
	for _, d := range store.Dims {
		t.Run(string(d), func(t *testing.T) {
			want := s.groupsOf(d)
			if len(want) < 2 {
				t.Fatalf("suite data has %d values of %s; the check needs several", len(want), d)
			}
			if slices.Contains(addrDims, d) {
				var v4, v6, absent bool
				for _, r := range want {
					k := r.Keys[0]
					v4 = v4 || strings.Count(k, ".") == 3
					v6 = v6 || strings.Contains(k, ":")
					absent = absent || k == ""
				}
				if !v4 || !v6 || !absent {
					t.Fatalf("suite data for %s lacks IPv4 (%v), IPv6 (%v) or absent (%v) addresses", d, v4, v6, absent)
				}
			}
			q := s.all()
			q.GroupBy = []store.Dim{d}
			check(t, s.shared, &s.data, q, false)
		})
	}
}

func (s *suite) testGroupBySeveralDims(t *testing.T) {
	for _, g := range [][]store.Dim{
		{store.DimSrcAddr, store.DimDstPort, store.DimDirection},
		{store.DimProxy, store.DimFlowType, store.DimSrcInternal, store.DimDstCountry},
		{store.DimDstHostname, store.DimDevice, store.DimNextHop},
		store.RollupDims,
	} {
		q := s.all()
		q.GroupBy = g
		check(t, s.shared, &s.data, q, false)
	}
}

// testKeysAsFilterValues feeds the keys a store returned back as filter
// values, for every dimension: a key must select exactly its group.
func (s *suite) testKeysAsFilterValues(t *testing.T) {
	all := total(s.data.answer(s.all()))
	for _, d := range store.Dims {
		q := s.all()
		q.GroupBy = []store.Dim{d}
		groups := query(t, s.shared, q).Rows
		if len(groups) < 2 {
			t.Errorf("group by %s: %d groups", d, len(groups))
			continue
		}
		for _, g := range groups[:min(len(groups), 3)] {
			if len(g.Keys) != 1 {
				t.Fatalf("group by %s: row with %d keys", d, len(g.Keys))
			}
			for _, op := range []store.Op{store.OpEq, store.OpNe} {
				q := s.all()
				q.Filters = []store.Filter{{Dim: d, Op: op, Values: g.Keys}}
				got := total(query(t, s.shared, q).Rows)
				want := group{bytes: g.Bytes, packets: g.Packets, flows: g.Flows}
				if op == store.OpNe {
					want = group{bytes: all.bytes - g.Bytes, packets: all.packets - g.Packets, flows: all.flows - g.Flows}
				}
				if got.bytes != want.bytes || got.packets != want.packets || got.flows != want.flows {
					t.Errorf("%s %s %q: bytes/packets/flows %d/%d/%d, want %d/%d/%d", d, op, g.Keys[0],
						got.bytes, got.packets, got.flows, want.bytes, want.packets, want.flows)
				}
			}
		}
	}
}

func eq(d store.Dim, v ...string) store.Filter {
	return store.Filter{Dim: d, Op: store.OpEq, Values: v}
}
func ne(d store.Dim, v ...string) store.Filter {
	return store.Filter{Dim: d, Op: store.OpNe, Values: v}
}

func (s *suite) testFilters(t *testing.T) {
	for _, c := range []struct {
		group   []store.Dim
		filters []store.Filter
	}{
		{nil, []store.Filter{eq(store.DimProto, "6", "17")}},
		{[]store.Dim{store.DimDstAddr}, []store.Filter{eq(store.DimSrcAddr, v4a.String(), v6a.String(), "")}},
		{[]store.Dim{store.DimSrcAddr}, []store.Filter{ne(store.DimSrcAddr, v4b.String(), "", v6b.String())}},
		{[]store.Dim{store.DimProto}, []store.Filter{ne(store.DimFlowType, "ipfix", "sflow5"), eq(store.DimDirection, "ingress", "unknown")}},
		{[]store.Dim{store.DimDstCountry}, []store.Filter{ne(store.DimSrcCountry, "", "FR")}},
		{nil, []store.Filter{eq(store.DimDstInternal, "true"), eq(store.DimSrcHostname, "ünï.example", "a\tb'c\"d")}},
		{[]store.Dim{store.DimExporter}, []store.Filter{eq(store.DimDevice, "18446744073709551615", "0"), ne(store.DimSrcInternal, "false")}},
		{[]store.Dim{store.DimProxy}, []store.Filter{eq(store.DimProxy, "proxy-a", "proxy-c"), ne(store.DimNextHop, "")}},
		{[]store.Dim{store.DimInIf}, []store.Filter{eq(store.DimOutIf, "4294967295", "1"), eq(store.DimSrcPort, "65535", "0", "22")}},
		{[]store.Dim{store.DimDirection}, []store.Filter{eq(store.DimTCPFlags, "255"), ne(store.DimToS, "0"), eq(store.DimSrcAS, "4200000000", "64496")}},
		{[]store.Dim{store.DimExporter}, []store.Filter{eq(store.DimExporter, "2001:db8:e::1", ""), eq(store.DimDomain, "4294967295", "100")}},
		{nil, []store.Filter{eq(store.DimSrcVLAN, "4095"), ne(store.DimDstVLAN, "0", "100"), eq(store.DimDstAS, "0")}},
		// A filter that every value fails, and one every value passes.
		{nil, []store.Filter{eq(store.DimProto, "6"), eq(store.DimProto, "17")}},
		{nil, []store.Filter{ne(store.DimDstHostname, "no.such.host")}},
	} {
		q := s.all()
		q.GroupBy, q.Filters = c.group, c.filters
		check(t, s.shared, &s.data, q, false)
	}
}

// testFilterValueNormalised gives address values in a non-canonical form:
// the store normalises them as netip.ParseAddr does.
func (s *suite) testFilterValueNormalised(t *testing.T) {
	q := s.all()
	q.GroupBy = []store.Dim{store.DimSrcAddr}
	q.Filters = []store.Filter{eq(store.DimSrcAddr, "2001:DB8:0:0::1", "2001:0db8:00c1::00ff:0001")}
	res := query(t, s.shared, q)
	q.Filters = []store.Filter{eq(store.DimSrcAddr, v6a.String(), v6b.String())}
	want := s.data.answer(q)
	got := slices.Clone(res.Rows)
	sortSeries(got)
	sortSeries(want)
	if len(want) != 2 {
		t.Fatalf("suite data: %d rows for two source addresses", len(want))
	}
	if diff := diffRows(got, want); diff != "" {
		t.Errorf("non-canonical address filter values:\n%s", diff)
	}
}

func (s *suite) testBadFilterValues(t *testing.T) {
	for _, f := range []store.Filter{
		eq(store.DimSrcAddr, "192.0.2.1", "not-an-address"),
		ne(store.DimExporter, "192.0.2.300"),
		eq(store.DimNextHop, "2001:db8::g"),
		eq(store.DimDstPort, "http"),
		eq(store.DimSrcPort, "65536"),
		eq(store.DimProto, "-1"),
		eq(store.DimDevice, "18446744073709551616"),
		eq(store.DimInIf, "1.5"),
		eq(store.DimFlowType, "netflow7"),
		eq(store.DimDirection, "sideways"),
		eq(store.DimSrcInternal, "maybe"),
	} {
		q := s.all()
		q.Filters = []store.Filter{f}
		_, err := s.shared.Query(context.Background(), q)
		switch {
		case err == nil:
			t.Errorf("Query(%s): no error for a bad value", describe(q))
		case !strings.Contains(err.Error(), string(f.Dim)):
			t.Errorf("Query(%s): error %q does not name the dimension", describe(q), err)
		}
	}
}

// topRecords are five groups (dst ports 1 to 5) whose order differs for
// each metric, without ties: by bytes 5 1 2 4 3 (10500, 9000, 5001, 3000,
// 1000), by packets 2 3 4 1 5 (90, 49, 20, 10, 8), by flows 3 5 2 1 4
// (7, 4, 3, 2, 1).
func (s *suite) topRecords() []flow.Record {
	t0 := s.base.Add(5 * time.Minute)
	port := func(p uint16) func(*flow.Record) { return func(r *flow.Record) { r.DstPort = p } }
	return []flow.Record{
		at(t0, 4500, 5, 0, port(1)), at(t0.Add(time.Minute), 4500, 5, 1, port(1)),
		at(t0, 1667, 30, 3, port(2)),
		at(t0, 100, 5, 5, port(3)), at(t0.Add(2*time.Minute), 250, 12, 2, port(3)),
		at(t0.Add(time.Hour), 3000, 20, 1, port(4)),
		at(t0, 1750, 1, 0, port(5)), at(t0, 1750, 1, 0, port(5)), at(t0, 3500, 3, 2, port(5)),
	}
}

func (s *suite) testTopN(t *testing.T) {
	st := s.h.Open(t, store.Retention{})
	d := dataset{}
	bs := split(s.topRecords(), 3, "top", "proxy-a", "proxy-b")
	insert(t, st, bs...)
	d.add(bs...)
	q := store.Query{From: s.base, To: s.base.Add(2 * time.Hour), GroupBy: []store.Dim{store.DimDstPort}}
	orders := map[string]store.Metric{}
	for _, m := range []store.Metric{"", store.MetricBytes, store.MetricPackets, store.MetricFlows} {
		q.OrderBy = m
		want := d.answer(q)
		var order []string
		for i, r := range want {
			order = append(order, r.Keys[0])
			if i > 0 && metricOf(&want[i-1], m) == metricOf(&r, m) {
				t.Fatalf("suite data: a tie in %q", m)
			}
		}
		orders[strings.Join(order, ",")] = m
		for _, limit := range []int{0, 1, 2, 3, 5, 10} {
			q.Limit = limit
			check(t, st, &d, q, true)
		}
		q.Limit = 0
	}
	if len(orders) != 3 {
		t.Fatalf("suite data: the metrics give %d distinct orders, want 3", len(orders))
	}
	// Without GroupBy: one row, whatever the limit.
	check(t, st, &d, store.Query{From: s.base, To: s.base.Add(2 * time.Hour), Limit: 1, OrderBy: store.MetricFlows}, true)
	// On the shared data, with several dimensions and more groups.
	for _, m := range []store.Metric{store.MetricBytes, store.MetricPackets, store.MetricFlows} {
		q := s.all()
		q.GroupBy = []store.Dim{store.DimSrcAddr, store.DimDstAddr}
		q.OrderBy, q.Limit = m, 5
		q.Limit = 0
		want := s.data.answer(q)
		for i := 1; i < 6; i++ {
			if metricOf(&want[i-1], m) == metricOf(&want[i], m) {
				t.Fatalf("suite data: a tie in %s", m)
			}
		}
		q.Limit = 5
		check(t, s.shared, &s.data, q, true)
	}
}

func (s *suite) testTimeSeries(t *testing.T) {
	for _, q := range []store.Query{
		{From: s.base, To: s.base.Add(time.Hour), Step: time.Minute},
		{From: s.base, To: s.base.Add(sharedSpan), Step: time.Hour, GroupBy: []store.Dim{store.DimDirection}},
		// 7 s does not divide a day: buckets must still be aligned to the
		// Unix epoch, and the first one starts before From.
		{From: s.base.Add(10*time.Minute + 3*time.Second), To: s.base.Add(40 * time.Minute), Step: 7 * time.Second, GroupBy: []store.Dim{store.DimProto}},
		{From: s.base.Add(-time.Hour), To: s.base.Add(4 * time.Hour), Step: 13 * time.Minute, GroupBy: []store.Dim{store.DimSrcAddr},
			Filters: []store.Filter{ne(store.DimSrcCountry, "JP")}},
	} {
		res := check(t, s.shared, &s.data, q, false)
		if len(res.Rows) < 2 {
			t.Errorf("Query(%s): %d rows", describe(q), len(res.Rows))
		}
		for _, r := range res.Rows {
			if r.Time.UnixNano()%int64(q.Step) != 0 {
				t.Errorf("Query(%s): bucket %v not aligned to the epoch", describe(q), r.Time)
			}
			if r.Time.Before(q.From.Add(-q.Step)) || !r.Time.Before(q.To) {
				t.Errorf("Query(%s): bucket %v outside the range", describe(q), r.Time)
			}
		}
	}
}

func (s *suite) testTimeSeriesTopGroups(t *testing.T) {
	for _, m := range []store.Metric{store.MetricBytes, store.MetricPackets, store.MetricFlows} {
		q := s.all()
		q.Step, q.GroupBy, q.OrderBy, q.Limit = 10*time.Minute, []store.Dim{store.DimSrcAddr, store.DimProto}, m, 3
		top := q
		top.Step = 0
		top.Limit = 0
		want := s.data.answer(top)
		if metricOf(&want[2], m) == metricOf(&want[3], m) {
			t.Fatalf("suite data: a tie in %s", m)
		}
		res := check(t, s.shared, &s.data, q, false)
		groups := map[string]bool{}
		for _, r := range res.Rows {
			groups[strings.Join(r.Keys, ",")] = true
		}
		if len(groups) != 3 {
			t.Errorf("Query(%s): %d groups, want the top 3", describe(q), len(groups))
		}
		for _, r := range want[:3] {
			if !groups[strings.Join(r.Keys, ",")] {
				t.Errorf("Query(%s): top group %q missing", describe(q), r.Keys)
			}
		}
	}
}

func (s *suite) testRangeEnds(t *testing.T) {
	st := s.h.Open(t, store.Retention{})
	from, to := s.base.Add(time.Hour), s.base.Add(2*time.Hour)
	var recs []flow.Record
	for i, t := range []time.Time{
		from.Add(-time.Millisecond), from, from.Add(time.Millisecond),
		to.Add(-time.Millisecond), to, to.Add(time.Millisecond),
	} {
		recs = append(recs, at(t, 100<<i, 1<<i, 1, nil))
	}
	b := store.Batch{ID: "ends", Proxy: "p", Received: to, Records: recs}
	insert(t, st, b)
	d := dataset{}
	d.add(b)
	want := store.Row{Bytes: 100 * (2 + 4 + 8), Packets: 2 + 4 + 8, Flows: 3}
	for _, tab := range []store.Table{"", store.TableRaw, store.TableMinute, store.TableHour} {
		q := store.Query{From: from, To: to, Table: tab}
		res := check(t, st, &d, q, true)
		if diff := diffRows(res.Rows, []store.Row{want}); diff != "" {
			t.Errorf("from inclusive, to exclusive, table %q:\n%s", tab, diff)
		}
	}
	// Unaligned ends, on the raw table.
	q := store.Query{From: from.Add(time.Millisecond), To: to.Add(time.Millisecond)}
	res := check(t, st, &d, q, true)
	if res.Table != store.TableRaw {
		t.Errorf("unaligned range answered from %s", res.Table)
	}
	if want := (store.Row{Bytes: 100 * (4 + 8 + 16), Packets: 4 + 8 + 16, Flows: 3}); diffRows(res.Rows, []store.Row{want}) != "" {
		t.Errorf("unaligned range:\n%s", diffRows(res.Rows, []store.Row{want}))
	}
}

// tableQueries are aligned queries on rollup dimensions only, which every
// table answers alike.
func (s *suite) tableQueries() []store.Query {
	all := s.all()
	return []store.Query{
		all,
		{From: all.From, To: all.To, GroupBy: store.RollupDims},
		{From: all.From, To: all.To, GroupBy: []store.Dim{store.DimExporter, store.DimProto}, OrderBy: store.MetricPackets, Limit: 4},
		{From: all.From, To: all.To, GroupBy: []store.Dim{store.DimSrcCountry}, Filters: []store.Filter{ne(store.DimDstCountry, "DE"), eq(store.DimFlowType, "ipfix", "netflow5", "unknown")}},
		{From: all.From, To: all.To, Step: time.Hour, GroupBy: []store.Dim{store.DimDirection, store.DimInIf}},
		{From: all.From.Add(time.Hour), To: all.To, Step: 2 * time.Hour, GroupBy: []store.Dim{store.DimDevice}, Filters: []store.Filter{eq(store.DimOutIf, "0", "2")}},
		{From: all.From, To: all.To, Step: time.Hour, GroupBy: []store.Dim{store.DimSrcAS, store.DimDstAS}, OrderBy: store.MetricFlows, Limit: 2},
	}
}

func (s *suite) testTablesAgree(t *testing.T) {
	for _, q := range s.tableQueries() {
		for _, tab := range []store.Table{store.TableRaw, store.TableMinute, store.TableHour} {
			q.Table = tab
			res := check(t, s.shared, &s.data, q, q.Step == 0 && q.Limit > 0)
			if res.Table != tab {
				t.Errorf("Query(%s): answered from %s", describe(q), res.Table)
			}
		}
	}
	// Minute steps, which the hour table cannot give.
	q := s.all()
	q.Step, q.GroupBy = time.Minute, []store.Dim{store.DimDstCountry}
	for _, tab := range []store.Table{store.TableRaw, store.TableMinute} {
		q.Table = tab
		check(t, s.shared, &s.data, q, false)
	}
}

func (s *suite) testPickTable(t *testing.T) {
	all := s.all()
	for _, c := range []struct {
		q    store.Query
		want store.Table
	}{
		{all, store.TableHour},
		{store.Query{From: all.From, To: all.To, GroupBy: []store.Dim{store.DimExporter}, Filters: []store.Filter{eq(store.DimDstCountry, "FR")}}, store.TableHour},
		{store.Query{From: all.From, To: all.To, Step: time.Minute}, store.TableMinute},
		{store.Query{From: all.From.Add(time.Minute), To: all.To, GroupBy: []store.Dim{store.DimProto}}, store.TableMinute},
		{store.Query{From: all.From.Add(time.Second), To: all.To}, store.TableRaw},
		{store.Query{From: all.From, To: all.To, Step: 30 * time.Second}, store.TableRaw},
		{store.Query{From: all.From, To: all.To, GroupBy: []store.Dim{store.DimSrcAddr}}, store.TableRaw},
		{store.Query{From: all.From, To: all.To, Filters: []store.Filter{eq(store.DimDstPort, "443")}}, store.TableRaw},
		{store.Query{From: all.From, To: all.To, GroupBy: []store.Dim{store.DimProxy}}, store.TableRaw},
	} {
		now := time.Now()
		if got := store.PickTable(&c.q, store.Retention{}, now); got != c.want {
			t.Fatalf("suite: PickTable(%s) = %s, the suite expects %s", describe(c.q), got, c.want)
		}
		res := check(t, s.shared, &s.data, c.q, false)
		if res.Table != c.want {
			t.Errorf("Query(%s): answered from %q, want %s (PickTable)", describe(c.q), res.Table, c.want)
		}
	}
}

func (s *suite) testInvalidQuery(t *testing.T) {
	all := s.all()
	for name, q := range map[string]store.Query{
		"unknown group_by": {From: all.From, To: all.To, GroupBy: []store.Dim{"src_addr; DROP TABLE flows"}},
		"unknown filter":   {From: all.From, To: all.To, Filters: []store.Filter{eq("nope", "1")}},
		"unknown op":       {From: all.From, To: all.To, Filters: []store.Filter{{Dim: store.DimProto, Op: "like", Values: []string{"6"}}}},
		"no values":        {From: all.From, To: all.To, Filters: []store.Filter{{Dim: store.DimProto, Op: store.OpEq}}},
		"empty range":      {From: all.To, To: all.To},
		"reversed range":   {From: all.To, To: all.From},
		"no range":         {},
		"bad step":         {From: all.From, To: all.To, Step: 1500 * time.Millisecond},
		"bad order":        {From: all.From, To: all.To, OrderBy: "bits"},
		"bad table":        {From: all.From, To: all.To, Table: "flows_1d"},
		"negative limit":   {From: all.From, To: all.To, Limit: -1},
		"rollup group_by":  {From: all.From, To: all.To, Table: store.TableHour, GroupBy: []store.Dim{store.DimSrcAddr}},
		"rollup filter":    {From: all.From, To: all.To, Table: store.TableMinute, Filters: []store.Filter{eq(store.DimProxy, "proxy-a")}},
	} {
		if res, err := s.shared.Query(context.Background(), q); err == nil {
			t.Errorf("%s: Query(%s) = %d rows, want an error", name, describe(q), len(res.Rows))
		}
	}
}

func batchIDs(t testing.TB, st store.Store, since time.Time) []string {
	t.Helper()
	ids, err := st.BatchIDs(context.Background(), since)
	if err != nil {
		t.Fatalf("BatchIDs(%v): %v", since, err)
	}
	slices.Sort(ids)
	return ids
}

func info(t testing.TB, st store.Store) store.Info {
	t.Helper()
	in, err := st.Info(context.Background())
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	return in
}

func (s *suite) testDuplicate(t *testing.T) {
	st := s.h.Open(t, store.Retention{})
	rng := rand.New(rand.NewPCG(3, 4))
	bs := split(richRecords(rng, s.base, time.Hour, 200), 100, "dup", "proxy-a")
	counters := store.Batch{ID: "dup-counters", Proxy: "proxy-a", Received: s.base, Records: counterRecords(s.base, 2)}
	bs = append(bs, counters)
	insert(t, st, bs...)
	d := dataset{}
	d.add(bs...)
	// The same ids again, with other records: nothing of them is stored.
	again := split(richRecords(rng, s.base, time.Hour, 200), 100, "dup", "proxy-b")
	again = append(again, counters)
	for _, b := range again {
		if err := st.Insert(context.Background(), b); !errors.Is(err, store.ErrDuplicate) {
			t.Errorf("Insert(%s) again: %v, want ErrDuplicate", b.ID, err)
		}
	}
	for _, q := range []store.Query{
		{From: s.base, To: s.base.Add(time.Hour)},
		{From: s.base, To: s.base.Add(time.Hour), GroupBy: []store.Dim{store.DimProxy}},
		{From: s.base, To: s.base.Add(time.Hour), GroupBy: []store.Dim{store.DimProxy}, Table: store.TableRaw},
		{From: s.base, To: s.base.Add(time.Hour), GroupBy: []store.Dim{store.DimProto}, Table: store.TableMinute},
	} {
		check(t, st, &d, q, false)
	}
	if got, want := batchIDs(t, st, s.base.Add(-time.Hour)), []string{"dup-0", "dup-1", "dup-counters"}; !slices.Equal(got, want) {
		t.Errorf("BatchIDs = %q, want %q", got, want)
	}
	in := info(t, st)
	if got := in.Rows[store.TableRaw]; got != 200 {
		t.Errorf("Info.Rows[flows] = %d, want 200", got)
	}
	if got := in.Rows[TableCounters]; got != 2 {
		t.Errorf("Info.Rows[if_counters] = %d, want 2", got)
	}
}

// TableCounters is the key of the interface-counter table in Info.Rows.
const TableCounters store.Table = "if_counters"

func (s *suite) testBatchIDs(t *testing.T) {
	st := s.h.Open(t, store.Retention{})
	r0 := s.base.Add(time.Hour + 123*time.Millisecond)
	r1, r2 := r0.Add(time.Hour), r0.Add(2*time.Hour)
	for i, r := range []time.Time{r0, r1, r2} {
		insert(t, st, store.Batch{ID: fmt.Sprintf("b%d", i), Proxy: "p", Received: r,
			Records: []flow.Record{at(s.base, 100, 1, 1, nil)}})
	}
	for _, c := range []struct {
		since time.Time
		want  []string
	}{
		{s.base, []string{"b0", "b1", "b2"}},
		{r0, []string{"b0", "b1", "b2"}},
		{r1, []string{"b1", "b2"}},
		{r1.Add(time.Millisecond), []string{"b2"}},
		{r2.Add(time.Millisecond), nil},
	} {
		if got := batchIDs(t, st, c.since); !slices.Equal(got, c.want) {
			t.Errorf("BatchIDs(%v) = %q, want %q", c.since, got, c.want)
		}
	}
}

func (s *suite) testCounters(t *testing.T) {
	st := s.h.Open(t, store.Retention{})
	t0 := s.base.Add(20 * time.Minute)
	recs := append(counterRecords(t0, 3), at(t0, 1000, 10, 10, func(r *flow.Record) { r.InIf = 1 }))
	recs = append(recs, counterRecords(t0, 2)...)
	b := store.Batch{ID: "mixed", Proxy: "p", Received: t0, Records: recs}
	insert(t, st, b, store.Batch{ID: "only-counters", Proxy: "p", Received: t0, Records: counterRecords(t0.Add(time.Minute), 4)})
	d := dataset{}
	d.add(b)
	for _, q := range []store.Query{
		{From: s.base, To: s.base.Add(time.Hour)},
		{From: s.base, To: s.base.Add(time.Hour), GroupBy: []store.Dim{store.DimInIf, store.DimDevice}},
		{From: s.base, To: s.base.Add(time.Hour), GroupBy: []store.Dim{store.DimInIf}, Table: store.TableRaw},
		{From: s.base, To: s.base.Add(time.Hour), GroupBy: []store.Dim{store.DimInIf}, Table: store.TableMinute},
		{From: s.base, To: s.base.Add(time.Hour), Step: time.Minute},
	} {
		res := check(t, st, &d, q, false)
		if f := total(res.Rows).flows; f != 10 {
			t.Errorf("Query(%s): %d flows, want 10 (counter samples are not flows)", describe(q), f)
		}
	}
	in := info(t, st)
	if got := in.Rows[store.TableRaw]; got != 1 {
		t.Errorf("Info.Rows[flows] = %d, want 1", got)
	}
	if got := in.Rows[TableCounters]; got != 9 {
		t.Errorf("Info.Rows[if_counters] = %d, want 9", got)
	}
	if got, want := batchIDs(t, st, s.base), []string{"mixed", "only-counters"}; !slices.Equal(got, want) {
		t.Errorf("BatchIDs = %q, want %q", got, want)
	}
}

func (s *suite) testMaintain(t *testing.T) {
	r := store.Retention{Raw: 2 * time.Hour, Minute: 6 * time.Hour}
	st := s.h.Open(t, r)
	now := time.Now().UTC()
	old, mid, recent := now.Add(-10*time.Hour), now.Add(-4*time.Hour), now.Add(-30*time.Minute)
	mk := func(t time.Time, p uint16, bytes uint64) flow.Record {
		return at(t, bytes, 1, 1, func(r *flow.Record) { r.DstPort = p; r.InIf = uint32(p) })
	}
	bs := []store.Batch{
		{ID: "old", Proxy: "p", Received: old, Records: []flow.Record{mk(old, 1, 100), mk(old, 1, 100)}},
		{ID: "mid", Proxy: "p", Received: mid, Records: []flow.Record{mk(mid, 2, 1000)}},
		{ID: "recent", Proxy: "p", Received: recent, Records: []flow.Record{mk(recent, 3, 10000)}},
	}
	insert(t, st, bs...)
	if err := st.Maintain(context.Background(), now); err != nil {
		t.Fatalf("Maintain: %v", err)
	}
	if err := st.Maintain(context.Background(), now); err != nil {
		t.Fatalf("Maintain again: %v", err)
	}
	from, to := now.Add(-12*time.Hour).Truncate(time.Hour), now.Truncate(time.Hour).Add(2*time.Hour)
	for _, c := range []struct {
		table store.Table
		keep  []store.Batch
	}{
		{store.TableRaw, bs[2:]},
		{store.TableMinute, bs[1:]},
		{store.TableHour, bs},
		{"", bs}, // PickTable: only the hour table still has the range
	} {
		d := dataset{}
		d.add(c.keep...)
		q := store.Query{From: from, To: to, GroupBy: []store.Dim{store.DimInIf}, Table: c.table}
		res := check(t, st, &d, q, false)
		if c.table == "" && res.Table != store.TableHour {
			t.Errorf("Query(%s) after Maintain: answered from %s, want %s", describe(q), res.Table, store.TableHour)
		}
	}
	if got := info(t, st).Rows[store.TableRaw]; got != 1 {
		t.Errorf("Info.Rows[flows] after Maintain = %d, want 1", got)
	}
}

// testMaintainKeepsAnswers checks that Maintain, whatever it does besides
// retention (compacting rollups, checkpoints), changes no answer.
func (s *suite) testMaintainKeepsAnswers(t *testing.T) {
	st := s.h.Open(t, store.Retention{})
	rng := rand.New(rand.NewPCG(5, 6))
	// Many small batches in time order, over few rollup keys, give many
	// rollup rows per bucket and key: what compaction merges.
	now := time.Now().UTC()
	from := now.Truncate(time.Hour).Add(-time.Hour)
	recs := richRecords(rng, from, now.Sub(from), 1000)
	slices.SortFunc(recs, func(a, b flow.Record) int { return a.TimeReceived.Compare(b.TimeReceived) })
	for i := range recs {
		r := &recs[i]
		r.Exporter, r.DeviceID, r.Proto = poolExporters[i%2], 1, poolProtos[i%3]
		r.InIf, r.OutIf, r.SrcAS, r.DstAS, r.SrcCountry, r.DstCountry = 1, 2, 0, 64496, "FR", ""
	}
	bs := split(recs, 5, "m", "proxy-a", "proxy-b")
	insert(t, st, bs...)
	d := dataset{}
	d.add(bs...)
	qs := []store.Query{
		{From: from, To: from.Add(2 * time.Hour), GroupBy: store.RollupDims},
		{From: from, To: from.Add(2 * time.Hour), Step: time.Minute, GroupBy: []store.Dim{store.DimExporter}},
	}
	for round := range 2 {
		for _, q := range qs {
			for _, tab := range []store.Table{store.TableRaw, store.TableMinute, store.TableHour} {
				if tab == store.TableHour && q.Step == time.Minute {
					continue
				}
				q.Table = tab
				check(t, st, &d, q, false)
			}
		}
		if round == 0 {
			if err := st.Maintain(context.Background(), now); err != nil {
				t.Fatalf("Maintain: %v", err)
			}
		}
	}
}

// testCancelledInsert checks all or nothing: an Insert whose context is
// already cancelled either stores the whole batch or nothing of it.
func (s *suite) testCancelledInsert(t *testing.T) {
	st := s.h.Open(t, store.Retention{})
	rng := rand.New(rand.NewPCG(7, 8))
	b := split(richRecords(rng, s.base, time.Hour, 500), 500, "cancel", "p")[0]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := st.Insert(ctx, b)
	d := dataset{}
	if err == nil {
		d.add(b)
	}
	q := store.Query{From: s.base, To: s.base.Add(time.Hour), GroupBy: []store.Dim{store.DimProto}}
	check(t, st, &d, q, false)
	q.Table = store.TableMinute
	check(t, st, &d, q, false)
	if err != nil {
		// Nothing stored, not even the id: the retry goes through.
		insert(t, st, b)
		d.add(b)
		check(t, st, &d, q, false)
	}
}

func (s *suite) testReopen(t *testing.T) {
	st := s.h.Open(t, store.Retention{})
	rng := rand.New(rand.NewPCG(9, 10))
	bs := split(richRecords(rng, s.base, sharedSpan, 600), 50, "re", "proxy-a", "proxy-b")
	bs = append(bs, store.Batch{ID: "re-counters", Proxy: "proxy-a", Received: s.base, Records: counterRecords(s.base, 3)})
	insert(t, st, bs...)
	d := dataset{}
	d.add(bs...)
	before := info(t, st)
	ids := batchIDs(t, st, s.base.Add(-time.Hour))
	verify := func(st store.Store) {
		t.Helper()
		for _, q := range s.tableQueries()[:3] {
			for _, tab := range []store.Table{store.TableRaw, store.TableMinute, store.TableHour} {
				q.Table = tab
				check(t, st, &d, q, false)
			}
		}
		q := s.all()
		q.GroupBy = []store.Dim{store.DimSrcAddr, store.DimSrcHostname, store.DimProxy}
		check(t, st, &d, q, false)
		after := info(t, st)
		if after.Schema != before.Schema || after.Schema < 1 {
			t.Errorf("schema version %d after reopening, %d before", after.Schema, before.Schema)
		}
		for _, tab := range []store.Table{store.TableRaw, TableCounters} {
			if after.Rows[tab] != before.Rows[tab] {
				t.Errorf("Info.Rows[%s] = %d after reopening, %d before", tab, after.Rows[tab], before.Rows[tab])
			}
		}
		if got := batchIDs(t, st, s.base.Add(-time.Hour)); !slices.Equal(got, ids) {
			t.Errorf("BatchIDs after reopening = %q, want %q", got, ids)
		}
	}
	st = s.h.Reopen(t, st)
	verify(st)
	for _, b := range bs[:2] {
		if err := st.Insert(context.Background(), b); !errors.Is(err, store.ErrDuplicate) {
			t.Errorf("Insert(%s) after reopening: %v, want ErrDuplicate", b.ID, err)
		}
	}
	// New batches still go in, and are there after another restart.
	more := split(richRecords(rng, s.base, sharedSpan, 100), 50, "re2", "proxy-c")
	insert(t, st, more...)
	d.add(more...)
	before = info(t, st)
	ids = batchIDs(t, st, s.base.Add(-time.Hour))
	st = s.h.Reopen(t, st)
	verify(st)
}

func (s *suite) testConcurrentInserts(t *testing.T) {
	st := s.h.Open(t, store.Retention{})
	rng := rand.New(rand.NewPCG(11, 12))
	const writers, perWriter = 4, 6
	var d dataset
	work := make([][]store.Batch, writers)
	for w := range work {
		work[w] = split(richRecords(rng, s.base, sharedSpan, perWriter*40), 40, fmt.Sprintf("w%d", w), "proxy-a", "proxy-b")
		d.add(work[w]...)
	}
	// Several writers race to insert the same batch, in a few rounds:
	// exactly one wins each round.
	const rounds, racers = 4, 4
	dups := split(richRecords(rng, s.base, sharedSpan, rounds*300), 300, "same", "proxy-c")
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, writers*perWriter+rounds*racers)
	lost := make(chan int, rounds*racers)
	for w := range work {
		wg.Go(func() {
			<-start
			for _, b := range work[w] {
				errs <- st.Insert(context.Background(), b)
			}
		})
	}
	for i := range dups {
		for range racers {
			wg.Go(func() {
				<-start
				err := st.Insert(context.Background(), dups[i])
				switch {
				case errors.Is(err, store.ErrDuplicate):
					lost <- i
				case err != nil:
					errs <- err
				}
			})
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	close(lost)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Insert: %v", err)
		}
	}
	perRound := make([]int, rounds)
	for i := range lost {
		perRound[i]++
	}
	for i, n := range perRound {
		if n != racers-1 {
			t.Errorf("round %d: %d of %d inserts of one batch returned ErrDuplicate, want %d", i, n, racers, racers-1)
		}
	}
	d.add(dups...)
	for _, q := range s.tableQueries()[:2] {
		for _, tab := range []store.Table{store.TableRaw, store.TableMinute, store.TableHour} {
			q.Table = tab
			check(t, st, &d, q, false)
		}
	}
	if got, want := len(batchIDs(t, st, s.base.Add(-time.Hour))), writers*perWriter+rounds; got != want {
		t.Errorf("%d batch ids, want %d", got, want)
	}
}

func (s *suite) testInfo(t *testing.T) {
	in := info(t, s.shared)
	if in.Engine == "" || in.Version == "" {
		t.Errorf("Info: engine %q version %q", in.Engine, in.Version)
	}
	if in.Schema < 1 {
		t.Errorf("Info.Schema = %d", in.Schema)
	}
	if got, want := in.Rows[store.TableRaw], int64(s.data.flows()); got != want {
		t.Errorf("Info.Rows[flows] = %d, want %d", got, want)
	}
	for _, tab := range []store.Table{store.TableMinute, store.TableHour} {
		if n := in.Rows[tab]; n < 1 || n > int64(s.data.flows()) {
			t.Errorf("Info.Rows[%s] = %d, want between 1 and %d", tab, n, s.data.flows())
		}
	}
	if in.DiskBytes != -1 && in.DiskBytes <= 0 {
		t.Errorf("Info.DiskBytes = %d, want -1 (unknown) or more than 0", in.DiskBytes)
	}
}
