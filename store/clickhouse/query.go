package clickhouse

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/store"
)

// kind is how a dimension's column stores its value, which decides how a
// filter value is parsed and a key is printed.
type kind uint8

const (
	kindUint      kind = iota // UInt8/16/32/64, keys in decimal
	kindString                // String, keys as they are
	kindAddr                  // String of netip.Addr.AsSlice
	kindFlowType              // UInt8 of flow.Type
	kindDirection             // UInt8 of flow.Direction
	kindBool                  // UInt8 0/1, keys "true"/"false"
)

type dimInfo struct {
	kind kind
	bits int // for kindUint
}

// dims is the whitelist of dimensions: the only column names that reach
// SQL from a query. The column of dimension d is named string(d).
var dims = map[store.Dim]dimInfo{
	store.DimProxy:       {kind: kindString},
	store.DimDevice:      {kind: kindUint, bits: 64},
	store.DimExporter:    {kind: kindAddr},
	store.DimDomain:      {kind: kindUint, bits: 32},
	store.DimFlowType:    {kind: kindFlowType},
	store.DimInIf:        {kind: kindUint, bits: 32},
	store.DimOutIf:       {kind: kindUint, bits: 32},
	store.DimSrcAddr:     {kind: kindAddr},
	store.DimDstAddr:     {kind: kindAddr},
	store.DimSrcPort:     {kind: kindUint, bits: 16},
	store.DimDstPort:     {kind: kindUint, bits: 16},
	store.DimProto:       {kind: kindUint, bits: 8},
	store.DimTCPFlags:    {kind: kindUint, bits: 8},
	store.DimToS:         {kind: kindUint, bits: 8},
	store.DimSrcAS:       {kind: kindUint, bits: 32},
	store.DimDstAS:       {kind: kindUint, bits: 32},
	store.DimNextHop:     {kind: kindAddr},
	store.DimSrcVLAN:     {kind: kindUint, bits: 16},
	store.DimDstVLAN:     {kind: kindUint, bits: 16},
	store.DimDirection:   {kind: kindDirection},
	store.DimSrcInternal: {kind: kindBool},
	store.DimDstInternal: {kind: kindBool},
	store.DimSrcHostname: {kind: kindString},
	store.DimDstHostname: {kind: kindString},
	store.DimSrcCountry:  {kind: kindString},
	store.DimDstCountry:  {kind: kindString},
}

// The names of the flow types and directions, by stored code.
var (
	typeNames = func() []string {
		var n []string
		for t := flow.TypeUnknown; t <= flow.TypeSFlowV5; t++ {
			n = append(n, t.String())
		}
		return n
	}()
	directionNames = []string{
		flow.DirectionUnknown.String(), flow.DirectionIngress.String(), flow.DirectionEgress.String(),
	}
)

func lookupName(names []string, v string) (uint8, bool) {
	i := slices.Index(names, v)
	return uint8(i), i >= 0
}

func nameOf(names []string, code uint8) string {
	if int(code) < len(names) {
		return names[code]
	}
	return names[0]
}

// filterValue turns one filter value into the SQL placeholder and argument
// that match it, or says why it cannot be a value of d.
func filterValue(d store.Dim, info dimInfo, v string) (string, any, error) {
	switch info.kind {
	case kindUint:
		n, err := strconv.ParseUint(v, 10, info.bits)
		if err != nil {
			return "", nil, fmt.Errorf("query: filter on %s: %q is not a whole number from 0 to %d", d, v, uint64(1)<<info.bits-1)
		}
		return "?", n, nil
	case kindString:
		return "?", v, nil
	case kindAddr:
		if v == "" {
			return "?", "", nil // absent
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return "", nil, fmt.Errorf("query: filter on %s: %q is not an IP address: %v", d, v, err)
		}
		if a.Zone() != "" {
			return "", nil, fmt.Errorf("query: filter on %s: %q: flow addresses have no zone", d, v)
		}
		return "unhex(?)", hex.EncodeToString(a.AsSlice()), nil
	case kindFlowType:
		code, ok := lookupName(typeNames, v)
		if !ok {
			return "", nil, fmt.Errorf("query: filter on %s: unknown flow type %q (want one of %s)", d, v, strings.Join(typeNames, ", "))
		}
		return "?", uint64(code), nil
	case kindDirection:
		code, ok := lookupName(directionNames, v)
		if !ok {
			return "", nil, fmt.Errorf("query: filter on %s: unknown direction %q (want one of %s)", d, v, strings.Join(directionNames, ", "))
		}
		return "?", uint64(code), nil
	case kindBool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return "", nil, fmt.Errorf("query: filter on %s: %q is not true or false", d, v)
		}
		return "?", uint64(b2u(b)), nil
	}
	panic("clickhouse: unknown kind")
}

