// Package sink defines where a proxy sends its records, and holds the
// simple sinks (null, JSON lines). The network sinks live in
// subpackages: sink/collector (HTTPS to a netpulse collector) and
// sink/kafka.
//
// Every sink follows the component contract: a Config with documented
// defaults, New, Start, then Stop, which flushes. Write never blocks the
// caller on the network: a sink keeps a bounded queue of its own and, when
// it is full, refuses records, which the caller counts as dropped.
package sink

import (
	"context"
	"sync/atomic"

	"github.com/netpulse/netpulse/flow"
)

// Sink receives records from the proxy pipeline.
type Sink interface {
	// Name identifies the sink in metrics and logs ("collector", "kafka",
	// "jsonl", "null").
	Name() string
	// Start starts the sink's workers; they run until Stop.
	Start(ctx context.Context) error
	// Write hands over records. The sink copies what it keeps: recs may be
	// reused once Write returns. It returns how many it accepted, from
	// the front of recs; the rest were refused because its queue is full.
	// Write must not block on the network, and is safe for concurrent
	// use: every receive worker calls it.
	Write(recs []flow.Record) (accepted int)
	// Stop flushes what is queued (to the network, or to disk for sinks
	// that spool) until ctx is done, then releases everything.
	Stop(ctx context.Context) error
	// Stats returns the sink's counters.
	Stats() Stats
}

// Stats are a sink's counters since Start.
type Stats struct {
	// Accepted records were taken by Write.
	Accepted uint64
	// Refused records were turned away by Write: the queue was full.
	Refused uint64
	// Delivered records were acknowledged by the destination (or written,
	// for file sinks).
	Delivered uint64
	// Dropped records were accepted but will never be delivered (for
	// example the destination rejected them as malformed, or the spool was
	// full). Every drop is also logged.
	Dropped uint64
	// Spooled records wait on disk for the destination to come back.
	Spooled uint64
	// Queued records wait in memory.
	Queued uint64
	// Retries counts failed delivery attempts that will be retried.
	Retries uint64
	// Up reports whether the last delivery attempt succeeded.
	Up bool
}

// Null discards every record: the sink for benchmarks.
type Null struct{ accepted atomic.Uint64 }

// Name returns "null".
func (*Null) Name() string { return "null" }

// Start does nothing.
func (*Null) Start(context.Context) error { return nil }

// Write accepts and discards everything.
func (n *Null) Write(recs []flow.Record) int {
	n.accepted.Add(uint64(len(recs)))
	return len(recs)
}

// Stop does nothing.
func (*Null) Stop(context.Context) error { return nil }

// Stats reports what was discarded as delivered.
func (n *Null) Stats() Stats {
	a := n.accepted.Load()
	return Stats{Accepted: a, Delivered: a, Up: true}
}
