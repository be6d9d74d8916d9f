//go:build cgo

package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net/netip"
	"time"

	duckdb "github.com/marcboeker/go-duckdb/v2"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/store"
)

// How a batch goes in, fast:
//
// Raw rows are appended with DuckDB's query appender: the Go side writes
// only fixed-size values (numbers, booleans, timestamps), which go-duckdb
// copies into DuckDB's vectors without a cgo call, and an INSERT … SELECT
// that DuckDB runs vectorised turns them into the table's columns.
// Strings and BLOBs would cost three cgo calls each (malloc, copy, free),
// so each batch's distinct strings (proxy, batch id, hostnames,
// countries) and addresses go once into per-connection temporary tables,
// strings and addrs, and rows carry their index into them. The rollup
// and counter rows, far fewer, go in with plain appenders, which saves
// planning an INSERT for each (a few milliseconds a batch).

// appendCol is a column of the rows the Go side appends.
type appendCol struct {
	name string
	typ  duckdb.Type
}

// appendSpec is a query appender's description: the appended columns and
// the INSERT that reads them (see fromRows).
type appendSpec struct {
	cols   []appendCol
	insert string
	types  []duckdb.TypeInfo
	names  []string
}

func newAppendSpec(cols []appendCol, insert string) (appendSpec, error) {
	s := appendSpec{cols: cols, insert: insert}
	for _, c := range cols {
		t, err := duckdb.NewTypeInfo(c.typ)
		if err != nil {
			return s, fmt.Errorf("column %s: %w", c.name, err)
		}
		s.types = append(s.types, t)
		s.names = append(s.names, c.name)
	}
	return s, nil
}

// addrSQL is an address column's value from its index.
func addrSQL(col string) string { return `e.a[b.` + col + `]` }

// fromRows is the FROM clause of the appenders' INSERTs: the appended
// rows, the batch's strings as one list, d.v (index 1: proxy, 2: batch
// id, then the strings of the records), and its addresses as another,
// e.a.
const fromRows = ` FROM batch_rows b, (SELECT list(s ORDER BY idx) AS v FROM strings) d, (SELECT list(a ORDER BY idx) AS a FROM addrs) e`

// zeroTime stands for an absent flow start or end in appended rows (the
// INSERT makes it NULL): no exporter sends flows of 1970-01-01T00:00:00.
var zeroTime = time.Unix(0, 0).UTC()