// sortText is an SQL expression giving the canonical text form of the key
// of column c, for ordering groups exactly as the contract does (metric
// descending, then keys as text ascending) where a Limit cuts through
// tied groups. Keys themselves are printed in Go, from the column values.
func sortText(c string, info dimInfo) string {
	quoted := func(names []string) string {
		q := make([]string, len(names))
		for i, n := range names {
			q[i] = "'" + n + "'"
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	codes := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = strconv.Itoa(i)
		}
		return "[" + strings.Join(s, ", ") + "]"
	}
	switch info.kind {
	case kindUint:
		return "toString(" + c + ")"
	case kindString:
		return c
	case kindFlowType:
		return fmt.Sprintf("transform(%s, %s, %s, '%s')", c, codes(len(typeNames)), quoted(typeNames), typeNames[0])
	case kindDirection:
		return fmt.Sprintf("transform(%s, %s, %s, '%s')", c, codes(len(directionNames)), quoted(directionNames), directionNames[0])
	case kindBool:
		return "if(" + c + " = 1, 'true', 'false')"
	case kindAddr:
		// netip.Addr.String, in ClickHouse functions: IPv6NumToString
		// agrees with Go but for the deprecated IPv4-compatible
		// addresses (::a.b.c.d), which Go prints in hex.
		group := func(at int) string {
			return fmt.Sprintf("replaceRegexpOne(lower(hex(substring(%s, %d, 2))), '^0{1,3}', '')", c, at)
		}
		return fmt.Sprintf(`multiIf(length(%[1]s) = 0, '',
	length(%[1]s) = 4, IPv4NumToString(reinterpretAsUInt32(reverse(%[1]s))),
	substring(%[1]s, 1, 12) = unhex('000000000000000000000000') AND substring(%[1]s, 13, 2) != unhex('0000'),
		concat('::', %[2]s, ':', %[3]s),
	IPv6NumToString(toFixedString(%[1]s, 16)))`, c, group(13), group(15))
	}
	panic("clickhouse: unknown kind")
}

// scanDest returns a pointer of the Go type that the column of info scans
// into.
func scanDest(info dimInfo) any {
	switch info.kind {
	case kindString, kindAddr:
		return new(string)
	case kindUint:
		switch info.bits {
		case 8:
			return new(uint8)
		case 16:
			return new(uint16)
		case 32:
			return new(uint32)
		}
		return new(uint64)
	}
	return new(uint8)
}

// keyText prints a scanned value in the canonical text form of store.Dim.
func keyText(info dimInfo, v any) string {
	switch v := v.(type) {
	case *string:
		if info.kind == kindAddr {
			if len(*v) == 0 {
				return ""
			}
			a, ok := netip.AddrFromSlice([]byte(*v))
			if !ok {
				return "invalid:" + hex.EncodeToString([]byte(*v))
			}
			return a.String()
		}
		return *v
	case *uint8:
		switch info.kind {
		case kindFlowType:
			return nameOf(typeNames, *v)
		case kindDirection:
			return nameOf(directionNames, *v)
		case kindBool:
			return strconv.FormatBool(*v != 0)
		}
		return strconv.FormatUint(uint64(*v), 10)
	case *uint16:
		return strconv.FormatUint(uint64(*v), 10)
	case *uint32:
		return strconv.FormatUint(uint64(*v), 10)
	case *uint64:
		return strconv.FormatUint(*v, 10)
	}
	panic(fmt.Sprintf("clickhouse: unexpected scan type %T", v))
}

