package clickhouse

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/store"
)

// Insert stores b. What is atomic on ClickHouse, and why a retry never
// counts a flow twice:
//
//   - One INSERT block into one partition of a MergeTree table becomes
//     one part, written whole or not at all. Insert therefore sends the
//     batch's flows as one INSERT per raw partition they fall in (one,
//     unless the batch straddles a partition boundary), and the same for
//     the counter samples.
//   - Each INSERT into flows also feeds flows_1m and flows_1h through the
//     materialized views, in the same statement on the server: the
//     client cannot stop between the raw rows and their rollups. (The
//     server writes the raw part first, then the views; should a view
//     fail there, the raw rows stay and the rollups miss them. Nothing is
//     ever counted twice.)
//   - Every raw and counter row carries the batch id, and the batches row
//     is written last. Before writing, Insert asks, in one query, whether
//     batches has the id (then ErrDuplicate, nothing written) and, for
//     each of the batch's partitions, whether flows or if_counters already
//     holds rows of the id within the batch's time range (an earlier
//     attempt stopped half-way: a crash, a cancelled context, a lost
//     connection). Those parts are skipped and the rest written, so a
//     retry completes the batch instead of doubling it.
//   - What ClickHouse cannot give is isolation: a query running during an
//     Insert may see the raw rows of a batch whose counters are not in
//     yet. And two collectors inserting the same batch id at the same
//     instant into one database would both pass the check (within one
//     Store, claim serialises them).
func (s *Store) Insert(ctx context.Context, b store.Batch) error {
	if b.ID == "" {
		return errNoID
	}
	release, err := s.claim(ctx, b.ID)
	if err != nil {
		return err
	}
	defer release()

	var flows, counters []*flow.Record
	for i := range b.Records {
		r := &b.Records[i]
		if r.Kind == flow.KindCounters {
			counters = append(counters, r)
		} else {
			flows = append(flows, r)
		}
	}
	flowParts := splitByPartition(flows, s.partitions[string(store.TableRaw)])
	counterParts := splitByPartition(counters, s.partitions[tableCounters])

	// One round trip: is the batch stored, and which of its parts are?
	var probe strings.Builder
	args := []any{b.ID}
	fmt.Fprintf(&probe, "SELECT (SELECT count() FROM %s.%s WHERE batch_id = ?)", s.db, tableBatches)
	for _, parts := range []struct {
		table string
		parts []part
	}{{string(store.TableRaw), flowParts}, {tableCounters, counterParts}} {
		for _, p := range parts.parts {
			fmt.Fprintf(&probe, ",\n\t(SELECT count() FROM %s.%s WHERE time >= toDateTime(?) AND time <= toDateTime(?) AND batch_id = ?)", s.db, parts.table)
			args = append(args, p.minSec, p.maxSec, b.ID)
		}
	}
	stored := make([]uint64, 1+len(flowParts)+len(counterParts))
	dest := make([]any, len(stored))
	for i := range stored {
		dest[i] = &stored[i]
	}
	if err := s.conn.QueryRow(ctx, probe.String(), args...).Scan(dest...); err != nil {
		return fmt.Errorf("clickhouse: insert %s: look up the batch id: %w", b.ID, err)
	}
	if stored[0] > 0 {
		return store.ErrDuplicate
	}
	for i, p := range flowParts {
		if stored[1+i] > 0 {
			continue
		}
		if err := s.insertFlows(ctx, b, p.recs); err != nil {
			return err
		}
	}
	for i, p := range counterParts {
		if stored[1+len(flowParts)+i] > 0 {
			continue
		}
		if err := s.insertCounters(ctx, b, p.recs); err != nil {
			return err
		}
	}
	return s.insertBatch(ctx, b, len(flows), len(counters))
}

// part is the records of a batch that fall in one partition.
type part struct {
	recs           []*flow.Record
	minSec, maxSec uint32
}

// splitByPartition groups recs by partition of length p seconds, in
// partition order.
func splitByPartition(recs []*flow.Record, p int64) []part {
	if len(recs) == 0 {
		return nil
	}
	byKey := map[int64]*part{}
	var keys []int64
	for _, r := range recs {
		sec, _ := seconds(r.TimeReceived)
		k := int64(sec) / p
		pt := byKey[k]
		if pt == nil {
			pt = &part{minSec: sec, maxSec: sec}
			byKey[k] = pt
			keys = append(keys, k)
		}
		pt.recs = append(pt.recs, r)
		pt.minSec, pt.maxSec = min(pt.minSec, sec), max(pt.maxSec, sec)
	}
	slices.Sort(keys)
	out := make([]part, len(keys))
	for i, k := range keys {
		out[i] = *byKey[k]
	}
	return out
}

