package device

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
)

// The device API (docs/devices-api.md): a collector serves its device list
// at APIPath and the proxies pull it (Puller). Handler is the serving end,
// over a Store.

// APIPath is where a collector serves the device list; a device is at
// APIPath + "/" + its id.
const APIPath = "/api/v1/devices"

// DefaultMaxListBytes bounds a device list body: 64 MiB, a few hundred
// thousand devices.
const DefaultMaxListBytes = 64 << 20

// DefaultMaxDeviceBytes bounds the body of a POST or PUT: one device.
const DefaultMaxDeviceBytes = 1 << 20

// Listing is the JSON body of GET APIPath.
type Listing struct {
	// Version changes whenever the list does; clients treat it as opaque.
	// This implementation uses the hash that is also the ETag.
	Version string `json:"version"`
	// Devices are ordered by ID.
	Devices []Device `json:"devices"`
}

// Errors a Store returns besides *InvalidError; Handler answers 404 and
// 409 for them.
var (
	ErrNotFound = errors.New("no device with this id")
	ErrExists   = errors.New("a device with this id already exists")
)

// InvalidError is a change that would make the device list invalid: a
// device that fails Validate, or an ID or address used twice. Handler
// answers 400 with its text.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

func invalid(format string, a ...any) error { return &InvalidError{fmt.Errorf(format, a...)} }