// Query answers q from the table PickTable chooses (or q.Table):
// SUMs of the scaled bytes, packets and flows, grouped by the GroupBy
// columns (and the step bucket), ordered by the metric and cut at Limit in
// SQL. Dimension names come only from the dims whitelist; filter values
// are parsed by dimension and sent as parameters.
func (s *Store) Query(ctx context.Context, q store.Query) (*store.Result, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	table := store.PickTable(&q, s.cfg.Retention, s.now())
	raw := table == store.TableRaw
	for _, d := range q.GroupBy {
		if _, ok := dims[d]; !ok {
			return nil, fmt.Errorf("query: group_by: dimension %q is not supported by the ClickHouse store", d)
		}
		if !raw && !slices.Contains(store.RollupDims, d) {
			return nil, fmt.Errorf("query: group_by %s: table %s keeps only %v", d, table, store.RollupDims)
		}
	}
	for _, f := range q.Filters {
		if !raw && !slices.Contains(store.RollupDims, f.Dim) {
			return nil, fmt.Errorf("query: filter on %s: table %s keeps only %v", f.Dim, table, store.RollupDims)
		}
	}
	where, whereArgs, err := whereClause(&q, raw)
	if err != nil {
		return nil, err
	}

	sums := "sum(bytes) AS sum_bytes, sum(packets) AS sum_packets, sum(flows) AS sum_flows"
	metricSQL := map[store.Metric]string{store.MetricBytes: "sum(bytes)", store.MetricPackets: "sum(packets)", store.MetricFlows: "sum(flows)"}
	if raw {
		sums = "sum(bytes * scale) AS sum_bytes, sum(packets * scale) AS sum_packets, sum(scale) AS sum_flows"
		metricSQL = map[store.Metric]string{store.MetricBytes: "sum(bytes * scale)", store.MetricPackets: "sum(packets * scale)", store.MetricFlows: "sum(scale)"}
	}
	metric := q.OrderBy
	if metric == "" {
		metric = store.MetricBytes
	}
	keys := make([]string, len(q.GroupBy))
	order := []string{metricSQL[metric] + " DESC"}
	infos := make([]dimInfo, len(q.GroupBy))
	for i, d := range q.GroupBy {
		infos[i] = dims[d]
		keys[i] = string(d)
		order = append(order, sortText(string(d), infos[i]))
	}
	from := s.db + "." + string(table)

	var sql strings.Builder
	var args []any
	if q.Step == 0 {
		sql.WriteString("SELECT ")
		for _, k := range keys {
			sql.WriteString(k + ", ")
		}
		fmt.Fprintf(&sql, "%s\nFROM %s\nWHERE %s", sums, from, where)
		args = whereArgs
		if len(keys) > 0 {
			fmt.Fprintf(&sql, "\nGROUP BY %s\nORDER BY %s", strings.Join(keys, ", "), strings.Join(order, ", "))
			if q.Limit > 0 {
				fmt.Fprintf(&sql, "\nLIMIT %d", q.Limit)
			}
		}
	} else {
		step := int64(q.Step / time.Second)
		fmt.Fprintf(&sql, "SELECT intDiv(toUInt32(time), %d) * %d AS bucket, ", step, step)
		for _, k := range keys {
			sql.WriteString(k + ", ")
		}
		fmt.Fprintf(&sql, "%s\nFROM %s\nWHERE %s", sums, from, where)
		args = append(args, whereArgs...)
		if len(keys) > 0 && q.Limit > 0 {
			// Only the top Limit groups over the whole range.
			tuple := strings.Join(keys, ", ")
			if len(keys) > 1 {
				tuple = "(" + tuple + ")"
			}
			fmt.Fprintf(&sql, "\n\tAND %s IN (SELECT %s FROM %s WHERE %s GROUP BY %s ORDER BY %s LIMIT %d)",
				tuple, strings.Join(keys, ", "), from, where, strings.Join(keys, ", "), strings.Join(order, ", "), q.Limit)
			args = append(args, whereArgs...)
		}
		fmt.Fprintf(&sql, "\nGROUP BY bucket")
		for _, k := range keys {
			sql.WriteString(", " + k)
		}
	}

	rows, err := s.conn.Query(ctx, sql.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: query %s: %w", table, err)
	}
	defer rows.Close()
	res := &store.Result{Table: table, Rows: []store.Row{}}
	var bucket uint64
	dest := []any{}
	if q.Step > 0 {
		dest = append(dest, &bucket)
	}
	keyDest := make([]any, len(infos))
	for i, info := range infos {
		keyDest[i] = scanDest(info)
	}
	dest = append(dest, keyDest...)
	var row store.Row
	dest = append(dest, &row.Bytes, &row.Packets, &row.Flows)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("clickhouse: query %s: %w", table, err)
		}
		if row.Flows == 0 {
			// Without GROUP BY, SQL returns one row of zeros for no rows;
			// every stored flow counts at least 1.
			continue
		}
		r := row
		if q.Step > 0 {
			r.Time = time.Unix(int64(bucket), 0).UTC()
		}
		if len(infos) > 0 {
			r.Keys = make([]string, len(infos))
			for i, info := range infos {
				r.Keys[i] = keyText(info, keyDest[i])
			}
		}
		res.Rows = append(res.Rows, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: query %s: %w", table, err)
	}
	// SQL ordered and cut; this puts the rows in the contract's exact
	// order (keys compared as text, which SQL did only for ties).
	if q.Step == 0 {
		slices.SortStableFunc(res.Rows, func(a, b store.Row) int {
			if c := cmp.Compare(metricOf(&b, metric), metricOf(&a, metric)); c != 0 {
				return c
			}
			return slices.Compare(a.Keys, b.Keys)
		})
	} else {
		slices.SortFunc(res.Rows, func(a, b store.Row) int {
			if c := a.Time.Compare(b.Time); c != 0 {
				return c
			}
			return slices.Compare(a.Keys, b.Keys)
		})
	}
	return res, nil
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

