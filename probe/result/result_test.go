package result

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sample is a run with one of each kind of record.
func sample() *Run {
	slot := time.Date(2026, 11, 22, 7, 15, 0, 0, time.UTC)
	return &Run{
		VP: "001", Slot: slot, Start: slot.Add(17 * time.Second), End: slot.Add(21 * time.Second),
		Clock:    Clock{Synced: true, MaxErrorUS: 120000, EstErrorUS: 300, Source: "adjtimex"},
		Software: "netpulse test",
		Queries: []Query{
			{Target: "a.root-servers.net", Address: "198.41.0.4", Port: 53, Family: 4, Transport: UDP, Purpose: PurposeSOA,
				QName: ".", QType: "SOA", BufSize: 1232, Sent: slot.Add(17 * time.Second), RTTMS: 12.5,
				Response: &Response{RCode: 0, RCodeName: "NOERROR", Flags: []string{"qr", "aa"}, ID: 77, NSIDHex: "6e73", NSIDText: "ns",
					Size: 120, Answer: []RR{{Name: ".", TTL: 86400, Class: "IN", Type: "SOA", RData: "a. b. 1 2 3 4 5"}},
					SOASerial: 2026112201, HasSerial: true, ABuf: []byte{0, 77, 0x84, 0}}},
			{Target: "a.root-servers.net", Address: "2001:503:ba3e::2:30", Port: 53, Family: 6, Transport: TCP, Purpose: PurposeSOA,
				QName: ".", QType: "SOA", Sent: slot.Add(18 * time.Second), Timeout: true, Error: "connection refused"},
			{Target: "a.root-servers.net", Address: "198.41.0.4", Port: 53, Family: 4, Transport: TCP, Purpose: PurposeCorrectness,
				QName: "com.", QType: "DS", DO: true, BufSize: 1220, Retry: true, Sent: slot.Add(19 * time.Second), RTTMS: 30,
				Response: &Response{RCodeName: "NOERROR", Flags: []string{"qr", "aa"}, Size: 300}},
		},
		Traces: []Trace{{Target: "a.root-servers.net", Address: "198.41.0.4", Family: 4, Method: "icmp", Start: slot.Add(20 * time.Second),
			Hops: []Hop{{TTL: 1, Replies: []HopReply{{Addr: "192.0.2.1", RTTMS: 0.4}}}, {TTL: 2, Replies: []HopReply{{}, {}}}}, Reached: false}},
	}
}

func TestRoundTrip(t *testing.T) {
	in := sample()
	data, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if data[0] != 0x1f || data[1] != 0x8b {
		t.Fatal("not gzip")
	}
	out, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if in.Version != Version || !reflect.DeepEqual(in, out) {
		a, _ := json.Marshal(in)
		b, _ := json.Marshal(out)
		t.Errorf("round trip differs:\n%s\n%s", a, b)
	}
	// Plain JSON reads too.
	plain, _ := json.Marshal(in)
	if _, err := Decode(plain); err != nil {
		t.Error(err)
	}
	if q := out.Queries; !q[0].Available() || q[1].Answered() || q[1].Available() || !q[2].Available() {
		t.Error("Answered/Available")
	}
}

func TestNames(t *testing.T) {
	slot := time.Date(2026, 1, 2, 3, 5, 0, 0, time.FixedZone("x", 3600))
	if got := FileName("001", slot); got != "001-20260102T0205.json.gz" {
		t.Errorf("FileName %s", got)
	}
	if got := MonthDir(time.Date(2026, 1, 1, 0, 30, 0, 0, time.FixedZone("x", 3600))); got != "202512" {
		t.Errorf("MonthDir %s (the slot is UTC)", got)
	}
	if got := SlotOf(time.Date(2026, 1, 1, 0, 9, 59, 999, time.UTC)); !got.Equal(time.Date(2026, 1, 1, 0, 5, 0, 0, time.UTC)) {
		t.Errorf("SlotOf %s", got)
	}
}

func TestDecodeRejects(t *testing.T) {
	mut := func(f func(r *Run)) []byte {
		r := sample()
		r.Version = Version
		f(r)
		b, _ := json.Marshal(r)
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"version", mut(func(r *Run) { r.Version = 2 }), "unknown schema version"},
		{"no vp", mut(func(r *Run) { r.VP = "" }), "vp missing"},
		{"slot", mut(func(r *Run) { r.Slot = r.Slot.Add(time.Minute) }), "not the start of a 5-minute interval"},
		{"family", mut(func(r *Run) { r.Queries[0].Family = 5 }), "family 5"},
		{"transport", mut(func(r *Run) { r.Queries[0].Transport = "quic" }), "transport"},
		{"purpose", mut(func(r *Run) { r.Queries[0].Purpose = "x" }), "purpose"},
		{"rtt", mut(func(r *Run) { r.Queries[0].RTTMS = -1 }), "rtt_ms"},
		{"timeout and response", mut(func(r *Run) { r.Queries[0].Timeout = true }), "both a timeout and a response"},
		{"no target", mut(func(r *Run) { r.Queries[0].Target = "" }), "target missing"},
		{"unknown field", []byte(`{"version":1,"vp":"001","slot":"2026-11-22T07:15:00Z","queries":[],"extra":1}`), "unknown field"},
		{"not json", []byte("hello"), "result:"},
		{"bad gzip", []byte{0x1f, 0x8b, 0, 0}, "gzip"},
		{"trailing garbage in gzip", func() []byte {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			zw.Write([]byte("{"))
			zw.Close()
			return b.Bytes()
		}(), "result:"},
	} {
		_, err := Decode(tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := Decode(make([]byte, MaxFileBytes+1)); !errors.Is(err, ErrTooBig) {
		t.Errorf("big file: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := Marshal(sample())
	f.Add(good)
	plain, _ := json.Marshal(sample())
	f.Add(plain)
	f.Add([]byte(`{"version":1,"vp":"x","slot":"2026-11-22T07:15:00Z","queries":[{"target":"t","family":4,"transport":"udp","purpose":"soa","rtt_ms":1e308}]}`))
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Decode(data)
		if err != nil {
			return
		}
		// What decodes is valid, and encodes and decodes again the same.
		if err := r.Validate(); err != nil {
			t.Fatalf("decoded but invalid: %v", err)
		}
		again, err := Marshal(r)
		if err != nil {
			t.Fatalf("does not encode again: %v", err)
		}
		r2, err := Decode(again)
		if err != nil {
			t.Fatalf("does not decode again: %v", err)
		}
		a, _ := json.Marshal(r)
		b, _ := json.Marshal(r2)
		if !bytes.Equal(a, b) {
			t.Fatalf("not stable:\n%s\n%s", a, b)
		}
		for i := range r.Queries {
			r.Queries[i].Available()
		}
	})
}
