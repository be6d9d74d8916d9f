//go:build cgo

package duckdb

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/store"
)

// kind is how a dimension's column is stored and written as text.
type kind uint8

const (
	kindString    kind = iota // VARCHAR, as is
	kindAddr                  // BLOB of 4 or 16 bytes or empty; netip.Addr.String or ""
	kindUint                  // unsigned integer; decimal
	kindBool                  // BOOLEAN; "true" or "false"
	kindFlowType              // UTINYINT; flow.Type.String
	kindDirection             // UTINYINT; flow.Direction.String
)

// column describes a dimension's column: its kind and, for numbers, its
// width in bits.
type column struct {
	kind kind
	bits int
}

func columnOf(d store.Dim) column {
	switch d {
	case store.DimProxy, store.DimSrcHostname, store.DimDstHostname, store.DimSrcCountry, store.DimDstCountry:
		return column{kind: kindString}
	case store.DimExporter, store.DimSrcAddr, store.DimDstAddr, store.DimNextHop:
		return column{kind: kindAddr}
	case store.DimDevice:
		return column{kindUint, 64}
	case store.DimDomain, store.DimInIf, store.DimOutIf, store.DimSrcAS, store.DimDstAS:
		return column{kindUint, 32}
	case store.DimSrcPort, store.DimDstPort, store.DimSrcVLAN, store.DimDstVLAN:
		return column{kindUint, 16}
	case store.DimProto, store.DimTCPFlags, store.DimToS:
		return column{kindUint, 8}
	case store.DimSrcInternal, store.DimDstInternal:
		return column{kind: kindBool}
	case store.DimFlowType:
		return column{kind: kindFlowType}
	case store.DimDirection:
		return column{kind: kindDirection}
	}
	// Query validates dimensions first; a dimension added to store.Dims
	// without a column here is a bug that the schema test catches.
	panic(fmt.Sprintf("store/duckdb: no column for dimension %q", d))
}

// rollupColumns lists the rollup tables' key columns, in table order.
var rollupColumns = func() string {
	names := make([]string, len(store.RollupDims))
	for i, d := range store.RollupDims {
		names[i] = string(d)
	}
	return strings.Join(names, ", ")
}()