// whereClause returns the time range and filters of q as SQL with its
// arguments. On the raw table, a range end that is not a whole second
// also compares the milliseconds; a rollup row counts when its bucket
// start is in the range.
func whereClause(q *store.Query, raw bool) (string, []any, error) {
	fromSec, fromMS := seconds(ceilMilli(q.From))
	toSec, toMS := seconds(ceilMilli(q.To))
	var conds []string
	var args []any
	if raw {
		// Rows whose second is in [fromSec, toSec], or toSec-1 when the end
		// is a whole second; then the milliseconds.
		endSec := uint64(toSec)
		if toMS > 0 {
			endSec++
		}
		conds = append(conds, "time >= toDateTime(?)", "time < toDateTime(?)")
		args = append(args, fromSec, min(endSec, math.MaxUint32))
		if fromMS > 0 || toMS > 0 {
			conds = append(conds, "toUInt64(time) * 1000 + time_ms >= ?", "toUInt64(time) * 1000 + time_ms < ?")
			args = append(args, uint64(fromSec)*1000+uint64(fromMS), uint64(toSec)*1000+uint64(toMS))
		}
	} else {
		// A bucket start b is in [From, To) when b >= ceil(From) and
		// b < ceil(To), in whole seconds.
		startSec := uint64(fromSec)
		if fromMS > 0 {
			startSec++
		}
		endSec := uint64(toSec)
		if toMS > 0 {
			endSec++
		}
		conds = append(conds, "time >= toDateTime(?)", "time < toDateTime(?)")
		args = append(args, min(startSec, math.MaxUint32), min(endSec, math.MaxUint32))
	}
	for _, f := range q.Filters {
		info, ok := dims[f.Dim]
		if !ok {
			return "", nil, fmt.Errorf("query: filter: unknown dimension %q", f.Dim)
		}
		marks := make([]string, len(f.Values))
		for i, v := range f.Values {
			mark, arg, err := filterValue(f.Dim, info, v)
			if err != nil {
				return "", nil, err
			}
			marks[i] = mark
			args = append(args, arg)
		}
		op := "IN"
		if f.Op == store.OpNe {
			op = "NOT IN"
		}
		conds = append(conds, fmt.Sprintf("%s %s (%s)", f.Dim, op, strings.Join(marks, ", ")))
	}
	return strings.Join(conds, "\n\tAND "), args, nil
}
