// Package store is the collector's storage contract: one Go interface that
// the embedded DuckDB store (store/duckdb, the default) and the ClickHouse
// store (store/clickhouse) both implement, and that both prove with the one
// shared test suite in store/storetest.
//
// The model:
//
//   - Raw flows (table flows) keep every flow record with its batch id and
//     the proxy that sent it, for Retention.Raw.
//   - Rollups at 1 minute (flows_1m) and 1 hour (flows_1h) keep the sums of
//     bytes, packets and flows, already scaled by the sampling rate, by the
//     RollupDims dimensions, for Retention.Minute and Retention.Hour. They
//     are written with the raw rows of the same batch, so they never lag
//     and never disagree with the raw table.
//   - Interface-counter samples (sFlow counters, later SNMP) go to their own
//     table (if_counters) with the raw retention.
//   - Time is the time the proxy received the export datagram
//     (flow.Record.TimeReceived), not the exporter's flow start or end:
//     exporter clocks are often wrong, and the receive time is what makes
//     "the last 10 minutes" mean the last 10 minutes.
//
// A query names a time range, an optional step, group-by dimensions and
// filters. The store answers from the coarsest table that holds every
// dimension the query names, still has the whole range, and whose
// resolution divides the step and both ends of the range (PickTable).
package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/netpulse/netpulse/flow"
)

// Store keeps flow records and answers queries. Every method is safe for
// concurrent use.
type Store interface {
	// Insert stores one batch: its flows in the raw table and the rollups,
	// its counter samples in the counters table, and its id, all or
	// nothing as far as the engine allows (DuckDB: one transaction;
	// ClickHouse: one INSERT block per table, batch id in the raw rows).
	// A batch whose id is already stored returns ErrDuplicate and stores
	// nothing.
	Insert(ctx context.Context, b Batch) error
	// BatchIDs returns the ids of the batches stored at or after since
	// (by Batch.Received). The collector loads them at start so that a
	// proxy's retry of a batch stored just before a restart is dropped.
	BatchIDs(ctx context.Context, since time.Time) ([]string, error)
	// Query answers q; see Query for the semantics.
	Query(ctx context.Context, q Query) (*Result, error)
	// Maintain applies the retention as of now (drops raw rows older than
	// now-Retention.Raw, and so on). The collector calls it every few
	// minutes.
	Maintain(ctx context.Context, now time.Time) error
	// Info describes the store for /api/v1/status and the logs.
	Info(ctx context.Context) (Info, error)
	// Close releases the store.
	Close() error
}

// ErrDuplicate is returned by Insert for a batch id already stored.
var ErrDuplicate = errors.New("store: batch already stored")

// Batch is what the collector hands to Insert: the records of one wire
// batch, with where and when it came from.
type Batch struct {
	// ID is the wire batch id (unique per batch).
	ID string
	// Proxy is the name of the proxy that sent it (from its token).
	Proxy string
	// Received is when the collector received it.
	Received time.Time
	// Records are flows and counter samples, in any mix. Duplicates
	// already removed by the collector are not in it.
	Records []flow.Record
}

// Retention is how long each table keeps rows. Zero means the default.
type Retention struct {
	Raw    time.Duration `yaml:"raw"`    // default 7 days
	Minute time.Duration `yaml:"minute"` // default 30 days
	Hour   time.Duration `yaml:"hour"`   // default 400 days
}

// Default retentions.
const (
	DefaultRawRetention    = 7 * 24 * time.Hour
	DefaultMinuteRetention = 30 * 24 * time.Hour
	DefaultHourRetention   = 400 * 24 * time.Hour
)

// WithDefaults fills zero fields with the defaults.
func (r Retention) WithDefaults() Retention {
	if r.Raw <= 0 {
		r.Raw = DefaultRawRetention
	}
	if r.Minute <= 0 {
		r.Minute = DefaultMinuteRetention
	}
	if r.Hour <= 0 {
		r.Hour = DefaultHourRetention
	}
	return r
}

// Dim is a flow dimension: a column of the raw table that a query may group
// by or filter on. Values travel as strings in their canonical text form:
// addresses as netip.Addr.String, numbers in decimal, flow_type as
// flow.Type.String, direction as flow.Direction.String, booleans as
// "true"/"false".
type Dim string

