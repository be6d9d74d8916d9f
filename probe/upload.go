package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// UploadPath is the collector's ingest path for result files, used when
// upload.url has no path.
const UploadPath = "/api/v1/rssac/results"

// ResultNameHeader carries the result file's name in an upload, so that
// the collector files it and recognises a duplicate.
const ResultNameHeader = "X-Netpulse-Result-Name"

// errRejected marks a file the collector refused for good (400, 413,
// 415, 422): sending it again would not help.
var errRejected = errors.New("rejected by the collector")

// maxRetryAfter bounds how long a collector's Retry-After may hold the
// queue back, so that a wrong or hostile value cannot stop uploads.
const maxRetryAfter = time.Hour

// retryLater is a failure whose answer said when to come back
// (Retry-After on 429 or 503).
type retryLater struct {
	err   error
	after time.Duration
}

func (e *retryLater) Error() string { return e.err.Error() }
func (e *retryLater) Unwrap() error { return e.err }

// parseRetryAfter reads a Retry-After value (RFC 9110 §10.2.3: seconds,
// or an HTTP date) as a wait from now; false when absent or unreadable.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return min(time.Duration(secs)*time.Second, maxRetryAfter), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter), true
	}
	return 0, false
}

// uploader sends the queued files to the collector, oldest first, and
// retries with a doubling backoff until each is acknowledged.
type uploader struct {
	url    string
	token  string
	client *http.Client
	st     store
	cfg    UploadConfig
	log    *slog.Logger
	sleep  func(context.Context, time.Duration) error
	m      *metrics
	kick   chan struct{}
}

// upload posts one file. 200 and 201 acknowledge it; 409 says the
// collector has it already, which acknowledges it too (a retry after a
// lost answer).
func (u *uploader) upload(ctx context.Context, name string, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.url, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+u.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set(ResultNameHeader, name)
	resp, err := u.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusConflict:
		return nil
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		return fmt.Errorf("%w: %s: %s", errRejected, resp.Status, bytes.TrimSpace(body))
	}
	err = fmt.Errorf("collector answered %s: %s", resp.Status, bytes.TrimSpace(body))
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return &retryLater{err: err, after: d}
		}
	}
	return err
}

// drain tries every queued file once, oldest first, and stops at the
// first failure (the collector is likely down for the rest too). A file
// the collector rejects is moved to rejected/ and the next one tried.
func (u *uploader) drain(ctx context.Context) error {
	names, err := u.st.pending()
	if err != nil {
		return fmt.Errorf("probe: upload queue: %w", err)
	}
	for _, name := range names {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		data, err := u.st.readPending(name)
		if err != nil {
			u.log.Error("probe: unreadable queued file set aside", "file", name, "err", err)
			u.m.uploadRejected.Add(1)
			if rerr := u.st.reject(name); rerr != nil {
				return fmt.Errorf("probe: set aside %s: %w", name, rerr)
			}
			continue
		}
		err = u.upload(ctx, name, data)
		if errors.Is(err, errRejected) {
			u.m.uploadRejected.Add(1)
			u.log.Error("probe: the collector rejected a result file; moved to rejected/", "file", name, "err", err)
			if rerr := u.st.reject(name); rerr != nil {
				return fmt.Errorf("probe: set aside %s: %w", name, rerr)
			}
			continue
		}
		if err != nil {
			u.m.uploadErrors.Add(1)
			return fmt.Errorf("probe: upload %s: %w", name, err)
		}
		u.m.uploadsOK.Add(1)
		if err := u.st.ack(name); err != nil {
			return fmt.Errorf("probe: unqueue %s: %w", name, err)
		}
	}
	return nil
}

// loop drains the queue at start, after every new file, and after a
// failure once the backoff has passed: Retry, doubled after each failure
// up to MaxRetry, back to Retry after a success. When the collector said
// when to come back (Retry-After, at most an hour), the wait is at least
// that.
func (u *uploader) loop(ctx context.Context) {
	backoff := u.cfg.Retry
	for {
		err := u.drain(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			backoff = u.cfg.Retry
			select {
			case <-ctx.Done():
				return
			case <-u.kick:
			}
			continue
		}
		wait := backoff
		if rl := (*retryLater)(nil); errors.As(err, &rl) {
			wait = max(wait, rl.after)
		}
		u.log.Warn("probe: upload failed; retrying", "in", wait, "err", err)
		if u.sleep(ctx, wait) != nil {
			return
		}
		backoff = min(2*backoff, u.cfg.MaxRetry)
	}
}

// notify wakes the loop for a new file without blocking.
func (u *uploader) notify() {
	select {
	case u.kick <- struct{}{}:
	default:
	}
}
