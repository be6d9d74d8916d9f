package probe

import (
	"golang.org/x/sys/unix"

	"github.com/netpulse/netpulse/probe/result"
)

// readClock asks the kernel (adjtimex(2), read only) whether the clock is
// synchronised: not when STA_UNSYNC is set or the state is TIME_ERROR,
// which is how an NTP daemon that lost its servers leaves it.
func readClock() result.Clock {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return result.Clock{Source: "unknown"}
	}
	return result.Clock{
		Synced:     tx.Status&unix.STA_UNSYNC == 0 && state != unix.TIME_ERROR,
		MaxErrorUS: int64(tx.Maxerror),
		EstErrorUS: int64(tx.Esterror),
		Source:     "adjtimex",
	}
}
