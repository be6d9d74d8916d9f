package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/netpulse/netpulse/alert"
	"github.com/netpulse/netpulse/alert/rsyslogtest"
	"github.com/netpulse/netpulse/device"
	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/flow/flowpb"
	"github.com/netpulse/netpulse/ifwatch"
	"github.com/netpulse/netpulse/internal/promtest"
	"github.com/netpulse/netpulse/store"
	"github.com/netpulse/netpulse/wire"
	"github.com/netpulse/netpulse/wire/wiretest"
)

const (
	tokA   = "token-of-proxy-a-0123456789"
	tokB   = "token-of-proxy-b-0123456789"
	tokOps = "operator-token-0123456789"
)

// memStore is a store.Store in memory, enough to test the collector's
// plumbing (the engines have their own suite, store/storetest): it keeps
// batches, refuses a repeated id, and answers totals.
type memStore struct {
	mu      sync.Mutex
	batches map[string]store.Batch
	fail    error
}

func newMemStore() *memStore { return &memStore{batches: map[string]store.Batch{}} }

func (m *memStore) Insert(_ context.Context, b store.Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if _, ok := m.batches[b.ID]; ok {
		return store.ErrDuplicate
	}
	b.Records = append([]flow.Record(nil), b.Records...)
	m.batches[b.ID] = b
	return nil
}

func (m *memStore) BatchIDs(_ context.Context, since time.Time) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []string
	for id, b := range m.batches {
		if !b.Received.Before(since) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (m *memStore) totals() (recs int, bytes uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range m.batches {
		for i := range b.Records {
			recs++
			bytes += b.Records[i].Bytes * store.Scale(&b.Records[i])
		}
	}
	return recs, bytes
}

func (m *memStore) Query(_ context.Context, q store.Query) (*store.Result, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	_, b := m.totals()
	return &store.Result{Table: store.TableRaw, Rows: []store.Row{{Bytes: b}}}, nil
}

func (m *memStore) Maintain(context.Context, time.Time) error { return nil }
func (m *memStore) Info(context.Context) (store.Info, error) {
	return store.Info{Engine: "memory", DiskBytes: -1}, nil
}
func (m *memStore) Close() error { return nil }

type testServer struct {
	*Server
	pki  *wiretest.PKI
	url  string
	http *http.Client
}

func startServer(t *testing.T, st store.Store, dataDir string) *testServer {
	t.Helper()
	return startServerClock(t, st, dataDir, time.Now)
}

func startServerClock(t *testing.T, st store.Store, dataDir string, now func() time.Time, mutate ...func(*Config)) *testServer {
	t.Helper()
	pki := wiretest.NewPKI(t)
	cfg := Config{
		Listen: "127.0.0.1:0", CertFile: pki.ServerCertFile, KeyFile: pki.ServerKeyFile,
		DataDir: dataDir, Ingest: wire.HandlerConfig{MaxBody: 256 << 10},
	}
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := New(cfg, st, Options{ProxyTokens: map[string]string{tokA: "proxy-a", tokB: "proxy-b"}, APITokens: []string{tokOps}, Now: now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: srv, pki: pki, url: "https://" + srv.Addr().String(),
		http: &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientTLS()}, Timeout: 10 * time.Second}}
	t.Cleanup(func() { ts.stop(t) })
	return ts
}

func (ts *testServer) stop(t *testing.T) {
	if ts.Server == nil {
		return
	}
	if err := ts.Stop(context.Background()); err != nil {
		t.Error(err)
	}
	ts.Server = nil
}

