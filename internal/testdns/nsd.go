// Package testdns starts real authoritative DNS servers (NSD and Knot,
// from Debian) on loopback for tests, with the zones a test gives it, and
// builds and signs root-like zones for them.
package testdns

import "testing"

// StartNSD serves zones (origin -> zone file text) from NSD on a loopback
// address and returns its host:port. The server stops when the test ends.
func StartNSD(t testing.TB, zones map[string]string) string {
	t.Helper()
	return StartServers(t, ServerSpec{Zones: zones})[0].Addr()
}

// StartNSDWithXFR is StartNSD with zone transfers allowed to 127.0.0.0/8
// without a key, for tests that fetch a zone by AXFR.
func StartNSDWithXFR(t testing.TB, zones map[string]string) string {
	t.Helper()
	return StartServers(t, ServerSpec{Zones: zones, XFR: true})[0].Addr()
}

// StartKnotdZones serves zones from Knot DNS (knotd) on a loopback
// address and returns its host:port. Knot serves the zones as given: it
// neither signs nor checks them. The server stops when the test ends.
func StartKnotdZones(t testing.TB, zones map[string]string) string {
	t.Helper()
	return StartServers(t, ServerSpec{Software: "knot", Zones: zones})[0].Addr()
}