// filterValue turns a filter value from its canonical text form into the
// column's type, or says which dimension it does not fit.
func filterValue(d store.Dim, v string) (any, error) {
	c := columnOf(d)
	switch c.kind {
	case kindString:
		return v, nil
	case kindAddr:
		if v == "" {
			return []byte{}, nil // an absent address
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("query: filter on %s: %q is not an IP address", d, v)
		}
		return a.WithZone("").AsSlice(), nil
	case kindUint:
		n, err := strconv.ParseUint(v, 10, c.bits)
		if err != nil {
			return nil, fmt.Errorf("query: filter on %s: %q is not a number from 0 to %d", d, v, uint64(1)<<c.bits-1)
		}
		switch c.bits {
		case 8:
			return uint8(n), nil
		case 16:
			return uint16(n), nil
		case 32:
			return uint32(n), nil
		}
		if n > math.MaxInt64 {
			// database/sql refuses such a uint64; go-duckdb binds a
			// big.Int as HUGEINT.
			return new(big.Int).SetUint64(n), nil
		}
		return n, nil
	case kindBool:
		switch v {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fmt.Errorf("query: filter on %s: %q is not true or false", d, v)
	case kindFlowType:
		if v == flow.TypeUnknown.String() {
			return uint8(flow.TypeUnknown), nil
		}
		t, err := flow.ParseType(v)
		if err != nil {
			return nil, fmt.Errorf("query: filter on %s: %w", d, err)
		}
		return uint8(t), nil
	case kindDirection:
		for _, dir := range []flow.Direction{flow.DirectionUnknown, flow.DirectionIngress, flow.DirectionEgress} {
			if v == dir.String() {
				return uint8(dir), nil
			}
		}
		return nil, fmt.Errorf("query: filter on %s: %q is not ingress, egress or unknown", d, v)
	}
	return nil, fmt.Errorf("query: filter on %s: unknown column kind", d)
}

// keyText writes a value scanned from a dimension's column in the
// canonical text form.
func keyText(d store.Dim, v any) (string, error) {
	c := columnOf(d)
	switch c.kind {
	case kindString:
		if s, ok := v.(string); ok {
			return s, nil
		}
	case kindAddr:
		if b, ok := v.([]byte); ok {
			if len(b) == 0 {
				return "", nil
			}
			if a, ok := netip.AddrFromSlice(b); ok {
				return a.String(), nil
			}
		}
	case kindBool:
		if b, ok := v.(bool); ok {
			return strconv.FormatBool(b), nil
		}
	default:
		n, ok := toUint(v)
		if !ok {
			break
		}
		switch c.kind {
		case kindFlowType:
			return flow.Type(n).String(), nil
		case kindDirection:
			return flow.Direction(n).String(), nil
		}
		return strconv.FormatUint(n, 10), nil
	}
	return "", fmt.Errorf("store/duckdb: column %s holds %T %v", d, v, v)
}

func toUint(v any) (uint64, bool) {
	switch n := v.(type) {
	case uint8:
		return uint64(n), true
	case uint16:
		return uint64(n), true
	case uint32:
		return uint64(n), true
	case uint64:
		return n, true
	case int64:
		return uint64(n), n >= 0
	}
	return 0, false
}

// resolution is the time bucket of a table's rows; zero for raw rows.
func resolution(t store.Table) time.Duration {
	switch t {
	case store.TableMinute:
		return time.Minute
	case store.TableHour:
		return time.Hour
	}
	return 0
}

// ceilMicros rounds t up to the microsecond, the precision of TIMESTAMP:
// a stored time (rounded down) is at or after t exactly when it is at or
// after ceilMicros(t).
func ceilMicros(t time.Time) int64 {
	us := t.UnixMicro()
	if time.UnixMicro(us).Before(t) {
		us++
	}
	return us
}

// Query answers q from the table PickTable chooses, or the one q.Table
// forces; see store.Query for the semantics. A query that matches no row
// gets no rows, also without GroupBy.
func (s *Store) Query(ctx context.Context, q store.Query) (*store.Result, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	table := store.PickTable(&q, s.cfg.Retention, s.cfg.Now())
	if res := resolution(table); res > 0 {
		for _, d := range q.GroupBy {
			if !slices.Contains(store.RollupDims, d) {
				return nil, fmt.Errorf("query: table %s has no dimension %s (only %s has)", table, d, store.TableRaw)
			}
		}
		for _, f := range q.Filters {
			if !slices.Contains(store.RollupDims, f.Dim) {
				return nil, fmt.Errorf("query: table %s has no dimension %s (only %s has)", table, f.Dim, store.TableRaw)
			}
		}
		if q.Step%res != 0 {
			return nil, fmt.Errorf("query: table %s cannot answer a step of %v", table, q.Step)
		}
	}
	sqlText, args, err := build(&q, table)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, sqlText, args...)
	if err != nil {
		return nil, fmt.Errorf("store/duckdb: query: %w", err)
	}
	defer rows.Close()
	result := &store.Result{Table: table, Rows: []store.Row{}}
	n := len(q.GroupBy) + 3
	if q.Step > 0 {
		n++
	}
	vals := make([]any, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("store/duckdb: query: %w", err)
		}
		var row store.Row
		v := vals
		if q.Step > 0 {
			us, ok := v[0].(int64)
			if !ok {
				return nil, fmt.Errorf("store/duckdb: query: bucket is %T", v[0])
			}
			row.Time = time.UnixMicro(us).UTC()
			v = v[1:]
		}
		if len(q.GroupBy) > 0 {
			row.Keys = make([]string, len(q.GroupBy))
			for i, d := range q.GroupBy {
				if row.Keys[i], err = keyText(d, v[i]); err != nil {
					return nil, err
				}
			}
			v = v[len(q.GroupBy):]
		}
		var ok [3]bool
		row.Bytes, ok[0] = toUint(v[0])
		row.Packets, ok[1] = toUint(v[1])
		row.Flows, ok[2] = toUint(v[2])
		if !ok[0] || !ok[1] || !ok[2] {
			return nil, fmt.Errorf("store/duckdb: query: sums are %T %T %T", v[0], v[1], v[2])
		}
		result.Rows = append(result.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store/duckdb: query: %w", err)
	}
	return result, nil
}

