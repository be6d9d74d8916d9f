package wire

import (
	"container/list"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netpulse/netpulse/flow/flowpb"
)

// HandlerConfig configures a receiver. The zero value of a field means its
// default.
type HandlerConfig struct {
	// Tokens maps each accepted bearer token to the name of the proxy
	// that holds it. Ignored when Auth is set. With neither, every request
	// is refused (401).
	Tokens map[string]string `yaml:"-"`
	// Auth, when set, checks a bearer token and names its proxy.
	Auth func(token string) (proxy string, ok bool) `yaml:"-"`
	// MaxBody bounds a compressed body. Default 32 MiB.
	MaxBody int64 `yaml:"max_body"`
	// MaxDecompressed bounds a body once decompressed, enforced while
	// decompressing. Default 256 MiB.
	MaxDecompressed int64 `yaml:"max_decompressed"`
	// MaxRecords bounds the records of one batch. Default 50000.
	MaxRecords int `yaml:"max_records"`
	// DedupSize bounds how many batch ids are remembered. Default 100000.
	DedupSize int `yaml:"dedup_size"`
	// DedupWindow is how long a batch id is remembered. Default 1h: it
	// must outlast a sender's retry of a batch whose acknowledgement was
	// lost.
	DedupWindow time.Duration `yaml:"dedup_window"`
	// RetryAfter is the Retry-After sent with a 503. Default 1s.
	RetryAfter time.Duration `yaml:"retry_after"`
	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time `yaml:"-"`
}

// DefaultHandlerConfig returns the defaults documented on HandlerConfig.
func DefaultHandlerConfig() HandlerConfig {
	return HandlerConfig{
		MaxBody: DefaultMaxBody, MaxDecompressed: DefaultMaxDecompressed, MaxRecords: DefaultMaxRecords,
		DedupSize: 100000, DedupWindow: time.Hour, RetryAfter: time.Second, Now: time.Now,
	}
}

func (c HandlerConfig) withDefaults() HandlerConfig {
	d := DefaultHandlerConfig()
	if c.MaxBody <= 0 {
		c.MaxBody = d.MaxBody
	}
	if c.MaxDecompressed <= 0 {
		c.MaxDecompressed = d.MaxDecompressed
	}
	if c.MaxRecords <= 0 {
		c.MaxRecords = d.MaxRecords
	}
	if c.DedupSize <= 0 {
		c.DedupSize = d.DedupSize
	}
	if c.DedupWindow <= 0 {
		c.DedupWindow = d.DedupWindow
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = d.RetryAfter
	}
	if c.Now == nil {
		c.Now = d.Now
	}
	return c
}

// OnBatch receives each new batch, with the name of the proxy that sent it
// (from its token). It returns nil once the batch is safely kept: only
// then is it acknowledged. ErrAlreadyKept says the batch was kept before
// (its id is in durable storage the handler's memory lost, as after a
// restart): it is acknowledged as a duplicate. Any other error makes the
// answer 503, and the sender retries. The handler does not keep b after
// OnBatch returns.
type OnBatch func(ctx context.Context, proxy string, b *flowpb.Batch) error

// ErrAlreadyKept is what OnBatch returns for a batch it already has.
var ErrAlreadyKept = errors.New("wire: batch already kept")

// Reject reasons, as counted in HandlerStats.Rejected.
const (
	ReasonMethod      = "method"       // not a POST (405)
	ReasonAuth        = "auth"         // missing or unknown token (401)
	ReasonContentType = "content_type" // wrong Content-Type or Content-Encoding (415)
	ReasonTooLarge    = "too_large"    // body, decompressed body or records over the limit (413)
	ReasonMalformed   = "malformed"    // not a valid batch, or batch id header mismatch (400)
	ReasonBusy        = "busy"         // same batch id already being processed (503)
	ReasonHandler     = "handler"      // OnBatch failed (503)
	ReasonSchema      = "schema"       // unknown X-Netpulse-Schema version (415)
)

var reasons = [...]string{ReasonMethod, ReasonAuth, ReasonContentType, ReasonTooLarge, ReasonMalformed, ReasonBusy, ReasonHandler, ReasonSchema}

// HandlerStats are a receiver's counters since NewHandler.
type HandlerStats struct {
	// Batches and Records were accepted (new, handed to OnBatch).
	Batches uint64
	Records uint64
	// Duplicates are batches acknowledged again and dropped.
	Duplicates uint64
	// Rejected counts refused requests by reason (the Reason constants).
	Rejected map[string]uint64
	// DedupEntries is the number of batch ids remembered now.
	DedupEntries int
}

