package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Ack is the JSON body of a 200 answer.
type Ack struct {
	BatchID string `json:"batch_id"`
	// Accepted is the number of records of the batch the collector holds
	// (now, or already when Duplicate).
	Accepted int `json:"accepted"`
	// Duplicate is set when the collector already had this batch id: it
	// acknowledged it again and dropped the copy.
	Duplicate bool `json:"duplicate"`
}

// Action is what a sender does after an answer.
type Action int

// Actions, from the status code of an answer (see Classify).
const (
	// Acked: the batch is delivered; forget it.
	Acked Action = iota
	// Drop: the batch is malformed and will never be taken; drop it,
	// count it and log it.
	Drop
	// Split: the batch is too large; split it in two and send each half
	// (a single record that is too large is dropped).
	Split
	// Retry: the collector is unavailable; retry later, after RetryAfter
	// when given.
	Retry
	// AuthRetry: the token was refused. Keep the batch and retry later,
	// since the configuration may be fixed meanwhile.
	AuthRetry
)

func (a Action) String() string {
	switch a {
	case Acked:
		return "acked"
	case Drop:
		return "drop"
	case Split:
		return "split"
	case Retry:
		return "retry"
	case AuthRetry:
		return "auth"
	}
	return "unknown"
}

// Classify maps an HTTP status code to what the sender does.
func Classify(status int) Action {
	switch {
	case status == http.StatusOK:
		return Acked
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return AuthRetry
	case status == http.StatusRequestEntityTooLarge:
		return Split
	case status == http.StatusTooManyRequests || status == http.StatusRequestTimeout:
		return Retry
	case status >= 500:
		return Retry
	case status >= 400:
		return Drop
	}
	// 1xx, other 2xx and 3xx are not part of the protocol: a proxy in
	// between answered, not the collector. Retry rather than lose data.
	return Retry
}

// Result is a collector's answer to one POST.
type Result struct {
	Status int
	Action Action
	// Ack is set when Action is Acked.
	Ack Ack
	// RetryAfter is the Retry-After of a 429 or 503, or 0.
	RetryAfter time.Duration
	// Message is the start of an error answer's body, for logs.
	Message string
}

// Post sends one encoded batch to url (the full URL, ending in Path) and
// reads the answer. An error means no answer came (the connection failed or
// ctx ended): the sender retries, and the batch id makes the retry safe.
func Post(ctx context.Context, c *http.Client, url, token, batchID string, body []byte) (Result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Result{}, fmt.Errorf("wire: request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("Content-Encoding", ContentEncoding)
	req.Header.Set(HeaderBatchID, batchID)
	req.Header.Set(HeaderSchema, SchemaVersion)
	resp, err := c.Do(req)
	if err != nil {
		return Result{}, fmt.Errorf("wire: post: %w", err)
	}
	defer resp.Body.Close()
	r := Result{Status: resp.StatusCode, Action: Classify(resp.StatusCode)}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		// The answer was cut: whether the batch was taken is unknown.
		return Result{}, fmt.Errorf("wire: read answer (status %d): %w", resp.StatusCode, err)
	}
	if r.Action == Acked {
		if err := json.Unmarshal(data, &r.Ack); err != nil || r.Ack.BatchID != batchID {
			// A 200 that is not our acknowledgement: something other than
			// a collector answered. Retrying is safe.
			r.Action = Retry
			r.Message = "200 without a valid acknowledgement: " + truncate(string(data), 200)
		}
		return r, nil
	}
	r.Message = strings.TrimSpace(truncate(string(data), 200))
	r.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return r, nil
}

// ParseRetryAfter reads a Retry-After header (delay in seconds or HTTP
// date); 0 when absent or unreadable.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(min(s, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}