// The dimensions. Every one is a column of the raw table.
const (
	DimProxy       Dim = "proxy"
	DimDevice      Dim = "device_id"
	DimExporter    Dim = "exporter"
	DimDomain      Dim = "observation_domain"
	DimFlowType    Dim = "flow_type"
	DimInIf        Dim = "in_if"
	DimOutIf       Dim = "out_if"
	DimSrcAddr     Dim = "src_addr"
	DimDstAddr     Dim = "dst_addr"
	DimSrcPort     Dim = "src_port"
	DimDstPort     Dim = "dst_port"
	DimProto       Dim = "proto"
	DimTCPFlags    Dim = "tcp_flags"
	DimToS         Dim = "tos"
	DimSrcAS       Dim = "src_as"
	DimDstAS       Dim = "dst_as"
	DimNextHop     Dim = "next_hop"
	DimSrcVLAN     Dim = "src_vlan"
	DimDstVLAN     Dim = "dst_vlan"
	DimDirection   Dim = "direction"
	DimSrcInternal Dim = "src_internal"
	DimDstInternal Dim = "dst_internal"
	DimSrcHostname Dim = "src_hostname"
	DimDstHostname Dim = "dst_hostname"
	DimSrcCountry  Dim = "src_country"
	DimDstCountry  Dim = "dst_country"
)

// Dims lists every dimension, in the order of the raw table's columns.
var Dims = []Dim{
	DimProxy, DimDevice, DimExporter, DimDomain, DimFlowType, DimInIf, DimOutIf,
	DimSrcAddr, DimDstAddr, DimSrcPort, DimDstPort, DimProto, DimTCPFlags, DimToS,
	DimSrcAS, DimDstAS, DimNextHop, DimSrcVLAN, DimDstVLAN, DimDirection,
	DimSrcInternal, DimDstInternal, DimSrcHostname, DimDstHostname, DimSrcCountry, DimDstCountry,
}

// RollupDims are the dimensions kept in the 1-minute and 1-hour rollups:
// the ones with bounded cardinality that long-range questions ask about
// (which device, exporter, interface, protocol, AS, country). Addresses,
// ports and names are only in the raw table.
var RollupDims = []Dim{
	DimDevice, DimExporter, DimFlowType, DimInIf, DimOutIf, DimProto,
	DimSrcAS, DimDstAS, DimDirection, DimSrcCountry, DimDstCountry,
}

// ParseDim checks a dimension name.
func ParseDim(s string) (Dim, error) {
	if slices.Contains(Dims, Dim(s)) {
		return Dim(s), nil
	}
	names := make([]string, len(Dims))
	for i, d := range Dims {
		names[i] = string(d)
	}
	return "", fmt.Errorf("unknown dimension %q (known: %s)", s, strings.Join(names, ", "))
}

// Op is a filter operator.
type Op string

// Filter operators.
const (
	OpEq Op = "eq" // the dimension equals one of Values
	OpNe Op = "ne" // the dimension equals none of Values
)

// Filter restricts a query to rows whose dimension is (OpEq) or is not
// (OpNe) one of Values.
type Filter struct {
	Dim    Dim      `json:"dim"`
	Op     Op       `json:"op"`
	Values []string `json:"values"`
}

// Metric is what a query sums and orders by. Every result row carries all
// three; Metric picks the order of top-N.
type Metric string

// Metrics. All are scaled by the sampling rate (see Scale).
const (
	MetricBytes   Metric = "bytes"
	MetricPackets Metric = "packets"
	MetricFlows   Metric = "flows"
)

// Table names a table a query can be answered from.
type Table string

// Tables, finest first.
const (
	TableRaw    Table = "flows"
	TableMinute Table = "flows_1m"
	TableHour   Table = "flows_1h"
)

// Query asks for sums over [From, To).
//
//   - With Step zero, the result has one row per group (per distinct
//     GroupBy values; one row in all without GroupBy), ordered by OrderBy
//     descending, at most Limit rows: the top-N.
//   - With Step set, the result is a time series: one row per step
//     bucket (aligned to the Unix epoch) and group, buckets with no data
//     left out. With Limit set and GroupBy, only the top Limit groups over
//     the whole range are returned.
//
// Filters are ANDed. Table forces a table (for tests and benchmarks);
// empty lets PickTable choose.
//
// Details both engines keep (store/storetest checks them):
//   - a query that matches nothing returns no rows, even without GroupBy;
//   - an empty OrderBy means bytes; Limit is ignored for a series without
//     GroupBy;
//   - the empty string is a valid filter value, meaning an absent address
//     (or empty name), and "unknown" is a valid flow_type and direction;
//   - times are kept to the millisecond at least (range ends included);
//   - a forced rollup Table answers only for its own dimensions.
type Query struct {
	From    time.Time     `json:"from"`
	To      time.Time     `json:"to"`
	Step    time.Duration `json:"step"`
	GroupBy []Dim         `json:"group_by"`
	Filters []Filter      `json:"filters"`
	OrderBy Metric        `json:"order_by"`
	Limit   int           `json:"limit"`
	Table   Table         `json:"table,omitempty"`
}

