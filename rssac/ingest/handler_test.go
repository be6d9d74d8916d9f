package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netpulse/netpulse/internal/promtest"
	"github.com/netpulse/netpulse/probe/result"
	"github.com/netpulse/netpulse/rssac"
	"github.com/netpulse/netpulse/rssac/rstore"
	"github.com/prometheus/client_golang/prometheus"
)

// TestUploadStoredThenDuplicate: a good upload is stored (every query an
// observation, correctness verdicts from the Checker) and archived
// byte for byte in its yyyymm folder; the same upload again is a 409
// that changes nothing.
func TestUploadStoredThenDuplicate(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	slot := oct.Add(35 * time.Minute)
	run := testRun("001", slot)
	body := marshal(t, run)
	name := result.FileName("001", slot)
	code, resp := e.post(t, token001, name, body, nil)
	if code != http.StatusCreated {
		t.Fatalf("upload: %d %s", code, resp)
	}
	var a Answer
	if err := json.Unmarshal([]byte(resp), &a); err != nil {
		t.Fatal(err)
	}
	if a.Outcome != Stored || a.VP != "001" || !a.Slot.Equal(slot) || a.Observations != len(run.Queries) || a.Archived != "202610/001-20261001T0035.json.gz" {
		t.Errorf("answer %+v", a)
	}
	obs := stored(t, e.store)
	if len(obs) != len(run.Queries) {
		t.Fatalf("%d observations stored, want %d", len(obs), len(run.Queries))
	}
	want := rssac.FromRun(run)
	for i := range want {
		if want[i].Kind == rssac.KindCorrectness {
			want[i].Verdict = rssac.Correct
			if want[i].Server == "b.root-servers.net" {
				want[i].Verdict = rssac.Incorrect
			}
		}
	}
	sortObs := func(o []rssac.Observation) {
		slices.SortFunc(o, func(a, b rssac.Observation) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	}
	sortObs(obs)
	sortObs(want)
	for i := range want {
		if !obs[i].Slot.Equal(want[i].Slot) || fmt.Sprint(obs[i]) != fmt.Sprint(want[i]) {
			t.Errorf("observation %d:\n got %+v\nwant %+v", i, obs[i], want[i])
		}
	}
	if e.checker.calls != 2 {
		t.Errorf("checker called %d times, want 2 (the answered correctness queries)", e.checker.calls)
	}
	if got := files(t, e.archive); !slices.Equal(got, []string{"202610/001-20261001T0035.json.gz"}) {
		t.Fatalf("archive holds %q", got)
	}
	archived, err := os.ReadFile(filepath.Join(e.archive, "202610", name))
	if err != nil || !bytes.Equal(archived, body) {
		t.Errorf("archived original differs from the upload (%v)", err)
	}
	fi, _ := os.Stat(filepath.Join(e.archive, "202610", name))

	// Again: 409, nothing doubled, the archive untouched.
	e.now = e.now.Add(time.Minute)
	code, resp = e.post(t, token001, name, body, nil)
	if code != http.StatusConflict || !strings.Contains(resp, `"outcome":"duplicate"`) {
		t.Fatalf("second upload: %d %s", code, resp)
	}
	if n := len(stored(t, e.store)); n != len(run.Queries) {
		t.Errorf("%d observations after the duplicate, want %d", n, len(run.Queries))
	}
	runs, err := e.store.Runs(context.Background(), oct, oct.AddDate(0, 1, 0))
	if err != nil || len(runs) != 1 || runs[0].Runs != 1 {
		t.Errorf("Runs after the duplicate: %+v %v", runs, err)
	}
	fi2, _ := os.Stat(filepath.Join(e.archive, "202610", name))
	if got := files(t, e.archive); len(got) != 1 || !fi2.ModTime().Equal(fi.ModTime()) {
		t.Errorf("archive changed by the duplicate: %q", got)
	}
	if e.in.Results(SourceHTTP, Stored) != 1 || e.in.Results(SourceHTTP, Duplicate) != 1 {
		t.Errorf("counted %d stored, %d duplicates", e.in.Results(SourceHTTP, Stored), e.in.Results(SourceHTTP, Duplicate))
	}
	if n := e.in.m.observations.Load(); n != uint64(len(run.Queries)) {
		t.Errorf("observations counter %d", n)
	}
	if v := [3]uint64{e.in.m.verdicts[0].Load(), e.in.m.verdicts[1].Load(), e.in.m.verdicts[2].Load()}; v != [3]uint64{0, 1, 1} {
		t.Errorf("verdict counters %v, want [0 1 1]", v)
	}
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

// TestUploadRefused: every bad request gets its status, is counted under
// its outcome, and leaves the store and the archive as they were.
func TestUploadRefused(t *testing.T) {
	slot := oct.Add(5 * time.Minute)
	good := marshal(t, testRun("001", slot))
	name := result.FileName("001", slot)
	v2 := testRun("001", slot)
	v2.Version = 2
	v2json, _ := json.Marshal(v2)
	noVP := testRun("", slot)
	noVPjson, _ := json.Marshal(noVP)
	old := time.Date(1969, 12, 31, 23, 55, 0, 0, time.UTC)
	before1970 := marshal(t, testRun("001", old))
	corrupt := slices.Clone(good)
	corrupt[len(corrupt)/2] ^= 0xff
	badCRC := slices.Clone(good)
	badCRC[len(badCRC)-6] ^= 0xff // the CRC-32 in the trailer
	for _, tc := range []struct {
		name    string
		token   string
		file    string
		body    []byte
		edit    func(*http.Request)
		status  int
		outcome Outcome
	}{
		{"no token", "", name, good, nil, 401, Unauthorized},
		{"wrong token", "token-of-nobody-xxxxxxxxx", name, good, nil, 401, Unauthorized},
		{"another vp's token", token002, name, good, nil, 403, Forbidden},
		{"GET", token001, name, good, func(r *http.Request) { r.Method = http.MethodGet }, 405, BadMethod},
		{"content type", token001, name, good, func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, 415, BadMediaType},
		{"content encoding", token001, name, good, func(r *http.Request) { r.Header.Set("Content-Encoding", "zstd") }, 415, BadMediaType},
		{"no name", token001, "", good, nil, 400, BadName},
		{"unsafe name", token001, "../001-20261001T0005.json.gz", good, nil, 400, BadName},
		{"name of another slot", token001, result.FileName("001", slot.Add(5*time.Minute)), good, nil, 400, BadName},
		{"not gzip", token001, name, []byte(`{"version":1}`), nil, 400, BadGzip},
		{"corrupt gzip", token001, name, corrupt, nil, 400, BadGzip},
		{"bad gzip checksum", token001, name, badCRC, nil, 400, BadGzip},
		{"truncated gzip", token001, name, good[:len(good)-20], nil, 400, BadGzip},
		{"empty body", token001, name, nil, nil, 400, BadGzip},
		{"unknown schema version", token001, name, gz(t, v2json), nil, 415, UnknownVersion},
		{"not json", token001, name, gz(t, []byte("pickle\x80")), nil, 400, BadDocument},
		{"invalid document", token001, name, gz(t, noVPjson), nil, 400, BadDocument},
		{"slot before 1970", token001, result.FileName("001", old), before1970, nil, 400, BadDocument},
		{"unknown field", token001, name, gz(t, []byte(`{"version":1,"vp":"001","extra":1}`)), nil, 400, BadDocument},
		{"too big", token001, name, append(slices.Clone(good), make([]byte, 4096)...), nil, 413, TooLarge},
		{"too big, chunked", token001, name, append(slices.Clone(good), make([]byte, 4096)...), func(r *http.Request) { r.ContentLength = -1 }, 413, TooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{MaxBytes: int64(len(good) + 1024)}, nil)
			code, resp := e.post(t, tc.token, tc.file, tc.body, tc.edit)
			if code != tc.status {
				t.Errorf("status %d, want %d (%s)", code, tc.status, resp)
			}
			if tc.edit == nil || tc.outcome != BadMethod {
				if !strings.Contains(resp, `"outcome":"`+string(tc.outcome)+`"`) {
					t.Errorf("answer %s, want outcome %s", resp, tc.outcome)
				}
			}
			for _, o := range outcomes {
				want := uint64(0)
				if o == tc.outcome {
					want = 1
				}
				if got := e.in.Results(SourceHTTP, o); got != want {
					t.Errorf("counted %d %s, want %d", got, o, want)
				}
			}
			if n := len(stored(t, e.store)); n != 0 {
				t.Errorf("%d observations stored", n)
			}
			if f := files(t, e.archive); len(f) != 0 {
				t.Errorf("archive holds %q", f)
			}
		})
	}
}

