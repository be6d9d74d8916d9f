package proxy

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/decoder"
	"github.com/netpulse/netpulse/device"
	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/flow/flowpb"
	"github.com/netpulse/netpulse/wire/wiretest"
)

// key is what identifies a record across the proxy: the decoded fields,
// without the receive time (the proxy's clock, not the capture's).
func key(r *flow.Record) string {
	start, end := r.FlowStart, r.FlowEnd
	if r.Type == flow.TypeSFlowV5 {
		start, end = time.Time{}, time.Time{} // sFlow times are receive times
	}
	return fmt.Sprintf("%v|%d|%v|%v|%v|%d|%d|%d|%d|%d|%d|%d|%d|%d|%v|%v|%v|%d",
		r.Type, r.ObservationDomain, r.Exporter, r.SrcAddr, r.DstAddr, r.SrcPort, r.DstPort, r.Proto,
		r.Packets, r.Bytes, r.InIf, r.OutIf, r.SamplingRate, r.Sequence, start.UnixMilli(), end.UnixMilli(), r.Reverse, r.Counters.IfIndex)
}

// expected decodes each capture on its own and returns the record keys.
func expected(t testing.TB, files []string) (keys []string, perFile []int) {
	for _, f := range files {
		dgs, err := capture.ReadAllUDP(f)
		if err != nil {
			t.Fatal(err)
		}
		d := decoder.New(decoder.DefaultConfig())
		n := 0
		for _, dg := range dgs {
			d.Decode(dg.Src.Addr(), dg.Time, dg.Payload, func(r *flow.Record) {
				keys = append(keys, key(r))
				n++
			})
		}
		perFile = append(perFile, n)
	}
	return keys, perFile
}

// delivered checks that the receiver stored exactly the records of want
// (as keys), each with its device, and no batch twice.
func delivered(t *testing.T, srv *wiretest.Server, want []string) {
	t.Helper()
	var got []string
	for _, b := range srv.Batches() {
		for _, pr := range b.Records {
			r := flow.FromProto(pr)
			if r.DeviceID != 7 {
				t.Fatalf("record without its device: %+v", r)
			}
			got = append(got, key(&r))
		}
	}
	sameKeys(t, got, want)
	if srv.Repeats() != 0 {
		t.Errorf("%d batches stored twice", srv.Repeats())
	}
}

func sameKeys(t *testing.T, got, want []string) {
	t.Helper()
	slices.Sort(got)
	slices.Sort(want)
	if len(got) != len(want) {
		t.Fatalf("%d records arrived, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("record differs:\n got  %s\n want %s", got[i], want[i])
		}
	}
}

func serviceSettings(t *testing.T) Settings {
	set := DefaultSettings()
	set.Config = testConfig()
	set.Devices = writeDevices(t)
	set.DataDir = t.TempDir()
	return set
}

func writeDevices(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "devices.yaml")
	if err := writeFile(path, "devices:\n  - {id: 7, name: lo, ips: [127.0.0.1], flow_type: ipfix}\n"); err != nil {
		t.Fatal(err)
	}
	return path
}

// replayAll replays the captures one after another, waiting for each to be
// forwarded, so that one exporter's templates do not race the next.
func replayAll(t *testing.T, s *Service, files []string, perFile []int) {
	t.Helper()
	total := uint64(0)
	for i, f := range files {
		dgs, err := capture.ReadAllUDP(f)
		if err != nil {
			t.Fatal(err)
		}
		replay(t, dgs, s.Proxy.Addr())
		total += uint64(perFile[i])
		waitFor(t, "forwarding of "+filepath.Base(f), func() bool {
			return s.Proxy.flowsOut.Load()+countersOut(s) >= total
		})
	}
}

// countersOut counts forwarded counter records: flowsOut counts flows.
func countersOut(s *Service) uint64 { return s.Proxy.countersOut.Load() }

func writeFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o644) }

