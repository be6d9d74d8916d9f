// Package kafka is the sink that produces each record as one Kafka message,
// with github.com/twmb/franz-go.
//
// A message's value is the record's protobuf form (netpulse.flow.v1.Record,
// see flow/flowpb/flow.proto) and its key the exporter's address bytes (4
// for IPv4, 16 for IPv6), so that the default partitioner keeps one
// exporter's records in one partition, in order.
//
// Write encodes the records and hands them to the client's producer
// buffer, bounded by MaxBufferedRecords: past it, Write refuses. Delivery
// is asynchronous; each record's promise counts it delivered or dropped.
// The client retries a record until it is delivered or DeliveryTimeout
// passes. Stop flushes until its context ends; what is still buffered then
// is dropped and counted.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netpulse/netpulse/internal/tlsutil"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/sink"
	"github.com/netpulse/netpulse/wire"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Config configures the sink. The zero value of a field means its default.
type Config struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string `yaml:"brokers"`
	// Topic receives the records. Required.
	Topic string `yaml:"topic"`
	// ClientID names the client to the brokers. Default "netpulse".
	ClientID string `yaml:"client_id"`
	// Compression is zstd, lz4, snappy, gzip or none. Default zstd.
	Compression string `yaml:"compression"`
	// MaxBufferedRecords bounds the records waiting for the brokers;
	// Write refuses more. Default 100000.
	MaxBufferedRecords int `yaml:"max_buffered_records"`
	// Linger is how long the producer waits to fill a batch. Default
	// 10ms.
	Linger time.Duration `yaml:"linger"`
	// DeliveryTimeout drops a record not delivered in this time (counted).
	// Default 0: retry until Stop.
	DeliveryTimeout time.Duration `yaml:"delivery_timeout"`
	// TLS connects with TLS; it is implied by CAFile or CertFile.
	TLS bool `yaml:"tls"`
	// CAFile is a PEM bundle of the CAs that sign the brokers'
	// certificates. Default: the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate and key for mutual
	// TLS. Both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// SASL authenticates the client; empty Mechanism means none.
	SASL SASLConfig `yaml:"sasl"`
}

