package ifwatch

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"time"
)

// Key names one exporter interface: the exporter's address and the
// interface's SNMP ifIndex. IfIndex 0 stands for the exporter as a whole,
// which is what a stats file without an ifIndex column describes (the
// seed's exporter_device_stats.txt has one row per exporter). The watcher
// takes an IPv4-mapped IPv6 address as the IPv4 address and drops zones.
type Key struct {
	Exporter netip.Addr
	IfIndex  uint32
}

// mapKey is a Key as a map key: without the address's zone pointer, so
// faster to hash and compare and not scanned by the garbage collector.
// An exporter's zone is not part of its identity, and an IPv4-mapped IPv6
// address is the IPv4 address.
type mapKey struct {
	addr    [16]byte
	ifIndex uint32
	is6     bool
}

func mk(k Key) mapKey {
	a := k.Exporter.Unmap()
	return mapKey{addr: a.As16(), ifIndex: k.IfIndex, is6: a.Is6()}
}

// String is "192.0.2.1#7" ("2001:db8::1#7" for IPv6).
func (k Key) String() string {
	return k.Exporter.String() + "#" + strconv.FormatUint(uint64(k.IfIndex), 10)
}

// Compare orders keys by exporter address (IPv4 before IPv6), then by
// ifIndex.
func (k Key) Compare(o Key) int {
	if c := k.Exporter.Compare(o.Exporter); c != 0 {
		return c
	}
	return cmp.Compare(k.IfIndex, o.IfIndex)
}

// SourceKind is the kind of a source of observations.
type SourceKind string

// The kinds of sources. Only OperStatus carries meaning by itself; the
// kinds are otherwise reported, not interpreted, so a new kind needs no
// change here.
const (
	// KindFlow is flow-derived traffic at this collector (input and
	// output ifIndex of the flows, merged across every proxy feeding
	// it): the primary source.
	KindFlow SourceKind = "flow"
	// KindCounters is interface counters: sFlow counter samples, SNMP
	// ifOperStatus and octet counters.
	KindCounters SourceKind = "counters"
	// KindStatsFile is a remote collector's stats file, polled over SSH.
	KindStatsFile SourceKind = "statsfile"
)

// Source is where observations come from, e.g. {"fc-ams", KindStatsFile}
// for one remote collector's file. Each remote collector is its own
// source: that is what lets a zero from the collector the flow left be
// told apart from the traffic the new one reports.
type Source struct {
	Name string
	Kind SourceKind
}

// String is "kind:name".
func (s Source) String() string {
	if s == (Source{}) {
		return ""
	}
	return string(s.Kind) + ":" + s.Name
}

// OperStatus is an interface's operational status as a counters source
// reports it (IF-MIB ifOperStatus, sFlow ifOperStatus bit).
type OperStatus uint8

// Oper statuses. OperUnknown is the zero value: the source does not tell.
const (
	OperUnknown OperStatus = iota
	OperUp
	OperDown
)

func (o OperStatus) String() string {
	switch o {
	case OperUp:
		return "up"
	case OperDown:
		return "down"
	}
	return "unknown"
}

// TrafficUnknown is the Observation.Traffic of a source that does not
// measure traffic, e.g. an SNMP poll of ifOperStatus alone.
const TrafficUnknown = -1

// Observation is what one source saw of one key at one time.
type Observation struct {
	Source Source
	Key    Key
	// Time is when the source saw it: the end of the flow aggregation
	// interval, the counter sample's time, the stats file's modification
	// time. The zero time means now; a time in the future is taken as
	// now.
	Time time.Time
	// Traffic is the rate (bits/s) or volume (bytes) the source saw on
	// the key. Only whether it is above zero matters: > 0 is traffic,
	// 0 is a zero, and a negative value or NaN (TrafficUnknown) says the
	// source does not measure traffic.
	Traffic float64
	// Oper is the operational status, where the source knows it.
	// OperDown takes the key down at once (see Watcher); OperUp does not
	// by itself make it up: traffic does.
	Oper OperStatus
}

// traffic classifies o.Traffic.
func (o *Observation) traffic() (pos, zero bool) {
	switch {
	case o.Traffic > 0 && !math.IsInf(o.Traffic, 0):
		return true, false
	case o.Traffic == 0:
		return false, true
	}
	return false, false // negative, NaN, +Inf: not a measurement
}

// State is the confirmed state of a key.
type State uint8

// States. Unknown is the zero value: no source has told anything about
// the key yet (since the start of this process, for a key known from
// the ledger without an open outage).
const (
	Unknown State = iota
	Up
	Down
)

func (s State) String() string {
	switch s {
	case Up:
		return "up"
	case Down:
		return "down"
	}
	return "unknown"
}

// MarshalText makes a State "up", "down" or "unknown" in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Cause says why an outage began.
type Cause string

// Causes of outages.
const (
	// CauseSilence: no source reported anything for down_after since the
	// last traffic (or since the key was first seen).
	CauseSilence Cause = "silence"
	// CauseZero: the source that last saw traffic went on reporting, but
	// zero, for down_after; with a stats-file source this is the seed's
	// "== 0 in the Current NetFlow bps field".
	CauseZero Cause = "zero"
	// CauseOperDown: a counters source reported ifOperStatus down.
	CauseOperDown Cause = "oper-down"
)

// EventKind is the kind of an Event.
type EventKind string

// Event kinds.
const (
	// EventDown: a key was confirmed down and an outage opened.
	EventDown EventKind = "down"
	// EventUp: a key that was down was confirmed up and its outage closed.
	EventUp EventKind = "up"
	// EventFlapping: the key changed state more than flap_count times
	// within flap_window; its down and up events are held back (the
	// ledger still records every outage) until EventStable.
	EventFlapping EventKind = "flapping"
	// EventStable: a flapping key held one state for a whole flap_window;
	// State and Since tell which.
	EventStable EventKind = "stable"
)

// Event is a confirmed change, for alerts. Events come back from
// Watcher.Observe and Watcher.Tick in the order they happened.
type Event struct {
	Kind EventKind
	Key  Key
	// Time is when the watcher confirmed it, by its clock.
	Time time.Time
	// State is the key's confirmed state after the event, and Since when
	// that state began (an outage's start for down, its end for up).
	State State
	Since time.Time
	// Outage is the outage opened (EventDown), closed (EventUp), or
	// still open (EventStable while down); the zero Outage otherwise.
	Outage Outage
}

func (e Event) String() string {
	return fmt.Sprintf("%s %s %s since %s", e.Time.UTC().Format(time.RFC3339), e.Key, e.Kind, e.Since.UTC().Format(time.RFC3339))
}