// Handler is the collector's receiving end, an http.Handler for POST Path.
// It authenticates, bounds and decodes a batch, drops one it has already
// acknowledged, and hands the others to OnBatch.
type Handler struct {
	cfg     HandlerConfig
	onBatch OnBatch
	codec   *Codec
	log     *slog.Logger
	tokens  []tokenEntry

	batches, records, duplicates atomic.Uint64
	rejected                     [len(reasons)]atomic.Uint64

	dedup dedup
}

type tokenEntry struct {
	sum   [32]byte
	proxy string
}

// NewHandler returns a receiver calling onBatch for each new batch. log
// may be nil.
func NewHandler(cfg HandlerConfig, onBatch OnBatch, log *slog.Logger) (*Handler, error) {
	if onBatch == nil {
		return nil, errors.New("wire: NewHandler: onBatch is nil")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	h := &Handler{cfg: cfg, onBatch: onBatch, codec: NewCodec(), log: log}
	for tok, proxy := range cfg.Tokens {
		if tok == "" {
			return nil, errors.New("wire: NewHandler: empty token in Tokens")
		}
		h.tokens = append(h.tokens, tokenEntry{sha256.Sum256([]byte(tok)), proxy})
	}
	h.dedup.init(cfg.DedupSize, cfg.DedupWindow)
	return h, nil
}

// Stats returns the receiver's counters.
func (h *Handler) Stats() HandlerStats {
	s := HandlerStats{
		Batches: h.batches.Load(), Records: h.records.Load(), Duplicates: h.duplicates.Load(),
		Rejected: make(map[string]uint64, len(reasons)),
	}
	for i, r := range reasons {
		s.Rejected[r] = h.rejected[i].Load()
	}
	s.DedupEntries = h.dedup.len()
	return s
}

// authenticate compares the token with every known one in constant time
// (through their digests, so lengths leak nothing either).
func (h *Handler) authenticate(tok string) (string, bool) {
	if tok == "" {
		return "", false
	}
	if h.cfg.Auth != nil {
		return h.cfg.Auth(tok)
	}
	sum := sha256.Sum256([]byte(tok))
	proxy, ok := "", false
	for _, e := range h.tokens {
		if subtle.ConstantTimeCompare(sum[:], e.sum[:]) == 1 {
			proxy, ok = e.proxy, true
		}
	}
	return proxy, ok
}

func (h *Handler) reject(w http.ResponseWriter, reason string, status int, msg string) {
	for i, r := range reasons {
		if r == reason {
			h.rejected[i].Add(1)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", itoa(int((h.cfg.RetryAfter+time.Second-1)/time.Second)))
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="netpulse"`)
	}
	w.WriteHeader(status)
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	_, _ = w.Write(append(b, '\n'))
}

func itoa(n int) string { return strconv.Itoa(max(n, 1)) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.reject(w, ReasonMethod, http.StatusMethodNotAllowed, "POST only")
		return
	}
	auth := r.Header.Get("Authorization")
	tok, found := strings.CutPrefix(auth, "Bearer ")
	if !found {
		tok = ""
	}
	proxy, ok := h.authenticate(strings.TrimSpace(tok))
	if !ok {
		h.reject(w, ReasonAuth, http.StatusUnauthorized, "missing or unknown bearer token")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != ContentType {
		h.reject(w, ReasonContentType, http.StatusUnsupportedMediaType, "Content-Type must be "+ContentType)
		return
	}
	if ce := r.Header.Get("Content-Encoding"); ce != ContentEncoding {
		h.reject(w, ReasonContentType, http.StatusUnsupportedMediaType, "Content-Encoding must be "+ContentEncoding)
		return
	}
	if v := r.Header.Get(HeaderSchema); v != "" && v != SchemaVersion {
		h.reject(w, ReasonSchema, http.StatusUnsupportedMediaType, "unknown schema version "+strconv.Quote(truncate(v, 16))+" (this collector reads "+SchemaVersion+"): upgrade the collector")
		return
	}
	id := r.Header.Get(HeaderBatchID)
	if !ValidBatchID(id) {
		h.reject(w, ReasonMalformed, http.StatusBadRequest, "missing or bad "+HeaderBatchID+" header")
		return
	}
	if r.ContentLength > h.cfg.MaxBody {
		h.reject(w, ReasonTooLarge, http.StatusRequestEntityTooLarge, "body over the size limit")
		return
	}
	key := proxy + "\x00" + id
	now := h.cfg.Now()
	// A batch already acknowledged needs no reading: answer at once.
	if n, seen := h.dedup.seen(key, now); seen {
		h.duplicates.Add(1)
		h.ack(w, id, n, true)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.reject(w, ReasonTooLarge, http.StatusRequestEntityTooLarge, "body over the size limit")
			return
		}
		// The client went away or the connection failed: nobody reads
		// this answer, but count it.
		h.reject(w, ReasonMalformed, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	b, err := h.codec.DecodeBatchLimit(body, h.cfg.MaxDecompressed, h.cfg.MaxRecords)
	if err != nil {
		if errors.Is(err, ErrTooLarge) {
			h.reject(w, ReasonTooLarge, http.StatusRequestEntityTooLarge, err.Error())
		} else {
			h.reject(w, ReasonMalformed, http.StatusBadRequest, err.Error())
		}
		h.log.Debug("wire: batch refused", "proxy", proxy, "batch_id", id, "err", err)
		return
	}
	if b.GetBatchId() != id {
		h.reject(w, ReasonMalformed, http.StatusBadRequest, HeaderBatchID+" differs from the body's batch_id")
		return
	}
	// Claim the id so that a concurrent retry of the same batch waits
	// (503) instead of being processed twice.
	switch h.dedup.claim(key, now) {
	case claimSeen:
		h.duplicates.Add(1)
		h.ack(w, id, len(b.Records), true)
		return
	case claimBusy:
		h.reject(w, ReasonBusy, http.StatusServiceUnavailable, "batch being processed, retry")
		return
	}
	err = h.onBatch(r.Context(), proxy, b)
	if errors.Is(err, ErrAlreadyKept) {
		h.dedup.done(key, len(b.Records), h.cfg.Now())
		h.duplicates.Add(1)
		h.ack(w, id, len(b.Records), true)
		return
	}
	if err != nil {
		h.dedup.release(key)
		h.log.Warn("wire: batch not kept", "proxy", proxy, "batch_id", id, "err", err)
		h.reject(w, ReasonHandler, http.StatusServiceUnavailable, "collector could not keep the batch, retry")
		return
	}
	h.dedup.done(key, len(b.Records), h.cfg.Now())
	h.batches.Add(1)
	h.records.Add(uint64(len(b.Records)))
	h.ack(w, id, len(b.Records), false)
}

func (h *Handler) ack(w http.ResponseWriter, id string, n int, dup bool) {
	b, _ := json.Marshal(Ack{BatchID: id, Accepted: n, Duplicate: dup})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
}

// dedup remembers acknowledged batch ids, bounded in count (oldest out
// first) and age, and the ids being processed now.
type dedup struct {
	mu      sync.Mutex
	max     int
	window  time.Duration
	order   *list.List // of *dedupEntry, oldest at the front
	entries map[string]*list.Element
	busy    map[string]struct{}
}

type dedupEntry struct {
	key     string
	records int
	at      time.Time
}

type claimResult int

const (
	claimOK claimResult = iota
	claimSeen
	claimBusy
)

func (d *dedup) init(max int, window time.Duration) {
	d.max, d.window = max, window
	d.order = list.New()
	d.entries = make(map[string]*list.Element)
	d.busy = make(map[string]struct{})
}

func (d *dedup) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.entries)
}

// expire drops entries older than the window. Called with mu held.
func (d *dedup) expire(now time.Time) {
	for e := d.order.Front(); e != nil; e = d.order.Front() {
		de := e.Value.(*dedupEntry)
		if now.Sub(de.at) < d.window {
			return
		}
		d.order.Remove(e)
		delete(d.entries, de.key)
	}
}

func (d *dedup) seen(key string, now time.Time) (int, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire(now)
	if e, ok := d.entries[key]; ok {
		return e.Value.(*dedupEntry).records, true
	}
	return 0, false
}

func (d *dedup) claim(key string, now time.Time) claimResult {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire(now)
	if _, ok := d.entries[key]; ok {
		return claimSeen
	}
	if _, ok := d.busy[key]; ok {
		return claimBusy
	}
	d.busy[key] = struct{}{}
	return claimOK
}

func (d *dedup) release(key string) {
	d.mu.Lock()
	delete(d.busy, key)
	d.mu.Unlock()
}

func (d *dedup) done(key string, records int, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.busy, key)
	d.entries[key] = d.order.PushBack(&dedupEntry{key: key, records: records, at: now})
	for len(d.entries) > d.max {
		e := d.order.Front()
		d.order.Remove(e)
		delete(d.entries, e.Value.(*dedupEntry).key)
	}
}
