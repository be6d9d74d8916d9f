//go:build !linux

package probe

import "github.com/netpulse/netpulse/probe/result"

// readClock cannot ask the kernel outside Linux: the state is unknown.
func readClock() result.Clock { return result.Clock{Source: "unknown"} }
