// Package diskusage reports how full the file system holding a path is,
// for the watchdogs' "disk over 80 %" alerts. Source is an interface so
// that tests inject a fake.
package diskusage

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Source reports the fraction (0..1) of the file system holding path that
// is in use, as df counts it: blocks used ÷ (used + available to
// unprivileged users).
type Source interface {
	Used(path string) (float64, error)
}

// Statfs is the real Source.
type Statfs struct{}

// Used implements Source with statfs(2).
func (Statfs) Used(path string) (float64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("diskusage: %s: %w", path, err)
	}
	used := float64(st.Blocks - st.Bfree)
	avail := float64(st.Bavail)
	if used+avail == 0 {
		return 0, nil
	}
	return used / (used + avail), nil
}

// Func adapts a function to Source (for tests).
type Func func(path string) (float64, error)

// Used implements Source.
func (f Func) Used(path string) (float64, error) { return f(path) }
