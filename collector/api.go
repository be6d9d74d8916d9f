package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/netpulse/netpulse/store"
)

// api serves the query API of docs/collector.md to operators' tokens.
type api struct {
	s    *Server
	auth func(token string) bool
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// allow checks the method and the bearer token.
func (a *api) allow(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "GET only")
		return false
	}
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !a.auth(strings.TrimSpace(tok)) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="netpulse"`)
		writeError(w, http.StatusUnauthorized, "missing or unknown bearer token (an operator's token: collector.api_tokens_file)")
		return false
	}
	return true
}

// QueryResponse is the answer of GET /api/v1/query.
type QueryResponse struct {
	From    time.Time   `json:"from"`
	To      time.Time   `json:"to"`
	Step    string      `json:"step,omitempty"`
	GroupBy []store.Dim `json:"group_by,omitempty"`
	OrderBy string      `json:"order_by"`
	Table   store.Table `json:"table"`
	Rows    []store.Row `json:"rows"`
}

func (a *api) query(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r) {
		return
	}
	q, err := ParseQuery(r.URL.Query(), a.s.now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	res, err := a.s.store.Query(ctx, q)
	if err != nil {
		a.s.log.Warn("collector: query failed", "err", err)
		writeError(w, http.StatusInternalServerError, "query failed: "+err.Error())
		return
	}
	out := QueryResponse{From: q.From.UTC(), To: q.To.UTC(), GroupBy: q.GroupBy, OrderBy: string(q.OrderBy), Table: res.Table, Rows: res.Rows}
	if q.Step > 0 {
		out.Step = q.Step.String()
	}
	if out.Rows == nil {
		out.Rows = []store.Row{}
	}
	writeJSON(w, http.StatusOK, out)
}

// ParseQuery reads the query parameters of GET /api/v1/query:
//
//	from, to   RFC 3339, Unix seconds, "now", or relative to now ("-1h", "-30m")
//	           (default: the last hour)
//	step       a duration ("1m", "1h"): a time series; none: totals (top-N)
//	group_by   dimensions, comma-separated
//	filter     DIM=V1,V2 (equals one of) or DIM!=V1,V2 (equals none); repeatable
//	order_by   bytes (default), packets or flows
//	limit      top-N groups (default 10 with group_by; 0 = all)
//	table      force flows, flows_1m or flows_1h
//
// With a step, from and to are widened to whole steps so that the rollups
// can answer.
func ParseQuery(v map[string][]string, now time.Time) (store.Query, error) {
	get := func(k string) string {
		if len(v[k]) == 0 {
			return ""
		}
		return v[k][len(v[k])-1]
	}
	var q store.Query
	var err error
	if q.From, err = parseTime(get("from"), now, now.Add(-time.Hour)); err != nil {
		return q, fmt.Errorf("from: %w", err)
	}
	if q.To, err = parseTime(get("to"), now, now); err != nil {
		return q, fmt.Errorf("to: %w", err)
	}
	if s := get("step"); s != "" {
		if q.Step, err = time.ParseDuration(s); err != nil || q.Step < time.Second {
			return q, fmt.Errorf("step: %q is not a duration of at least 1s (like 1m or 1h)", s)
		}
		q.Step = q.Step.Truncate(time.Second)
		q.From = q.From.Truncate(q.Step)
		if t := q.To.Truncate(q.Step); !t.Equal(q.To) {
			q.To = t.Add(q.Step)
		}
	}
	if s := get("group_by"); s != "" {
		for _, name := range strings.Split(s, ",") {
			d, err := store.ParseDim(strings.TrimSpace(name))
			if err != nil {
				return q, fmt.Errorf("group_by: %w", err)
			}
			if slices.Contains(q.GroupBy, d) {
				return q, fmt.Errorf("group_by: %s listed twice", d)
			}
			q.GroupBy = append(q.GroupBy, d)
		}
	}
	for _, f := range v["filter"] {
		name, vals, ok := strings.Cut(f, "=")
		if !ok {
			return q, fmt.Errorf("filter %q: want DIM=V1,V2 or DIM!=V1,V2", f)
		}
		op := store.OpEq
		if n, found := strings.CutSuffix(name, "!"); found {
			name, op = n, store.OpNe
		}
		d, err := store.ParseDim(strings.TrimSpace(name))
		if err != nil {
			return q, fmt.Errorf("filter: %w", err)
		}
		q.Filters = append(q.Filters, store.Filter{Dim: d, Op: op, Values: strings.Split(vals, ",")})
	}
	q.OrderBy = store.Metric(get("order_by"))
	if q.OrderBy == "" {
		q.OrderBy = store.MetricBytes
	}
	if len(q.GroupBy) > 0 {
		q.Limit = 10
	}
	if s := get("limit"); s != "" {
		if q.Limit, err = strconv.Atoi(s); err != nil || q.Limit < 0 || q.Limit > 100000 {
			return q, fmt.Errorf("limit: %q is not a number from 0 to 100000", s)
		}
	}
	q.Table = store.Table(get("table"))
	return q, q.Validate()
}

func parseTime(s string, now, def time.Time) (time.Time, error) {
	switch {
	case s == "":
		return def, nil
	case s == "now":
		return now, nil
	case strings.HasPrefix(s, "-"):
		d, err := time.ParseDuration(s[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a relative time like -1h", s)
		}
		return now.Add(-d), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errors.New("not RFC 3339, Unix seconds, now or -DURATION: " + strconv.Quote(s))
	}
	return t, nil
}

func (a *api) listProxies(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"proxies": a.s.proxies.List()})
}

// Status is the answer of GET /api/v1/status.
type Status struct {
	Started time.Time   `json:"started"`
	Store   store.Info  `json:"store"`
	Ingest  IngestStats `json:"ingest"`
	Devices int         `json:"devices"`
	Proxies int         `json:"proxies"`
}

// IngestStats sums up ingest since start.
type IngestStats struct {
	BatchesStored    uint64            `json:"batches_stored"`
	RecordsStored    uint64            `json:"records_stored"`
	DuplicateRecords uint64            `json:"duplicate_records"`
	RepeatedBatches  uint64            `json:"repeated_batches"`
	Rejected         map[string]uint64 `json:"rejected"`
	StoreErrors      uint64            `json:"store_errors"`
	DedupKeys        int               `json:"dedup_keys"`
}

// Stats returns the ingest counters.
func (s *Server) Stats() IngestStats {
	hs := s.ingest.Stats()
	ds := s.dedup.Stats()
	return IngestStats{
		BatchesStored: s.metrics.batches.Load(), RecordsStored: s.metrics.records.Load(),
		DuplicateRecords: ds.Duplicates, RepeatedBatches: hs.Duplicates,
		Rejected: hs.Rejected, StoreErrors: s.metrics.storeErrors.Load(), DedupKeys: ds.Keys,
	}
}

func (a *api) status(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r) {
		return
	}
	info, err := a.s.store.Info(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "store: "+err.Error())
		return
	}
	devs, _ := a.s.devices.List(r.Context())
	writeJSON(w, http.StatusOK, Status{Started: a.s.started, Store: info, Ingest: a.s.Stats(), Devices: devs.Len(), Proxies: len(a.s.proxies.List())})
}

func (a *api) dimensions(w http.ResponseWriter, r *http.Request) {
	if !a.allow(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"dimensions": store.Dims, "rollup_dimensions": store.RollupDims})
}