func records(exporter string, n int, seq uint32) []flow.Record {
	t0 := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	out := make([]flow.Record, n)
	for i := range out {
		out[i] = flow.Record{
			Kind: flow.KindFlow, Type: flow.TypeNetFlowV9, TimeReceived: t0,
			Exporter: netip.MustParseAddr(exporter), ObservationDomain: 1, Sequence: seq,
			SrcAddr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), DstAddr: netip.MustParseAddr("192.0.2.1"),
			SrcPort: uint16(1000 + i), DstPort: 443, Proto: 6, Bytes: 1000, Packets: 2, SamplingRate: 10,
			FlowStart: t0.Add(-time.Second), FlowEnd: t0, InIf: 1, OutIf: 2,
		}
	}
	return out
}

func encode(t *testing.T, id string, recs []flow.Record) []byte {
	t.Helper()
	b := &flowpb.Batch{BatchId: id}
	for i := range recs {
		b.Records = append(b.Records, recs[i].ToProto())
	}
	body, err := wire.EncodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func (ts *testServer) post(t *testing.T, token, id string, body []byte, hdr ...string) (int, wire.Ack) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ts.url+wire.Path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", wire.ContentType)
	req.Header.Set("Content-Encoding", wire.ContentEncoding)
	req.Header.Set(wire.HeaderBatchID, id)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ts.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ack wire.Ack
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &ack)
	return resp.StatusCode, ack
}

