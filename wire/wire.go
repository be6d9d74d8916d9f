// Package wire is the proxy→collector protocol, defined in one place (see
// docs/wire-protocol.md): a proxy POSTs a zstd-compressed protobuf
// netpulse.flow.v1.Batch over HTTPS, and the collector acknowledges it. The
// package holds the codec, the constants both sides use, the sender's
// reading of a response (Classify) and a reusable receiver (Handler).
package wire

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/netpulse/netpulse/flow/flowpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Protocol constants.
const (
	// Path is where a collector receives batches.
	Path = "/api/v1/flows"
	// ContentType is the media type of a request body before compression.
	ContentType = "application/x-protobuf"
	// ContentEncoding is the one compression a body may use.
	ContentEncoding = "zstd"
	// HeaderBatchID repeats the batch's batch_id, so that a collector can
	// log and deduplicate before it decodes the body.
	HeaderBatchID = "X-Netpulse-Batch-Id"
	// HeaderSchema names the version of the body's schema: SchemaVersion
	// for netpulse.flow.v1.Batch. A receiver refuses a version it does not
	// know (415) rather than misread it; an absent header means 1.
	HeaderSchema = "X-Netpulse-Schema"
	// SchemaVersion is the schema this build sends and reads.
	SchemaVersion = "1"

	// DefaultMaxBody bounds a compressed request body: 32 MiB.
	DefaultMaxBody = 32 << 20
	// DefaultMaxDecompressed bounds a body once decompressed: 256 MiB.
	DefaultMaxDecompressed = 256 << 20
	// DefaultBatchRecords is how many records a sender puts in one batch.
	DefaultBatchRecords = 5000
	// DefaultMaxRecords is how many records a receiver takes in one batch
	// (ten times what a sender puts by default). It is checked before the
	// records are parsed: a tiny protobuf record becomes a Go value a
	// hundred times its size.
	DefaultMaxRecords = 50000
	// MaxBatchIDLen bounds a batch id.
	MaxBatchIDLen = 64
)

// Errors returned by DecodeBatch. ErrTooLarge means the body was well
// formed as far as it was read but decompresses past the limit: the
// receiver answers 413 so that the sender splits the batch.
var (
	ErrTooLarge  = errors.New("wire: batch too large once decompressed")
	ErrMalformed = errors.New("wire: malformed batch")
)

// NewBatchID returns a random 128-bit id as 32 lowercase hex digits.
func NewBatchID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24).
	return hex.EncodeToString(b[:])
}

// ValidBatchID reports whether id is an acceptable batch id: 1 to
// MaxBatchIDLen characters of [0-9A-Za-z_-].
func ValidBatchID(id string) bool {
	if id == "" || len(id) > MaxBatchIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// Codec encodes and decodes batches. zstd coders are expensive to build,
// so a Codec keeps its own pools of them; it is safe for concurrent use.
// The zero value is not usable: call NewCodec.
type Codec struct {
	enc  sync.Pool // *zstd.Encoder
	bufs sync.Pool // *[]byte protobuf scratch

	mu   sync.Mutex
	decs map[int64]*sync.Pool // by maxDecompressed; *zstd.Decoder
}

// maxDecoderPools bounds Codec.decs: limits come from configuration, not
// the network, so a handful of distinct values is the most expected.
const maxDecoderPools = 8

// NewCodec returns a Codec.
func NewCodec() *Codec {
	return &Codec{decs: make(map[int64]*sync.Pool)}
}

// EncodeBatch returns zstd(protobuf(b)), the request body. It does not
// check b; the receiver does.
func EncodeBatch(b *flowpb.Batch) ([]byte, error) { return NewCodec().EncodeBatch(b) }

// DecodeBatch decodes a request body; see Codec.DecodeBatch. It builds a
// decoder per call: a long-lived user should keep a Codec.
func DecodeBatch(body []byte, maxDecompressed int64) (*flowpb.Batch, error) {
	return NewCodec().DecodeBatch(body, maxDecompressed)
}

// EncodeBatch returns zstd(protobuf(b)), the request body.
func (c *Codec) EncodeBatch(b *flowpb.Batch) ([]byte, error) {
	bp, _ := c.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer c.bufs.Put(bp)
	raw, err := proto.MarshalOptions{}.MarshalAppend((*bp)[:0], b)
	if err != nil {
		return nil, fmt.Errorf("wire: marshal batch: %w", err)
	}
	*bp = raw
	return c.compress(raw)
}

// compress returns zstd(raw), at zstd's fastest level: on flow records it
// compresses 1.4 times faster than the default level for a body 2 % larger
// (114 protobuf bytes a record become 47.4 bytes instead of 46.6), and
// compression is most of a proxy's cost of sending.
func (c *Codec) compress(raw []byte) ([]byte, error) {
	enc, _ := c.enc.Get().(*zstd.Encoder)
	if enc == nil {
		var err error
		enc, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			return nil, fmt.Errorf("wire: zstd encoder: %w", err)
		}
	}
	out := enc.EncodeAll(raw, make([]byte, 0, len(raw)/4+64))
	c.enc.Put(enc)
	return out, nil
}

