package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"

	"github.com/netpulse/netpulse/probe/result"
)

// The upload protocol (docs/rssac-ingest.md).
const (
	// Path is where probes POST their results.
	Path = "/api/v1/rssac/results"
	// HeaderName carries the document's file name, result.FileName of its
	// vantage point and slot.
	HeaderName = "X-Netpulse-Result-Name"
	// ContentType and ContentEncoding are what an upload must declare.
	ContentType     = "application/json"
	ContentEncoding = "gzip"
)

// nameRE is a safe file name: no folder, no dot file.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.json\.gz$`)

// Answer is the JSON body of every response: what was loaded, or why not.
type Answer struct {
	Loaded
	Outcome Outcome `json:"outcome"`
	Error   string  `json:"error,omitempty"`
}

// ServeHTTP is the upload handler: POST Path.
//
// Status codes: 201 stored; 409 already stored (both acknowledge: the
// probe may drop its copy); 401 no or unknown token; 403 the document is
// another vantage point's; 405 not a POST; 413 too large; 415 wrong
// Content-Type or Content-Encoding, or a schema version this collector
// does not read; 400 anything else wrong with the request or document;
// 503 the store or the archive failed (retry later).
func (in *Ingester) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	refuse := func(status int, o Outcome, msg string) {
		in.m.count(SourceHTTP, o)
		in.log.Debug("rssac ingest: upload refused", "remote", r.RemoteAddr, "outcome", o, "err", msg)
		writeAnswer(w, status, Answer{Outcome: o, Error: msg})
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(http.StatusMethodNotAllowed, BadMethod, "POST only")
		return
	}
	tok, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !found {
		tok = ""
	}
	vp, ok := in.authenticate(strings.TrimSpace(tok))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="netpulse"`)
		refuse(http.StatusUnauthorized, Unauthorized, "missing or unknown bearer token (a probe's token: collector.rssac.probe_tokens_file)")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != ContentType {
		refuse(http.StatusUnsupportedMediaType, BadMediaType, "Content-Type must be "+ContentType)
		return
	}
	if !strings.EqualFold(strings.TrimSpace(r.Header.Get("Content-Encoding")), ContentEncoding) {
		refuse(http.StatusUnsupportedMediaType, BadMediaType, "Content-Encoding must be "+ContentEncoding)
		return
	}
	name := r.Header.Get(HeaderName)
	if !nameRE.MatchString(name) {
		refuse(http.StatusBadRequest, BadName, "missing or bad "+HeaderName+" header (want the result's file name, <vp>-<yyyymmddThhmm>.json.gz)")
		return
	}
	if r.ContentLength > in.cfg.MaxBytes {
		refuse(http.StatusRequestEntityTooLarge, TooLarge, fmt.Sprintf("body over %d bytes", in.cfg.MaxBytes))
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, in.cfg.MaxBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			refuse(http.StatusRequestEntityTooLarge, TooLarge, fmt.Sprintf("body over %d bytes", in.cfg.MaxBytes))
			return
		}
		// The client went away: nobody reads the answer, but count it.
		refuse(http.StatusBadRequest, BadDocument, "reading the body: "+err.Error())
		return
	}
	run, o, err := decode(data)
	if err != nil {
		refuse(statusOf(o), o, err.Error())
		return
	}
	if run.VP != vp {
		refuse(http.StatusForbidden, Forbidden, fmt.Sprintf("the document is vantage point %q's; this token uploads %q's only", run.VP, vp))
		return
	}
	if want := result.FileName(run.VP, run.Slot); name != want {
		refuse(http.StatusBadRequest, BadName, fmt.Sprintf("%s %q does not name the document (want %q)", HeaderName, name, want))
		return
	}
	ld, o, err := in.load(r.Context(), run, data)
	in.m.count(SourceHTTP, o)
	a := Answer{Loaded: ld, Outcome: o}
	switch o {
	case Stored:
		writeAnswer(w, http.StatusCreated, a)
	case Duplicate:
		writeAnswer(w, http.StatusConflict, a)
	case BadDocument:
		a.Error = err.Error()
		writeAnswer(w, http.StatusBadRequest, a)
	default:
		in.log.Warn("rssac ingest: result not kept; the probe will retry", "vp", ld.VP, "slot", ld.Slot, "outcome", o, "err", err)
		a.Error = "the collector could not keep the result, retry later"
		w.Header().Set("Retry-After", "60")
		writeAnswer(w, http.StatusServiceUnavailable, a)
	}
}

func writeAnswer(w http.ResponseWriter, status int, a Answer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(a)
	_, _ = w.Write(append(b, '\n'))
}

// decode gunzips data and decodes the document, telling a broken gzip
// stream (BadGzip) from a broken document (BadDocument, UnknownVersion)
// and either too large (TooLarge).
func decode(data []byte) (*result.Run, Outcome, error) {
	if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
		return nil, BadGzip, errors.New("not gzip")
	}
	if len(data) > result.MaxFileBytes {
		return nil, TooLarge, result.ErrTooBig
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, BadGzip, fmt.Errorf("gzip: %w", err)
	}
	plain, err := io.ReadAll(io.LimitReader(zr, result.MaxJSONBytes+1))
	if err != nil {
		return nil, BadGzip, fmt.Errorf("gzip: %w", err)
	}
	if len(plain) > result.MaxJSONBytes {
		return nil, TooLarge, result.ErrTooBig
	}
	// result.Decode reads plain JSON too, but only up to MaxFileBytes; a
	// larger document is decoded from the gzip again.
	src := plain
	if len(plain) > result.MaxFileBytes {
		src = data
	}
	run, err := result.Decode(src)
	switch {
	case errors.Is(err, result.ErrTooBig):
		return nil, TooLarge, err
	case errors.Is(err, result.ErrVersion):
		return nil, UnknownVersion, err
	case err != nil:
		return nil, BadDocument, err
	}
	return run, "", nil
}

// statusOf is the HTTP status of a refused document's outcome.
func statusOf(o Outcome) int {
	switch o {
	case TooLarge:
		return http.StatusRequestEntityTooLarge
	case UnknownVersion:
		return http.StatusUnsupportedMediaType
	}
	return http.StatusBadRequest
}