func (ts *testServer) get(t *testing.T, token, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ts.url+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ts.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// TestBadInput: each bad request gets a clear 4xx, is counted by reason,
// stores nothing, and the collector goes on serving.
func TestBadInput(t *testing.T) {
	st := newMemStore()
	ts := startServer(t, st, t.TempDir())
	good := encode(t, "good1", records("192.0.2.10", 10, 1))

	var bomb bytes.Buffer
	zw, _ := zstd.NewWriter(&bomb)
	zw.Write(bytes.Repeat([]byte{0}, 300<<10))
	zw.Close()
	big := make([]byte, 300<<10)
	for i := range big {
		big[i] = byte(i * 7)
	}
	cases := []struct {
		name   string
		token  string
		body   []byte
		hdr    []string
		status int
		reason string
	}{
		{"wrong token", "not-a-token-at-all-xxxx", good, nil, 401, wire.ReasonAuth},
		{"no token", "", good, nil, 401, wire.ReasonAuth},
		{"oversize body", tokA, big, nil, 413, wire.ReasonTooLarge},
		{"corrupt body", tokA, []byte("this is not zstd"), nil, 400, wire.ReasonMalformed},
		{"corrupt protobuf", tokA, bomb.Bytes()[:20], nil, 400, wire.ReasonMalformed},
		{"unknown schema version", tokA, good, []string{wire.HeaderSchema, "7"}, 415, wire.ReasonSchema},
		{"wrong content type", tokA, good, []string{"Content-Type", "application/json"}, 415, wire.ReasonContentType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := ts.Stats().Rejected[c.reason]
			code, _ := ts.post(t, c.token, "good1", c.body, c.hdr...)
			if code != c.status {
				t.Fatalf("status %d, want %d", code, c.status)
			}
			if got := ts.Stats().Rejected[c.reason]; got != before+1 {
				t.Fatalf("%s rejections %d → %d, want one more", c.reason, before, got)
			}
		})
	}
	if n, _ := st.totals(); n != 0 {
		t.Fatalf("%d records stored from bad requests", n)
	}
	// Still serving.
	if code, ack := ts.post(t, tokA, "good1", good); code != 200 || ack.Accepted != 10 {
		t.Fatalf("good batch after bad ones: %d %+v", code, ack)
	}
	_, body := ts.get(t, tokOps, "/metrics")
	for _, want := range []string{`netpulse_collector_rejected_requests_total{reason="auth"} 2`, `netpulse_collector_records_stored_total 10`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestStoreFailureRetried: a store error is a 503 and nothing is
// acknowledged; the same batch is stored once the store is back.
func TestStoreFailureRetried(t *testing.T) {
	st := newMemStore()
	ts := startServer(t, st, t.TempDir())
	body := encode(t, "b1", records("192.0.2.10", 5, 1))
	st.fail = io.ErrUnexpectedEOF
	if code, _ := ts.post(t, tokA, "b1", body); code != 503 {
		t.Fatalf("status %d with a failing store, want 503", code)
	}
	st.mu.Lock()
	st.fail = nil
	st.mu.Unlock()
	if code, ack := ts.post(t, tokA, "b1", body); code != 200 || ack.Duplicate {
		t.Fatalf("retry: %d %+v", code, ack)
	}
	if n, _ := st.totals(); n != 5 {
		t.Fatalf("%d records stored, want 5", n)
	}
}

// TestRepeatAcrossRestart: a retry of a batch stored before a restart (the
// acknowledgement was lost) is acknowledged as a duplicate and not stored
// twice, though the new process has never seen its id.
func TestRepeatAcrossRestart(t *testing.T) {
	st := newMemStore()
	dir := t.TempDir()
	body := encode(t, "b1", records("192.0.2.10", 7, 1))
	ts := startServer(t, st, dir)
	if code, _ := ts.post(t, tokA, "b1", body); code != 200 {
		t.Fatal(code)
	}
	ts.stop(t)
	ts = startServer(t, st, dir)
	code, ack := ts.post(t, tokA, "b1", body)
	if code != 200 || !ack.Duplicate {
		t.Fatalf("retry after restart: %d %+v", code, ack)
	}
	if n, _ := st.totals(); n != 7 {
		t.Fatalf("%d records stored, want 7", n)
	}
	if got := ts.Stats().RepeatedBatches; got != 1 {
		t.Fatalf("repeated batches %d, want 1", got)
	}
}

// TestTwoProxies: one device exports to two proxies; each forwards the
// same records in its own batches. The collector stores them once, counts
// the copies, and keeps identical records that one proxy sends twice.
func TestTwoProxies(t *testing.T) {
	st := newMemStore()
	dir := t.TempDir()
	ts := startServer(t, st, dir)
	a := records("192.0.2.10", 100, 42)
	b := records("192.0.2.10", 100, 42)
	for i := range b { // what each proxy adds differs
		b[i].TimeReceived = b[i].TimeReceived.Add(3 * time.Millisecond)
		b[i].DeviceID = 9
		b[i].SrcHostname = "seen-by-b"
	}
	// Proxy A sends all in one batch; proxy B in two, the second first.
	if code, _ := ts.post(t, tokA, "a1", encode(t, "a1", a)); code != 200 {
		t.Fatal(code)
	}
	if code, _ := ts.post(t, tokB, "b2", encode(t, "b2", b[60:])); code != 200 {
		t.Fatal(code)
	}
	if code, _ := ts.post(t, tokB, "b1", encode(t, "b1", b[:60])); code != 200 {
		t.Fatal(code)
	}
	if n, _ := st.totals(); n != 100 {
		t.Fatalf("%d records stored, want 100 (one device through two proxies)", n)
	}
	if d := ts.Stats().DuplicateRecords; d != 100 {
		t.Fatalf("duplicates %d, want 100", d)
	}
	// Two identical records in one datagram from one proxy both count.
	twin := records("192.0.2.11", 1, 7)
	if code, _ := ts.post(t, tokA, "a2", encode(t, "a2", append(twin, twin...))); code != 200 {
		t.Fatal(code)
	}
	if n, _ := st.totals(); n != 102 {
		t.Fatalf("%d records stored, want 102", n)
	}
	// A graceful restart keeps the window: B's late copy is still dropped.
	ts.stop(t)
	ts = startServer(t, st, dir)
	if code, _ := ts.post(t, tokB, "b3", encode(t, "b3", twin)); code != 200 {
		t.Fatal(code)
	}
	if n, _ := st.totals(); n != 102 {
		t.Fatalf("%d records stored after restart, want 102", n)
	}
	// The proxy registry saw both.
	code, data := ts.get(t, tokOps, "/api/v1/proxies")
	if code != 200 || !strings.Contains(string(data), `"proxy-b"`) {
		t.Fatalf("proxies: %d %s", code, data)
	}
}

func TestDedupWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := NewDedup(10*time.Minute, 1000, t0)
	recs := records("192.0.2.1", 10, 1)
	if k, n := d.Filter("a", append([]flow.Record(nil), recs...), t0); len(k) != 10 || n != 0 {
		t.Fatal(len(k), n)
	}
	if k, n := d.Filter("b", append([]flow.Record(nil), recs...), t0.Add(4*time.Minute)); len(k) != 0 || n != 10 {
		t.Fatal(len(k), n)
	}
	// Remembered at least half the window after the last rotation, gone
	// after a whole window.
	if _, n := d.Filter("b", append([]flow.Record(nil), recs...), t0.Add(9*time.Minute)); n != 10 {
		t.Fatalf("forgotten within the window: %d dropped", n)
	}
	if k, _ := d.Filter("b", append([]flow.Record(nil), recs...), t0.Add(25*time.Minute)); len(k) != 10 {
		t.Fatalf("remembered past the window: %d kept", len(k))
	}
	// The key ignores what the proxy adds and sees what the exporter wrote.
	r := recs[0]
	r2 := r
	r2.DeviceID, r2.ResampleFactor, r2.SrcHostname, r2.TimeReceived = 5, 4, "x", r.TimeReceived.Add(time.Second)
	if Key(&r) != Key(&r2) {
		t.Error("key depends on proxy-added fields")
	}
	// sFlow's flow times are the proxy's receive time: not in the key.
	sf := r
	sf.Type = flow.TypeSFlowV5
	sf2 := sf
	sf2.FlowStart, sf2.FlowEnd = sf.FlowStart.Add(time.Millisecond), sf.FlowEnd.Add(time.Millisecond)
	if Key(&sf) != Key(&sf2) {
		t.Error("sFlow key depends on the receive time")
	}
	r2 = r
	r2.Sequence++
	if Key(&r) == Key(&r2) {
		t.Error("key ignores the sequence")
	}
	r2 = r
	r2.Bytes++
	if Key(&r) == Key(&r2) {
		t.Error("key ignores the content")
	}
	// Bounded: keys never exceed MaxKeys.
	small := NewDedup(time.Hour, 100, t0)
	for i := range 50 {
		small.Filter("a", records("192.0.2.1", 10, uint32(i)), t0)
	}
	if st := small.Stats(); st.Keys > 100 || st.EarlyRotations == 0 {
		t.Fatalf("bound not kept: %+v", st)
	}
}

func TestDedupStateFile(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "dedup.state")
	d := NewDedup(10*time.Minute, 1000, t0)
	d.Filter("a", records("192.0.2.1", 10, 1), t0)
	if err := d.Save(path); err != nil {
		t.Fatal(err)
	}
	d2 := NewDedup(10*time.Minute, 1000, t0)
	if err := d2.Load(path, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, n := d2.Filter("b", records("192.0.2.1", 10, 1), t0.Add(time.Minute)); n != 10 {
		t.Fatalf("window not restored: %d dropped", n)
	}
	// Too old: ignored. Corrupt: an error, never a panic.
	d3 := NewDedup(10*time.Minute, 1000, t0)
	if err := d3.Load(path, t0.Add(time.Hour)); err != nil || d3.Stats().Keys != 0 {
		t.Fatal(err, d3.Stats())
	}
	data, _ := os.ReadFile(path)
	for _, n := range []int{3, 12, 20, len(data) - 3} {
		os.WriteFile(path, data[:n], 0o600)
		if err := NewDedup(10*time.Minute, 1000, t0).Load(path, t0); err == nil {
			t.Errorf("truncated at %d: no error", n)
		}
	}
}

func TestQueryAPI(t *testing.T) {
	st := newMemStore()
	ts := startServer(t, st, t.TempDir())
	ts.post(t, tokA, "q1", encode(t, "q1", records("192.0.2.10", 3, 1)))
	if code, _ := ts.get(t, "", "/api/v1/query"); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := ts.get(t, tokA, "/api/v1/query"); code != 401 {
		t.Fatalf("a proxy token queries: %d", code)
	}
	code, data := ts.get(t, tokOps, "/api/v1/query?from=-2h&to=now")
	if code != 200 {
		t.Fatalf("%d %s", code, data)
	}
	var res QueryResponse
	if err := json.Unmarshal(data, &res); err != nil || len(res.Rows) != 1 || res.Rows[0].Bytes != 30000 {
		t.Fatalf("%v %s", err, data)
	}
	for _, bad := range []string{"group_by=nope", "filter=proto", "step=1ms", "from=yesterday", "order_by=bits", "limit=-1"} {
		code, data := ts.get(t, tokOps, "/api/v1/query?"+bad)
		if code != 400 || !strings.Contains(string(data), "error") {
			t.Errorf("%s: %d %s", bad, code, data)
		}
	}
	if code, data := ts.get(t, tokOps, "/api/v1/status"); code != 200 || !strings.Contains(string(data), `"records_stored": 3`) {
		t.Errorf("status: %d %s", code, data)
	}
	if code, _ := ts.get(t, "", "/healthz"); code != 200 {
		t.Error("healthz", code)
	}
	if code, _ := ts.get(t, "", "/readyz"); code != 200 {
		t.Error("readyz", code)
	}
}

func TestParseQuery(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 17, 30, 0, time.UTC)
	v, _ := url.ParseQuery("from=-3h&step=1h&group_by=exporter,in_if&filter=proto=6,17&filter=exporter!=192.0.2.9&order_by=packets&limit=5")
	q, err := ParseQuery(v, now)
	if err != nil {
		t.Fatal(err)
	}
	if !q.From.Equal(time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC)) || !q.To.Equal(time.Date(2026, 11, 22, 11, 0, 0, 0, time.UTC)) {
		t.Errorf("range not widened to whole steps: %v %v", q.From, q.To)
	}
	if len(q.GroupBy) != 2 || len(q.Filters) != 2 || q.Filters[1].Op != store.OpNe || q.Limit != 5 || q.OrderBy != store.MetricPackets {
		t.Errorf("%+v", q)
	}
	if tb := store.PickTable(&q, store.Retention{}, now); tb != store.TableHour {
		t.Errorf("hourly series over rollup dims answered from %s", tb)
	}
	for _, raw := range []string{"group_by=src_addr&step=1m&from=-10m", "filter=dst_port=53&step=1h&from=-3h"} {
		v, _ = url.ParseQuery(raw)
		q, _ = ParseQuery(v, now)
		if tb := store.PickTable(&q, store.Retention{}, now); tb != store.TableRaw {
			t.Errorf("%s answered from %s", raw, tb)
		}
	}
}

