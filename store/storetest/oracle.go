package storetest

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/store"
)

// dataset is what the suite inserted into one store. Its answer method
// is the oracle: the result a correct store gives, computed record by
// record in Go, without SQL.
type dataset struct {
	batches []store.Batch
}

func (d *dataset) add(bs ...store.Batch) { d.batches = append(d.batches, bs...) }

// flows counts the flow records (not counter samples).
func (d *dataset) flows() int {
	n := 0
	for _, b := range d.batches {
		for i := range b.Records {
			if isFlow(&b.Records[i]) {
				n++
			}
		}
	}
	return n
}

func isFlow(r *flow.Record) bool { return r.Kind != flow.KindCounters }

// keyOf is the canonical text form of dimension d of r, sent by proxy.
func keyOf(d store.Dim, proxy string, r *flow.Record) string {
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	switch d {
	case store.DimProxy:
		return proxy
	case store.DimDevice:
		return u(r.DeviceID)
	case store.DimExporter:
		return addrKey(r.Exporter)
	case store.DimDomain:
		return u(uint64(r.ObservationDomain))
	case store.DimFlowType:
		return r.Type.String()
	case store.DimInIf:
		return u(uint64(r.InIf))
	case store.DimOutIf:
		return u(uint64(r.OutIf))
	case store.DimSrcAddr:
		return addrKey(r.SrcAddr)
	case store.DimDstAddr:
		return addrKey(r.DstAddr)
	case store.DimSrcPort:
		return u(uint64(r.SrcPort))
	case store.DimDstPort:
		return u(uint64(r.DstPort))
	case store.DimProto:
		return u(uint64(r.Proto))
	case store.DimTCPFlags:
		return u(uint64(r.TCPFlags))
	case store.DimToS:
		return u(uint64(r.ToS))
	case store.DimSrcAS:
		return u(uint64(r.SrcAS))
	case store.DimDstAS:
		return u(uint64(r.DstAS))
	case store.DimNextHop:
		return addrKey(r.NextHop)
	case store.DimSrcVLAN:
		return u(uint64(r.SrcVLAN))
	case store.DimDstVLAN:
		return u(uint64(r.DstVLAN))
	case store.DimDirection:
		return r.Direction.String()
	case store.DimSrcInternal:
		return strconv.FormatBool(r.SrcInternal)
	case store.DimDstInternal:
		return strconv.FormatBool(r.DstInternal)
	case store.DimSrcHostname:
		return r.SrcHostname
	case store.DimDstHostname:
		return r.DstHostname
	case store.DimSrcCountry:
		return r.SrcCountry
	case store.DimDstCountry:
		return r.DstCountry
	}
	panic(fmt.Sprintf("storetest: keyOf: dimension %q unknown to the suite; add it", d))
}

