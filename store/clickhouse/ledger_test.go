package clickhouse

import (
	"testing"

	"github.com/netpulse/netpulse/ifwatch"
	"github.com/netpulse/netpulse/ifwatch/ledgertest"
	"github.com/netpulse/netpulse/store"
)

func TestLedgerSuite(t *testing.T) {
	ledgertest.Run(t, func(t *testing.T) ifwatch.Ledger {
		s, _, _ := open(t, store.Retention{})
		return s.Ledger()
	})
}

// TestLedgerReopen: the ledger outlives the store (IDs go on from the
// largest in the table), and reads do not depend on merges.
func TestLedgerReopen(t *testing.T) {
	s, srv, db := open(t, store.Retention{})
	if l1, l2 := s.Ledger(), s.Ledger(); l1 != l2 {
		t.Error("Store.Ledger returned two ledgers")
	}
	ledgertest.Reopen(t, func() ifwatch.Ledger { return s.Ledger() }, func() ifwatch.Ledger {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openOn(t, srv, db, store.Retention{})
		return s.Ledger()
	}, func() { srv.MustQuery(t, "OPTIMIZE TABLE "+db+".ifwatch_outages FINAL") })
}