func startService(t *testing.T, set Settings) *Service {
	t.Helper()
	s, err := NewService(set, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestEndToEndHTTPS replays every real capture over loopback into a
// proxy that forwards to an in-process collector receiver over HTTPS:
// every record arrives, once, with its content.
func TestEndToEndHTTPS(t *testing.T) {
	files := captures(t)
	want, perFile := expected(t, files)
	srv := wiretest.NewServer(t, wiretest.NewPKI(t), wiretest.Options{})
	t.Setenv("NETPULSE_API_TOKEN", wiretest.Token)
	set := serviceSettings(t)
	set.Sinks.Collector.URL = srv.URL
	set.Sinks.Collector.CAFile = srv.PKI.CAFile
	set.Sinks.Collector.FlushInterval = 50 * time.Millisecond
	s := startService(t, set)
	replayAll(t, s, files, perFile)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	delivered(t, srv, want)
}

// TestEndToEndKafka does the same through Kafka (franz-go's in-process
// kfake cluster on loopback).
func TestEndToEndKafka(t *testing.T) {
	files := captures(t)
	want, perFile := expected(t, files)
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "flows"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	for _, a := range cluster.ListenAddrs() {
		if !strings.HasPrefix(a, "127.0.0.1:") {
			t.Fatalf("kfake listens on %s, not loopback", a)
		}
	}
	set := serviceSettings(t)
	set.Sinks.Kafka.Brokers = cluster.ListenAddrs()
	set.Sinks.Kafka.Topic = "flows"
	s := startService(t, set)
	replayAll(t, s, files, perFile)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics("flows"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	for len(got) < len(want) {
		pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
		fs := cl.PollFetches(pctx)
		timedOut := pctx.Err() != nil
		pcancel()
		if timedOut {
			break
		}
		for _, e := range fs.Errors() {
			t.Logf("fetch: %v", e.Err)
		}
		fs.EachRecord(func(kr *kgo.Record) {
			var pr flowpb.Record
			if err := proto.Unmarshal(kr.Value, &pr); err != nil {
				t.Fatal(err)
			}
			r := flow.FromProto(&pr)
			got = append(got, key(&r))
		})
	}
	sameKeys(t, got, want)
}

// TestOutage: the collector is down while the proxy receives, the proxy
// is stopped (SIGTERM) and started again on its data directory, more flow
// arrives, then the collector comes back: every flow arrives exactly once.
func TestOutage(t *testing.T) {
	files := captures(t)[:4]
	want, perFile := expected(t, files)
	srv := wiretest.NewServer(t, wiretest.NewPKI(t), wiretest.Options{})
	addr := srv.Addr()
	srv.Close()
	t.Setenv("NETPULSE_API_TOKEN", wiretest.Token)
	set := serviceSettings(t)
	set.Sinks.Collector.URL = srv.URL
	set.Sinks.Collector.CAFile = srv.PKI.CAFile
	set.Sinks.Collector.FlushInterval = 20 * time.Millisecond
	set.Sinks.Collector.BackoffMin = 20 * time.Millisecond
	set.Sinks.Collector.BackoffMax = 100 * time.Millisecond

	s := startService(t, set)
	replayAll(t, s, files[:2], perFile[:2])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	s.Stop(ctx)
	cancel()
	spooled, _ := filepath.Glob(filepath.Join(set.DataDir, "spool", "*"))
	if len(spooled) == 0 || srv.Records() != 0 {
		t.Fatalf("after the first run: %d spool files, %d records delivered; want some and none", len(spooled), srv.Records())
	}

	s = startService(t, set)
	replayAll(t, s, files[2:], perFile[2:])
	srv.Start(t, addr)
	waitFor(t, "delivery after the outage", func() bool { return srv.Records() >= len(want) })
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	delivered(t, srv, want)
}

// TestDevicesFromAPI: the proxy pulls its devices from a collector's
// device API, and a restart while the collector is away uses the cache.
func TestDevicesFromAPI(t *testing.T) {
	set0, err := device.NewSet([]device.Device{{ID: 11, Name: "api-router", IPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := device.NewHandler(device.HandlerConfig{Read: device.TokenAuth("tok")}, device.NewMemStore(set0), nil)
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(h)
	t.Setenv("NETPULSE_API_TOKEN", "tok")
	set := DefaultSettings()
	set.Config = testConfig()
	set.DataDir = t.TempDir()
	set.Sinks.Null = true
	set.DevicesAPI.URL = api.URL
	set.DevicesAPI.AllowInsecureLoopback = true
	dgs, _ := capture.ReadAllUDP(filepath.Join("..", "testdata", "captures", "softflowd-v5.pcap"))

	for round, up := range []bool{true, false} {
		if !up {
			api.Close()
		}
		s := startService(t, set)
		replay(t, dgs, s.Proxy.Addr())
		waitFor(t, "flows of device 11", func() bool {
			ds := s.Proxy.stats.lookup(11)
			return ds != nil && ds.flowsIn.Load() == 417
		})
		st := s.Proxy.Status()
		if len(st.Devices) != 1 || st.Devices[0].Name != "api-router" {
			t.Errorf("round %d: status devices %+v", round, st.Devices)
		}
		s.Stop(context.Background())
	}
}