// ParseDevicesJSON reads a device list as GET APIPath returns it and
// validates it whole (NewSet), so that a list with a bad device or an
// address used twice is refused rather than half applied. Unknown keys
// are ignored, so that a newer collector can add fields without breaking
// older proxies; a missing or null "devices" is an error, so that an
// unrelated JSON object never empties the registry. It also returns the
// list's version.
func ParseDevicesJSON(data []byte) (*Set, string, error) {
	var l struct {
		Version string    `json:"version"`
		Devices *[]Device `json:"devices"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&l); err != nil {
		return nil, "", fmt.Errorf("device list: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, "", errors.New("device list: data after the JSON object")
	}
	if l.Devices == nil {
		return nil, "", errors.New(`device list: no "devices" array`)
	}
	s, err := NewSet(*l.Devices)
	if err != nil {
		return nil, "", fmt.Errorf("device list: %w", err)
	}
	return s, l.Version, nil
}

// CanonicalJSON returns the devices of s as a JSON array ordered by ID,
// with addresses unmapped as NewSet stores them: equal sets give equal
// bytes, whatever order their devices came in. ETag hashes it.
func CanonicalJSON(s *Set) ([]byte, error) {
	ds := make([]Device, 0, s.Len())
	for _, d := range s.All() {
		ds = append(ds, *d)
	}
	b, err := json.Marshal(ds)
	if err != nil {
		return nil, fmt.Errorf("device list: encode: %w", err)
	}
	return b, nil
}

// versionOf is the version of a list: the SHA-256 of its canonical JSON.
func versionOf(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}

// ETag returns the strong entity tag of the list s, quoted: the SHA-256
// of its canonical JSON.
func ETag(s *Set) (string, error) {
	b, err := CanonicalJSON(s)
	if err != nil {
		return "", err
	}
	return `"` + versionOf(b) + `"`, nil
}

// PutMode says whether Set.With and Store.Put add a device or change one.
type PutMode int

const (
	// PutCreate adds a device whose ID is new (ErrExists otherwise).
	PutCreate PutMode = iota + 1
	// PutReplace changes the device with that ID (ErrNotFound otherwise).
	PutReplace
)

// With returns a new set holding s's devices with d added (PutCreate) or
// put in place of the device with its ID (PutReplace). s is unchanged. A
// Store implementation calls it so that every store validates alike.
func (s *Set) With(d Device, mode PutMode) (*Set, error) {
	if err := d.Validate(); err != nil {
		return nil, invalid("device %d: %w", d.ID, err)
	}
	old := s.ByID(d.ID)
	switch mode {
	case PutCreate:
		if old != nil {
			return nil, fmt.Errorf("device %d: %w", d.ID, ErrExists)
		}
	case PutReplace:
		if old == nil {
			return nil, fmt.Errorf("device %d: %w", d.ID, ErrNotFound)
		}
	default:
		return nil, fmt.Errorf("device: bad PutMode %d", mode)
	}
	// Name the conflicting device by ID: NewSet would name it by its
	// position in a list the client never sent.
	mine := make(map[netip.Addr]bool, len(d.IPs))
	for _, ip := range d.IPs {
		ip = ip.Unmap()
		if mine[ip] {
			return nil, invalid("device %d: address %v listed twice", d.ID, ip)
		}
		mine[ip] = true
		if o := s.ByIP(ip); o != nil && o.ID != d.ID {
			return nil, invalid("device %d: address %v is already device %d's (%q)", d.ID, ip, o.ID, o.Name)
		}
	}
	devices := make([]Device, 0, s.Len()+1)
	for _, o := range s.All() {
		if o.ID != d.ID {
			devices = append(devices, *o)
		}
	}
	ns, err := NewSet(append(devices, d))
	if err != nil {
		return nil, &InvalidError{err}
	}
	return ns, nil
}

// Without returns a new set holding s's devices less the one with the
// given ID (ErrNotFound when there is none). s is unchanged.
func (s *Set) Without(id uint64) (*Set, error) {
	if s.ByID(id) == nil {
		return nil, fmt.Errorf("device %d: %w", id, ErrNotFound)
	}
	devices := make([]Device, 0, s.Len())
	for _, o := range s.All() {
		if o.ID != id {
			devices = append(devices, *o)
		}
	}
	return NewSet(devices)
}

// Store keeps the collector's device list. Each change is validated
// against the whole list (Set.With, Set.Without), so that IDs and
// addresses stay unique, and is atomic: a concurrent change sees the list
// before or after it, never half of it. MemStore keeps it in memory; the
// collector plugs a persistent one.
type Store interface {
	// List returns the current list.
	List(ctx context.Context) (*Set, error)
	// Put adds or changes a device (see PutMode) and returns the new
	// list. It fails with *InvalidError, ErrExists or ErrNotFound (each
	// possibly wrapped) when the change is refused.
	Put(ctx context.Context, d Device, mode PutMode) (*Set, error)
	// Delete removes a device and returns the new list, or fails with
	// ErrNotFound.
	Delete(ctx context.Context, id uint64) (*Set, error)
}

// MemStore is a Store in memory, for tests and for a collector that takes
// its list from a file at start.
type MemStore struct {
	mu  sync.Mutex
	set *Set
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns a store holding s (which may be nil: no devices).
func NewMemStore(s *Set) *MemStore {
	if s == nil {
		s, _ = NewSet(nil)
	}
	return &MemStore{set: s}
}

// List implements Store.
func (m *MemStore) List(context.Context) (*Set, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.set, nil
}

// Put implements Store.
func (m *MemStore) Put(_ context.Context, d Device, mode PutMode) (*Set, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.set.With(d, mode)
	if err != nil {
		return nil, err
	}
	m.set = s
	return s, nil
}

// Delete implements Store.
func (m *MemStore) Delete(_ context.Context, id uint64) (*Set, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.set.Without(id)
	if err != nil {
		return nil, err
	}
	m.set = s
	return s, nil
}

// TokenAuth returns a token check for HandlerConfig that accepts the given
// tokens, compared in constant time through their digests (so that
// neither content nor length leaks). Empty tokens are never accepted.
func TokenAuth(tokens ...string) func(token string) bool {
	var sums [][32]byte
	for _, t := range tokens {
		if t != "" {
			sums = append(sums, sha256.Sum256([]byte(t)))
		}
	}
	return func(token string) bool {
		if token == "" {
			return false
		}
		sum := sha256.Sum256([]byte(token))
		ok := 0
		for i := range sums {
			ok |= subtle.ConstantTimeCompare(sum[:], sums[i][:])
		}
		return ok == 1
	}
}

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	// Read checks the bearer token of a GET or HEAD: the proxies' tokens.
	// Nil refuses every token. A token that Write accepts may read too.
	Read func(token string) bool
	// Write checks the bearer token of a POST, PUT or DELETE: operators'
	// tokens, kept apart from Read so that a proxy's token cannot rewrite
	// every proxy's devices. Nil makes the list read-only (403).
	Write func(token string) bool
	// MaxBody bounds a POST or PUT body. Default DefaultMaxDeviceBytes.
	MaxBody int64
}

// Handler serves the device API of docs/devices-api.md from a Store:
// GET and HEAD of the list with a strong ETag and If-None-Match, and GET,
// POST, PUT and DELETE of single devices. Mount it at both APIPath and
// APIPath+"/". The optional ?proxy= query is ignored: every client gets
// the whole list.
type Handler struct {
	cfg   HandlerConfig
	store Store
	log   *slog.Logger

	// The last list rendered: Store implementations return the same *Set
	// until a change, so a poll of an unchanged list costs no encoding.
	mu   sync.Mutex
	last *Set
	body []byte
	etag string
}

// NewHandler returns a Handler over store. log may be nil.
func NewHandler(cfg HandlerConfig, store Store, log *slog.Logger) (*Handler, error) {
	if store == nil {
		return nil, errors.New("device: NewHandler: store is nil")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxDeviceBytes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg, store: store, log: log}, nil
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encode answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="netpulse"`)
	}
	writeJSON(w, status, apiError{msg})
}

