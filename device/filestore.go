package device

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"gopkg.in/yaml.v3"
)

// FileStore is a Store kept in the YAML device file, which stays the
// source of truth: every change through the API rewrites the file
// (temporary file, fsync, rename, so a crash leaves the old list or the
// new one), and Reload takes in a hand edit. Comments in a hand-written
// file do not survive an API change.
type FileStore struct {
	path string
	mu   sync.Mutex
	set  *Set
}

var _ Store = (*FileStore)(nil)

// OpenFileStore reads the device file at path; a missing file is an empty
// list, created at the first change.
func OpenFileStore(path string) (*FileStore, error) {
	fs := &FileStore{path: path}
	if err := fs.Reload(); err != nil {
		return nil, err
	}
	return fs, nil
}

// Path is the device file.
func (f *FileStore) Path() string { return f.path }

// Reload reads the file again. On error the list in use stays.
func (f *FileStore) Reload() error {
	s, err := LoadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		s, err = NewSet(nil)
	}
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.set = s
	f.mu.Unlock()
	return nil
}

// List implements Store.
func (f *FileStore) List(context.Context) (*Set, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.set, nil
}

// Put implements Store.
func (f *FileStore) Put(_ context.Context, d Device, mode PutMode) (*Set, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.set.With(d, mode)
	if err != nil {
		return nil, err
	}
	return f.commit(s)
}

// Delete implements Store.
func (f *FileStore) Delete(_ context.Context, id uint64) (*Set, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.set.Without(id)
	if err != nil {
		return nil, err
	}
	return f.commit(s)
}

// commit writes s to the file, then makes it current. f.mu is held.
func (f *FileStore) commit(s *Set) (*Set, error) {
	file := File{Devices: make([]Device, 0, s.Len())}
	for _, d := range s.All() {
		file.Devices = append(file.Devices, *d)
	}
	data, err := yaml.Marshal(file)
	if err != nil {
		return nil, err
	}
	data = append([]byte("# netpulse device list: the collector's API rewrites this file (docs/devices-api.md).\n"), data...)
	if err := writeFileAtomic(f.path, data); err != nil {
		return nil, fmt.Errorf("devices: saving %s: %w", f.path, err)
	}
	f.set = s
	return s, nil
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".devices-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
