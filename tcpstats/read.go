package tcpstats

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/netpulse/netpulse/capture"
)

// ParseErrors counts the frames Parse rejected, by reason.
type ParseErrors struct {
	NotTCP    uint64 `json:"not_tcp"`   // other protocols, other link types
	Fragments uint64 `json:"fragments"` // non-first IP fragments
	Malformed uint64 `json:"malformed"` // truncated or bad headers
}

func (e *ParseErrors) count(err error) {
	switch {
	case errors.Is(err, ErrNotTCP), errors.Is(err, ErrNotIP), errors.Is(err, ErrLinkType):
		e.NotTCP++
	case errors.Is(err, ErrFragment):
		e.Fragments++
	default:
		e.Malformed++
	}
}

// Frame is a captured frame handed to a FrameFunc after analysis.
type Frame struct {
	Number int // from 1, as Wireshark counts
	Time   time.Time
	Packet *Packet
	Conn   *Conn
	Dir    Direction
	Flags  Flags
}

// ReadCapture feeds every TCP segment of a pcap or pcapng stream to a. If
// fn is not nil it is called for each analyzed frame. Frames that are not
// TCP, or malformed, are counted in the returned ParseErrors.
func ReadCapture(r io.Reader, a *Analyzer, fn func(*Frame)) (ParseErrors, error) {
	var perr ParseErrors
	cr, err := capture.NewReader(r)
	if err != nil {
		return perr, err
	}
	var p Packet
	var fr Frame
	for {
		f, err := cr.Next()
		if err == io.EOF {
			return perr, nil
		}
		if err != nil {
			return perr, fmt.Errorf("tcpstats: %w", err)
		}
		if err := Parse(LinkType(f.LinkType), f.Data, &p); err != nil {
			perr.count(err)
			continue
		}
		c, dir, flags := a.Add(f.Time, &p)
		if fn != nil {
			fr = Frame{Number: f.Number, Time: f.Time, Packet: &p, Conn: c, Dir: dir, Flags: flags}
			fn(&fr)
		}
	}
}
