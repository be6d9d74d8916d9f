//go:build cgo

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/collector"
	"github.com/netpulse/netpulse/decoder"
	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/internal/chtest"
	"github.com/netpulse/netpulse/proxy"
	"github.com/netpulse/netpulse/store"
	"github.com/netpulse/netpulse/store/clickhouse"
	"github.com/netpulse/netpulse/store/duckdb"
	"github.com/netpulse/netpulse/wire/wiretest"
)

const apiToken = "e2e-operator-token-0123456789"

var chServer chtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := chServer.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// engine opens a store, and opens it again on the same data after the
// first one is closed.
type engine struct {
	name string
	open func(t *testing.T) (first store.Store, again func() store.Store)
}

func engines() []engine {
	return []engine{
		{"duckdb", func(t *testing.T) (store.Store, func() store.Store) {
			path := filepath.Join(t.TempDir(), "flows.duckdb")
			open := func() store.Store {
				st, err := duckdb.Open(path, duckdb.Config{})
				if err != nil {
					t.Fatal(err)
				}
				return st
			}
			return open(), open
		}},
		{"clickhouse", func(t *testing.T) (store.Store, func() store.Store) {
			srv, db := chServer.Database(t)
			open := func() store.Store {
				st, err := clickhouse.Open(context.Background(), clickhouse.Config{Addresses: []string{srv.Addr}, Database: db})
				if err != nil {
					t.Fatal(err)
				}
				return st
			}
			return open(), open
		}},
	}
}

// replay is one capture: its datagrams, the loopback address they are
// sent from (one per capture, so each is its own exporter with its own
// templates), and the totals a correct pipeline stores for it.
type replay struct {
	name string
	src  netip.Addr
	dgs  []capture.Datagram
	want store.Row
}

// captures loads the real-exporter captures and computes each one's
// totals by decoding it offline, as `netpulse decode` does: flows only,
// each scaled by its sampling rate.
func captures(t *testing.T) []replay {
	t.Helper()
	files, _ := filepath.Glob("../testdata/captures/*.pcap")
	if len(files) < 10 {
		t.Fatalf("%d captures in testdata/captures", len(files))
	}
	var out []replay
	for i, f := range files {
		dgs, err := capture.ReadAllUDP(f)
		if err != nil {
			t.Fatal(err)
		}
		r := replay{name: filepath.Base(f), src: netip.AddrFrom4([4]byte{127, 0, 2, byte(i + 1)}), dgs: dgs}
		d := decoder.New(decoder.DefaultConfig())
		for _, dg := range dgs {
			d.Decode(r.src, dg.Time, dg.Payload, func(rec *flow.Record) {
				if rec.Kind != flow.KindFlow {
					return
				}
				s := store.Scale(rec)
				r.want.Bytes += rec.Bytes * s
				r.want.Packets += rec.Packets * s
				r.want.Flows += s
			})
		}
		if r.want.Flows == 0 {
			continue // counters only
		}
		out = append(out, r)
	}
	return out
}

// send replays the captures, each from its own source address, to every
// destination (two proxies for the de-duplication test), paced so that
// no socket buffer overflows: this test is about correctness.
func send(t *testing.T, reps []replay, dsts ...netip.AddrPort) {
	t.Helper()
	for _, r := range reps {
		conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.src, 0)))
		if err != nil {
			t.Fatal(err)
		}
		for i, dg := range r.dgs {
			for _, dst := range dsts {
				if !dst.Addr().IsLoopback() {
					t.Fatalf("refusing to send to %v", dst)
				}
				if _, err := conn.WriteToUDPAddrPort(dg.Payload, dst); err != nil {
					t.Fatal(err)
				}
			}
			if i%16 == 15 {
				time.Sleep(200 * time.Microsecond)
			}
		}
		conn.Close()
	}
}

type pipeline struct {
	t       *testing.T
	pki     *wiretest.PKI
	dir     string
	addr    string // collector's address, kept across restarts
	st      store.Store
	srv     *collector.Server
	proxies []*proxy.Service
	client  *http.Client
}