// build writes q's SQL for table, and its parameters. Identifiers come
// only from the validated dimensions and fixed names; every value is a
// parameter.
func build(q *store.Query, table store.Table) (string, []any, error) {
	var args []any
	var where strings.Builder
	where.WriteString(`time >= make_timestamp(?) AND time < make_timestamp(?)`)
	args = append(args, ceilMicros(q.From), ceilMicros(q.To))
	for _, f := range q.Filters {
		op := "IN"
		if f.Op == store.OpNe {
			op = "NOT IN"
		}
		fmt.Fprintf(&where, ` AND "%s" %s (`, f.Dim, op)
		for i, v := range f.Values {
			x, err := filterValue(f.Dim, v)
			if err != nil {
				return "", nil, err
			}
			if i > 0 {
				where.WriteString(", ")
			}
			where.WriteString("?")
			args = append(args, x)
		}
		where.WriteString(")")
	}
	keys := make([]string, len(q.GroupBy))
	for i, d := range q.GroupBy {
		keys[i] = `"` + string(d) + `"`
	}
	keyList := strings.Join(keys, ", ")

	sumBytes, sumPackets, sumFlows := `sum(bytes * scale)`, `sum(packets * scale)`, `sum(scale)`
	if table != store.TableRaw {
		sumBytes, sumPackets, sumFlows = `sum(bytes)`, `sum(packets)`, `sum(flows)`
	}
	sums := fmt.Sprintf(`%s::UBIGINT AS b, %s::UBIGINT AS p, %s::UBIGINT AS f`, sumBytes, sumPackets, sumFlows)
	order, orderSum := "b", sumBytes
	switch q.OrderBy {
	case store.MetricPackets:
		order, orderSum = "p", sumPackets
	case store.MetricFlows:
		order, orderSum = "f", sumFlows
	}
	withKeys := func(s string) string {
		if keyList == "" {
			return s
		}
		return s + ", " + keyList
	}

	var b strings.Builder
	if q.Step == 0 {
		fmt.Fprintf(&b, `SELECT %s%s%s FROM %s WHERE %s`, keyList, sep(keyList), sums, table, where.String())
		if keyList != "" {
			fmt.Fprintf(&b, ` GROUP BY %s`, keyList)
		} else {
			b.WriteString(` HAVING count(*) > 0`)
		}
		fmt.Fprintf(&b, ` ORDER BY %s`, withKeys(order+" DESC"))
		if q.Limit > 0 {
			fmt.Fprintf(&b, ` LIMIT %d`, q.Limit)
		}
		return b.String(), args, nil
	}
	step := q.Step.Microseconds()
	from := string(table)
	if q.Limit > 0 && keyList != "" {
		// Only the top groups over the whole range.
		fmt.Fprintf(&b, `WITH top AS (SELECT %s FROM %s WHERE %s GROUP BY %s ORDER BY %s LIMIT %d) `,
			keyList, table, where.String(), keyList, withKeys(orderSum+" DESC"), q.Limit)
		from = fmt.Sprintf(`%s SEMI JOIN top USING (%s)`, table, keyList)
		args = append(args, args...)
	}
	fmt.Fprintf(&b, `SELECT (epoch_us(time) // %d) * %d AS bucket, %s%s FROM %s WHERE %s GROUP BY %s ORDER BY %s`,
		step, step, keyList+sep(keyList), sums, from, where.String(), withKeys("bucket"), withKeys("bucket, "+order+" DESC"))
	return b.String(), args, nil
}

// sep is ", " after a non-empty list.
func sep(list string) string {
	if list == "" {
		return ""
	}
	return ", "
}
