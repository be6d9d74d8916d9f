//go:build unix

package goflow2bench

import (
	"syscall"
	"time"
)

// CPUTime is the user and system CPU time the process has used, all its
// threads together (the garbage collector's included).
func CPUTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