// addrKey is the canonical form of an address: netip.Addr.String, and the
// empty string for an absent one.
func addrKey(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// group accumulates the sums of one result row.
type group struct {
	keys                  []string
	bytes, packets, flows uint64
}

func (g *group) add(r *flow.Record) {
	s := store.Scale(r)
	g.bytes += r.Bytes * s
	g.packets += r.Packets * s
	g.flows += s
}

func (g *group) row(t time.Time) store.Row {
	return store.Row{Time: t, Keys: g.keys, Bytes: g.bytes, Packets: g.packets, Flows: g.flows}
}

func metricOf(r *store.Row, m store.Metric) uint64 {
	switch m {
	case store.MetricPackets:
		return r.Packets
	case store.MetricFlows:
		return r.Flows
	}
	return r.Bytes
}

// matches reports whether the record passes every filter of q. Filter
// values are compared in canonical text form, so tests that check a
// store's normalisation give the oracle the canonical values.
func matches(q *store.Query, proxy string, r *flow.Record) bool {
	for _, f := range q.Filters {
		in := slices.Contains(f.Values, keyOf(f.Dim, proxy, r))
		if in != (f.Op == store.OpEq) {
			return false
		}
	}
	return true
}

// answer is the oracle: q's rows as a correct store returns them, in the
// order sortRows puts them.
func (d *dataset) answer(q store.Query) []store.Row {
	type rec struct {
		proxy string
		r     *flow.Record
	}
	var recs []rec
	for _, b := range d.batches {
		for i := range b.Records {
			r := &b.Records[i]
			if !isFlow(r) || r.TimeReceived.Before(q.From) || !r.TimeReceived.Before(q.To) || !matches(&q, b.Proxy, r) {
				continue
			}
			recs = append(recs, rec{b.Proxy, r})
		}
	}
	keysOf := func(x rec) []string {
		if len(q.GroupBy) == 0 {
			return nil
		}
		ks := make([]string, len(q.GroupBy))
		for i, dim := range q.GroupBy {
			ks[i] = keyOf(dim, x.proxy, x.r)
		}
		return ks
	}
	// The top-N over the whole range.
	groups := map[string]*group{}
	for _, x := range recs {
		ks := keysOf(x)
		id := strings.Join(ks, "\x00")
		g := groups[id]
		if g == nil {
			g = &group{keys: ks}
			groups[id] = g
		}
		g.add(x.r)
	}
	var top []store.Row
	for _, g := range groups {
		top = append(top, g.row(time.Time{}))
	}
	sortRows(top, q.OrderBy)
	if q.Limit > 0 && len(top) > q.Limit {
		top = top[:q.Limit]
	}
	if q.Step == 0 {
		return top
	}
	// A series: every bucket of every group, or of the top groups only.
	keep := map[string]bool{}
	for _, r := range top {
		keep[strings.Join(r.Keys, "\x00")] = true
	}
	type bucketKey struct {
		t  int64
		id string
	}
	buckets := map[bucketKey]*group{}
	step := int64(q.Step)
	for _, x := range recs {
		ks := keysOf(x)
		id := strings.Join(ks, "\x00")
		if q.Limit > 0 && len(q.GroupBy) > 0 && !keep[id] {
			continue
		}
		ns := x.r.TimeReceived.UnixNano()
		t := ns - ((ns%step)+step)%step
		k := bucketKey{t, id}
		g := buckets[k]
		if g == nil {
			g = &group{keys: ks}
			buckets[k] = g
		}
		g.add(x.r)
	}
	var rows []store.Row
	for k, g := range buckets {
		rows = append(rows, g.row(time.Unix(0, k.t).UTC()))
	}
	sortSeries(rows)
	return rows
}

// sortRows orders top-N rows by metric m descending, then keys ascending.
func sortRows(rows []store.Row, m store.Metric) {
	slices.SortFunc(rows, func(a, b store.Row) int {
		if c := cmp.Compare(metricOf(&b, m), metricOf(&a, m)); c != 0 {
			return c
		}
		return slices.Compare(a.Keys, b.Keys)
	})
}

// sortSeries orders series rows by time, then keys.
func sortSeries(rows []store.Row) {
	slices.SortFunc(rows, func(a, b store.Row) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return slices.Compare(a.Keys, b.Keys)
	})
}

// diffRows describes how got differs from want, or returns "" when they
// are the same rows in the same order.
func diffRows(got, want []store.Row) string {
	var b strings.Builder
	n := max(len(got), len(want))
	for i := range n {
		var g, w string
		if i < len(got) {
			g = fmtRow(got[i])
		}
		if i < len(want) {
			w = fmtRow(want[i])
		}
		if g != w {
			fmt.Fprintf(&b, "row %d:\n   got  %s\n   want %s\n", i, g, w)
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return fmt.Sprintf("%d rows, want %d\n%s", len(got), len(want), b.String())
}

func fmtRow(r store.Row) string {
	t := "-"
	if !r.Time.IsZero() {
		t = r.Time.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("time=%s keys=%q bytes=%d packets=%d flows=%d", t, r.Keys, r.Bytes, r.Packets, r.Flows)
}

// total is the sum of every row.
func total(rows []store.Row) (t group) {
	for _, r := range rows {
		t.bytes += r.Bytes
		t.packets += r.Packets
		t.flows += r.Flows
	}
	return t
}
