package tcpstats

import "time"

// timeSeq hands out increasing timestamps, 1 ms apart.
type timeSeq struct{ n int }

func (s *timeSeq) next() time.Time {
	s.n++
	return time.Unix(1_700_000_000, 0).Add(time.Duration(s.n) * time.Millisecond)
}