func (c *Codec) decoder(max int64) (*zstd.Decoder, *sync.Pool, error) {
	c.mu.Lock()
	p := c.decs[max]
	if p == nil && len(c.decs) < maxDecoderPools {
		p = new(sync.Pool)
		c.decs[max] = p
	}
	c.mu.Unlock()
	if p != nil {
		if d, _ := p.Get().(*zstd.Decoder); d != nil {
			return d, p, nil
		}
	}
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderMaxMemory(uint64(max)),
		zstd.WithDecodeAllCapLimit(false))
	if err != nil {
		return nil, nil, fmt.Errorf("wire: zstd decoder: %w", err)
	}
	return d, p, nil
}

// DecodeBatch decompresses and parses a request body, with at most
// DefaultMaxRecords records; see DecodeBatchLimit.
func (c *Codec) DecodeBatch(body []byte, maxDecompressed int64) (*flowpb.Batch, error) {
	return c.DecodeBatchLimit(body, maxDecompressed, DefaultMaxRecords)
}

// DecodeBatchLimit decompresses and parses a request body. Decompression stops
// as soon as the output would pass maxDecompressed bytes (a declared frame
// size past it is refused before anything is allocated), so a small
// zstd bomb costs at most maxDecompressed of memory. A body over the
// limit, or with more than maxRecords records (counted before they are
// parsed), gives an error wrapping ErrTooLarge; any other bad body one
// wrapping ErrMalformed. The batch id is checked with ValidBatchID.
func (c *Codec) DecodeBatchLimit(body []byte, maxDecompressed int64, maxRecords int) (*flowpb.Batch, error) {
	if maxDecompressed <= 0 {
		maxDecompressed = DefaultMaxDecompressed
	}
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty body", ErrMalformed)
	}
	var h zstd.Header
	if err := h.Decode(body); err != nil {
		return nil, fmt.Errorf("%w: not zstd: %v", ErrMalformed, err)
	}
	if h.Skippable {
		return nil, fmt.Errorf("%w: skippable zstd frame", ErrMalformed)
	}
	if h.HasFCS && h.FrameContentSize > uint64(maxDecompressed) {
		return nil, fmt.Errorf("%w: frame declares %d bytes, limit %d", ErrTooLarge, h.FrameContentSize, maxDecompressed)
	}
	d, pool, err := c.decoder(maxDecompressed)
	if err != nil {
		return nil, err
	}
	raw, err := d.DecodeAll(body, nil)
	if pool != nil {
		pool.Put(d)
	} else {
		d.Close()
	}
	if err != nil {
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return nil, fmt.Errorf("%w: limit %d bytes", ErrTooLarge, maxDecompressed)
		}
		return nil, fmt.Errorf("%w: zstd: %v", ErrMalformed, err)
	}
	if int64(len(raw)) > maxDecompressed {
		return nil, fmt.Errorf("%w: limit %d bytes", ErrTooLarge, maxDecompressed)
	}
	n, err := countRecords(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: protobuf: %v", ErrMalformed, err)
	}
	if maxRecords > 0 && n > maxRecords {
		return nil, fmt.Errorf("%w: %d records, limit %d", ErrTooLarge, n, maxRecords)
	}
	b := new(flowpb.Batch)
	if err := proto.Unmarshal(raw, b); err != nil {
		return nil, fmt.Errorf("%w: protobuf: %v", ErrMalformed, err)
	}
	if !ValidBatchID(b.GetBatchId()) {
		return nil, fmt.Errorf("%w: bad batch_id %q", ErrMalformed, truncate(b.GetBatchId(), MaxBatchIDLen))
	}
	return b, nil
}

// countRecords walks the top-level fields of a protobuf Batch and counts
// field 4 (records) without parsing them.
func countRecords(raw []byte) (int, error) {
	n := 0
	for len(raw) > 0 {
		num, typ, l := protowire.ConsumeTag(raw)
		if l < 0 {
			return 0, protowire.ParseError(l)
		}
		raw = raw[l:]
		l = protowire.ConsumeFieldValue(num, typ, raw)
		if l < 0 {
			return 0, protowire.ParseError(l)
		}
		raw = raw[l:]
		if num == 4 && typ == protowire.BytesType {
			n++
		}
	}
	return n, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
