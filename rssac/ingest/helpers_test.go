package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/probe/result"
	"github.com/netpulse/netpulse/rssac"
	"github.com/netpulse/netpulse/rssac/rstore"
)

var oct = time.Date(2026, time.October, 1, 0, 0, 0, 0, time.UTC)

// Tokens of the tests: one per vantage point.
const (
	token001 = "token-of-vp-001-xxxxxxxx"
	token002 = "token-of-vp-002-xxxxxxxx"
)

var testTokens = map[string]string{token001: "001", token002: "002"}

// testRun is a run of vp at slot: for two servers, SOA over UDP and TCP
// on IPv4 and IPv6, one correctness query each (a., answered; b., the
// answer that the test checker calls incorrect), and a timeout.
func testRun(vp string, slot time.Time) *result.Run {
	r := &result.Run{Version: result.Version, VP: vp, Slot: slot, Start: slot.Add(17 * time.Second), End: slot.Add(50 * time.Second),
		Clock: result.Clock{Synced: true, Source: "adjtimex"}, Software: "netpulse test"}
	for i, srv := range []string{"a.root-servers.net", "b.root-servers.net"} {
		for _, tr := range []string{result.UDP, result.TCP} {
			for _, fam := range []int{4, 6} {
				addr := "198.51.100.1"
				if fam == 6 {
					addr = "2001:db8::1"
				}
				r.Queries = append(r.Queries, result.Query{Target: srv, Address: addr, Port: 53, Family: fam, Transport: tr,
					Purpose: result.PurposeSOA, QName: ".", QType: "SOA", Sent: slot.Add(20 * time.Second), RTTMS: 12.345678 + float64(i),
					Response: &result.Response{RCode: 0, RCodeName: "NOERROR", Flags: []string{"qr", "aa"}, Size: 100,
						Answer:    []result.RR{{Name: ".", TTL: 86400, Class: "IN", Type: "SOA", RData: "a.root-servers.net. nstld.verisign-grs.com. 2026100100 1800 900 604800 86400"}},
						SOASerial: 2026100100, HasSerial: true}})
			}
		}
		r.Queries = append(r.Queries, result.Query{Target: srv, Address: "198.51.100.1", Port: 53, Family: 4, Transport: result.UDP,
			Purpose: result.PurposeCorrectness, QName: ".", QType: "DNSKEY", DO: true, BufSize: 1220, Sent: slot.Add(30 * time.Second), RTTMS: 20,
			Response: &result.Response{RCode: 0, RCodeName: "NOERROR", Flags: []string{"qr", "aa"}, Size: 800}})
	}
	r.Queries = append(r.Queries, result.Query{Target: "c.root-servers.net", Address: "198.51.100.3", Port: 53, Family: 4, Transport: result.UDP,
		Purpose: result.PurposeSOA, QName: ".", QType: "SOA", Sent: slot.Add(20 * time.Second), Timeout: true})
	return r
}

func marshal(t testing.TB, r *result.Run) []byte {
	t.Helper()
	b, err := result.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testChecker calls b.root-servers.net's answers incorrect and the rest
// correct, and counts its calls.
type testChecker struct {
	mu    sync.Mutex
	calls int
}

func (c *testChecker) Check(_ time.Time, q *result.Query) (rssac.Verdict, string) {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	if q.Target == "b.root-servers.net" {
		return rssac.Incorrect, "DNSKEY RRset differs"
	}
	return rssac.Correct, ""
}

// failingStore fails AddRun while fail is set.
type failingStore struct {
	rstore.Store
	mu   sync.Mutex
	fail bool
}

func (f *failingStore) AddRun(ctx context.Context, key rstore.RunKey, obs []rssac.Observation) error {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return errors.New("disk on fire")
	}
	return f.Store.AddRun(ctx, key, obs)
}

type env struct {
	in      *Ingester
	store   rstore.Store
	srv     *httptest.Server
	archive string
	reject  string
	checker *testChecker
	now     time.Time
}

func newEnv(t *testing.T, cfg Config, st rstore.Store) *env {
	t.Helper()
	dir := t.TempDir()
	if st == nil {
		st = rstore.NewMemory()
	}
	e := &env{store: st, archive: filepath.Join(dir, "rssac", "originals"), reject: filepath.Join(dir, "rssac", "rejected"),
		checker: &testChecker{}, now: oct.Add(time.Hour)}
	cfg.ArchiveDir, cfg.RejectDir = e.archive, e.reject
	in, err := New(cfg, Deps{Store: st, Tokens: testTokens, Checker: e.checker, Now: func() time.Time { return e.now },
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e.in = in
	e.srv = httptest.NewServer(in)
	t.Cleanup(e.srv.Close)
	return e
}

// post uploads body as a probe does; edit may change the request first.
func (e *env) post(t testing.TB, token, name string, body []byte, edit func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+Path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("Content-Encoding", ContentEncoding)
	req.Header.Set(HeaderName, name)
	if edit != nil {
		edit(req)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// files lists the files under dir, relative, sorted.
func files(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return filepath.SkipAll
		}
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func stored(t testing.TB, st rstore.Store) []rssac.Observation {
	t.Helper()
	obs, err := rstore.Collect(st.Observations(context.Background(), oct.AddDate(-1, 0, 0), oct.AddDate(1, 0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	return obs
}
