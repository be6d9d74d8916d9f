package alert

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func openFile(t *testing.T, cfg FileConfig) *File {
	t.Helper()
	f, err := NewFile(cfg, Deps{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestFileRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log", "netpulse.log") // the directory is made
	f := openFile(t, FileConfig{Path: path, MaxSize: 40, MaxFiles: 2})
	for i := range 12 {
		fmt.Fprintf(f, "line %02d\n", i) // 8 bytes
	}
	stop(t, f)
	// 40 bytes hold five 8-byte lines: 12 lines make 00-04, 05-09, 10-11;
	// with two rotated files kept, all three are there.
	for _, tc := range []struct {
		name string
		want []string
	}{
		{path, []string{"line 10", "line 11"}},
		{path + ".1", []string{"line 05", "line 06", "line 07", "line 08", "line 09"}},
		{path + ".2", []string{"line 00", "line 01", "line 02", "line 03", "line 04"}},
	} {
		if got := lines(t, tc.name); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: %q, want %q", filepath.Base(tc.name), got, tc.want)
		}
	}
	// Reopened, it appends and counts the size already there: three more
	// lines fit, the fourth rotates, and the oldest file goes.
	f = openFile(t, FileConfig{Path: path, MaxSize: 40, MaxFiles: 2})
	for i := 12; i < 16; i++ {
		fmt.Fprintf(f, "line %02d\n", i)
	}
	stop(t, f)
	if got := lines(t, path); strings.Join(got, ",") != "line 15" {
		t.Errorf("current: %q", got)
	}
	if got := lines(t, path+".1"); len(got) != 5 || got[0] != "line 10" || got[4] != "line 14" {
		t.Errorf(".1: %q", got)
	}
	if got := lines(t, path+".2"); got[0] != "line 05" {
		t.Errorf(".2: %q", got)
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf(".3 kept: %v", err)
	}
	if st := f.Stats(); st.Sent != 4 || st.Failed != 0 || st.Errors != 0 {
		t.Errorf("stats %+v", st)
	}
	if _, err := f.Write([]byte("after stop\n")); err == nil || f.Stats().Failed != 1 {
		t.Errorf("write after Stop: %v, stats %+v", err, f.Stats())
	}
}

// TestFileLongLine: a line longer than MaxSize is written whole, in a file
// of its own.
func TestFileLongLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	f := openFile(t, FileConfig{Path: path, MaxSize: 10, MaxFiles: 3})
	for _, l := range []string{"short\n", strings.Repeat("L", 30) + "\n", "tail\n"} {
		if _, err := f.Write([]byte(l)); err != nil {
			t.Fatal(err)
		}
	}
	stop(t, f)
	for name, want := range map[string]string{path: "tail", path + ".1": strings.Repeat("L", 30), path + ".2": "short"} {
		if got := lines(t, name); len(got) != 1 || got[0] != want {
			t.Errorf("%s: %q, want %q", filepath.Base(name), got, want)
		}
	}
}

// TestFileConcurrent writes from many goroutines across rotations: no
// line is torn or lost.
func TestFileConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	f := openFile(t, FileConfig{Path: path, MaxSize: 4096, MaxFiles: 100})
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				f.Send(Event{Severity: Info, MsgID: fmt.Sprint("w", w), Message: fmt.Sprint(i)})
			}
		})
	}
	wg.Wait()
	stop(t, f)
	files, _ := filepath.Glob(path + "*")
	seen := map[string]bool{}
	for _, name := range files {
		fh, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var ev Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("%s: torn line %q: %v", name, sc.Text(), err)
			}
			key := ev.MsgID + "/" + ev.Message
			if seen[key] {
				t.Errorf("%s twice", key)
			}
			seen[key] = true
		}
		fh.Close()
		if st, _ := os.Stat(name); st.Size() > 4096 {
			t.Errorf("%s: %d bytes, over max_size", name, st.Size())
		}
	}
	if len(seen) != writers*each || len(files) < 3 {
		t.Errorf("%d distinct lines in %d files, want %d lines over several files", len(seen), len(files), writers*each)
	}
}

func TestFileConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  FileConfig
		want string
	}{
		{FileConfig{}, "file.path: empty"},
		{FileConfig{Path: "x", MaxSize: -1}, "file.max_size"},
		{FileConfig{Path: "x", MaxFiles: -1}, "file.max_files"},
	} {
		if _, err := NewFile(tc.cfg, Deps{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	f, err := NewFile(FileConfig{Path: filepath.Join(t.TempDir(), "x")}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if f.cfg.MaxSize != DefaultFileMaxSize || f.cfg.MaxFiles != DefaultFileMaxFiles {
		t.Errorf("defaults %+v", f.cfg)
	}
	// A path that cannot be created fails Start, naming the key.
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, _ = NewFile(FileConfig{Path: filepath.Join(blocker, "sub", "x.log")}, Deps{})
	if err := f.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "file.path") {
		t.Errorf("Start under a file: %v", err)
	}
}