// newFlowSpec describes the appender of the raw rows.
func newFlowSpec() (*appendSpec, error) {
	u8, u16, u32, u64, ts, bl := duckdb.TYPE_UTINYINT, duckdb.TYPE_USMALLINT, duckdb.TYPE_UINTEGER, duckdb.TYPE_UBIGINT, duckdb.TYPE_TIMESTAMP, duckdb.TYPE_BOOLEAN
	s, err := newAppendSpec([]appendCol{
		{"time", ts}, {"device_id", u64}, {"exporter", u32},
		{"observation_domain", u32}, {"flow_type", u8}, {"in_if", u32}, {"out_if", u32},
		{"src_addr", u32}, {"dst_addr", u32},
		{"src_port", u16}, {"dst_port", u16}, {"proto", u8}, {"tcp_flags", u8}, {"tos", u8},
		{"src_as", u32}, {"dst_as", u32}, {"next_hop", u32},
		{"src_vlan", u16}, {"dst_vlan", u16}, {"direction", u8}, {"src_internal", bl}, {"dst_internal", bl},
		{"src_hostname", u32}, {"dst_hostname", u32}, {"src_country", u32}, {"dst_country", u32},
		{"flow_start", ts}, {"flow_end", ts}, {"sequence", u32}, {"sampling_rate", u32}, {"scale", u32},
		{"bytes", u64}, {"packets", u64},
	}, `INSERT INTO flows SELECT b.time, d.v[1], b.device_id, `+addrSQL("exporter")+`,
	b.observation_domain, b.flow_type, b.in_if, b.out_if, `+addrSQL("src_addr")+`, `+addrSQL("dst_addr")+`,
	b.src_port, b.dst_port, b.proto, b.tcp_flags, b.tos, b.src_as, b.dst_as, `+addrSQL("next_hop")+`,
	b.src_vlan, b.dst_vlan, b.direction, b.src_internal, b.dst_internal,
	d.v[b.src_hostname], d.v[b.dst_hostname], d.v[b.src_country], d.v[b.dst_country],
	nullif(b.flow_start, TIMESTAMP '1970-01-01'), nullif(b.flow_end, TIMESTAMP '1970-01-01'),
	b.sequence, b.sampling_rate, b.scale, b.bytes, b.packets, d.v[2]`+fromRows)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// addrBlob is the BLOB form of an address: 4 or 16 bytes, none when
// absent.
func addrBlob(a netip.Addr) []byte {
	if !a.IsValid() {
		return []byte{}
	}
	return a.AsSlice()
}

// rollupKey is a rollup row's bucket and RollupDims values; the exporter
// and countries are indexes into the batch's addresses and strings.
type rollupKey struct {
	bucket     int64 // start, in microseconds since the epoch
	device     uint64
	exporter   uint32
	flowType   flow.Type
	inIf       uint32
	outIf      uint32
	proto      uint8
	srcAS      uint32
	dstAS      uint32
	direction  flow.Direction
	srcCountry uint32
	dstCountry uint32
}

type sums struct{ bytes, packets, flows uint64 }

// inserter is the scratch space of one Insert, pooled: the row buffer,
// the batch's strings and the rollup maps.
type inserter struct {
	row     []driver.Value
	strings map[string]uint32
	list    []string
	addrs   map[netip.Addr]uint32
	alist   []netip.Addr
	blobs   [][]byte // BLOB form of alist
	idx     []uint32 // per flow: flowIdx indexes of its strings and addresses
	minute  map[rollupKey]sums
	hour    map[rollupKey]sums
}

func (s *Store) getInserter() *inserter {
	if in, ok := s.scratch.Get().(*inserter); ok {
		return in
	}
	return &inserter{row: make([]driver.Value, 64), strings: map[string]uint32{}, addrs: map[netip.Addr]uint32{},
		minute: map[rollupKey]sums{}, hour: map[rollupKey]sums{}}
}

func (s *Store) putInserter(in *inserter) {
	clear(in.row)
	clear(in.strings)
	clear(in.list)
	in.list = in.list[:0]
	clear(in.addrs)
	in.alist = in.alist[:0]
	clear(in.blobs)
	in.blobs = in.blobs[:0]
	clear(in.minute)
	clear(in.hour)
	s.scratch.Put(in)
}

// str returns the index of v in the batch's strings, from 1.
func (in *inserter) str(v string) uint32 {
	if i, ok := in.strings[v]; ok {
		return i
	}
	in.list = append(in.list, v)
	i := uint32(len(in.list))
	in.strings[v] = i
	return i
}

// addr returns the index of a in the batch's addresses, from 1.
func (in *inserter) addr(a netip.Addr) uint32 {
	if i, ok := in.addrs[a]; ok {
		return i
	}
	in.alist = append(in.alist, a)
	i := uint32(len(in.alist))
	in.addrs[a] = i
	return i
}

// flowIdx is how many indexes in.idx holds per flow: its hostnames,
// countries, exporter, addresses and next hop.
const flowIdx = 8

// tempTables are the per-connection tables of a batch's strings and
// addresses; Open's connector makes them on every new connection.
const tempTables = `CREATE TEMP TABLE strings (idx UINTEGER, s VARCHAR);
CREATE TEMP TABLE addrs (idx UINTEGER, a BLOB)`

// claim marks id as being inserted, after waiting for another Insert of
// the same id to end.
func (s *Store) claim(ctx context.Context, id string) (release func(), err error) {
	for {
		s.mu.Lock()
		busy, ok := s.inflight[id]
		if !ok {
			ch := make(chan struct{})
			s.inflight[id] = ch
			s.mu.Unlock()
			return func() {
				s.mu.Lock()
				delete(s.inflight, id)
				s.mu.Unlock()
				close(ch)
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Insert stores the batch in one transaction: its id, its flows in the
// raw table and, summed per bucket and key, in both rollups, and its
// counter samples. A batch id already stored gives store.ErrDuplicate
// and stores nothing.
func (s *Store) Insert(ctx context.Context, b store.Batch) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store/duckdb: insert %s: %w", b.ID, err)
	}
	// DuckDB only finds a duplicate key of a concurrent transaction at
	// commit, and a commit that fails so has crashed DuckDB 1.4.1 in
	// tests: two inserts of one id never run at once.
	release, err := s.claim(ctx, b.ID)
	if err != nil {
		return fmt.Errorf("store/duckdb: insert %s: %w", b.ID, err)
	}
	defer release()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store/duckdb: insert %s: %w", b.ID, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN TRANSACTION`); err != nil {
		return fmt.Errorf("store/duckdb: insert %s: %w", b.ID, err)
	}
	committed := false
	defer func() {
		if !committed {
			rollback(ctx, conn)
		}
	}()
	// The id goes in first, with an appender (a prepared INSERT costs
	// more than the rest of a small batch): DuckDB checks the primary key
	// as it appends, so a stored id fails here.
	err = conn.Raw(func(dc any) error {
		a, err := duckdb.NewAppenderFromConn(dc.(driver.Conn), "", "batches")
		if err != nil {
			return err
		}
		if err := a.AppendRow(b.ID, b.Proxy, b.Received, uint32(len(b.Records))); err != nil {
			a.Close()
			return err
		}
		return a.Close()
	})
	if err != nil {
		// go-duckdb reports the key violation as text only: look.
		rollback(ctx, conn)
		committed = true // rolled back
		var one int
		if s.db.QueryRowContext(ctx, `SELECT 1 FROM batches WHERE id = ?`, b.ID).Scan(&one) == nil {
			return fmt.Errorf("store/duckdb: insert %s: %w", b.ID, store.ErrDuplicate)
		}
		return fmt.Errorf("store/duckdb: insert %s: %w", b.ID, err)
	}
	if len(b.Records) > 0 { // else a heartbeat: only its id
		if _, err := conn.ExecContext(ctx, `DELETE FROM strings; DELETE FROM addrs`); err != nil {
			return fmt.Errorf("store/duckdb: insert %s: %w", b.ID, err)
		}
		in := s.getInserter()
		defer s.putInserter(in)
		if err := conn.Raw(func(dc any) error { return in.append(dc.(driver.Conn), s.flowSpec, &b) }); err != nil {
			return fmt.Errorf("store/duckdb: insert %s: %w", b.ID, err)
		}
	}
	if _, err := conn.ExecContext(ctx, `COMMIT`); err != nil {
		return fmt.Errorf("store/duckdb: insert %s: commit: %w", b.ID, err)
	}
	committed = true
	return nil
}

// rollback ends the connection's transaction; a connection that cannot
// is discarded rather than returned to the pool in a transaction.
func rollback(ctx context.Context, conn *sql.Conn) {
	if _, err := conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// append writes the batch's rows on the connection, inside its open
// transaction: first the batch's strings, which the appenders' INSERTs
// read whenever they flush, then the rows.
func (in *inserter) append(dc driver.Conn, flowSpec *appendSpec, b *store.Batch) error {
	in.str(b.Proxy)
	in.str(b.ID)
	in.idx = in.idx[:0]
	var flows, counters int
	for i := range b.Records {
		r := &b.Records[i]
		if r.Kind == flow.KindCounters {
			counters++
			in.addr(r.Exporter)
			continue
		}
		flows++
		in.idx = append(in.idx, in.str(r.SrcHostname), in.str(r.DstHostname), in.str(r.SrcCountry), in.str(r.DstCountry),
			in.addr(r.Exporter), in.addr(r.SrcAddr), in.addr(r.DstAddr), in.addr(r.NextHop))
	}
	strs, err := duckdb.NewAppender(dc, "temp", "main", "strings")
	if err != nil {
		return fmt.Errorf("strings: %w", err)
	}
	for i, v := range in.list {
		if err := strs.AppendRow(uint32(i+1), v); err != nil {
			strs.Close()
			return fmt.Errorf("strings: %w", err)
		}
	}
	if err := strs.Close(); err != nil {
		return fmt.Errorf("strings: %w", err)
	}
	addrs, err := duckdb.NewAppender(dc, "temp", "main", "addrs")
	if err != nil {
		return fmt.Errorf("addrs: %w", err)
	}
	for i, a := range in.alist {
		in.blobs = append(in.blobs, addrBlob(a))
		if err := addrs.AppendRow(uint32(i+1), in.blobs[i]); err != nil {
			addrs.Close()
			return fmt.Errorf("addrs: %w", err)
		}
	}
	if err := addrs.Close(); err != nil {
		return fmt.Errorf("addrs: %w", err)
	}
	if flows > 0 {
		a, err := duckdb.NewQueryAppender(dc, flowSpec.insert, "batch_rows", flowSpec.types, flowSpec.names)
		if err != nil {
			return fmt.Errorf("flows: %w", err)
		}
		if err := in.appendFlows(a, b); err != nil {
			a.Close()
			return fmt.Errorf("flows: %w", err)
		}
		// Closing runs the INSERT on the rows still buffered.
		if err := a.Close(); err != nil {
			return fmt.Errorf("flows: %w", err)
		}
		if err := in.appendRollup(dc, "flows_1m", in.minute); err != nil {
			return fmt.Errorf("flows_1m: %w", err)
		}
		if err := in.appendRollup(dc, "flows_1h", in.hour); err != nil {
			return fmt.Errorf("flows_1h: %w", err)
		}
	}
	if counters > 0 {
		if err := in.appendCounters(dc, b); err != nil {
			return fmt.Errorf("if_counters: %w", err)
		}
	}
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

const (
	minuteMicros = int64(time.Minute / time.Microsecond)
	hourMicros   = int64(time.Hour / time.Microsecond)
)

func orZero(t time.Time) time.Time {
	if t.IsZero() {
		return zeroTime
	}
	return t
}

func (in *inserter) appendFlows(a *duckdb.Appender, b *store.Batch) error {
	row := in.row[:33]
	idx := in.idx
	for i := range b.Records {
		r := &b.Records[i]
		if r.Kind == flow.KindCounters {
			continue
		}
		srcHost, dstHost, srcCountry, dstCountry := idx[0], idx[1], idx[2], idx[3]
		exp, srcAddr, dstAddr, nextHop := idx[4], idx[5], idx[6], idx[7]
		idx = idx[flowIdx:]
		scale := store.Scale(r)
		row[0] = r.TimeReceived
		row[1] = r.DeviceID
		row[2] = exp
		row[3] = r.ObservationDomain
		row[4] = uint8(r.Type)
		row[5] = r.InIf
		row[6] = r.OutIf
		row[7] = srcAddr
		row[8] = dstAddr
		row[9] = r.SrcPort
		row[10] = r.DstPort
		row[11] = r.Proto
		row[12] = r.TCPFlags
		row[13] = r.ToS
		row[14] = r.SrcAS
		row[15] = r.DstAS
		row[16] = nextHop
		row[17] = r.SrcVLAN
		row[18] = r.DstVLAN
		row[19] = uint8(r.Direction)
		row[20] = r.SrcInternal
		row[21] = r.DstInternal
		row[22] = srcHost
		row[23] = dstHost
		row[24] = srcCountry
		row[25] = dstCountry
		row[26] = orZero(r.FlowStart)
		row[27] = orZero(r.FlowEnd)
		row[28] = r.Sequence
		row[29] = r.SamplingRate
		row[30] = uint32(scale)
		row[31] = r.Bytes
		row[32] = r.Packets
		if err := a.AppendRow(row...); err != nil {
			return err
		}
		k := rollupKey{
			bucket:   floorDiv(r.TimeReceived.UnixMicro(), minuteMicros) * minuteMicros,
			device:   r.DeviceID,
			exporter: exp, flowType: r.Type, inIf: r.InIf, outIf: r.OutIf, proto: r.Proto,
			srcAS: r.SrcAS, dstAS: r.DstAS, direction: r.Direction,
			srcCountry: srcCountry, dstCountry: dstCountry,
		}
		sm := in.minute[k]
		sm.bytes += r.Bytes * scale
		sm.packets += r.Packets * scale
		sm.flows += scale
		in.minute[k] = sm
	}
	for k, v := range in.minute {
		k.bucket = floorDiv(k.bucket, hourMicros) * hourMicros
		sh := in.hour[k]
		sh.bytes += v.bytes
		sh.packets += v.packets
		sh.flows += v.flows
		in.hour[k] = sh
	}
	return nil
}

func (in *inserter) appendRollup(dc driver.Conn, table string, m map[rollupKey]sums) error {
	a, err := duckdb.NewAppenderFromConn(dc, "", table)
	if err != nil {
		return err
	}
	row := in.row[:15]
	for k, v := range m {
		row[0] = time.UnixMicro(k.bucket)
		row[1] = k.device
		row[2] = in.blobs[k.exporter-1]
		row[3] = uint8(k.flowType)
		row[4] = k.inIf
		row[5] = k.outIf
		row[6] = k.proto
		row[7] = k.srcAS
		row[8] = k.dstAS
		row[9] = uint8(k.direction)
		row[10] = in.list[k.srcCountry-1]
		row[11] = in.list[k.dstCountry-1]
		row[12] = v.bytes
		row[13] = v.packets
		row[14] = v.flows
		if err := a.AppendRow(row...); err != nil {
			a.Close()
			return err
		}
	}
	return a.Close()
}

func (in *inserter) appendCounters(dc driver.Conn, b *store.Batch) error {
	a, err := duckdb.NewAppenderFromConn(dc, "", "if_counters")
	if err != nil {
		return err
	}
	row := in.row[:38]
	for i := range b.Records {
		r := &b.Records[i]
		if r.Kind != flow.KindCounters {
			continue
		}
		c := &r.Counters
		row = append(row[:0], r.TimeReceived, b.Proxy, r.DeviceID, in.blobs[in.addrs[r.Exporter]-1],
			c.IfIndex, c.IfType, c.IfSpeed, c.IfDirection, c.IfAdminUp, c.IfOperUp,
			c.InOctets, c.InUcastPkts, c.InMulticastPkts, c.InBroadcastPkts, c.InDiscards, c.InErrors, c.InUnknownProtos,
			c.OutOctets, c.OutUcastPkts, c.OutMulticastPkts, c.OutBroadcastPkts, c.OutDiscards, c.OutErrors,
			c.Promiscuous, c.HasEthernet)
		e := &c.Ethernet
		for _, v := range []uint32{
			e.AlignmentErrors, e.FCSErrors, e.SingleCollisionFrames, e.MultipleCollisionFrames,
			e.SQETestErrors, e.DeferredTransmissions, e.LateCollisions, e.ExcessiveCollisions,
			e.InternalMacTransmitErrors, e.CarrierSenseErrors, e.FrameTooLongs,
			e.InternalMacReceiveErrors, e.SymbolErrors,
		} {
			if c.HasEthernet {
				row = append(row, v)
			} else {
				row = append(row, nil)
			}
		}
		if err := a.AppendRow(row...); err != nil {
			a.Close()
			return err
		}
	}
	return a.Close()
}
