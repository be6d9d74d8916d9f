package ingest

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/netpulse/netpulse/probe/result"
)

// TestImportDir: a drop folder with a new run, a run already uploaded
// over HTTP, a corrupt file, another vantage point's file, a file still
// being written, an rsync temporary file and a stray file. One pass
// stores the new run, drops the duplicate, rejects the two bad files and
// leaves the rest; the next pass, later, takes the settled file.
func TestImportDir(t *testing.T) {
	e := newEnv(t, Config{Settle: time.Minute}, nil)
	drop := t.TempDir()
	old := e.now.Add(-time.Hour)
	write := func(name string, data []byte, mtime time.Time) {
		t.Helper()
		p := filepath.Join(drop, name)
		if err := os.WriteFile(p, data, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	s1, s2, s3 := oct, oct.Add(5*time.Minute), oct.Add(10*time.Minute)
	posted := marshal(t, testRun("001", s2))
	if code, _ := e.post(t, token001, result.FileName("001", s2), posted, nil); code != http.StatusCreated {
		t.Fatal(code)
	}
	write("run-a.json.gz", marshal(t, testRun("001", s1)), old)   // new, under a name of the probe's own
	write(result.FileName("001", s2), posted, old)                // POSTed before
	write("broken.json.gz", []byte("\x1f\x8b\x08garbage"), old)   // corrupt
	write("other.json.gz", marshal(t, testRun("002", s1)), old)   // 002's in 001's folder
	write("fresh.json.gz", marshal(t, testRun("001", s3)), e.now) // being written
	write(".fresh2.json.gz.Xy12", []byte("partial"), old)         // rsync's temporary file
	write("notes.txt", []byte("not a result"), old)               // not ours

	st, err := e.in.ImportDir(context.Background(), drop, "001")
	if err != nil {
		t.Fatal(err)
	}
	if want := (ImportStats{Stored: 1, Duplicates: 1, Rejected: 2, Waiting: 1}); st != want {
		t.Errorf("first pass: %+v, want %+v", st, want)
	}
	if got, want := files(t, drop), []string{".fresh2.json.gz.Xy12", "fresh.json.gz", "notes.txt"}; !slices.Equal(got, want) {
		t.Errorf("drop folder after the first pass: %q, want %q", got, want)
	}
	if got, want := files(t, e.reject), []string{"broken.json.gz", "other.json.gz"}; !slices.Equal(got, want) {
		t.Errorf("reject folder: %q, want %q", got, want)
	}
	// Archived under the conventional name, whatever the drop name.
	if got, want := files(t, e.archive), []string{"202610/001-20261001T0000.json.gz", "202610/001-20261001T0005.json.gz"}; !slices.Equal(got, want) {
		t.Errorf("archive: %q, want %q", got, want)
	}
	runs, err := e.store.Runs(context.Background(), oct, oct.AddDate(0, 1, 0))
	if err != nil || len(runs) != 1 || runs[0].VP != "001" || runs[0].Runs != 2 {
		t.Errorf("Runs after the first pass: %+v %v", runs, err)
	}
	if e.in.Results(SourceDir, Stored) != 1 || e.in.Results(SourceDir, Duplicate) != 1 || e.in.Results(SourceDir, BadGzip) != 1 || e.in.Results(SourceDir, Forbidden) != 1 {
		t.Error("dir outcomes miscounted")
	}

	// Later: the settled file goes in; a file of the same name as a
	// rejected one is rejected beside it.
	e.now = e.now.Add(2 * time.Minute)
	write("broken.json.gz", []byte("not gzip"), old)
	st, err = e.in.ImportDir(context.Background(), drop, "001")
	if err != nil {
		t.Fatal(err)
	}
	if want := (ImportStats{Stored: 1, Rejected: 1}); st != want {
		t.Errorf("second pass: %+v, want %+v", st, want)
	}
	if got, want := files(t, e.reject), []string{"broken.json.gz", "broken.json.gz.1", "other.json.gz"}; !slices.Equal(got, want) {
		t.Errorf("reject folder: %q, want %q", got, want)
	}
	if n := len(stored(t, e.store)); n != 3*len(testRun("001", oct).Queries) {
		t.Errorf("%d observations, want 3 runs' worth", n)
	}
	// A folder open to every vantage point takes 002's file too.
	write("other2.json.gz", marshal(t, testRun("002", s1)), old)
	if st, err := e.in.ImportDir(context.Background(), drop, ""); err != nil || st.Stored != 1 {
		t.Errorf("open folder: %+v %v", st, err)
	}
}

// TestImportDirStoreFails: files the store failed on stay for the next
// pass, and the pass reports the error.
func TestImportDirStoreFails(t *testing.T) {
	fs := &failingStore{fail: true}
	e := newEnv(t, Config{}, nil)
	fs.Store = e.store
	e.in.store = fs
	drop := t.TempDir()
	p := filepath.Join(drop, "a.json.gz")
	if err := os.WriteFile(p, marshal(t, testRun("001", oct)), 0o640); err != nil {
		t.Fatal(err)
	}
	old := e.now.Add(-time.Hour)
	os.Chtimes(p, old, old)
	st, err := e.in.ImportDir(context.Background(), drop, "001")
	if err == nil || st.Failed != 1 {
		t.Fatalf("%+v %v, want one failure and an error", st, err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Errorf("the file left the drop folder: %v", err)
	}
	if f := files(t, e.archive); len(f) != 0 {
		t.Errorf("archive holds %q", f)
	}
	fs.mu.Lock()
	fs.fail = false
	fs.mu.Unlock()
	if st, err := e.in.ImportDir(context.Background(), drop, "001"); err != nil || st.Stored != 1 {
		t.Errorf("next pass: %+v %v", st, err)
	}
	if _, err := e.in.ImportDir(context.Background(), filepath.Join(drop, "missing"), ""); err == nil {
		t.Error("a missing folder: no error")
	}
}

// TestMoveFileAcrossFileSystems: the copy path of moveFile, as between
// /sftp and the data directory, from /dev/shm when it exists.
func TestMoveFileAcrossFileSystems(t *testing.T) {
	src := t.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "rssac-ingest-"); err == nil {
			src = d
			t.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	dst := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := moveFile(filepath.Join(src, "f"), filepath.Join(dst, "f")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "f")); err != nil || string(b) != "data" {
		t.Errorf("moved file: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(src, "f")); !os.IsNotExist(err) {
		t.Errorf("source still there: %v", err)
	}
	if err := os.WriteFile(filepath.Join(src, "g"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := moveFile(filepath.Join(src, "g"), filepath.Join(dst, "f")); err == nil {
		t.Error("moveFile overwrote a file")
	}
}
