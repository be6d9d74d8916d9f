// Package ifwatch tells whether each exporter interface is carrying flow,
// as fc_device_stats does for Flow Collectors (seed 002): it merges the
// observations of several sources (flow-derived traffic at the
// collector, counters, remote collectors' stats files), confirms up and
// down changes with damping, records outages in a durable ledger that
// survives restarts, and answers what went down or came back up in the
// last minutes and how much downtime each interface, and all of them,
// had over a calendar month or the last 30 days.
//
// The package is pure logic with an injected clock: it reads no file and
// opens no socket. Sources (package ifwatch/statsfile and
// ifwatch/sshpoll, the collector's flow pipeline) feed a Watcher with
// Observations; the Ledger is an interface, with an in-memory
// implementation here and durable ones in the store packages; Events
// go to the alerting code. docs/ifwatch.md states the rules in one place.
package ifwatch
