package ingest

import (
	"testing"
	"time"
)

// FuzzDecode: any bytes give a run that validates or an error with one of
// the refusal outcomes, never a panic.
func FuzzDecode(f *testing.F) {
	good := marshal(f, testRun("001", oct))
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("\x1f\x8b"))
	f.Add(gz(f, []byte(`{"version":1,"vp":"001","slot":"2026-10-01T00:00:00Z","queries":[{"target":"a","family":4,"transport":"udp","purpose":"soa","rtt_ms":-1}]}`)))
	f.Add(gz(f, []byte(`{"version":2}`)))
	f.Add(gz(f, []byte(`[]`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		run, o, err := decode(data)
		if err != nil {
			switch o {
			case BadGzip, BadDocument, UnknownVersion, TooLarge:
			default:
				t.Fatalf("error %v with outcome %q", err, o)
			}
			return
		}
		if o != "" || run == nil {
			t.Fatalf("no error, outcome %q, run %v", o, run)
		}
		if err := run.Validate(); err != nil {
			t.Fatalf("decoded run does not validate: %v", err)
		}
		if !run.Slot.Equal(run.Slot.Truncate(5 * time.Minute)) {
			t.Fatalf("slot %v", run.Slot)
		}
	})
}