// TestUploadStoreFails: a store error is a 503 (the probe retries), with
// nothing archived and no temporary file left; the retry stores it.
func TestUploadStoreFails(t *testing.T) {
	fs := &failingStore{Store: rstore.NewMemory(), fail: true}
	e := newEnv(t, Config{}, fs)
	body := marshal(t, testRun("001", oct))
	name := result.FileName("001", oct)
	if code, resp := e.post(t, token001, name, body, nil); code != http.StatusServiceUnavailable || !strings.Contains(resp, `"outcome":"store_error"`) {
		t.Fatalf("upload with the store failing: %d %s", code, resp)
	}
	if f := files(t, e.archive); len(f) != 0 {
		t.Errorf("archive holds %q after a store error", f)
	}
	fs.mu.Lock()
	fs.fail = false
	fs.mu.Unlock()
	if code, resp := e.post(t, token001, name, body, nil); code != http.StatusCreated {
		t.Fatalf("retry: %d %s", code, resp)
	}
	if f := files(t, e.archive); !slices.Equal(f, []string{"202610/" + name}) {
		t.Errorf("archive holds %q", f)
	}
}

// TestArchiveHealsOnDuplicate: when the archive lost a stored run's
// original (a crash between the store and the rename), the probe's
// retry puts it back, and still gets a 409.
func TestArchiveHealsOnDuplicate(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	body := marshal(t, testRun("001", oct))
	name := result.FileName("001", oct)
	if code, _ := e.post(t, token001, name, body, nil); code != http.StatusCreated {
		t.Fatal(code)
	}
	path := filepath.Join(e.archive, "202610", name)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if code, _ := e.post(t, token001, name, body, nil); code != http.StatusConflict {
		t.Fatalf("retry: %d, want 409", code)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, body) {
		t.Errorf("original not put back (%v)", err)
	}
	if f := files(t, e.archive); len(f) != 1 {
		t.Errorf("archive holds %q", f)
	}
}