// storeError answers a Store failure: the client's fault (400, 404, 409)
// with the reason, anything else as a 500 that is logged, not detailed.
func (h *Handler) storeError(w http.ResponseWriter, r *http.Request, err error) {
	var inv *InvalidError
	switch {
	case errors.As(err, &inv):
		writeError(w, http.StatusBadRequest, inv.Error())
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrExists):
		writeError(w, http.StatusConflict, err.Error())
	default:
		h.log.Error("device API: store failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "device store failed")
	}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	tok = strings.TrimSpace(tok)
	canWrite := tok != "" && h.cfg.Write != nil && h.cfg.Write(tok)
	canRead := canWrite || (tok != "" && h.cfg.Read != nil && h.cfg.Read(tok))
	if !canRead {
		writeError(w, http.StatusUnauthorized, "missing or unknown bearer token")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, APIPath)
	if !ok || (rest != "" && rest[0] != '/') {
		writeError(w, http.StatusNotFound, "no such resource")
		return
	}
	write := r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodDelete
	if rest == "" || rest == "/" {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			h.list(w, r)
		case http.MethodPost:
			if h.allowWrite(w, canWrite) {
				h.put(w, r, 0, PutCreate)
			}
		default:
			w.Header().Set("Allow", "GET, HEAD, POST")
			writeError(w, http.StatusMethodNotAllowed, "GET, HEAD or POST only")
		}
		return
	}
	id, err := strconv.ParseUint(rest[1:], 10, 64)
	if err != nil || id == 0 {
		writeError(w, http.StatusNotFound, "no such resource: a device is "+APIPath+"/{id}, id a positive integer")
		return
	}
	if write && r.Method != http.MethodPost && !h.allowWrite(w, canWrite) {
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.get(w, r, id)
	case http.MethodPut:
		h.put(w, r, id, PutReplace)
	case http.MethodDelete:
		if _, err := h.store.Delete(r.Context(), id); err != nil {
			h.storeError(w, r, err)
			return
		}
		h.log.Info("device API: device deleted", "id", id)
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, DELETE")
		writeError(w, http.StatusMethodNotAllowed, "GET, HEAD, PUT or DELETE only")
	}
}

func (h *Handler) allowWrite(w http.ResponseWriter, canWrite bool) bool {
	if !canWrite {
		writeError(w, http.StatusForbidden, "this token may read the device list, not change it")
	}
	return canWrite
}

// render returns the body and ETag of s, from the last rendering when s
// is the same list.
func (h *Handler) render(s *Set) ([]byte, string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s == h.last && h.body != nil {
		return h.body, h.etag, nil
	}
	canon, err := CanonicalJSON(s)
	if err != nil {
		return nil, "", err
	}
	v := versionOf(canon)
	var b bytes.Buffer
	b.Grow(len(canon) + len(v) + 32)
	b.WriteString(`{"version":"`)
	b.WriteString(v)
	b.WriteString(`","devices":`)
	b.Write(canon)
	b.WriteString("}\n")
	h.last, h.body, h.etag = s, b.Bytes(), `"`+v+`"`
	return h.body, h.etag, nil
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	s, err := h.store.List(r.Context())
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	body, etag, err := h.render(s)
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if noneMatch(r.Header.Values("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// noneMatch reports whether If-None-Match headers match etag, by the
// weak comparison RFC 9110 prescribes for it.
func noneMatch(headers []string, etag string) bool {
	for _, h := range headers {
		for _, t := range strings.Split(h, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == etag {
				return true
			}
		}
	}
	return false
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, id uint64) {
	s, err := h.store.List(r.Context())
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	d := s.ByID(id)
	if d == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("device %d: %v", id, ErrNotFound))
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// put adds (POST, id 0: from the body) or changes (PUT) a device. The
// body is strict, unlike a list a proxy reads: an operator's typo in a
// key is an error, not a silently ignored setting.
func (h *Handler) put(w http.ResponseWriter, r *http.Request, id uint64, mode PutMode) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	dec.DisallowUnknownFields()
	var d Device
	if err := dec.Decode(&d); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", h.cfg.MaxBody))
			return
		}
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "body: data after the JSON object")
		return
	}
	if mode == PutReplace {
		if d.ID != 0 && d.ID != id {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("id %d in the body is not the path's %d", d.ID, id))
			return
		}
		d.ID = id
	}
	s, err := h.store.Put(r.Context(), d, mode)
	if err != nil {
		h.storeError(w, r, err)
		return
	}
	stored := s.ByID(d.ID)
	if stored == nil { // a Store that lost the change it just made
		h.storeError(w, r, fmt.Errorf("device %d missing after Put", d.ID))
		return
	}
	status := http.StatusOK
	if mode == PutCreate {
		status = http.StatusCreated
		w.Header().Set("Location", APIPath+"/"+strconv.FormatUint(d.ID, 10))
		h.log.Info("device API: device added", "id", d.ID, "name", d.Name)
	} else {
		h.log.Info("device API: device changed", "id", d.ID, "name", d.Name)
	}
	writeJSON(w, status, stored)
}
