// Package duckdb is the embedded store.Store, the collector's default: one
// DuckDB file, written with DuckDB's appender (one transaction per batch:
// batch id, raw flows, 1-minute and 1-hour rollups aggregated in Go, and
// interface counters), queried with SQL built from the whitelisted
// dimensions and parameters only. docs/storage.md describes the schema.
//
// DuckDB is a C++ library: the package needs cgo. Built without cgo
// (CGO_ENABLED=0, as the edge proxy binary is), the package is empty: it
// has no Open, and the collector reports that the embedded store is not
// compiled in.
package duckdb
