package chtest

import "syscall"

// sysProcAttr has the kernel kill the server when the test process dies
// without running its clean-up (a panic, a timeout, kill -9), so no server
// outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
