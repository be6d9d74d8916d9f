// Package e2e holds the end-to-end tests of the flow pipeline: captures
// from real exporters replayed over loopback into a proxy, forwarded over
// HTTPS to a collector, stored in DuckDB and in a real ClickHouse server,
// and read back through the query API, whose totals must equal the
// captures'. It has no code of its own.
package e2e