// seconds splits t into the Unix seconds a DateTime holds and the
// milliseconds within the second, clamped to DateTime's range (1970 to
// 2106): the zero time, as in a flow without flow times, becomes 0.
func seconds(t time.Time) (uint32, uint16) {
	ms := t.UnixMilli()
	switch {
	case t.IsZero() || ms < 0:
		return 0, 0
	case ms/1000 > math.MaxUint32:
		return math.MaxUint32, 999
	}
	return uint32(ms / 1000), uint16(ms % 1000)
}

// addrs packs addresses into one string and hands out substrings of it,
// so that the four address columns cost two allocations per batch rather
// than one per value.
type addrs struct {
	buf  []byte
	ends []int
}

func (a *addrs) add(x netip.Addr) {
	switch {
	case x.Is4():
		b := x.As4()
		a.buf = append(a.buf, b[:]...)
	case x.IsValid():
		b := x.As16()
		a.buf = append(a.buf, b[:]...)
	}
	a.ends = append(a.ends, len(a.buf))
}

// column returns values i, i+stride, i+2*stride… as strings.
func (a *addrs) column(all string, i, stride int) []string {
	out := make([]string, 0, len(a.ends)/stride)
	for ; i < len(a.ends); i += stride {
		start := 0
		if i > 0 {
			start = a.ends[i-1]
		}
		out = append(out, all[start:a.ends[i]])
	}
	return out
}

// storedType and storedDirection map every value without a name of its
// own to 0, which reads back as "unknown", so that filtering on "unknown"
// finds it.
func storedType(t flow.Type) uint8 {
	if t.String() == flow.TypeUnknown.String() {
		return 0
	}
	return uint8(t)
}

