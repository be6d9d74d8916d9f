package ifwatch_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/netpulse/netpulse/ifwatch"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// reportLedger is a small ledger: five keys, one of them IPv6, outages
// closed, open, across the start of November, and one that started and
// ended in the last 10 minutes.
func reportLedger(t *testing.T) (ifwatch.Ledger, time.Time) {
	t.Helper()
	ctx := context.Background()
	l := ifwatch.NewMemLedger()
	now := time.Date(2026, 11, 30, 18, 0, 0, 0, time.UTC)
	at := func(day, h, m, s int) time.Time { return time.Date(2026, 11, day, h, m, s, 0, time.UTC) }
	k1, k2, k3, k4, k5 := key("192.0.2.1", 1), key("192.0.2.1", 2), key("192.0.2.3", 10), key("2001:db8::5", 3), key("198.51.100.8", 0)
	first := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	if err := l.AddKeys(ctx, []ifwatch.KnownKey{
		{Key: k1, FirstSeen: first}, {Key: k2, FirstSeen: first}, {Key: k3, FirstSeen: first},
		{Key: k4, FirstSeen: at(16, 0, 0, 0)}, {Key: k5, FirstSeen: at(20, 0, 0, 0)},
	}); err != nil {
		t.Fatal(err)
	}
	add := func(k ifwatch.Key, src ifwatch.Source, cause ifwatch.Cause, start, opened, end, closed time.Time) {
		o, err := l.Open(ctx, ifwatch.Outage{Key: k, Start: start, Source: src, Cause: cause, OpenedAt: opened})
		if err != nil {
			t.Fatal(err)
		}
		if !end.IsZero() {
			if err := l.Close(ctx, o.ID, end, closed); err != nil {
				t.Fatal(err)
			}
		}
	}
	var none time.Time
	add(k1, flowSrc, ifwatch.CauseSilence, time.Date(2026, 10, 31, 23, 0, 0, 0, time.UTC), time.Date(2026, 10, 31, 23, 5, 0, 0, time.UTC), at(1, 2, 0, 0), at(1, 2, 1, 0))
	add(k2, sflow, ifwatch.CauseOperDown, at(5, 10, 0, 30), at(5, 10, 0, 30), at(5, 10, 21, 0), at(5, 10, 22, 0))
	add(k3, flowSrc, ifwatch.CauseSilence, at(28, 12, 0, 0), at(28, 12, 5, 0), none, none)
	add(k5, fcA, ifwatch.CauseZero, at(20, 0, 0, 0), at(20, 0, 5, 0), none, none)
	// In the last 10 minutes: k2 went down at 17:48 and came back at
	// 17:56; k4 went down at 17:49 (confirmed 17:54), still down; k1
	// went down at 17:45, confirmed at 17:50 (by OpenedAt).
	add(k2, flowSrc, ifwatch.CauseSilence, at(30, 17, 48, 0), at(30, 17, 53, 0), at(30, 17, 56, 0), at(30, 17, 57, 0))
	add(k4, flowSrc, ifwatch.CauseSilence, at(30, 17, 49, 0), at(30, 17, 54, 0), none, none)
	add(k1, fcB, ifwatch.CauseZero, at(30, 17, 45, 0), at(30, 17, 50, 0), none, none)
	return l, now
}

func TestReports(t *testing.T) {
	l, now := reportLedger(t)
	ctx := context.Background()
	recent, err := ifwatch.RecentReport(ctx, l, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recent.WentDown) != 3 || len(recent.CameUp) != 1 {
		t.Errorf("recent: %d down, %d up; want 3 and 1:\n%s\n%s", len(recent.WentDown), len(recent.CameUp), outStrings(recent.WentDown), outStrings(recent.CameUp))
	}
	month, err := ifwatch.DowntimeReport(ctx, l, ifwatch.Month(2026, time.November, time.UTC), now)
	if err != nil {
		t.Fatal(err)
	}
	rolling, err := ifwatch.DowntimeReport(ctx, l, ifwatch.Last30Days(now), now)
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*ifwatch.Report{"recent": recent, "month": month, "rolling": rolling} {
		for _, f := range []ifwatch.Format{ifwatch.FormatTable, ifwatch.FormatJSON, ifwatch.FormatCSV} {
			var buf bytes.Buffer
			if err := r.Write(&buf, f); err != nil {
				t.Fatalf("%s %s: %v", name, f, err)
			}
			switch f {
			case ifwatch.FormatJSON:
				var v map[string]any
				if err := json.Unmarshal(buf.Bytes(), &v); err != nil {
					t.Errorf("%s: not JSON: %v", name, err)
				}
			case ifwatch.FormatCSV:
				recs, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
				if err != nil || len(recs) < 2 {
					t.Errorf("%s: CSV %d records, %v", name, len(recs), err)
				}
			}
			golden(t, "report_"+name+"."+string(f), buf.Bytes())
		}
	}
	if err := month.Write(&bytes.Buffer{}, "xml"); err == nil {
		t.Error("Write in xml: no error")
	}
	for in, want := range map[string]ifwatch.Format{"": ifwatch.FormatTable, "csv": ifwatch.FormatCSV, "json": ifwatch.FormatJSON} {
		if got, err := ifwatch.ParseFormat(in); got != want || err != nil {
			t.Errorf("ParseFormat(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ifwatch.ParseFormat("yaml"); err == nil {
		t.Error("ParseFormat(yaml): no error")
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestReports -update ./ifwatch to create it)", err)
	}
	if diff := diffLines(string(got), string(want)); diff != "" {
		t.Errorf("%s differs (go test -run TestReports -update ./ifwatch rewrites it):\n%s", path, diff)
	}
}
