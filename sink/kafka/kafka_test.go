package kafka

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/flow/flowpb"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
)

const topic = "netpulse-flows"

// records returns n records from 4 exporters, each exporter's numbered in
// order in Sequence.
func records(n int) []flow.Record {
	exporters := []netip.Addr{
		netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"),
		netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("198.51.100.7"),
	}
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	out := make([]flow.Record, n)
	for i := range out {
		out[i] = flow.Record{
			Kind: flow.KindFlow, Type: flow.TypeNetFlowV9, TimeReceived: t0.Add(time.Duration(i)),
			Exporter: exporters[i%len(exporters)], Sequence: uint32(i / len(exporters)),
			SrcAddr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), DstAddr: netip.MustParseAddr("10.9.9.9"),
			SrcPort: uint16(i), DstPort: 53, Proto: 17, Bytes: uint64(i) * 10, Packets: 1, SrcCountry: "DE",
		}
	}
	return out
}

func cluster(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	for _, a := range c.ListenAddrs() {
		if ap, err := netip.ParseAddrPort(a); err != nil || !ap.Addr().IsLoopback() {
			t.Fatalf("kfake listens on %s, not loopback", a)
		}
	}
	return c
}

func TestProduce(t *testing.T) {
	c := cluster(t)
	s, err := New(Config{Brokers: c.ListenAddrs(), Topic: topic}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := records(5000)
	for i := 0; i < len(want); i += 500 {
		if n := s.Write(want[i : i+500]); n != 500 {
			t.Fatalf("Write took %d of 500", n)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Accepted != 5000 || st.Delivered != 5000 || st.Dropped != 0 || st.Queued != 0 || !st.Up {
		t.Fatalf("stats %+v", st)
	}

	// Read everything back.
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	wantByKey := map[string]flow.Record{}
	for _, r := range want {
		b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(r.ToProto())
		wantByKey[string(b)] = r
	}
	partOf := map[netip.Addr]int32{}
	lastSeq := map[netip.Addr]int64{}
	got := 0
	for got < len(want) {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d: %v", got, len(want), err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatal(err) })
		fs.EachRecord(func(m *kgo.Record) {
			var p flowpb.Record
			if err := proto.Unmarshal(m.Value, &p); err != nil {
				t.Fatal(err)
			}
			b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&p)
			r, ok := wantByKey[string(b)]
			if !ok {
				t.Fatalf("unexpected or repeated record %+v", flow.FromProto(&p))
			}
			delete(wantByKey, string(b))
			if !bytes.Equal(m.Key, r.Exporter.AsSlice()) {
				t.Fatalf("key %x, want exporter %s", m.Key, r.Exporter)
			}
			if got := flow.FromProto(&p); got.Exporter != r.Exporter || got.SrcCountry != "DE" || got.Bytes != r.Bytes {
				t.Fatalf("content changed: %+v", got)
			}
			// One exporter, one partition, in order.
			if pt, seen := partOf[r.Exporter]; seen && pt != m.Partition {
				t.Fatalf("exporter %s in partitions %d and %d", r.Exporter, pt, m.Partition)
			}
			partOf[r.Exporter] = m.Partition
			if last, seen := lastSeq[r.Exporter]; seen && int64(r.Sequence) != last+1 {
				t.Fatalf("exporter %s: record %d after %d", r.Exporter, r.Sequence, last)
			}
			lastSeq[r.Exporter] = int64(r.Sequence)
			got++
		})
	}
	if len(wantByKey) != 0 {
		t.Fatalf("%d records missing", len(wantByKey))
	}
}

// TestBufferFull produces to a broker that is not there: Write refuses
// past MaxBufferedRecords, and Stop drops (and counts) what is buffered.
func TestBufferFull(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	s, err := New(Config{Brokers: []string{addr}, Topic: topic, MaxBufferedRecords: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Write(records(10)); n != 0 {
		t.Fatalf("Write before Start took %d", n)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := s.Write(records(150)); n != 100 {
		t.Fatalf("Write took %d, want 100", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Stop(ctx); err == nil {
		t.Fatal("Stop flushed to a missing broker")
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Dropped != 100 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := s.Stats(); st.Accepted != 100 || st.Refused != 60 || st.Dropped != 100 || st.Delivered != 0 || st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
	if n := s.Write(records(1)); n != 0 {
		t.Fatal("Write after Stop accepted records")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Topic: "t"}, "kafka.brokers"},
		{Config{Brokers: []string{"127.0.0.1:9092"}}, "kafka.topic"},
		{Config{Brokers: []string{"127.0.0.1:9092"}, Topic: "t", Compression: "brotli"}, "kafka.compression"},
		{Config{Brokers: []string{"127.0.0.1:9092"}, Topic: "t", SASL: SASLConfig{Mechanism: "GSSAPI"}}, "kafka.sasl.mechanism"},
		{Config{Brokers: []string{"127.0.0.1:9092"}, Topic: "t", SASL: SASLConfig{Mechanism: "PLAIN", User: "u"}}, "password"},
		{Config{Brokers: []string{"127.0.0.1:9092"}, Topic: "t", CertFile: "x"}, "set both"},
	} {
		if _, err := New(tt.cfg, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: got %v, want %q", tt.cfg, err, tt.want)
		}
	}
	if _, err := New(Config{Brokers: []string{"127.0.0.1:9092"}, Topic: "t",
		SASL: SASLConfig{Mechanism: "scram-sha-512", User: "u", Password: "p"}}, nil); err != nil {
		t.Fatal(err)
	}
}
