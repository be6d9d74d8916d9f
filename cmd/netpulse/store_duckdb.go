//go:build cgo

package main

import (
	"github.com/netpulse/netpulse/ifwatch"
	"github.com/netpulse/netpulse/rssac/rstore"
	"github.com/netpulse/netpulse/store"
	"github.com/netpulse/netpulse/store/duckdb"
)

// With cgo, the binary has the embedded DuckDB store; the static edge
// build (CGO_ENABLED=0) does not link it.
func init() {
	openDuckDB = func(path string, r store.Retention) (store.Store, error) {
		return duckdb.Open(path, duckdb.Config{Retention: r})
	}
	duckLedger = func(st store.Store) ifwatch.Ledger {
		if s, ok := st.(*duckdb.Store); ok {
			return s.Ledger()
		}
		return nil
	}
	duckRSSAC = func(st store.Store) rstore.Store {
		if s, ok := st.(*duckdb.Store); ok {
			return s.RSSAC()
		}
		return nil
	}
}