// TestArchiveUnwritable: when the original cannot be written, the run is
// not stored either (503): the probe keeps it and retries.
func TestArchiveUnwritable(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	if err := os.MkdirAll(e.archive, 0o750); err != nil {
		t.Fatal(err)
	}
	// A file where the month's folder should be.
	if err := os.WriteFile(filepath.Join(e.archive, "202610"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	code, resp := e.post(t, token001, result.FileName("001", oct), marshal(t, testRun("001", oct)), nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(resp, `"outcome":"archive_error"`) {
		t.Fatalf("%d %s", code, resp)
	}
	if n := len(stored(t, e.store)); n != 0 {
		t.Errorf("%d observations stored without their original", n)
	}
}

// TestCheckerPanics: a Checker that panics on a response leaves the
// query Unchecked, counted; the run is stored.
func TestCheckerPanics(t *testing.T) {
	st := rstore.NewMemory()
	dir := t.TempDir()
	in, err := New(Config{ArchiveDir: dir}, Deps{Store: st, Tokens: testTokens,
		Checker: CheckerFunc(func(time.Time, *result.Query) (rssac.Verdict, string) { panic("bad rdata") })})
	if err != nil {
		t.Fatal(err)
	}
	_, o, err := in.load(context.Background(), testRun("001", oct), marshal(t, testRun("001", oct)))
	if o != Stored || err != nil {
		t.Fatalf("load: %s %v", o, err)
	}
	if in.m.checkerPanics.Load() != 2 {
		t.Errorf("%d panics counted, want 2", in.m.checkerPanics.Load())
	}
	for _, ob := range stored(t, st) {
		if ob.Verdict != rssac.Unchecked {
			t.Errorf("verdict %d after a panic", ob.Verdict)
		}
	}
}

func TestNewRefusesBadTokens(t *testing.T) {
	if _, err := New(Config{ArchiveDir: t.TempDir()}, Deps{Store: rstore.NewMemory(), Tokens: map[string]string{"0123456789abcdef": "../x"}}); err == nil {
		t.Error("a token for an unsafe vantage point name was accepted")
	}
	if _, err := New(Config{}, Deps{Store: rstore.NewMemory()}); err == nil {
		t.Error("no archive directory accepted")
	}
	if _, err := New(Config{ArchiveDir: t.TempDir()}, Deps{}); err == nil {
		t.Error("no store accepted")
	}
}

func TestReadTokens(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, fmt.Sprintf("tokens%d", len(s)))
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := ReadTokens(write("# vantage points\n001 0123456789abcdef\n\n  002   fedcba9876543210xyz  \n"))
	if err != nil || len(got) != 2 || got["0123456789abcdef"] != "001" || got["fedcba9876543210xyz"] != "002" {
		t.Errorf("ReadTokens = %v, %v", got, err)
	}
	for _, bad := range []string{"001\n", "001 short\n", "../x 0123456789abcdef\n", "001 0123456789abcdef\n001 0123456789abcdeg\n",
		"001 0123456789abcdef\n002 0123456789abcdef\n", "001 0123456789abcdef extra\n"} {
		if _, err := ReadTokens(write(bad)); err == nil {
			t.Errorf("ReadTokens(%q) accepted", bad)
		}
	}
	if _, err := ReadTokens(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file accepted")
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, Config{}, nil)
	if code, _ := e.post(t, token001, result.FileName("001", oct), marshal(t, testRun("001", oct)), nil); code != http.StatusCreated {
		t.Fatal(code)
	}
	w, err := NewWatchdog(WatchdogConfig{}, WatchdogDeps{LastSlots: func(context.Context, time.Time) (map[string]time.Time, error) { return nil, nil },
		ZoneLast: func() time.Time { return oct }, DiskPath: "/", Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	w.Check(context.Background())
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e.in, w)
	promtest.Lint(t, reg, "netpulse_rssac_",
		"netpulse_rssac_ingest_results_total", "netpulse_rssac_ingest_observations_total",
		"netpulse_rssac_ingest_correctness_verdicts_total", "netpulse_rssac_ingest_last_result_timestamp_seconds",
		"netpulse_rssac_ingest_last_slot_timestamp_seconds", "netpulse_rssac_watchdog_problems",
		"netpulse_rssac_watchdog_alerts_total", "netpulse_rssac_watchdog_zone_age_seconds",
		"netpulse_rssac_watchdog_disk_used_ratio", "netpulse_rssac_watchdog_last_check_timestamp_seconds")
}
