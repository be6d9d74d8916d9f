package jsonl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/netpulse/netpulse/flow"
)

func records(n int) []flow.Record {
	out := make([]flow.Record, n)
	for i := range out {
		out[i] = flow.Record{
			Kind: flow.KindFlow, Type: flow.TypeIPFIX, Exporter: netip.MustParseAddr("192.0.2.1"),
			SrcAddr: netip.MustParseAddr("10.0.0.1"), DstAddr: netip.MustParseAddr("10.0.0.2"),
			SrcPort: uint16(i), DstPort: 80, Proto: 6, Bytes: uint64(i), Packets: 1,
			TimeReceived: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		}
	}
	return out
}

func TestFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flows.jsonl")
	s, err := New(Config{Path: path, FlushInterval: 5 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs := records(2500)
	for i := 0; i < len(recs); i += 100 {
		if n := s.Write(recs[i : i+100]); n != 100 {
			t.Fatalf("Write took %d", n)
		}
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Write(recs[:1]) != 0 {
		t.Fatal("Write after Stop accepted records")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	i := 0
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, sc.Text())
		}
		if want := string(flow.AppendJSON(nil, &recs[i])); sc.Text()+"\n" != want {
			t.Fatalf("line %d:\n got %s\nwant %s", i, sc.Text(), want)
		}
		i++
	}
	if i != len(recs) {
		t.Fatalf("%d lines, want %d", i, len(recs))
	}
	if st := s.Stats(); st.Accepted != 2500 || st.Delivered != 2500 || st.Queued != 0 || st.Dropped != 0 || st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrorCounted(t *testing.T) {
	s, _ := New(Config{Output: failWriter{}, QueueSize: 10}, nil)
	if n := s.Write(records(1)); n != 0 {
		t.Fatal("Write before Start accepted records")
	}
	_ = s.Start(context.Background())
	if n := s.Write(records(20)); n > 10 {
		t.Fatalf("Write took %d past the queue size", n)
	}
	_ = s.Stop(context.Background())
	st := s.Stats()
	if st.Up || st.Delivered != 0 || st.Dropped != st.Accepted || st.Refused+st.Accepted != 21 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConfig(t *testing.T) {
	if _, err := New(Config{}, nil); err == nil {
		t.Fatal("no path accepted")
	}
	s, _ := New(Config{Path: filepath.Join(t.TempDir(), "missing", "x.jsonl")}, nil)
	if err := s.Start(context.Background()); err == nil {
		t.Fatal("unwritable path accepted")
	}
}