// SASLConfig selects SASL authentication.
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string `yaml:"mechanism"`
	User      string `yaml:"user"`
	// Password never comes from the configuration file or the command
	// line: the caller reads it from the environment or a file.
	Password string `yaml:"-"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{ClientID: "netpulse", Compression: "zstd", MaxBufferedRecords: 100000, Linger: 10 * time.Millisecond}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.ClientID == "" {
		c.ClientID = d.ClientID
	}
	if c.Compression == "" {
		c.Compression = d.Compression
	}
	if c.MaxBufferedRecords <= 0 {
		c.MaxBufferedRecords = d.MaxBufferedRecords
	}
	if c.Linger <= 0 {
		c.Linger = d.Linger
	}
	return c
}

func (c Config) options() ([]kgo.Opt, error) {
	if len(c.Brokers) == 0 {
		return nil, errors.New("kafka.brokers: empty: list at least one host:port")
	}
	if c.Topic == "" {
		return nil, errors.New("kafka.topic: empty: name the topic to produce to")
	}
	var codec kgo.CompressionCodec
	switch strings.ToLower(c.Compression) {
	case "zstd":
		codec = kgo.ZstdCompression()
	case "lz4":
		codec = kgo.Lz4Compression()
	case "snappy":
		codec = kgo.SnappyCompression()
	case "gzip":
		codec = kgo.GzipCompression()
	case "none":
		codec = kgo.NoCompression()
	default:
		return nil, fmt.Errorf("kafka.compression: %q: want zstd, lz4, snappy, gzip or none", c.Compression)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.DefaultProduceTopic(c.Topic),
		kgo.ClientID(c.ClientID),
		kgo.ProducerBatchCompression(codec),
		// Room above our own bound, so the client's never blocks.
		kgo.MaxBufferedRecords(c.MaxBufferedRecords + 1024),
		kgo.ProducerLinger(c.Linger),
	}
	if c.DeliveryTimeout > 0 {
		opts = append(opts, kgo.RecordDeliveryTimeout(c.DeliveryTimeout))
	}
	if c.TLS || c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" {
		tc, err := tlsutil.ClientConfig("kafka", c.CAFile, c.CertFile, c.KeyFile)
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if c.SASL.Mechanism != "" {
		var m sasl.Mechanism
		switch strings.ToUpper(c.SASL.Mechanism) {
		case "PLAIN":
			m = plain.Auth{User: c.SASL.User, Pass: c.SASL.Password}.AsMechanism()
		case "SCRAM-SHA-256":
			m = scram.Auth{User: c.SASL.User, Pass: c.SASL.Password}.AsSha256Mechanism()
		case "SCRAM-SHA-512":
			m = scram.Auth{User: c.SASL.User, Pass: c.SASL.Password}.AsSha512Mechanism()
		default:
			return nil, fmt.Errorf("kafka.sasl.mechanism: %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASL.Mechanism)
		}
		if c.SASL.User == "" || c.SASL.Password == "" {
			return nil, errors.New("kafka.sasl: user and password are both required")
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// Sink produces records to Kafka. It implements sink.Sink.
type Sink struct {
	cfg  Config
	opts []kgo.Opt
	log  *slog.Logger

	mu      sync.RWMutex // guards client against Stop
	client  *kgo.Client
	stopped bool

	buffered                              atomic.Int64
	accepted, refused, delivered, dropped atomic.Uint64
	up                                    atomic.Bool
	lastErrLog                            atomic.Int64 // unix seconds
	promise                               func(*kgo.Record, error)
}

var _ sink.Sink = (*Sink)(nil)

// New checks cfg and builds the sink; it connects at Start. log may be nil.
func New(cfg Config, log *slog.Logger) (*Sink, error) {
	cfg = cfg.withDefaults()
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{cfg: cfg, opts: opts, log: log.With("sink", "kafka")}
	s.promise = s.done
	return s, nil
}

// Name returns "kafka".
func (*Sink) Name() string { return "kafka" }

// Start creates the client. Brokers are contacted in the background: an
// unreachable cluster does not fail Start, its records wait and are
// retried.
func (s *Sink) Start(context.Context) error {
	cl, err := kgo.NewClient(s.opts...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil || s.stopped {
		cl.Close()
		return errors.New("kafka: started twice")
	}
	s.client = cl
	return nil
}

// Write encodes recs and queues them for the producer; it refuses what
// does not fit in MaxBufferedRecords, and everything before Start or
// after Stop.
func (s *Sink) Write(recs []flow.Record) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.client == nil || s.stopped {
		s.refused.Add(uint64(len(recs)))
		return 0
	}
	n := s.reserve(len(recs))
	for i := 0; i < n; i++ {
		r := &recs[i]
		value, err := wire.MarshalRecord(r)
		if err != nil { // a string that is not UTF-8; never panic
			s.buffered.Add(-1)
			s.dropped.Add(1)
			continue
		}
		var key []byte
		if r.Exporter.IsValid() {
			key = r.Exporter.AsSlice()
		}
		s.client.TryProduce(context.Background(), &kgo.Record{Key: key, Value: value}, s.promise)
	}
	s.accepted.Add(uint64(n))
	s.refused.Add(uint64(len(recs) - n))
	return n
}

// reserve takes room for up to n records in the buffer.
func (s *Sink) reserve(n int) int {
	limit := int64(s.cfg.MaxBufferedRecords)
	for {
		cur := s.buffered.Load()
		k := min(int64(n), limit-cur)
		if k <= 0 {
			return 0
		}
		if s.buffered.CompareAndSwap(cur, cur+k) {
			return int(k)
		}
	}
}

// done is every record's promise.
func (s *Sink) done(r *kgo.Record, err error) {
	s.buffered.Add(-1)
	if err == nil {
		s.delivered.Add(1)
		s.up.Store(true)
		return
	}
	s.dropped.Add(1)
	s.up.Store(false)
	// Log at most once a second: a broker outage fails records by the
	// thousand.
	now := time.Now().Unix()
	if last := s.lastErrLog.Load(); now > last && s.lastErrLog.CompareAndSwap(last, now) {
		s.log.Error("kafka: record not delivered, dropped (see Stats.Dropped for the total)", "topic", r.Topic, "err", err)
	}
}

// Stop refuses new records, flushes the buffered ones until ctx ends, and
// closes the client; records still buffered then are dropped and counted.
func (s *Sink) Stop(ctx context.Context) error {
	s.mu.Lock()
	cl := s.client
	already := s.stopped
	s.stopped = true
	s.mu.Unlock()
	if cl == nil || already {
		return nil
	}
	err := cl.Flush(ctx)
	cl.Close() // fails what is left, through the promises
	if err != nil {
		return fmt.Errorf("kafka: flush: %w", err)
	}
	return nil
}

// Stats returns the sink's counters. Retries are the client's business
// and not counted; Up reports whether the last record's delivery
// succeeded.
func (s *Sink) Stats() sink.Stats {
	return sink.Stats{
		Accepted: s.accepted.Load(), Refused: s.refused.Load(), Delivered: s.delivered.Load(),
		Dropped: s.dropped.Load(), Queued: uint64(max(s.buffered.Load(), 0)), Up: s.up.Load(),
	}
}
