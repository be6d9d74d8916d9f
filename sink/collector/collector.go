// Package collector is the sink that sends records to a netpulse collector
// over HTTPS, with the protocol of package wire (docs/wire-protocol.md).
//
// Write copies records into a bounded in-memory queue; one sender
// goroutine cuts them into batches (BatchSize records, or what is there
// every FlushInterval) and POSTs them one at a time, in order. Encoding a
// batch (protobuf, then zstd, with a random batch id) is most of the
// sink's CPU time, so Encoders goroutines do it while the sender waits
// for the collector's answer to the batch before. A batch that cannot be delivered at once goes to the spool
// directory, one file per batch, and is retried from there, oldest first,
// with exponential backoff; while older batches wait there, new ones go to
// the spool too, so order is roughly kept and nothing accepted is lost.
// The batch id travels with the spooled batch, so that a retry after a
// lost acknowledgement is recognised by the collector as a duplicate: each
// batch is stored exactly once.
//
// Losses, each counted in Stats.Dropped and logged: a batch the collector
// rejects as malformed (400), a single record it finds too large (413),
// a batch that cannot be delivered when the spool is full (SpoolMaxBytes)
// or disabled (empty SpoolDir) at Stop.
package collector

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netpulse/netpulse/internal/tlsutil"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/flow/flowpb"
	"github.com/netpulse/netpulse/sink"
	"github.com/netpulse/netpulse/wire"
)

