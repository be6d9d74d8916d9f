package sshpoll

import (
	"github.com/netpulse/netpulse/ifwatch"
)

// Source is the ifwatch source a collector's polls feed.
func Source(collector string) ifwatch.Source {
	return ifwatch.Source{Name: collector, Kind: ifwatch.KindStatsFile}
}

// Observations turns a poll into ifwatch observations: one per row, its
// Current NetFlow bps as the traffic, at the poll's time. A failed poll
// gives none and failing is true: a missing file or an unreachable
// collector is a source error, never "down" (ifwatch.Watcher's
// SetSourceFailing).
func Observations(p Poll) (obs []ifwatch.Observation, failing bool) {
	if p.Err != nil {
		return nil, true
	}
	src := Source(p.Collector)
	obs = make([]ifwatch.Observation, 0, len(p.Rows))
	for _, r := range p.Rows {
		obs = append(obs, ifwatch.Observation{Source: src, Time: p.Time,
			Key: ifwatch.Key{Exporter: r.Exporter, IfIndex: r.IfIndex}, Traffic: r.BPS})
	}
	return obs, false
}