// Row is one row of a result. Keys are the GroupBy values, in order, in the
// canonical text form of Dim.
type Row struct {
	Time    time.Time `json:"time,omitzero"`
	Keys    []string  `json:"keys,omitempty"`
	Bytes   uint64    `json:"bytes"`
	Packets uint64    `json:"packets"`
	Flows   uint64    `json:"flows"`
}

// Result is a query's answer and the table that answered it.
type Result struct {
	Table Table `json:"table"`
	Rows  []Row `json:"rows"`
}

// Info describes a store.
type Info struct {
	Engine    string          `json:"engine"`  // "duckdb" or "clickhouse"
	Version   string          `json:"version"` // engine version
	Schema    int             `json:"schema"`  // schema migration version
	Rows      map[Table]int64 `json:"rows"`
	DiskBytes int64           `json:"disk_bytes"` // -1 when unknown
}

// Scale is the factor a flow's bytes, packets and count are multiplied by
// in every sum: the sampling rate when known (it already includes the
// proxy's resample factor), else the resample factor, else 1.
func Scale(r *flow.Record) uint64 {
	switch {
	case r.SamplingRate > 0:
		return uint64(r.SamplingRate)
	case r.ResampleFactor > 0:
		return uint64(r.ResampleFactor)
	}
	return 1
}

// Validate checks a query before it reaches an engine: a range, known
// dimensions and operators, a step that is a whole number of seconds.
func (q *Query) Validate() error {
	if q.From.IsZero() || q.To.IsZero() || !q.From.Before(q.To) {
		return errors.New("query: need from < to")
	}
	if q.Step < 0 || q.Step%time.Second != 0 {
		return fmt.Errorf("query: step %v is not a whole number of seconds", q.Step)
	}
	if q.Step > 0 && q.To.Sub(q.From)/q.Step > 100000 {
		return fmt.Errorf("query: step %v gives more than 100000 buckets", q.Step)
	}
	for _, d := range q.GroupBy {
		if _, err := ParseDim(string(d)); err != nil {
			return fmt.Errorf("query: group_by: %w", err)
		}
	}
	for _, f := range q.Filters {
		if _, err := ParseDim(string(f.Dim)); err != nil {
			return fmt.Errorf("query: filter: %w", err)
		}
		if f.Op != OpEq && f.Op != OpNe {
			return fmt.Errorf("query: filter on %s: unknown op %q (want eq or ne)", f.Dim, f.Op)
		}
		if len(f.Values) == 0 {
			return fmt.Errorf("query: filter on %s: no values", f.Dim)
		}
	}
	switch q.OrderBy {
	case "", MetricBytes, MetricPackets, MetricFlows:
	default:
		return fmt.Errorf("query: unknown order_by %q (want bytes, packets or flows)", q.OrderBy)
	}
	if q.Limit < 0 {
		return errors.New("query: negative limit")
	}
	switch q.Table {
	case "", TableRaw, TableMinute, TableHour:
	default:
		return fmt.Errorf("query: unknown table %q", q.Table)
	}
	return nil
}

// PickTable returns the coarsest table that answers q at now under the
// retention r: it must hold every dimension q groups by or filters on,
// still have rows back to q.From, and have a resolution that divides the
// step and both ends of the range. The raw table answers anything its
// retention covers; past that, the answer is still the raw table (and
// simply has no older rows).
func PickTable(q *Query, r Retention, now time.Time) Table {
	if q.Table != "" {
		return q.Table
	}
	r = r.WithDefaults()
	for _, d := range q.GroupBy {
		if !slices.Contains(RollupDims, d) {
			return TableRaw
		}
	}
	for _, f := range q.Filters {
		if !slices.Contains(RollupDims, f.Dim) {
			return TableRaw
		}
	}
	fits := func(res time.Duration, keep time.Duration) bool {
		if q.Step%res != 0 || q.From.UnixNano()%int64(res) != 0 || q.To.UnixNano()%int64(res) != 0 {
			return false
		}
		return !q.From.Before(now.Add(-keep))
	}
	switch {
	case fits(time.Hour, r.Hour):
		return TableHour
	case fits(time.Minute, r.Minute):
		return TableMinute
	}
	return TableRaw
}
