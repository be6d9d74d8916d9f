package collector

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/flow/flowpb"
	"github.com/netpulse/netpulse/wire"
	"github.com/netpulse/netpulse/wire/wiretest"
	"google.golang.org/protobuf/proto"
)

// records returns n distinct records, numbered from first.
func records(first, n int) []flow.Record {
	out := make([]flow.Record, n)
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range out {
		k := first + i
		out[i] = flow.Record{
			Kind: flow.KindFlow, Type: flow.TypeIPFIX, TimeReceived: t0.Add(time.Duration(k) * time.Millisecond),
			Exporter: netip.MustParseAddr("192.0.2.1"), ObservationDomain: 7, Sequence: uint32(k),
			SamplingRate: 100, FlowStart: t0, FlowEnd: t0.Add(time.Second),
			SrcAddr: netip.AddrFrom4([4]byte{10, byte(k >> 16), byte(k >> 8), byte(k)}), DstAddr: netip.MustParseAddr("2001:db8::1"),
			SrcPort: uint16(k), DstPort: 443, Proto: 6, Bytes: uint64(k) * 1500, Packets: uint64(k%100) + 1,
			InIf: 3, OutIf: 4, SrcAS: 64500, DstAS: 64501, SrcMAC: flow.MAC{2, 0, 0, 0, 0, 1},
			SrcHostname: "host.example", DstCountry: "FR",
		}
	}
	return out
}

func key(p *flowpb.Record) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	return string(b)
}

// checkExactlyOnce checks that the server holds each record of want once,
// with the same content, and nothing else.
func checkExactlyOnce(t *testing.T, srv *wiretest.Server, want []flow.Record) {
	t.Helper()
	if r := srv.Repeats(); r != 0 {
		t.Errorf("%d batches handed to the collector twice", r)
	}
	got := map[string]int{}
	for _, b := range srv.Batches() {
		if b.Proxy != "test-proxy" {
			t.Fatalf("batch proxy %q", b.Proxy)
		}
		for _, r := range b.Records {
			got[key(r)]++
		}
	}
	missing := 0
	for i := range want {
		k := key(want[i].ToProto())
		switch got[k] {
		case 0:
			missing++
		case 1:
		default:
			t.Errorf("record %d arrived %d times", i, got[k])
		}
		delete(got, k)
	}
	if missing > 0 || len(got) > 0 {
		t.Errorf("%d of %d records missing, %d unexpected", missing, len(want), len(got))
	}
	// Content survives the trip.
	if bs := srv.Batches(); len(bs) > 0 && len(bs[0].Records) > 0 {
		r := flow.FromProto(bs[0].Records[0])
		if r.SrcHostname != "host.example" || r.DstAddr != netip.MustParseAddr("2001:db8::1") || r.SrcMAC != (flow.MAC{2, 0, 0, 0, 0, 1}) {
			t.Errorf("record content changed: %+v", r)
		}
	}
}

func testConfig(srv *wiretest.Server) Config {
	return Config{
		URL: "https://" + srv.Addr(), Token: wiretest.Token, CAFile: srv.PKI.CAFile, ProxyName: "test-proxy",
		BatchSize: 1000, FlushInterval: 10 * time.Millisecond, Timeout: 2 * time.Second,
		BackoffMin: 5 * time.Millisecond, BackoffMax: 40 * time.Millisecond,
	}
}

