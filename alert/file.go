package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
)

// FileConfig configures a rotating File. A zero value in any field but
// Path takes the default shown.
type FileConfig struct {
	// Path is the file written to; rotated files are Path.1 (the newest)
	// to Path.MaxFiles. Its directory is created when missing. Required.
	Path string `yaml:"path"`
	// MaxSize is the size in bytes at which the file is rotated. Default
	// 10485760 (10 MiB). A single line longer than it is still written
	// whole.
	MaxSize int64 `yaml:"max_size"`
	// MaxFiles is how many rotated files are kept besides the current
	// one; older ones are deleted. Default 5.
	MaxFiles int `yaml:"max_files"`
}

// File defaults.
const (
	DefaultFileMaxSize  = 10 << 20
	DefaultFileMaxFiles = 5
)

// DefaultFileConfig returns the documented defaults, without a path.
func DefaultFileConfig() FileConfig {
	return FileConfig{MaxSize: DefaultFileMaxSize, MaxFiles: DefaultFileMaxFiles}
}

func (c FileConfig) withDefaults() FileConfig {
	if c.MaxSize == 0 {
		c.MaxSize = DefaultFileMaxSize
	}
	if c.MaxFiles == 0 {
		c.MaxFiles = DefaultFileMaxFiles
	}
	return c
}

// Validate checks the configuration. Errors name the key under "file.".
func (c FileConfig) Validate() error {
	if c.Path == "" {
		return errors.New("file.path: empty: set the file to write")
	}
	if c.MaxSize < 0 {
		return fmt.Errorf("file.max_size: %d: must be positive (bytes)", c.MaxSize)
	}
	if c.MaxFiles < 0 || c.MaxFiles > 1000 {
		return fmt.Errorf("file.max_files: %d: want 1-1000", c.MaxFiles)
	}
	return nil
}

// File is a log file rotated by size, safe for concurrent use. It is an
// io.Writer for whole lines (a slog handler's records) and a Sender that
// writes each event as one JSON line. Writes go straight to the file (no
// buffer to lose on a crash) but are not synced one by one: the file is
// synced at each rotation and at Stop. One process should write a path.
type File struct {
	cfg  FileConfig
	deps Deps

	mu   sync.Mutex
	f    *os.File
	size int64

	sent, failed, errs atomic.Uint64
}

// NewFile builds a File; Start opens it.
func NewFile(cfg FileConfig, deps Deps) (*File, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &File{cfg: cfg, deps: deps}, nil
}

// Start opens the file for appending, creating it and its directory.
func (f *File) Start(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f != nil {
		return errors.New("file: already started")
	}
	if err := os.MkdirAll(filepath.Dir(f.cfg.Path), 0o750); err != nil {
		return fmt.Errorf("file.path: %w", err)
	}
	if err := f.open(); err != nil {
		return fmt.Errorf("file.path: %w", err)
	}
	return nil
}

func (f *File) open() error {
	fh, err := os.OpenFile(f.cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return err
	}
	f.f, f.size = fh, st.Size()
	return nil
}

// Write appends p, rotating first when p would take the file past
// MaxSize. p should be whole lines: rotation happens between writes.
func (f *File) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		f.failed.Add(1)
		return 0, fmt.Errorf("file %s: not open (before Start or after Stop)", f.cfg.Path)
	}
	if f.size > 0 && f.size+int64(len(p)) > f.cfg.MaxSize {
		if err := f.rotate(); err != nil {
			// Keep writing to the current file: a full log beats none.
			f.errs.Add(1)
			f.deps.log().Error("file: rotate", "path", f.cfg.Path, "err", err)
		}
	}
	if f.f == nil {
		f.failed.Add(1)
		return 0, fmt.Errorf("file %s: lost in rotation", f.cfg.Path)
	}
	n, err := f.f.Write(p)
	f.size += int64(n)
	if err != nil {
		f.failed.Add(1)
		return n, fmt.Errorf("file %s: %w", f.cfg.Path, err)
	}
	f.sent.Add(1)
	return n, nil
}

// rotate shifts Path.i to Path.i+1, deletes what passes MaxFiles, moves
// Path to Path.1 and opens a new Path. When a step fails it reopens Path
// for appending so that the log goes on.
func (f *File) rotate() error {
	_ = f.f.Sync()
	err := f.f.Close()
	f.f = nil
	name := func(i int) string { return f.cfg.Path + "." + strconv.Itoa(i) }
	if e := os.Remove(name(f.cfg.MaxFiles)); e != nil && !errors.Is(e, os.ErrNotExist) {
		err = errors.Join(err, e)
	}
	for i := f.cfg.MaxFiles - 1; i >= 1; i-- {
		if e := os.Rename(name(i), name(i+1)); e != nil && !errors.Is(e, os.ErrNotExist) {
			err = errors.Join(err, e)
		}
	}
	if e := os.Rename(f.cfg.Path, name(1)); e != nil {
		err = errors.Join(err, e)
	}
	if e := f.open(); e != nil {
		err = errors.Join(err, e)
	}
	return err
}

// Send writes ev as one JSON line.
func (f *File) Send(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = f.deps.now()
	}
	b, err := json.Marshal(ev)
	if err != nil {
		f.failed.Add(1)
		f.deps.log().Error("file: event does not marshal to JSON, not written", "msgid", ev.MsgID, "err", err)
		return
	}
	_, _ = f.Write(append(b, '\n'))
}

// Stop syncs and closes the file. Writes after it fail and are counted.
func (f *File) Stop(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f == nil {
		return nil
	}
	err := errors.Join(f.f.Sync(), f.f.Close())
	f.f = nil
	if err != nil {
		return fmt.Errorf("file %s: %w", f.cfg.Path, err)
	}
	return nil
}

// Stats returns the counts so far: Sent and Failed count writes (lines),
// Errors failed rotations.
func (f *File) Stats() Stats {
	return Stats{Sent: f.sent.Load(), Failed: f.failed.Load(), Errors: f.errs.Load()}
}