var proxyTokens = map[string]string{"e2e-proxy-token-one-0123456789": "edge-1", "e2e-proxy-token-two-0123456789": "edge-2"}

func (p *pipeline) startCollector(st store.Store) {
	p.t.Helper()
	listen := p.addr
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	cfg := collector.Config{Listen: listen, CertFile: p.pki.ServerCertFile, KeyFile: p.pki.ServerKeyFile, DataDir: p.dir}
	srv, err := collector.New(cfg, st, collector.Options{ProxyTokens: proxyTokens, APITokens: []string{apiToken}}, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		p.t.Fatal(err)
	}
	p.st, p.srv, p.addr = st, srv, srv.Addr().String()
}

func (p *pipeline) stopCollector() {
	p.t.Helper()
	if p.srv == nil {
		return
	}
	if err := p.srv.Stop(context.Background()); err != nil {
		p.t.Error(err)
	}
	if err := p.st.Close(); err != nil {
		p.t.Error(err)
	}
	p.srv, p.st = nil, nil
}

func (p *pipeline) startProxy(token string) *proxy.Service {
	p.t.Helper()
	dir := p.t.TempDir()
	tokFile := filepath.Join(dir, "token")
	os.WriteFile(tokFile, []byte(token), 0o600)
	set := proxy.DefaultSettings()
	set.Name = proxyTokens[token]
	set.Host, set.Port, set.Healthcheck = "127.0.0.1", 0, "127.0.0.1"
	set.AcceptUnregistered = true
	set.Max = 0 // no resampling: totals must be exact
	set.DataDir = dir
	set.Sinks.Collector.URL = "https://" + p.addr
	set.Sinks.Collector.CAFile = p.pki.CAFile
	set.Sinks.Collector.ProxyName = proxyTokens[token]
	set.Sinks.Collector.FlushInterval = 50 * time.Millisecond
	set.Sinks.Collector.BackoffMin = 20 * time.Millisecond
	set.Sinks.Collector.BackoffMax = 200 * time.Millisecond
	set.Sinks.Collector.SpoolDir = filepath.Join(dir, "spool")
	set.Sinks.TokenFile = tokFile
	svc, err := proxy.NewService(set, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := svc.Start(context.Background()); err != nil {
		p.t.Fatal(err)
	}
	p.proxies = append(p.proxies, svc)
	p.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		svc.Stop(ctx)
	})
	return svc
}

func newPipeline(t *testing.T, st store.Store) *pipeline {
	pki := wiretest.NewPKI(t)
	p := &pipeline{t: t, pki: pki, dir: t.TempDir(),
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientTLS()}, Timeout: 30 * time.Second}}
	p.startCollector(st)
	t.Cleanup(p.stopCollector)
	return p
}

// query asks the collector's API for totals by exporter.
func (p *pipeline) byExporter() map[string]store.Row {
	p.t.Helper()
	v := url.Values{"group_by": {"exporter"}, "limit": {"0"}, "from": {"-1h"}, "to": {"-0s"}}
	v.Set("to", time.Now().Add(time.Minute).UTC().Format(time.RFC3339))
	req, _ := http.NewRequest(http.MethodGet, "https://"+p.addr+"/api/v1/query?"+v.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := p.client.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		p.t.Fatalf("query: %d %s", resp.StatusCode, body)
	}
	var res collector.QueryResponse
	if err := json.Unmarshal(body, &res); err != nil {
		p.t.Fatal(err)
	}
	out := map[string]store.Row{}
	for _, r := range res.Rows {
		out[r.Keys[0]] = store.Row{Bytes: r.Bytes, Packets: r.Packets, Flows: r.Flows}
	}
	return out
}

