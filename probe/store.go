package probe

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/netpulse/netpulse/probe/result"
)

// Folders under output_dir besides the yyyymm/ ones.
const (
	// pendingDir holds a hard link to every file the collector has not
	// acknowledged yet: the upload queue, which survives a restart.
	pendingDir = "pending"
	// rejectedDir keeps the files the collector refused as invalid, out
	// of the queue, for an operator to look at.
	rejectedDir = "rejected"
)

// writeFile writes data to dir/name atomically: a temporary file in the
// same folder, synced, then renamed over the name, and the folder
// synced, so that a crash leaves either the whole file or none.
func writeFile(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// store keeps the result files and the upload queue under one folder.
type store struct {
	dir string
	vp  string
}

// path is where a slot's file is kept: dir/yyyymm/<vp>-<slot>.json.gz.
func (s store) path(slot time.Time) string {
	return filepath.Join(s.dir, result.MonthDir(slot), result.FileName(s.vp, slot))
}

// save writes a run's file and, when queue is set, enqueues it for
// upload. It returns the file's path.
func (s store) save(run *result.Run, queue bool) (string, error) {
	data, err := result.Marshal(run)
	if err != nil {
		return "", fmt.Errorf("probe: encode result: %w", err)
	}
	p := s.path(run.Slot)
	if err := writeFile(filepath.Dir(p), filepath.Base(p), data); err != nil {
		return "", fmt.Errorf("probe: write result: %w", err)
	}
	if queue {
		if err := s.enqueue(p); err != nil {
			return p, fmt.Errorf("probe: queue %s for upload: %w", filepath.Base(p), err)
		}
	}
	return p, nil
}

// enqueue adds a hard link to file in pending/ (a copy where links do
// not work), replacing an older one of the same name.
func (s store) enqueue(file string) error {
	dir := filepath.Join(s.dir, pendingDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dst := filepath.Join(dir, filepath.Base(file))
	os.Remove(dst)
	if err := os.Link(file, dst); err != nil {
		data, rerr := os.ReadFile(file)
		if rerr != nil {
			return errors.Join(err, rerr)
		}
		if werr := writeFile(dir, filepath.Base(file), data); werr != nil {
			return errors.Join(err, werr)
		}
		return nil
	}
	return syncDir(dir)
}

// pending lists the queued file names, oldest slot first (names sort by
// slot, as they share the vantage point prefix).
func (s store) pending() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, pendingDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".json.gz") && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// readPending returns a queued file's bytes, at most MaxFileBytes.
func (s store) readPending(name string) ([]byte, error) {
	f, err := os.Open(filepath.Join(s.dir, pendingDir, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, result.MaxFileBytes+1))
	if err == nil && len(data) > result.MaxFileBytes {
		err = result.ErrTooBig
	}
	return data, err
}

// ack removes an acknowledged file from the queue.
func (s store) ack(name string) error {
	err := os.Remove(filepath.Join(s.dir, pendingDir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// reject moves a file the collector refused out of the queue.
func (s store) reject(name string) error {
	dir := filepath.Join(s.dir, rejectedDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Rename(filepath.Join(s.dir, pendingDir, name), filepath.Join(dir, name))
}

// slotOfName reads the slot back from a result file name
// (<vp>-<yyyymmddThhmm>.json.gz).
func slotOfName(name string) (time.Time, bool) {
	base := strings.TrimSuffix(name, ".json.gz")
	i := strings.LastIndexByte(base, '-')
	if i < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse("20060102T1504", base[i+1:])
	return t, err == nil
}