// Config configures the sink. The zero value of a field means its default.
type Config struct {
	// URL is the collector, https://host:port (the path defaults to
	// wire.Path). Plain http:// is refused unless the host is loopback
	// and AllowInsecureLoopback is set. Required.
	URL string `yaml:"url"`
	// AllowInsecureLoopback allows an http:// URL to a loopback host, for
	// a collector on the same machine.
	AllowInsecureLoopback bool `yaml:"allow_insecure_loopback"`
	// Token is the bearer token. It never comes from the configuration
	// file or the command line: the caller reads it from the environment
	// variable NETPULSE_API_TOKEN or from a file. Required.
	Token string `yaml:"-"`
	// CAFile is a PEM bundle of the CAs that sign the collector's
	// certificate. Default: the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate and key, for a
	// collector that requires mutual TLS. Both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ProxyName names this proxy in each batch. Default: the host name.
	ProxyName string `yaml:"proxy_name"`
	// BatchSize is the most records in one batch. Default 5000.
	BatchSize int `yaml:"batch_size"`
	// FlushInterval is the longest a record waits in memory before its
	// batch is sent, however small. Default 1s.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// QueueSize bounds the records waiting in memory; Write refuses more.
	// Default 200000.
	QueueSize int `yaml:"queue_size"`
	// Timeout bounds one request. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// BackoffMin and BackoffMax bound the wait between retries, which
	// doubles from BackoffMin after each failure, with jitter, and starts
	// again after a success. Defaults 250ms and 30s.
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
	// SpoolDir is where batches wait on disk for the collector. Without
	// it, nothing survives a restart or a Stop while the collector is
	// down, and a collector outage fills the queue. Default: none.
	SpoolDir string `yaml:"spool_dir"`
	// SpoolMaxBytes bounds the spool. When it is full, new batches that
	// cannot be sent are dropped, counted and logged. Default 1 GiB.
	SpoolMaxBytes int64 `yaml:"spool_max_bytes"`
	// HeartbeatInterval is how long the sink may stay silent: after that
	// with nothing to send, it posts an empty batch so that the
	// collector's proxy registry knows this proxy is alive. Default 30s.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// Encoders is how many batches are encoded at once, each on a
	// goroutine of its own, while the sender posts the batch before
	// them. Batches are still sent in the order their records came.
	// Each holds up to BatchSize records out of the queue, so memory is
	// bounded by QueueSize + Encoders × BatchSize records. Default: the
	// number of CPUs, at most 4.
	Encoders int `yaml:"encoders"`
	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time `yaml:"-"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		ProxyName: host, BatchSize: wire.DefaultBatchRecords, FlushInterval: time.Second,
		QueueSize: 200000, Timeout: 10 * time.Second,
		BackoffMin: 250 * time.Millisecond, BackoffMax: 30 * time.Second,
		SpoolMaxBytes: 1 << 30, HeartbeatInterval: 30 * time.Second, Now: time.Now,
		Encoders: min(runtime.NumCPU(), 4),
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.ProxyName == "" {
		c.ProxyName = d.ProxyName
	}
	if c.BatchSize <= 0 {
		c.BatchSize = d.BatchSize
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = d.FlushInterval
	}
	if c.QueueSize <= 0 {
		c.QueueSize = d.QueueSize
	}
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = d.BackoffMin
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = d.BackoffMax
	}
	c.BackoffMax = max(c.BackoffMax, c.BackoffMin)
	if c.SpoolMaxBytes <= 0 {
		c.SpoolMaxBytes = d.SpoolMaxBytes
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = d.HeartbeatInterval
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	if c.Encoders <= 0 {
		c.Encoders = d.Encoders
	}
	return c
}

// endpoint checks the URL and returns the one to POST to.
func (c Config) endpoint() (string, error) {
	return tlsutil.Endpoint("collector", c.URL, wire.Path, c.AllowInsecureLoopback)
}

func (c Config) tlsConfig() (*tls.Config, error) {
	return tlsutil.ClientConfig("collector", c.CAFile, c.CertFile, c.KeyFile)
}

// encodeJob is a chunk of records on its way to becoming a batch.
type encodeJob struct {
	recs []flow.Record
	b    *batch // nil when encoding failed (counted)
	done chan struct{}
}

// batch is one encoded batch on its way.
type batch struct {
	id      string
	body    []byte
	records int
	spooled bool
}

// Sink sends records to a collector. It implements sink.Sink.
type Sink struct {
	cfg      Config
	endpoint string
	log      *slog.Logger
	client   *http.Client
	codec    *wire.Codec
	q        *queue

	kick     chan struct{}
	stopCh   chan context.Context
	done     chan struct{}
	cancel   context.CancelFunc
	stopping atomic.Bool
	started  bool
	stopOnce sync.Once
	stopErr  error

	// jobs feeds the encoders.
	jobs chan *encodeJob

	// Owned by the sender goroutine.
	pending    []*encodeJob // being encoded, oldest first
	spool      *spool
	head       []*batch // in memory, before the spool
	backingOff bool
	backoff    time.Duration
	retryTimer *time.Timer
	lastAuth   time.Time
	lastPost   time.Time // the collector's last answer
	lastFull   time.Time

	accepted, refused, delivered, dropped, retries atomic.Uint64
	heartbeats                                     atomic.Uint64
	held                                           atomic.Int64 // records in head
	encoding                                       atomic.Int64 // records in pending
	up                                             atomic.Bool
}

var _ sink.Sink = (*Sink)(nil)

// Heartbeats counts the heartbeats the collector acknowledged.
func (s *Sink) Heartbeats() uint64 { return s.heartbeats.Load() }

// New checks cfg and builds the sink; nothing runs before Start. log may
// be nil.
func New(cfg Config, log *slog.Logger) (*Sink, error) {
	cfg = cfg.withDefaults()
	ep, err := cfg.endpoint()
	if err != nil {
		return nil, err
	}
	if cfg.Token == "" {
		return nil, errors.New("collector: no API token: set NETPULSE_API_TOKEN or the token file")
	}
	tc, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := tlsutil.Transport(tc, cfg.Timeout, 2)
	return &Sink{
		cfg: cfg, endpoint: ep, log: log.With("sink", "collector"),
		client: &http.Client{Transport: tr},
		codec:  wire.NewCodec(),
		q:      newQueue(cfg.QueueSize, cfg.BatchSize),
		kick:   make(chan struct{}, 1),
		jobs:   make(chan *encodeJob, cfg.Encoders),
		stopCh: make(chan context.Context, 1),
		done:   make(chan struct{}),
	}, nil
}

// Name returns "collector".
func (*Sink) Name() string { return "collector" }

// Start opens the spool and starts the sender, which first sends what an
// earlier run left in the spool. The sender runs until Stop, whatever
// becomes of ctx.
func (s *Sink) Start(ctx context.Context) error {
	if s.started {
		return errors.New("collector: started twice")
	}
	if s.cfg.SpoolDir != "" {
		sp, unknown, err := openSpool(s.cfg.SpoolDir, s.cfg.SpoolMaxBytes)
		if err != nil {
			return err
		}
		for _, name := range unknown {
			s.log.Warn("collector: unknown file in the spool directory, left alone", "file", name)
		}
		if sp.len() > 0 {
			s.log.Info("collector: sending spooled batches", "batches", sp.len(), "records", sp.records.Load())
		}
		s.spool = sp
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.started = true
	s.retryTimer = time.NewTimer(time.Hour)
	s.retryTimer.Stop()
	s.lastPost = s.cfg.Now()
	for range s.cfg.Encoders {
		go s.encoder()
	}
	go s.run(runCtx)
	return nil
}

// Write queues copies of recs; it refuses what does not fit in QueueSize.
func (s *Sink) Write(recs []flow.Record) int {
	n, full := s.q.push(recs)
	s.accepted.Add(uint64(n))
	s.refused.Add(uint64(len(recs) - n))
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return n
}

// Stop refuses new records, sends what is queued until ctx ends, and
// spools what was not acknowledged by then (or drops it, counted, without
// a spool). The spool is written even after ctx ended: it is local and
// quick.
func (s *Sink) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.q.close()
		if !s.started {
			return
		}
		s.stopping.Store(true)
		s.stopCh <- ctx
		select {
		case <-s.done:
		case <-ctx.Done():
			s.cancel() // abort a request in flight; the sender then spools
			<-s.done
		}
		s.cancel()
		s.client.CloseIdleConnections()
		if n := s.q.len() + int(s.held.Load()+s.encoding.Load()); n > 0 {
			s.stopErr = fmt.Errorf("collector: %d records not delivered nor spooled", n)
		}
	})
	return s.stopErr
}

// Stats returns the sink's counters.
func (s *Sink) Stats() sink.Stats {
	st := sink.Stats{
		Accepted: s.accepted.Load(), Refused: s.refused.Load(), Delivered: s.delivered.Load(),
		Dropped: s.dropped.Load(), Retries: s.retries.Load(), Up: s.up.Load(),
		Queued: uint64(s.q.len()) + uint64(max(s.held.Load()+s.encoding.Load(), 0)),
	}
	if sp := s.spool; sp != nil {
		st.Spooled = uint64(max(sp.records.Load(), 0))
	}
	return st
}

func (s *Sink) run(ctx context.Context) {
	defer close(s.done)
	defer close(s.jobs) // the encoders end; nothing is pending by now
	tick := time.NewTicker(s.cfg.FlushInterval)
	defer tick.Stop()
	defer s.retryTimer.Stop()
	// Spooled batches from an earlier run go first.
	s.work(ctx, false)
	for {
		partial := false
		select {
		case stopCtx := <-s.stopCh:
			s.shutdown(ctx, stopCtx)
			return
		case <-s.kick:
		case <-tick.C:
			partial = true
		case <-s.retryTimer.C:
			s.backingOff = false
		}
		s.work(ctx, partial)
		if partial {
			s.heartbeat(ctx)
		}
	}
}

// work delivers what waits (memory head, then spool) unless backing off,
// then moves queued records into batches: sent at once when nothing older
// waits, spooled otherwise.
func (s *Sink) work(ctx context.Context, partial bool) {
	for !s.stopping.Load() {
		if !s.backingOff {
			s.drain(ctx, false)
		}
		if s.spool == nil && len(s.head) > 0 {
			return // hold the queue until the head batch is delivered
		}
		s.submit(partial)
		b, ok := s.next()
		if !ok {
			return
		}
		s.submit(partial) // keep the encoders busy while b is sent
		if b == nil {
			continue
		}
		if s.spool != nil && (s.backingOff || s.spool.len() > 0) {
			s.toSpool(b)
		} else {
			s.pushHead(b)
		}
	}
}

// submit hands queued chunks to the encoders until Encoders of them are
// pending: full chunks only, or also a partial one when partial is set.
func (s *Sink) submit(partial bool) {
	for len(s.pending) < s.cfg.Encoders {
		c := s.q.pop(partial)
		if c == nil {
			return
		}
		j := &encodeJob{recs: c, done: make(chan struct{})}
		s.encoding.Add(int64(len(c)))
		s.pending = append(s.pending, j)
		s.jobs <- j // never blocks: it holds as many jobs as may be pending
	}
}

// next waits for the oldest pending chunk's batch; ok is false when none
// is pending. The batch is nil when the chunk could not be encoded (it
// is counted as dropped).
func (s *Sink) next() (b *batch, ok bool) {
	if len(s.pending) == 0 {
		return nil, false
	}
	j := s.pending[0]
	<-j.done
	s.pending[0] = nil
	s.pending = s.pending[1:]
	s.encoding.Add(-int64(len(j.recs)))
	s.q.recycle(j.recs)
	return j.b, true
}

// encoder encodes chunks until the sender ends.
func (s *Sink) encoder() {
	for j := range s.jobs {
		j.b = s.encode(j.recs)
		close(j.done)
	}
}

func (s *Sink) pushHead(b *batch) {
	s.head = append(s.head, b)
	s.held.Add(int64(b.records))
}

func (s *Sink) popHead() {
	s.held.Add(-int64(s.head[0].records))
	s.head[0] = nil
	s.head = s.head[1:]
}

// drain sends waiting batches, oldest first, until none waits or one
// fails, which starts a backoff. It reports whether everything was sent.
// final is set at Stop, which bounds it by its context.
func (s *Sink) drain(ctx context.Context, final bool) bool {
	for {
		if !final && s.stopping.Load() {
			return false // Stop is waiting: shutdown takes over
		}
		var b *batch
		switch {
		case len(s.head) > 0:
			b = s.head[0]
		case s.spool != nil && s.spool.len() > 0:
			var err error
			if b, err = s.spool.head(); err != nil {
				f := s.spool.files[0]
				s.log.Error("collector: spooled batch unreadable, dropped", "file", f.name(), "err", err)
				s.dropped.Add(uint64(f.records))
				s.spool.removeHead()
				continue
			}
		default:
			return true
		}
		act, halves := s.attempt(ctx, b)
		switch act {
		case wire.Acked, wire.Drop:
			if b.spooled {
				s.spool.removeHead()
			} else {
				s.popHead()
			}
		case wire.Split:
			if b.spooled {
				if err := s.spool.replaceHead(halves); err != nil {
					s.log.Error("collector: cannot spool the halves of a batch, sending it whole again later", "err", err)
					s.failed(0)
					return false
				}
			} else {
				s.popHead()
				s.head = append([]*batch{halves[0], halves[1]}, s.head...)
				s.held.Add(int64(halves[0].records + halves[1].records))
			}
		default: // retry
			if s.spool != nil {
				for len(s.head) > 0 {
					h := s.head[0]
					s.popHead()
					s.toSpool(h)
				}
			}
			return false
		}
	}
}

// heartbeat posts an empty batch when nothing was sent for
// HeartbeatInterval and nothing waits: the collector takes it as a sign of
// life (docs/wire-protocol.md). A failed heartbeat is not retried: the
// next one follows.
func (s *Sink) heartbeat(ctx context.Context) {
	if s.backingOff || len(s.head) > 0 || len(s.pending) > 0 || (s.spool != nil && s.spool.len() > 0) || s.stopping.Load() {
		return
	}
	if s.cfg.Now().Sub(s.lastPost) < s.cfg.HeartbeatInterval {
		return
	}
	b := s.encode(nil)
	if b == nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	res, err := wire.Post(rctx, s.client, s.endpoint, s.cfg.Token, b.id, b.body)
	cancel()
	s.lastPost = s.cfg.Now() // one attempt per interval, answered or not
	if err == nil && res.Action == wire.Acked {
		s.up.Store(true)
		s.heartbeats.Add(1)
	}
}

// attempt POSTs b once and says what to do with it; for a split, it
// returns the two halves.
func (s *Sink) attempt(ctx context.Context, b *batch) (wire.Action, [2]*batch) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	res, err := wire.Post(rctx, s.client, s.endpoint, s.cfg.Token, b.id, b.body)
	cancel()
	if err == nil {
		s.lastPost = s.cfg.Now()
	}
	if err != nil {
		s.log.Debug("collector: send failed", "batch_id", b.id, "err", err)
		s.failed(0)
		return wire.Retry, [2]*batch{}
	}
	switch res.Action {
	case wire.Acked:
		s.up.Store(true)
		s.backoff = 0
		s.delivered.Add(uint64(b.records))
		return wire.Acked, [2]*batch{}
	case wire.Drop:
		s.up.Store(true) // the collector answered
		s.dropped.Add(uint64(b.records))
		s.log.Error("collector: batch rejected as malformed, dropped", "batch_id", b.id, "records", b.records, "status", res.Status, "msg", res.Message)
		return wire.Drop, [2]*batch{}
	case wire.Split:
		s.up.Store(true)
		halves, err := s.split(b)
		if err != nil {
			s.dropped.Add(uint64(b.records))
			s.log.Error("collector: batch too large and cannot be split, dropped", "batch_id", b.id, "records", b.records, "err", err)
			return wire.Drop, [2]*batch{}
		}
		s.log.Info("collector: batch too large, split in two", "batch_id", b.id, "records", b.records)
		return wire.Split, halves
	case wire.AuthRetry:
		if now := s.cfg.Now(); now.Sub(s.lastAuth) >= time.Minute {
			s.lastAuth = now
			s.log.Error("collector: token refused, keeping batches and retrying (check NETPULSE_API_TOKEN)", "status", res.Status, "msg", res.Message)
		}
	default:
		s.log.Debug("collector: collector unavailable, will retry", "status", res.Status, "msg", res.Message)
	}
	s.failed(res.RetryAfter)
	return wire.Retry, [2]*batch{}
}

// failed counts a failed attempt and starts the backoff.
func (s *Sink) failed(retryAfter time.Duration) {
	s.up.Store(false)
	s.retries.Add(1)
	if s.backoff == 0 {
		s.backoff = s.cfg.BackoffMin
	} else {
		s.backoff = min(2*s.backoff, s.cfg.BackoffMax)
	}
	// Equal jitter: between half and all of the backoff.
	d := s.backoff/2 + rand.N(s.backoff/2+1)
	if retryAfter > d {
		d = min(retryAfter, s.cfg.BackoffMax)
	}
	s.backingOff = true
	s.retryTimer.Reset(d)
}

// split decodes b and encodes its halves with new batch ids (the collector
// did not take b, so they cannot be duplicates).
func (s *Sink) split(b *batch) ([2]*batch, error) {
	if b.records < 2 {
		return [2]*batch{}, errors.New("a single record")
	}
	pb, err := s.codec.DecodeBatchLimit(b.body, 1<<40, 0)
	if err != nil {
		return [2]*batch{}, err
	}
	mid := len(pb.Records) / 2
	var out [2]*batch
	for i, recs := range [][]*flowpb.Record{pb.Records[:mid], pb.Records[mid:]} {
		h := &flowpb.Batch{BatchId: wire.NewBatchID(), Proxy: pb.Proxy, CreatedNs: pb.CreatedNs, Records: recs}
		body, err := s.codec.EncodeBatch(h)
		if err != nil {
			return [2]*batch{}, err
		}
		out[i] = &batch{id: h.BatchId, body: body, records: len(recs)}
	}
	return out, nil
}

func (s *Sink) encode(recs []flow.Record) *batch {
	id := wire.NewBatchID()
	body, err := s.codec.EncodeRecords(id, s.cfg.ProxyName, s.cfg.Now().UnixNano(), recs)
	if err != nil {
		s.dropped.Add(uint64(len(recs)))
		s.log.Error("collector: cannot encode batch, dropped", "records", len(recs), "err", err)
		return nil
	}
	return &batch{id: id, body: body, records: len(recs)}
}

// spoolOrDrop spools b at Stop, or drops it without a spool.
func (s *Sink) spoolOrDrop(b *batch) {
	if s.spool != nil {
		s.toSpool(b)
		return
	}
	s.dropped.Add(uint64(b.records))
	s.log.Error("collector: stopping with no spool, batch dropped", "records", b.records)
}

// toSpool spools b, or drops it when the spool is full or failing.
func (s *Sink) toSpool(b *batch) {
	err := s.spool.put(b)
	if err == nil {
		return
	}
	s.dropped.Add(uint64(b.records))
	if now := s.cfg.Now(); now.Sub(s.lastFull) >= 10*time.Second || !errors.Is(err, errSpoolFull) {
		s.lastFull = now
		s.log.Error("collector: cannot spool batch, dropped (see Stats.Dropped for the total)",
			"records", b.records, "spool_bytes", s.spool.bytes.Load(), "spool_max_bytes", s.spool.max, "err", err)
	}
}

// shutdown flushes at Stop: every queued record becomes a batch, which is
// sent while stopCtx lasts and nothing fails, and spooled otherwise.
func (s *Sink) shutdown(ctx, stopCtx context.Context) {
	// Requests in flight end with stopCtx.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(stopCtx, cancel)
	defer stop()

	failed := false
	for {
		if !failed && stopCtx.Err() == nil {
			failed = !s.drain(sctx, true)
		}
		if s.spool == nil && len(s.head) > 0 && (failed || stopCtx.Err() != nil) {
			break
		}
		s.submit(true)
		b, ok := s.next()
		if !ok {
			break
		}
		s.submit(true)
		if b == nil {
			continue
		}
		if s.spool != nil && (failed || stopCtx.Err() != nil || s.spool.len() > 0) {
			s.toSpool(b)
		} else {
			s.pushHead(b)
		}
	}
	if !failed && stopCtx.Err() == nil {
		s.drain(sctx, true)
	}
	// What is still in memory now goes to the spool, or is lost.
	for len(s.head) > 0 {
		h := s.head[0]
		s.popHead()
		s.spoolOrDrop(h)
	}
	for b, ok := s.next(); ok; b, ok = s.next() {
		if b != nil {
			s.spoolOrDrop(b)
		}
	}
	for c := s.q.pop(true); c != nil; c = s.q.pop(true) {
		s.dropped.Add(uint64(len(c)))
		s.log.Error("collector: stopping with no spool, records dropped", "records", len(c))
	}
}
