// Package storetest is the one test suite that every store.Store engine
// passes (store/duckdb, store/clickhouse), and the record generator and
// benchmark helpers their benchmarks share.
//
// An engine's test calls Run with a Harness that opens fresh stores:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, storetest.Harness{
//			Open: func(t testing.TB, r store.Retention) store.Store { ... },
//			Reopen: func(t testing.TB, s store.Store) store.Store { ... },
//		})
//	}
//
// Every check compares the store's answer with sums the suite computes
// itself from the records it inserted (see oracle.go), so a store that
// loses, doubles, mis-scales or mis-groups a row fails.
//
// The package needs no cgo and sends nothing to the network.
package storetest

import (
	"testing"
	"time"

	"github.com/netpulse/netpulse/store"
)

// Harness is what Run needs from an engine.
type Harness struct {
	// Open returns a new, empty store that keeps rows for the retention r
	// (zero fields meaning the defaults). The harness closes it when t
	// ends (t.Cleanup), unless Reopen has closed it before.
	Open func(t testing.TB, r store.Retention) store.Store
	// Reopen closes s, which came from Open or Reopen, and opens the same
	// store again with the same retention, as a restart of the collector
	// would: every row, batch id and the schema must still be there. The
	// returned store is closed when t ends.
	Reopen func(t testing.TB, s store.Store) store.Store
}

// Run runs the whole suite against the engine behind h. Each check is a
// subtest of t, so one can be picked with -run 'TestStore/Duplicate'.
func Run(t *testing.T, h Harness) {
	if h.Open == nil || h.Reopen == nil {
		t.Fatal("storetest: Harness needs Open and Reopen")
	}
	s := &suite{h: h, base: time.Now().UTC().Truncate(time.Hour).Add(-6 * time.Hour)}
	s.loadShared(t)
	t.Run("ScaledTotals", s.testScaledTotals)
	t.Run("EmptyResult", s.testEmptyResult)
	t.Run("GroupByEveryDim", s.testGroupByEveryDim)
	t.Run("GroupBySeveralDims", s.testGroupBySeveralDims)
	t.Run("KeysAsFilterValues", s.testKeysAsFilterValues)
	t.Run("Filters", s.testFilters)
	t.Run("FilterValueNormalised", s.testFilterValueNormalised)
	t.Run("BadFilterValues", s.testBadFilterValues)
	t.Run("TopN", s.testTopN)
	t.Run("TimeSeries", s.testTimeSeries)
	t.Run("TimeSeriesTopGroups", s.testTimeSeriesTopGroups)
	t.Run("RangeEnds", s.testRangeEnds)
	t.Run("TablesAgree", s.testTablesAgree)
	t.Run("PickTable", s.testPickTable)
	t.Run("InvalidQuery", s.testInvalidQuery)
	t.Run("Duplicate", s.testDuplicate)
	t.Run("BatchIDs", s.testBatchIDs)
	t.Run("Counters", s.testCounters)
	t.Run("Maintain", s.testMaintain)
	t.Run("MaintainKeepsAnswers", s.testMaintainKeepsAnswers)
	t.Run("CancelledInsert", s.testCancelledInsert)
	t.Run("Reopen", s.testReopen)
	t.Run("ConcurrentInserts", s.testConcurrentInserts)
	t.Run("Info", s.testInfo)
}