// expect waits until the API's totals equal want times mult for every
// capture, stay so, and nothing else is there.
func (p *pipeline) expect(reps []replay, mult uint64) {
	p.t.Helper()
	want := map[string]store.Row{}
	for _, r := range reps {
		want[r.src.String()] = store.Row{Bytes: r.want.Bytes * mult, Packets: r.want.Packets * mult, Flows: r.want.Flows * mult}
	}
	equal := func(got map[string]store.Row) bool {
		if len(got) != len(want) {
			return false
		}
		for k, w := range want {
			if g := got[k]; g.Bytes != w.Bytes || g.Packets != w.Packets || g.Flows != w.Flows {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(60 * time.Second)
	var got map[string]store.Row
	for {
		got = p.byExporter()
		if equal(got) {
			break
		}
		if time.Now().After(deadline) {
			var lines []string
			for _, r := range reps {
				k := r.src.String()
				lines = append(lines, fmt.Sprintf("%-28s %s got %+v want %+v", r.name, k, got[k], want[k]))
			}
			sort.Strings(lines)
			p.t.Fatalf("totals differ from the captures' (x%d):\n%s", mult, strings.Join(lines, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// And nothing more arrives: no record doubled late.
	time.Sleep(700 * time.Millisecond)
	if got = p.byExporter(); !equal(got) {
		p.t.Fatalf("totals changed after matching: %v", got)
	}
}

// TestEndToEnd: captures from softflowd, pmacct and fprobe → proxy →
// HTTPS → collector → store → query API; the totals per exporter equal
// each capture's, on DuckDB and on ClickHouse.
func TestEndToEnd(t *testing.T) {
	reps := captures(t)
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			st, _ := e.open(t)
			p := newPipeline(t, st)
			px := p.startProxy("e2e-proxy-token-one-0123456789")
			send(t, reps, px.Proxy.Addr())
			p.expect(reps, 1)
			t.Logf("%d captures, totals equal per exporter", len(reps))
		})
	}
}

// TestCollectorRestart: the collector stops and starts while the proxy
// keeps sending; the proxy spools meanwhile. Nothing is lost, nothing is
// doubled.
func TestCollectorRestart(t *testing.T) {
	reps := captures(t)
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			st, again := e.open(t)
			p := newPipeline(t, st)
			px := p.startProxy("e2e-proxy-token-one-0123456789")
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { // three passes, the middle one while the collector is down
				defer wg.Done()
				for range 3 {
					send(t, reps, px.Proxy.Addr())
					time.Sleep(300 * time.Millisecond)
				}
			}()
			time.Sleep(400 * time.Millisecond)
			p.stopCollector()
			sawDown := false
			for range 14 { // 700 ms down
				time.Sleep(50 * time.Millisecond)
				sawDown = sawDown || strings.Contains(px.Proxy.Status().Problem, "sink down")
			}
			if !sawDown {
				t.Error("the proxy never saw the collector down: the restart was not mid-stream")
			}
			p.startCollector(again())
			wg.Wait()
			p.expect(reps, 3)
		})
	}
}

// TestTwoProxies: every device exports to two proxies; the collector
// counts each record once and the copies as duplicates.
func TestTwoProxies(t *testing.T) {
	reps := captures(t)
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			st, _ := e.open(t)
			p := newPipeline(t, st)
			a := p.startProxy("e2e-proxy-token-one-0123456789")
			b := p.startProxy("e2e-proxy-token-two-0123456789")
			send(t, reps, a.Proxy.Addr(), b.Proxy.Addr())
			p.expect(reps, 1)
			var flows uint64
			for _, r := range reps {
				flows += r.want.Flows
			}
			// Both proxies delivered; one copy of each record is a duplicate.
			deadline := time.Now().Add(20 * time.Second)
			for {
				s := p.srv.Stats()
				per := map[string]uint64{}
				for _, pi := range p.srv.Proxies() {
					per[pi.Name] = pi.Records + pi.Duplicates
				}
				if s.DuplicateRecords > 0 && per["edge-1"] == per["edge-2"] && per["edge-1"] == s.RecordsStored {
					if s.DuplicateRecords != s.RecordsStored {
						t.Fatalf("duplicates %d, stored %d: every record came twice", s.DuplicateRecords, s.RecordsStored)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("stats %+v per proxy %v", s, per)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}