// TestDevicesFile: the device API writes changes back to the YAML file,
// which stays valid for the proxy's -devices flag, and proxies pull it
// with their tokens and If-None-Match.
func TestDevicesFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "devices.yaml"), []byte("devices:\n  - id: 1\n    name: edge-1\n    ips: [192.0.2.1]\n    flow_type: ipfix\n"), 0o600)
	ts := startServer(t, newMemStore(), dir)
	req, _ := http.NewRequest(http.MethodPost, ts.url+device.APIPath, strings.NewReader(`{"id":2,"name":"edge-2","ips":["2001:db8::2"],"flow_type":"sflow5","sample_rate":512}`))
	req.Header.Set("Authorization", "Bearer "+tokOps)
	req.Header.Set("Content-Type", "application/json")
	resp, err := ts.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	set, err := device.LoadFile(filepath.Join(dir, "devices.yaml"))
	if err != nil || set.Len() != 2 || set.ByIP(netip.MustParseAddr("2001:db8::2")).SampleRate != 512 {
		t.Fatalf("file after PUT: %v %v", err, set)
	}
	// A proxy token may read, not write.
	code, _ := ts.get(t, tokA, device.APIPath)
	if code != 200 {
		t.Fatalf("proxy GET: %d", code)
	}
	req, _ = http.NewRequest(http.MethodDelete, ts.url+device.APIPath+"/1", nil)
	req.Header.Set("Authorization", "Bearer "+tokA)
	resp, _ = ts.http.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 401 && resp.StatusCode != 403 {
		t.Fatalf("proxy DELETE: %d", resp.StatusCode)
	}
	// A hand edit is taken in by Reload.
	os.WriteFile(filepath.Join(dir, "devices.yaml"), []byte("devices: []\n"), 0o600)
	if err := ts.Devices().Reload(); err != nil {
		t.Fatal(err)
	}
	if s, _ := ts.Devices().List(context.Background()); s.Len() != 0 {
		t.Fatal("reload ignored")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{PlainHTTP: true, Listen: "0.0.0.0:8080"},
		{PlainHTTP: true, Listen: ":8080"},
		{Listen: "127.0.0.1:8443"}, // no certificate
		{PlainHTTP: true, Listen: "127.0.0.1:0", Store: StoreConfig{Engine: "sqlite"}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (Config{PlainHTTP: true, Listen: "[::1]:8080"}).Validate(); err != nil {
		t.Error(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "tokens")
	os.WriteFile(p, []byte("# proxies\nedge-a 0123456789abcdef0\n\nedge-b fedcba98765432100\n"), 0o600)
	m, err := ReadProxyTokens(p)
	if err != nil || m["0123456789abcdef0"] != "edge-a" || len(m) != 2 {
		t.Fatal(m, err)
	}
	for _, bad := range []string{"edge-a short\n", "edge-a 0123456789abcdef0\nedge-a 0123456789abcdef1\n", "one-field\n"} {
		os.WriteFile(p, []byte(bad), 0o600)
		if _, err := ReadProxyTokens(p); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestIfWatch: interfaces seen in stored flows go down after a silence and
// come back with traffic; the report API and the events file say so, and
// the ledger survives a restart.
func TestIfWatch(t *testing.T) {
	var mu sync.Mutex
	clock := time.Now().Truncate(time.Second)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	dir := t.TempDir()
	st := newMemStore()
	ts := startServerClock(t, st, dir, now)
	for i, id := range []string{"i1", "i1b"} { // two observations confirm a state (hold_observations)
		if code, _ := ts.post(t, tokA, id, encode(t, id, records("192.0.2.50", 3, uint32(10+i)))); code != 200 {
			t.Fatal(code)
		}
		advance(30 * time.Second)
	}
	if got := ts.ifw.w.Status(ifwatch.Key{Exporter: netip.MustParseAddr("192.0.2.50"), IfIndex: 1}).State; got != ifwatch.Up {
		t.Fatalf("in_if 1 after traffic: %v", got)
	}
	advance(6 * time.Minute) // past down_after (5m)
	ev, err := ts.ifw.w.Tick(context.Background())
	if err != nil || len(ev) != 2 {
		t.Fatalf("tick: %v %v", ev, err)
	}
	ts.ifw.emit(ev, nil)
	code, data := ts.get(t, tokOps, "/api/v1/ifwatch/recent?since=10m")
	if code != 200 || !strings.Contains(string(data), "192.0.2.50") {
		t.Fatalf("recent: %d %s", code, data)
	}
	code, data = ts.get(t, tokOps, "/api/v1/ifwatch/downtime?format=csv")
	if code != 200 || !strings.Contains(string(data), "192.0.2.50") {
		t.Fatalf("downtime: %d %s", code, data)
	}
	// A restart keeps the open outages; traffic closes them.
	ts.stop(t)
	ts = startServerClock(t, st, dir, now)
	advance(time.Minute)
	for i, id := range []string{"i2", "i2b"} {
		if code, _ := ts.post(t, tokA, id, encode(t, id, records("192.0.2.50", 3, uint32(20+i)))); code != 200 {
			t.Fatal(code)
		}
		advance(30 * time.Second)
	}
	open, _ := ts.ifw.ledger.OpenOutages(context.Background())
	all, _ := ts.ifw.ledger.Overlapping(context.Background(), clock.Add(-time.Hour), clock.Add(time.Hour))
	if len(open) != 0 || len(all) != 2 {
		t.Fatalf("after traffic: %d open, %d outages (want 0 and 2: one per interface, not doubled by the restart)", len(open), len(all))
	}
	ts.stop(t)
	events, _ := os.ReadFile(filepath.Join(dir, "ifwatch-events.log"))
	if !strings.Contains(string(events), "IFDOWN") || !strings.Contains(string(events), "IFUP") {
		t.Fatalf("events file: %s", events)
	}
}

// TestMetricsLint: the collector's metrics follow Prometheus conventions.
func TestMetricsLint(t *testing.T) {
	ts := startServer(t, newMemStore(), t.TempDir())
	ts.post(t, tokA, "m1", encode(t, "m1", records("192.0.2.10", 3, 1)))
	ts.post(t, "wrong-token-xxxxxxxxxxxxxxxx", "m2", encode(t, "m2", records("192.0.2.10", 3, 2)))
	promtest.Lint(t, ts.Registry(), "netpulse_collector_",
		"netpulse_collector_records_stored_total", "netpulse_collector_rejected_requests_total",
		"netpulse_collector_duplicate_records_total", "netpulse_collector_proxy_last_seen_timestamp_seconds",
		"netpulse_collector_store_insert_seconds")
}

// TestIfWatchAlertsToRsyslog: down and up events reach a real rsyslog as
// RFC 5424 messages with the ifwatch structured data.
func TestIfWatchAlertsToRsyslog(t *testing.T) {
	rs := rsyslogtest.Start(t)
	var mu sync.Mutex
	clock := time.Now().Truncate(time.Second)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	ts := startServerClock(t, newMemStore(), t.TempDir(), now, func(c *Config) {
		c.IfWatch.Syslog = alert.SyslogConfig{Address: rs.TCP, Transport: "tcp"}
	})
	feed := func(prefix string) {
		for i := range 2 {
			id := prefix + strconv.Itoa(i)
			if code, _ := ts.post(t, tokA, id, encode(t, id, records("198.51.100.7", 1, uint32(len(prefix)*10+i)))); code != 200 {
				t.Fatal(code)
			}
			advance(30 * time.Second)
		}
	}
	feed("a")
	advance(6 * time.Minute)
	ev, err := ts.ifw.w.Tick(context.Background())
	ts.ifw.emit(ev, err)
	feed("bb")
	msgs := rs.Wait(t, 4, func(m rsyslogtest.Message) bool { return m.AppName == "netpulse" || strings.HasPrefix(m.MsgID, "IF") })
	seen := map[string]int{}
	for _, m := range msgs {
		sd, err := m.SDMap()
		if err != nil {
			t.Fatal(err)
		}
		p := sd["ifwatch@32473"]
		if m.Version != "1" || p["exporter"] != "198.51.100.7" || (p["ifindex"] != "1" && p["ifindex"] != "2") {
			t.Errorf("message %+v, SD %v", m, sd)
		}
		seen[m.MsgID]++
		if m.MsgID == "IFDOWN" && (m.Severity != "4" || p["cause"] != "silence" || p["state"] != "down") {
			t.Errorf("down alert %+v %v", m, p)
		}
	}
	if seen["IFDOWN"] != 2 || seen["IFUP"] != 2 {
		t.Fatalf("alerts by msgid %v, want 2 IFDOWN and 2 IFUP", seen)
	}
}
