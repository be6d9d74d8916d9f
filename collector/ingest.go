package collector

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/flow/flowpb"
	"github.com/netpulse/netpulse/store"
	"github.com/netpulse/netpulse/wire"
)

// onBatch is wire.Handler's callback: de-duplicate, store, and account.
// It returns nil only once the store has the batch (or already had it).
func (s *Server) onBatch(ctx context.Context, proxy string, b *flowpb.Batch) error {
	now := s.now()
	s.proxies.seen(proxy, remoteOf(ctx), now)
	if len(b.Records) == 0 {
		s.metrics.heartbeats.Add(1)
		return nil // a heartbeat
	}
	recs := make([]flow.Record, len(b.Records))
	devices := map[uint64]struct{}{}
	exporters := map[netip.Addr]struct{}{}
	for i, p := range b.Records {
		recs[i] = flow.FromProto(p)
		devices[recs[i].DeviceID] = struct{}{}
		exporters[recs[i].Exporter] = struct{}{}
	}
	kept, dups := s.dedup.Filter(proxy, recs, now)
	start := time.Now()
	err := s.store.Insert(ctx, store.Batch{ID: b.BatchId, Proxy: proxy, Received: now, Records: kept})
	s.metrics.insertSeconds.Observe(time.Since(start).Seconds())
	switch {
	case errors.Is(err, store.ErrDuplicate):
		// Stored before (the acknowledgement was lost, perhaps across a
		// restart of ours): acknowledged as a duplicate, nothing stored.
		s.proxies.repeated(proxy, now)
		return wire.ErrAlreadyKept
	case err != nil:
		s.metrics.storeErrors.Add(1)
		return err
	}
	s.metrics.batches.Add(1)
	s.metrics.records.Add(uint64(len(kept)))
	if s.ifw != nil {
		s.ifw.observe(ctx, kept)
	}
	s.proxies.stored(proxy, now, len(kept), dups, devices, exporters)
	return nil
}

type remoteKey struct{}

// remoteOf returns the client address the HTTP server put in ctx.
func remoteOf(ctx context.Context) string {
	if a, ok := ctx.Value(remoteKey{}).(string); ok {
		return a
	}
	return ""
}

type ingestMetrics struct {
	batches, records, storeErrors, heartbeats atomic.Uint64
	insertSeconds                             prometheus.Histogram
}

func newIngestMetrics() *ingestMetrics {
	return &ingestMetrics{insertSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "netpulse_collector_store_insert_seconds",
		Help:    "Time to store one batch.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	})}
}

type collectorMetrics Server

var (
	descBatches = prometheus.NewDesc("netpulse_collector_batches_stored_total",
		"Batches stored.", nil, nil)
	descRecords = prometheus.NewDesc("netpulse_collector_records_stored_total",
		"Records stored (after de-duplication).", nil, nil)
	descDups = prometheus.NewDesc("netpulse_collector_duplicate_records_total",
		"Records dropped as copies of records another proxy delivered.", nil, nil)
	descRepeated = prometheus.NewDesc("netpulse_collector_repeated_batches_total",
		"Batches acknowledged and dropped because their id was already stored or acknowledged.", nil, nil)
	descRejected = prometheus.NewDesc("netpulse_collector_rejected_requests_total",
		"Ingest requests refused, by reason.", []string{"reason"}, nil)
	descStoreErrors = prometheus.NewDesc("netpulse_collector_store_errors_total",
		"Batches the store failed to keep (answered 503; the proxy retries).", nil, nil)
	descHeartbeats = prometheus.NewDesc("netpulse_collector_heartbeats_total",
		"Empty batches proxies send while idle.", nil, nil)
	descDedupKeys = prometheus.NewDesc("netpulse_collector_dedup_keys",
		"Record keys in the de-duplication window.", nil, nil)
	descDedupEarly = prometheus.NewDesc("netpulse_collector_dedup_early_rotations_total",
		"Times the de-duplication window was cut short by its key bound.", nil, nil)
	descProxySeen = prometheus.NewDesc("netpulse_collector_proxy_last_seen_timestamp_seconds",
		"Last request (batch or heartbeat) from each proxy.", []string{"proxy"}, nil)
	descProxyRecords = prometheus.NewDesc("netpulse_collector_proxy_records_stored_total",
		"Records stored per proxy.", []string{"proxy"}, nil)
)

func (c *collectorMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBatches, descRecords, descDups, descRepeated, descRejected,
		descStoreErrors, descHeartbeats, descDedupKeys, descDedupEarly, descProxySeen, descProxyRecords} {
		ch <- d
	}
	c.metrics.insertSeconds.Describe(ch)
}

func (c *collectorMetrics) Collect(ch chan<- prometheus.Metric) {
	s := (*Server)(c)
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	hs := s.ingest.Stats()
	ds := s.dedup.Stats()
	counter(descBatches, s.metrics.batches.Load())
	counter(descRecords, s.metrics.records.Load())
	counter(descDups, ds.Duplicates)
	counter(descRepeated, hs.Duplicates)
	for reason, n := range hs.Rejected {
		counter(descRejected, n, reason)
	}
	counter(descStoreErrors, s.metrics.storeErrors.Load())
	counter(descHeartbeats, s.metrics.heartbeats.Load())
	ch <- prometheus.MustNewConstMetric(descDedupKeys, prometheus.GaugeValue, float64(ds.Keys))
	counter(descDedupEarly, ds.EarlyRotations)
	for _, p := range s.proxies.List() {
		ch <- prometheus.MustNewConstMetric(descProxySeen, prometheus.GaugeValue, float64(p.LastSeen.UnixNano())/1e9, p.Name)
		counter(descProxyRecords, p.Records, p.Name)
	}
	s.metrics.insertSeconds.Collect(ch)
}
