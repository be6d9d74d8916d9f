package ifwatch_test

import (
	"testing"

	"github.com/netpulse/netpulse/ifwatch"
	"github.com/netpulse/netpulse/ifwatch/ledgertest"
)

func TestMemLedger(t *testing.T) {
	ledgertest.Run(t, func(*testing.T) ifwatch.Ledger { return ifwatch.NewMemLedger() })
}
