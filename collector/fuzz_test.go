package collector

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParseQuery: any query string gets a query that validates, or an
// error; never a panic.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"", "from=-1h&to=now", "step=1m&group_by=exporter,in_if&filter=proto=6,17&filter=dst_port!=53&order_by=packets&limit=5",
		"from=1700000000&to=2026-11-22T10:00:00Z", "step=9999999h", "filter==", "filter=!=1", "group_by=,,", "table=flows_1h&step=1h",
		"from=-9223372036s", "step=1s&from=-100000h",
	} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseQuery(v, now)
		if err != nil {
			return
		}
		if err := q.Validate(); err != nil {
			t.Fatalf("ParseQuery returned an invalid query: %v", err)
		}
	})
}

// FuzzDedupLoad: a damaged state file is an error, never a panic or a
// huge allocation.
func FuzzDedupLoad(f *testing.F) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	dir := f.TempDir()
	good := filepath.Join(dir, "good")
	d := NewDedup(10*time.Minute, 1000, t0)
	d.Filter("a", records("192.0.2.1", 5, 1), t0)
	d.Filter("b", records("192.0.2.2", 5, 1), t0)
	if err := d.Save(good); err != nil {
		f.Fatal(err)
	}
	data, _ := os.ReadFile(good)
	f.Add(data)
	f.Add([]byte(dedupMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "state")
		os.WriteFile(p, data, 0o600)
		d := NewDedup(10*time.Minute, 1000, t0)
		if err := d.Load(p, t0); err != nil {
			return
		}
		if st := d.Stats(); st.Keys > 2000 {
			t.Fatalf("%d keys loaded over the bound", st.Keys)
		}
		d.Filter("x", records("192.0.2.3", 2, 1), t0)
	})
}
