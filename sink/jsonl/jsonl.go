// Package jsonl is the sink that writes records as JSON lines (one object
// per record, see flow.AppendJSON) to a file or to standard output, for
// debugging and for pipelines that read text.
package jsonl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/sink"
)

// Config configures the sink. The zero value of a field means its default.
type Config struct {
	// Path is the file to append to, created if missing; "-" is standard
	// output. Required unless Output is set. There is no rotation: use
	// logrotate's copytruncate, or a pipe.
	Path string `yaml:"path"`
	// Output, when set, is written to instead of Path (for embedding and
	// tests).
	Output io.Writer `yaml:"-"`
	// QueueSize bounds the records waiting in memory; Write refuses more.
	// Default 100000.
	QueueSize int `yaml:"queue_size"`
	// FlushInterval is the longest a written line stays in the buffer.
	// Default 1s.
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{QueueSize: 100000, FlushInterval: time.Second}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.QueueSize <= 0 {
		c.QueueSize = d.QueueSize
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = d.FlushInterval
	}
	return c
}

// Sink writes JSON lines. It implements sink.Sink.
type Sink struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	queue   []flow.Record
	closed  bool
	started bool

	kick chan struct{}
	stop chan struct{}
	done chan struct{}

	out     io.Writer
	file    *os.File // nil for stdout and Output
	buf     []byte   // lines not yet written to out
	inBuf   int      // records in buf
	lastLog time.Time

	accepted, refused, delivered, dropped atomic.Uint64
	writing, buffered                     atomic.Int64
	up                                    atomic.Bool
}

var _ sink.Sink = (*Sink)(nil)

// New checks cfg and builds the sink; the file is opened at Start. log may
// be nil.
func New(cfg Config, log *slog.Logger) (*Sink, error) {
	cfg = cfg.withDefaults()
	if cfg.Path == "" && cfg.Output == nil {
		return nil, errors.New("jsonl.path: empty: name a file, or - for standard output")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{
		cfg: cfg, log: log.With("sink", "jsonl"),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}, nil
}

// Name returns "jsonl".
func (*Sink) Name() string { return "jsonl" }

// Start opens the output and starts the writer.
func (s *Sink) Start(context.Context) error {
	switch {
	case s.cfg.Output != nil:
		s.out = s.cfg.Output
	case s.cfg.Path == "-":
		s.out = os.Stdout
	default:
		f, err := os.OpenFile(s.cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("jsonl.path: %w", err)
		}
		s.out, s.file = f, f
	}
	s.buf = make([]byte, 0, bufSize+4096)
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	s.up.Store(true)
	go s.run()
	return nil
}

// Write queues copies of recs; it refuses what does not fit in QueueSize.
func (s *Sink) Write(recs []flow.Record) int {
	s.mu.Lock()
	n := 0
	if s.started && !s.closed {
		n = min(len(recs), s.cfg.QueueSize-len(s.queue))
		s.queue = append(s.queue, recs[:n]...)
	}
	s.mu.Unlock()
	s.accepted.Add(uint64(n))
	s.refused.Add(uint64(len(recs) - n))
	if n > 0 {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return n
}

func (s *Sink) run() {
	defer close(s.done)
	tick := time.NewTicker(s.cfg.FlushInterval)
	defer tick.Stop()
	var spare []flow.Record
	for {
		select {
		case <-s.stop:
			s.writeQueued(spare)
			s.flush()
			return
		case <-s.kick:
			spare = s.writeQueued(spare)
		case <-tick.C:
			s.flush()
		}
	}
}

// writeQueued takes the queue, leaving spare in its place, and writes it.
func (s *Sink) writeQueued(spare []flow.Record) []flow.Record {
	s.mu.Lock()
	recs := s.queue
	s.queue = spare[:0]
	s.writing.Store(int64(len(recs)))
	s.mu.Unlock()
	for i := range recs {
		s.buf = flow.AppendJSON(s.buf, &recs[i])
		s.inBuf++
		s.buffered.Add(1)
		s.writing.Add(-1)
		if len(s.buf) >= bufSize {
			s.flush()
		}
	}
	s.writing.Store(0)
	clear(recs)
	return recs[:0]
}

// bufSize is how many bytes of lines are gathered before a write.
const bufSize = 256 << 10

// flush writes the gathered lines. On an error their records are dropped
// and counted; the next write tries again, so a passing error (a full
// disk) does not stop the sink for good.
func (s *Sink) flush() {
	if len(s.buf) == 0 {
		return
	}
	_, err := s.out.Write(s.buf)
	n := s.inBuf
	s.buf, s.inBuf = s.buf[:0], 0
	s.buffered.Add(-int64(n))
	if err != nil {
		s.failed(n, err)
		return
	}
	s.delivered.Add(uint64(n))
	s.up.Store(true)
}

func (s *Sink) failed(n int, err error) {
	s.dropped.Add(uint64(n))
	s.up.Store(false)
	if now := time.Now(); now.Sub(s.lastLog) >= 10*time.Second {
		s.lastLog = now
		s.log.Error("jsonl: write failed, records dropped (see Stats.Dropped)", "records", n, "err", err)
	}
}

// Stop refuses new records, writes and flushes the queued ones and closes
// the file. Writing a local file does not wait on ctx.
func (s *Sink) Stop(context.Context) error {
	s.mu.Lock()
	started, closed := s.started, s.closed
	s.closed = true
	s.mu.Unlock()
	if !started || closed {
		return nil
	}
	close(s.stop)
	<-s.done
	if s.file != nil {
		if err := s.file.Close(); err != nil {
			return fmt.Errorf("jsonl: close %s: %w", s.cfg.Path, err)
		}
	}
	return nil
}

// Stats returns the sink's counters. Delivered counts records written to
// the output; Queued includes lines gathered and not yet written (at most
// FlushInterval old).
func (s *Sink) Stats() sink.Stats {
	s.mu.Lock()
	q := len(s.queue)
	s.mu.Unlock()
	return sink.Stats{
		Accepted: s.accepted.Load(), Refused: s.refused.Load(), Delivered: s.delivered.Load(),
		Dropped: s.dropped.Load(), Queued: uint64(q) + uint64(max(s.writing.Load(), 0)) + uint64(s.buffered.Load()), Up: s.up.Load(),
	}
}