func start(t *testing.T, cfg Config) *Sink {
	t.Helper()
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

func write(t *testing.T, s *Sink, recs []flow.Record) {
	t.Helper()
	for i := 0; i < len(recs); i += 777 {
		part := recs[i:min(i+777, len(recs))]
		if n := s.Write(part); n != len(part) {
			t.Fatalf("Write took %d of %d", n, len(part))
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func stop(t *testing.T, s *Sink) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDelivers(t *testing.T) {
	srv := wiretest.NewServer(t, wiretest.NewPKI(t), wiretest.Options{})
	s := start(t, testConfig(srv))
	recs := records(0, 12345)
	write(t, s, recs)
	stop(t, s)
	checkExactlyOnce(t, srv, recs)
	st := s.Stats()
	if st.Accepted != 12345 || st.Delivered != 12345 || st.Dropped != 0 || st.Queued != 0 || st.Spooled != 0 || !st.Up {
		t.Fatalf("stats %+v", st)
	}
	if n := len(srv.Batches()); n < 13 {
		t.Errorf("%d batches, want at least 13 of at most 1000 records", n)
	}
}

// TestEncodersKeepOrder: with several encoders at work, batches still
// reach the collector in the order their records were written, each once.
func TestEncodersKeepOrder(t *testing.T) {
	for _, encoders := range []int{1, 4} {
		t.Run(fmt.Sprintf("encoders=%d", encoders), func(t *testing.T) {
			srv := wiretest.NewServer(t, wiretest.NewPKI(t), wiretest.Options{})
			cfg := testConfig(srv)
			cfg.BatchSize, cfg.Encoders = 100, encoders
			s := start(t, cfg)
			recs := records(0, 10000)
			write(t, s, recs)
			stop(t, s)
			checkExactlyOnce(t, srv, recs)
			next := uint32(0)
			for _, b := range srv.Batches() {
				for _, r := range b.Records {
					if r.Sequence != next {
						t.Fatalf("record %d arrived where %d was due", r.Sequence, next)
					}
					next++
				}
			}
		})
	}
}

func TestMutualTLS(t *testing.T) {
	pki := wiretest.NewPKI(t)
	srv := wiretest.NewServer(t, pki, wiretest.Options{MTLS: true})

	// Without a client certificate the handshake fails: retried, not lost.
	cfg := testConfig(srv)
	cfg.SpoolDir = t.TempDir()
	s := start(t, cfg)
	write(t, s, records(0, 10))
	waitFor(t, "a failed attempt", func() bool { return s.Stats().Retries > 0 })
	stop(t, s)
	if st := s.Stats(); st.Delivered != 0 || st.Up || st.Spooled != 10 {
		t.Fatalf("without a client certificate: %+v", st)
	}

	// With one, the spooled records and new ones arrive.
	cfg.CertFile, cfg.KeyFile = pki.ClientCertFile, pki.ClientKeyFile
	s = start(t, cfg)
	recs := records(10, 500)
	write(t, s, recs)
	waitFor(t, "delivery", func() bool { return s.Stats().Delivered == 510 })
	stop(t, s)
	checkExactlyOnce(t, srv, records(0, 510))
}

// TestReceiverDown503 makes the collector answer 503 for a while, then
// lets it through: everything arrives once, through the spool.
func TestReceiverDown503(t *testing.T) {
	srv := wiretest.NewServer(t, wiretest.NewPKI(t), wiretest.Options{})
	var down atomic.Bool
	down.Store(true)
	srv.Fail = func(*http.Request) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return 0
	}
	cfg := testConfig(srv)
	cfg.SpoolDir = t.TempDir()
	s := start(t, cfg)
	recs := records(0, 5000)
	write(t, s, recs[:2500])
	waitFor(t, "spooling", func() bool { st := s.Stats(); return st.Retries >= 3 && st.Spooled == 2500 })
	if s.Stats().Up {
		t.Fatal("Up while the collector fails")
	}
	down.Store(false)
	write(t, s, recs[2500:])
	waitFor(t, "delivery", func() bool { return s.Stats().Delivered == 5000 })
	stop(t, s)
	checkExactlyOnce(t, srv, recs)
	if st := s.Stats(); st.Spooled != 0 || st.Dropped != 0 || !st.Up {
		t.Fatalf("stats %+v", st)
	}
	assertSpoolEmpty(t, cfg.SpoolDir)
}

// TestReceiverClosed closes the collector's listener, then opens it again
// on the same address.
func TestReceiverClosed(t *testing.T) {
	srv := wiretest.NewServer(t, wiretest.NewPKI(t), wiretest.Options{})
	cfg := testConfig(srv)
	cfg.SpoolDir = t.TempDir()
	s := start(t, cfg)
	recs := records(0, 6000)
	write(t, s, recs[:1000])
	waitFor(t, "first delivery", func() bool { return s.Stats().Delivered == 1000 })
	srv.Close()
	write(t, s, recs[1000:4000])
	waitFor(t, "spooling", func() bool { return s.Stats().Spooled == 3000 })
	srv.Start(t, srv.Addr())
	write(t, s, recs[4000:])
	waitFor(t, "delivery", func() bool { return s.Stats().Delivered == 6000 })
	stop(t, s)
	checkExactlyOnce(t, srv, recs)
	assertSpoolEmpty(t, cfg.SpoolDir)
}

// TestKillAndRestart stops the sink while the collector is down, so that
// everything goes to the spool, then starts a new sink on the same spool.
func TestKillAndRestart(t *testing.T) {
	srv := wiretest.NewServer(t, wiretest.NewPKI(t), wiretest.Options{})
	srv.Close()
	cfg := testConfig(srv)
	cfg.SpoolDir = t.TempDir()
	cfg.FlushInterval = time.Hour // everything is still in memory at Stop
	s1 := start(t, cfg)
	recs := records(0, 4321)
	write(t, s1, recs)
	stop(t, s1)
	if st := s1.Stats(); st.Spooled != 4321 || st.Delivered != 0 || st.Dropped != 0 || st.Queued != 0 {
		t.Fatalf("first sink: %+v", st)
	}
	if s1.Write(recs[:1]) != 0 {
		t.Fatal("Write after Stop accepted records")
	}

	srv.Start(t, srv.Addr())
	cfg.FlushInterval = 10 * time.Millisecond
	s2 := start(t, cfg)
	if st := s2.Stats(); st.Spooled != 4321 {
		t.Fatalf("second sink found %d spooled records, want 4321", st.Spooled)
	}
	more := records(4321, 100)
	write(t, s2, more)
	waitFor(t, "delivery", func() bool { return s2.Stats().Delivered == 4421 })
	stop(t, s2)
	checkExactlyOnce(t, srv, append(recs, more...))
	assertSpoolEmpty(t, cfg.SpoolDir)
	// Order is kept: the spooled batches came first.
	if first := flow.FromProto(srv.Batches()[0].Records[0]); first.Sequence != 0 {
		t.Errorf("first record delivered is %d, want 0", first.Sequence)
	}
}

// TestLostAck has the collector keep each batch and then drop the
// connection before answering, the first time: the retry is a duplicate,
// acknowledged and not stored twice.
func TestLostAck(t *testing.T) {
	for _, spool := range []bool{false, true} {
		t.Run(fmt.Sprintf("spool=%v", spool), func(t *testing.T) {
			srv := wiretest.NewServer(t, wiretest.NewPKI(t), wiretest.Options{})
			var mu sync.Mutex
			lost := map[string]bool{}
			srv.AfterBatch = func(w http.ResponseWriter, r *http.Request, b *flowpb.Batch) {
				mu.Lock()
				defer mu.Unlock()
				if lost[b.BatchId] {
					return
				}
				lost[b.BatchId] = true
				conn, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				conn.Close()
			}
			cfg := testConfig(srv)
			if spool {
				cfg.SpoolDir = t.TempDir()
			}
			s := start(t, cfg)
			recs := records(0, 3000)
			write(t, s, recs)
			waitFor(t, "delivery", func() bool { return s.Stats().Delivered == 3000 })
			stop(t, s)
			checkExactlyOnce(t, srv, recs)
			hs := srv.Handler.Stats()
			if hs.Duplicates != uint64(len(lost)) || hs.Duplicates < 3 || hs.Records != 3000 {
				t.Fatalf("collector: %+v, %d acks lost", hs, len(lost))
			}
			if st := s.Stats(); st.Delivered != 3000 || st.Retries < 3 {
				t.Fatalf("sink: %+v", st)
			}
		})
	}
}

func TestQueueFull(t *testing.T) {
	srv := wiretest.NewServer(t, wiretest.NewPKI(t), wiretest.Options{})
	cfg := testConfig(srv)
	cfg.QueueSize = 100
	cfg.FlushInterval = time.Hour
	s := start(t, cfg)
	if n := s.Write(records(0, 150)); n != 100 {
		t.Fatalf("Write took %d, want 100", n)
	}
	if n := s.Write(records(150, 1)); n != 0 {
		t.Fatalf("Write took %d into a full queue", n)
	}
	if st := s.Stats(); st.Accepted != 100 || st.Refused != 51 || st.Queued != 100 {
		t.Fatalf("stats %+v", st)
	}
	stop(t, s)
	checkExactlyOnce(t, srv, records(0, 100))
}

// TestTooLarge has the collector take at most 300 records a batch: the
// sink splits its batches of 1000 until they fit.
func TestTooLarge(t *testing.T) {
	srv := wiretest.NewServer(t, wiretest.NewPKI(t), wiretest.Options{Config: wire.HandlerConfig{MaxRecords: 300}})
	for _, spool := range []bool{false, true} {
		cfg := testConfig(srv)
		if spool {
			cfg.SpoolDir = t.TempDir()
		}
		s := start(t, cfg)
		recs := records(0, 2000)
		write(t, s, recs)
		stop(t, s)
		if st := s.Stats(); st.Delivered != 2000 || st.Dropped != 0 {
			t.Fatalf("spool=%v: %+v", spool, st)
		}
	}
	for _, b := range srv.Batches() {
		if len(b.Records) > 300 {
			t.Fatalf("batch of %d records accepted", len(b.Records))
		}
	}
}

// TestTooLargeSpooled splits a batch that waits in the spool.
func TestTooLargeSpooled(t *testing.T) {
	srv := wiretest.NewServer(t, wiretest.NewPKI(t), wiretest.Options{Config: wire.HandlerConfig{MaxRecords: 300}})
	srv.Close()
	cfg := testConfig(srv)
	cfg.SpoolDir = t.TempDir()
	s := start(t, cfg)
	recs := records(0, 2000)
	write(t, s, recs)
	stop(t, s)
	srv.Start(t, srv.Addr())
	s = start(t, cfg)
	waitFor(t, "delivery", func() bool { return s.Stats().Delivered == 2000 })
	stop(t, s)
	checkExactlyOnce(t, srv, recs)
	assertSpoolEmpty(t, cfg.SpoolDir)
	// Order is kept through the splits.
	last := -1
	for _, b := range srv.Batches() {
		for _, r := range b.Records {
			if int(r.Sequence) != last+1 {
				t.Fatalf("record %d after %d", r.Sequence, last)
			}
			last = int(r.Sequence)
		}
	}
}

func TestMalformedDropped(t *testing.T) {
	srv := wiretest.NewServer(t, wiretest.NewPKI(t), wiretest.Options{})
	srv.Fail = func(*http.Request) int { return http.StatusBadRequest }
	cfg := testConfig(srv)
	cfg.SpoolDir = t.TempDir()
	s := start(t, cfg)
	write(t, s, records(0, 2500))
	waitFor(t, "drops", func() bool { return s.Stats().Dropped == 2500 })
	stop(t, s)
	if st := s.Stats(); st.Delivered != 0 || st.Retries != 0 || st.Spooled != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestAuthRetried(t *testing.T) {
	srv := wiretest.NewServer(t, wiretest.NewPKI(t), wiretest.Options{})
	cfg := testConfig(srv)
	cfg.Token = "wrong"
	s := start(t, cfg)
	write(t, s, records(0, 10))
	waitFor(t, "retries", func() bool { return s.Stats().Retries >= 3 })
	if st := s.Stats(); st.Dropped != 0 || st.Delivered != 0 || st.Queued != 10 || st.Up {
		t.Fatalf("stats %+v", st)
	}
	// No spool: stopping loses them, counted.
	stop(t, s)
	if st := s.Stats(); st.Dropped != 10 {
		t.Fatalf("stats after Stop %+v", st)
	}
}

func TestSpoolFull(t *testing.T) {
	srv := wiretest.NewServer(t, wiretest.NewPKI(t), wiretest.Options{})
	srv.Close()
	cfg := testConfig(srv)
	cfg.SpoolDir = t.TempDir()
	cfg.SpoolMaxBytes = 1 // nothing fits
	s := start(t, cfg)
	write(t, s, records(0, 3000))
	waitFor(t, "drops", func() bool { return s.Stats().Dropped == 3000 })
	stop(t, s)
}

func TestConfigErrors(t *testing.T) {
	pki := wiretest.NewPKI(t)
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Token: "t"}, "collector.url: empty"},
		{Config{URL: "http://192.0.2.1:8443", Token: "t", AllowInsecureLoopback: true}, "plain http"},
		{Config{URL: "http://127.0.0.1:8443", Token: "t"}, "plain http"},
		{Config{URL: "ftp://127.0.0.1", Token: "t"}, "scheme"},
		{Config{URL: "https://127.0.0.1:8443"}, "NETPULSE_API_TOKEN"},
		{Config{URL: "https://127.0.0.1:8443", Token: "t", CertFile: pki.ClientCertFile}, "set both"},
		{Config{URL: "https://127.0.0.1:8443", Token: "t", CAFile: "/nonexistent"}, "ca_file"},
	} {
		_, err := New(tt.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: got %v, want %q", tt.cfg, err, tt.want)
		}
	}
	s, err := New(Config{URL: "http://127.0.0.1:1", Token: "t", AllowInsecureLoopback: true}, nil)
	if err != nil || s.endpoint != "http://127.0.0.1:1"+wire.Path {
		t.Fatalf("loopback http: %v", err)
	}
}

func TestInsecureLoopback(t *testing.T) {
	h, _ := wire.NewHandler(wire.HandlerConfig{Tokens: map[string]string{"t": "p"}}, func(context.Context, string, *flowpb.Batch) error { return nil }, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	s := start(t, Config{URL: "http://" + ln.Addr().String(), Token: "t", AllowInsecureLoopback: true, FlushInterval: 10 * time.Millisecond})
	write(t, s, records(0, 10))
	stop(t, s)
	if h.Stats().Records != 10 {
		t.Fatalf("%+v", h.Stats())
	}
}

func assertSpoolEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("spool not empty: %d files, first %s", len(ents), ents[0].Name())
	}
}

func TestHeartbeat(t *testing.T) {
	srv := wiretest.NewServer(t, wiretest.NewPKI(t), wiretest.Options{})
	cfg := testConfig(srv)
	cfg.HeartbeatInterval = 30 * time.Millisecond
	s := start(t, cfg)
	waitFor(t, "two heartbeats", func() bool { return s.Heartbeats() >= 2 })
	for _, b := range srv.Batches() {
		if len(b.Records) != 0 {
			t.Fatalf("heartbeat with %d records", len(b.Records))
		}
	}
	// Traffic replaces heartbeats: none while batches flow.
	before := s.Heartbeats()
	for i := range 10 {
		write(t, s, records(i*10, 10))
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.Heartbeats() - before; n > 1 {
		t.Errorf("%d heartbeats while sending", n)
	}
}