func storedDirection(d flow.Direction) uint8 {
	if d.String() == flow.DirectionUnknown.String() {
		return 0
	}
	return uint8(d)
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// insertFlows writes recs to the raw table, as one block (one part), which
// the materialized views sum into the rollups.
func (s *Store) insertFlows(ctx context.Context, b store.Batch, recs []*flow.Record) error {
	n := len(recs)
	var (
		times, starts, ends                   = make([]int64, n), make([]int64, n), make([]int64, n)
		timeMS, srcPort, dstPort              = make([]uint16, n), make([]uint16, n), make([]uint16, n)
		srcVLAN, dstVLAN                      = make([]uint16, n), make([]uint16, n)
		proxy, batchID                        = make([]string, n), make([]string, n)
		srcHost, dstHost, srcCC, dstCC        = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		device, scale, bytes, packets         = make([]uint64, n), make([]uint64, n), make([]uint64, n), make([]uint64, n)
		domain, inIf, outIf, srcAS, dstAS     = make([]uint32, n), make([]uint32, n), make([]uint32, n), make([]uint32, n), make([]uint32, n)
		sequence, rate                        = make([]uint32, n), make([]uint32, n)
		ftype, proto, flags, tos, dir, si, di = make([]uint8, n), make([]uint8, n), make([]uint8, n), make([]uint8, n), make([]uint8, n), make([]uint8, n), make([]uint8, n)
		ad                                    = addrs{buf: make([]byte, 0, n*4*8), ends: make([]int, 0, n*4)}
	)
	for i, r := range recs {
		sec, ms := seconds(r.TimeReceived)
		times[i], timeMS[i] = int64(sec), ms
		st, _ := seconds(r.FlowStart)
		en, _ := seconds(r.FlowEnd)
		starts[i], ends[i] = int64(st), int64(en)
		proxy[i], batchID[i] = b.Proxy, b.ID
		device[i] = r.DeviceID
		ad.add(r.Exporter)
		ad.add(r.SrcAddr)
		ad.add(r.DstAddr)
		ad.add(r.NextHop)
		domain[i] = r.ObservationDomain
		ftype[i] = storedType(r.Type)
		inIf[i], outIf[i] = r.InIf, r.OutIf
		srcPort[i], dstPort[i] = r.SrcPort, r.DstPort
		proto[i], flags[i], tos[i] = r.Proto, r.TCPFlags, r.ToS
		srcAS[i], dstAS[i] = r.SrcAS, r.DstAS
		srcVLAN[i], dstVLAN[i] = r.SrcVLAN, r.DstVLAN
		dir[i] = storedDirection(r.Direction)
		si[i], di[i] = b2u(r.SrcInternal), b2u(r.DstInternal)
		srcHost[i], dstHost[i] = r.SrcHostname, r.DstHostname
		srcCC[i], dstCC[i] = r.SrcCountry, r.DstCountry
		sequence[i], rate[i] = r.Sequence, r.SamplingRate
		scale[i] = store.Scale(r)
		bytes[i], packets[i] = r.Bytes, r.Packets
	}
	all := string(ad.buf)
	// The values in the order of flowsColumns.
	values := []any{
		times, timeMS, proxy, device, ad.column(all, 0, 4), domain, ftype, inIf, outIf,
		ad.column(all, 1, 4), ad.column(all, 2, 4), srcPort, dstPort, proto, flags, tos,
		srcAS, dstAS, ad.column(all, 3, 4), srcVLAN, dstVLAN, dir, si, di,
		srcHost, dstHost, srcCC, dstCC, starts, ends, sequence, rate, scale, bytes, packets, batchID,
	}
	return s.insertColumns(ctx, string(store.TableRaw), flowsColumns, values, b.ID)
}

// insertCounters writes recs to if_counters, as one block.
func (s *Store) insertCounters(ctx context.Context, b store.Batch, recs []*flow.Record) error {
	n := len(recs)
	u8 := func(f func(r *flow.Record) uint8) []uint8 {
		v := make([]uint8, n)
		for i, r := range recs {
			v[i] = f(r)
		}
		return v
	}
	u32 := func(f func(r *flow.Record) uint32) []uint32 {
		v := make([]uint32, n)
		for i, r := range recs {
			v[i] = f(r)
		}
		return v
	}
	u64 := func(f func(r *flow.Record) uint64) []uint64 {
		v := make([]uint64, n)
		for i, r := range recs {
			v[i] = f(r)
		}
		return v
	}
	str := func(f func(r *flow.Record) string) []string {
		v := make([]string, n)
		for i, r := range recs {
			v[i] = f(r)
		}
		return v
	}
	addr := func(f func(r *flow.Record) netip.Addr) []string {
		return str(func(r *flow.Record) string { return string(addrBytes(f(r))) })
	}
	times, ms := make([]int64, n), make([]uint16, n)
	for i, r := range recs {
		sec, m := seconds(r.TimeReceived)
		times[i], ms[i] = int64(sec), m
	}
	e := func(f func(c *flow.EthernetCounters) uint32) []uint32 {
		return u32(func(r *flow.Record) uint32 { return f(&r.Counters.Ethernet) })
	}
	c := func(f func(c *flow.Counters) uint64) []uint64 {
		return u64(func(r *flow.Record) uint64 { return f(&r.Counters) })
	}
	values := []any{
		times, ms,
		str(func(*flow.Record) string { return b.Proxy }),
		u64(func(r *flow.Record) uint64 { return r.DeviceID }),
		addr(func(r *flow.Record) netip.Addr { return r.Exporter }),
		addr(func(r *flow.Record) netip.Addr { return r.Agent }),
		u32(func(r *flow.Record) uint32 { return r.ObservationDomain }),
		u8(func(r *flow.Record) uint8 { return storedType(r.Type) }),
		u32(func(r *flow.Record) uint32 { return r.Sequence }),
		u32(func(r *flow.Record) uint32 { return r.SamplingRate }),
		u32(func(r *flow.Record) uint32 { return r.Counters.IfIndex }),
		u32(func(r *flow.Record) uint32 { return r.Counters.IfType }),
		c(func(c *flow.Counters) uint64 { return c.IfSpeed }),
		u32(func(r *flow.Record) uint32 { return r.Counters.IfDirection }),
		u8(func(r *flow.Record) uint8 { return b2u(r.Counters.IfAdminUp) }),
		u8(func(r *flow.Record) uint8 { return b2u(r.Counters.IfOperUp) }),
		c(func(c *flow.Counters) uint64 { return c.InOctets }),
		c(func(c *flow.Counters) uint64 { return c.InUcastPkts }),
		c(func(c *flow.Counters) uint64 { return c.InMulticastPkts }),
		c(func(c *flow.Counters) uint64 { return c.InBroadcastPkts }),
		c(func(c *flow.Counters) uint64 { return c.InDiscards }),
		c(func(c *flow.Counters) uint64 { return c.InErrors }),
		c(func(c *flow.Counters) uint64 { return c.InUnknownProtos }),
		c(func(c *flow.Counters) uint64 { return c.OutOctets }),
		c(func(c *flow.Counters) uint64 { return c.OutUcastPkts }),
		c(func(c *flow.Counters) uint64 { return c.OutMulticastPkts }),
		c(func(c *flow.Counters) uint64 { return c.OutBroadcastPkts }),
		c(func(c *flow.Counters) uint64 { return c.OutDiscards }),
		c(func(c *flow.Counters) uint64 { return c.OutErrors }),
		u8(func(r *flow.Record) uint8 { return b2u(r.Counters.Promiscuous) }),
		u8(func(r *flow.Record) uint8 { return b2u(r.Counters.HasEthernet) }),
		e(func(c *flow.EthernetCounters) uint32 { return c.AlignmentErrors }),
		e(func(c *flow.EthernetCounters) uint32 { return c.FCSErrors }),
		e(func(c *flow.EthernetCounters) uint32 { return c.SingleCollisionFrames }),
		e(func(c *flow.EthernetCounters) uint32 { return c.MultipleCollisionFrames }),
		e(func(c *flow.EthernetCounters) uint32 { return c.SQETestErrors }),
		e(func(c *flow.EthernetCounters) uint32 { return c.DeferredTransmissions }),
		e(func(c *flow.EthernetCounters) uint32 { return c.LateCollisions }),
		e(func(c *flow.EthernetCounters) uint32 { return c.ExcessiveCollisions }),
		e(func(c *flow.EthernetCounters) uint32 { return c.InternalMacTransmitErrors }),
		e(func(c *flow.EthernetCounters) uint32 { return c.CarrierSenseErrors }),
		e(func(c *flow.EthernetCounters) uint32 { return c.FrameTooLongs }),
		e(func(c *flow.EthernetCounters) uint32 { return c.InternalMacReceiveErrors }),
		e(func(c *flow.EthernetCounters) uint32 { return c.SymbolErrors }),
		str(func(*flow.Record) string { return b.ID }),
	}
	return s.insertColumns(ctx, tableCounters, countersColumns, values, b.ID)
}

// insertBatch writes the batches row that marks b stored.
func (s *Store) insertBatch(ctx context.Context, b store.Batch, flows, counters int) error {
	sec, ms := seconds(b.Received)
	values := []any{
		[]string{b.ID}, []string{b.Proxy}, []int64{int64(sec)}, []uint16{ms},
		[]uint32{uint32(min(flows, math.MaxUint32))}, []uint32{uint32(min(counters, math.MaxUint32))},
	}
	return s.insertColumns(ctx, tableBatches, batchesColumns, values, b.ID)
}

// insertColumns sends one block of column values to table, with the
// column list that 18.16 needs for a native-protocol insert.
func (s *Store) insertColumns(ctx context.Context, table string, cols []col, values []any, id string) error {
	if len(values) != len(cols) {
		panic(fmt.Sprintf("clickhouse: %s: %d values for %d columns", table, len(values), len(cols)))
	}
	batch, err := s.conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.%s (%s)", s.db, table, names(cols)))
	if err != nil {
		return fmt.Errorf("clickhouse: insert %s into %s: %w", id, table, err)
	}
	for i, v := range values {
		if err := batch.Column(i).Append(v); err != nil {
			batch.Abort()
			return fmt.Errorf("clickhouse: insert %s into %s: column %s: %w", id, table, cols[i].name, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse: insert %s into %s: %w", id, table, err)
	}
	return nil
}

// addrBytes is the stored form of an address: nothing when absent, 4
// bytes for IPv4, 16 for IPv6.
func addrBytes(a netip.Addr) []byte {
	if !a.IsValid() {
		return nil
	}
	return a.AsSlice()
}

// BatchIDs returns the ids of the batches received at or after since, from
// the batches table (a batch whose insert stopped half-way is not there:
// its retry is let through and completes it).
func (s *Store) BatchIDs(ctx context.Context, since time.Time) ([]string, error) {
	sec, ms := seconds(ceilMilli(since))
	rows, err := s.conn.Query(ctx, fmt.Sprintf(`SELECT DISTINCT batch_id FROM %s.%s
WHERE received >= toDateTime(?) AND toUInt64(received) * 1000 + received_ms >= ?`, s.db, tableBatches),
		sec, uint64(sec)*1000+uint64(ms))
	if err != nil {
		return nil, fmt.Errorf("clickhouse: batch ids: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("clickhouse: batch ids: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: batch ids: %w", err)
	}
	return ids, nil
}

// ceilMilli rounds t up to a whole millisecond, the resolution of stored
// times: a stored time (truncated to the millisecond) is at or after t
// exactly when it is at or after ceilMilli(t).
func ceilMilli(t time.Time) time.Time {
	if r := t.Sub(t.Truncate(time.Millisecond)); r > 0 {
		return t.Truncate(time.Millisecond).Add(time.Millisecond)
	}
	return t
}
