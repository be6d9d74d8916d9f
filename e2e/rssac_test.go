//go:build cgo

package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netpulse/netpulse/collector"
	"github.com/netpulse/netpulse/internal/diskusage"
	"github.com/netpulse/netpulse/internal/testdns"
	"github.com/netpulse/netpulse/probe"
	"github.com/netpulse/netpulse/probe/result"
	"github.com/netpulse/netpulse/rssac"
	"github.com/netpulse/netpulse/store/duckdb"
	"github.com/netpulse/netpulse/wire/wiretest"
)

// switchable is a loopback DNS front for one target: it relays each UDP
// datagram and each TCP message byte for byte to its current backend
// (after an optional delay), so that a test can move a target from one
// zone version to another between runs, or make it slow, while the
// answers still come from real NSD and Knot servers.
type switchable struct {
	addr    string // 127.0.0.x
	port    int
	backend atomic.Pointer[string]
	delay   time.Duration
	udp     *net.UDPConn
	tcp     net.Listener
	wg      sync.WaitGroup
}

func newSwitchable(t *testing.T, ip string, backend string, delay time.Duration) *switchable {
	t.Helper()
	s := &switchable{addr: ip, delay: delay}
	s.backend.Store(&backend)
	var err error
	for i := 0; i < 20; i++ {
		if s.udp, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)}); err != nil {
			t.Fatal(err)
		}
		s.port = s.udp.LocalAddr().(*net.UDPAddr).Port
		if s.tcp, err = net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(s.port))); err == nil {
			break
		}
		s.udp.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	s.wg.Add(2)
	go s.serveUDP()
	go s.serveTCP()
	t.Cleanup(func() { s.udp.Close(); s.tcp.Close(); s.wg.Wait() })
	return s
}

func (s *switchable) use(backend string) { s.backend.Store(&backend) }

func (s *switchable) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := s.udp.ReadFromUDP(buf)
		if err != nil {
			return
		}
		q := append([]byte(nil), buf[:n]...)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			time.Sleep(s.delay)
			c, err := net.Dial("udp", *s.backend.Load())
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			if _, err := c.Write(q); err != nil {
				return
			}
			resp := make([]byte, 65535)
			m, err := c.Read(resp)
			if err != nil {
				return
			}
			s.udp.WriteToUDP(resp[:m], from)
		}()
	}
}

func (s *switchable) serveTCP() {
	defer s.wg.Done()
	for {
		conn, err := s.tcp.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			q, err := readTCPMsg(conn)
			if err != nil {
				return
			}
			time.Sleep(s.delay)
			b, err := net.DialTimeout("tcp", *s.backend.Load(), 3*time.Second)
			if err != nil {
				return
			}
			defer b.Close()
			b.SetDeadline(time.Now().Add(3 * time.Second))
			if err := writeTCPMsg(b, q); err != nil {
				return
			}
			resp, err := readTCPMsg(b)
			if err != nil {
				return
			}
			writeTCPMsg(conn, resp)
		}()
	}
}

func readTCPMsg(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	m := make([]byte, binary.BigEndian.Uint16(l[:]))
	_, err := io.ReadFull(r, m)
	return m, err
}

func writeTCPMsg(w io.Writer, m []byte) error {
	b := make([]byte, 2+len(m))
	binary.BigEndian.PutUint16(b, uint16(len(m)))
	copy(b[2:], m)
	_, err := w.Write(b)
	return err
}

// TestRSSACFaults drives the whole RSSAC047 chain with real
// authoritative servers: NSD and Knot serve a root-like zone signed with
// ldns-signzone on loopback; one probe measures seven targets for 18 runs
// (90 minutes of slots) and uploads to a collector on DuckDB, whose zone
// archive and correctness check judge the answers; then the monthly
// report's metrics and pass/fail are asserted target by target:
//
//	good-nsd, good-knot  move to the new serial in the slot it appears: pass
//	stopped              nothing listens: availability 0, fails
//	late                 serves the old serial 70 min longer: publication fails
//	wrong                new serial with a changed . SOA and . NS: correctness fails
//	badsig               new serial with corrupted RRSIGs: correctness fails
//	slow                 good-nsd's answers 300 ms late: UDP latency fails, TCP passes
//
// With 6 of 7 answering and k = 8, the system's availability is 6/8.
func TestRSSACFaults(t *testing.T) {
	signer := testdns.NewRootSigner(t)
	now := time.Now()
	const oldSerial, newSerial = 2026100100, 2026100200
	sign := func(text string) string {
		return signer.Sign(t, text, now.Add(-24*time.Hour), now.Add(30*24*time.Hour))
	}
	oldZone := sign(testdns.RootZoneText(oldSerial))
	newText := testdns.RootZoneText(newSerial)
	newZone := sign(newText)
	wrongText := strings.Replace(newText, " 1800 900 604800 86400", " 1801 900 604800 86400", 1)
	wrongText = strings.Replace(wrongText, ".\t518400\tIN\tNS\tb.root-servers.net.\n", ".\t518400\tIN\tNS\tb.root-servers.net.\n.\t518400\tIN\tNS\tc.root-servers.net.\n", 1)
	if wrongText == newText {
		t.Fatal("the wrong zone is not different")
	}
	wrongZone := sign(wrongText)
	badZone := newZone
	for _, typ := range []uint16{dns.TypeSOA, dns.TypeNS, dns.TypeDNSKEY} {
		badZone = testdns.CorruptRRSIG(t, badZone, ".", typ)
	}
	srv := testdns.StartServers(t,
		testdns.ServerSpec{Zones: map[string]string{".": oldZone}, NSID: "nsd-old"},
		testdns.ServerSpec{Zones: map[string]string{".": newZone}, NSID: "nsd-new"},
		testdns.ServerSpec{Software: "knot", Zones: map[string]string{".": oldZone}, NSID: "knot-old"},
		testdns.ServerSpec{Software: "knot", Zones: map[string]string{".": newZone}, NSID: "knot-new"},
		testdns.ServerSpec{Zones: map[string]string{".": wrongZone}},
		testdns.ServerSpec{Zones: map[string]string{".": badZone}},
	)
	nsdOld, nsdNew, knotOld, knotNew, nsdWrong, nsdBad := srv[0].Addr(), srv[1].Addr(), srv[2].Addr(), srv[3].Addr(), srv[4].Addr(), srv[5].Addr()

	// The targets, each behind its own front on 127.0.2.x.
	fronts := map[string]*switchable{
		"good-nsd":  newSwitchable(t, "127.0.2.1", nsdOld, 0),
		"good-knot": newSwitchable(t, "127.0.2.2", knotOld, 0),
		"late":      newSwitchable(t, "127.0.2.4", nsdOld, 0),
		"wrong":     newSwitchable(t, "127.0.2.5", nsdOld, 0),
		"badsig":    newSwitchable(t, "127.0.2.6", nsdOld, 0),
		"slow":      newSwitchable(t, "127.0.2.7", nsdOld, 300*time.Millisecond),
	}
	var targets []probe.Target
	for name, f := range fronts {
		targets = append(targets, probe.Target{Name: name, IPv4: f.addr, Port: f.port})
	}
	// "stopped": an address and port where nothing listens.
	targets = append(targets, probe.Target{Name: "stopped", IPv4: "127.0.2.3", Port: fronts["good-nsd"].port})

	// The collector, on DuckDB, with the rssac part on.
	dir := t.TempDir()
	pki := wiretest.NewPKI(t)
	st, err := duckdb.Open(filepath.Join(dir, "flows.duckdb"), duckdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := collector.DefaultConfig()
	cfg.Listen, cfg.CertFile, cfg.KeyFile, cfg.DataDir = "127.0.0.1:0", pki.ServerCertFile, pki.ServerKeyFile, dir
	const probeToken = "e2e-probe-token-0123456789abcdef"
	cfg.RSSAC.Enabled = true
	cfg.RSSAC.ProbeTokensFile = filepath.Join(dir, "probe-tokens")
	os.WriteFile(cfg.RSSAC.ProbeTokensFile, []byte("001 "+probeToken+"\n"), 0o600)
	cfg = cfg.WithDefaults()
	rs, err := collector.NewRSSAC(cfg, collector.RSSACDeps{
		Store:     st.RSSAC(),
		APITokens: []string{apiToken},
		Disk:      diskusage.Func(func(string) (float64, error) { return 0.1, nil }),
	})
	if err != nil {
		t.Fatal(err)
	}
	srvC, err := collector.New(cfg, st, collector.Options{ProxyTokens: proxyTokens, APITokens: []string{apiToken}, Extra: rs.Handlers()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Register(srvC.Registry()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := rs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer rs.Stop(ctx)
	if err := srvC.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srvC.Stop(ctx)

	// Slots on 2026-10-05 from 10:00; the old serial was first seen ten
	// hours before, the new one in slot 2.
	slot0 := time.Date(2026, 10, 5, 10, 0, 0, 0, time.UTC)
	if _, _, err := rs.Zones().Add([]byte(oldZone), slot0.Add(-10*time.Hour)); err != nil {
		t.Fatal(err)
	}

	// The probe.
	tokFile := filepath.Join(dir, "probe-token")
	os.WriteFile(tokFile, []byte(probeToken), 0o600)
	pc := probe.DefaultConfig()
	pc.VP, pc.OutputDir, pc.Targets = "001", filepath.Join(dir, "probe"), targets
	pc.Timeout = 2 * time.Second
	pc.Traceroute.Method = "off"
	pc.Listen = "none"
	pc.TLDs = []string{"arpa", "com", "net", "org", "zw"}
	pc.Upload.URL = "https://" + srvC.Addr().String()
	pc.Upload.CAFile = pki.CAFile
	pc.Upload.TokenFile = tokFile
	var clock atomic.Pointer[time.Time]
	clock.Store(&slot0)
	p, err := probe.New(pc, probe.Deps{
		Now:  func() time.Time { return *clock.Load() },
		Rand: rand.New(rand.NewPCG(47, 2026)),
		Disk: diskusage.Func(func(string) (float64, error) { return 0.1, nil }),
	})
	if err != nil {
		t.Fatal(err)
	}
	const runs = 18
	for i := 0; i < runs; i++ {
		slot := slot0.Add(time.Duration(i) * result.Interval)
		clock.Store(&slot)
		switch i {
		case 2: // the new serial appears
			if _, _, err := rs.Zones().Add([]byte(newZone), slot); err != nil {
				t.Fatal(err)
			}
			for name, backend := range map[string]string{"good-nsd": nsdNew, "good-knot": knotNew, "wrong": nsdWrong, "badsig": nsdBad, "slow": nsdNew} {
				fronts[name].use(backend)
			}
		case 16: // 14 slots = 70 minutes late
			fronts["late"].use(nsdNew)
		}
		if _, _, err := p.RunOnce(ctx, slot); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		uctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := p.UploadPending(uctx)
		cancel()
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
	}

	// The monthly report, through the API.
	req, _ := http.NewRequest(http.MethodGet, "https://"+srvC.Addr().String()+collector.RSSACReportPath+"?month=2026-10&format=json", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientTLS()}, Timeout: time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("report: %s: %s", resp.Status, body)
	}
	var rep rssac.Report
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatal(err)
	}
	if testing.Verbose() {
		var md strings.Builder
		rep.WriteMarkdown(&md)
		t.Log("\n" + md.String())
	}
	checkFaultReport(t, &rep, runs)
}

// checkFaultReport asserts what each fault does to the metrics.
func checkFaultReport(t *testing.T, rep *rssac.Report, runs int) {
	t.Helper()
	servers := map[string]rssac.ServerResult{}
	for _, s := range rep.Servers {
		servers[s.Server] = s
	}
	if len(servers) != 7 {
		t.Fatalf("%d servers in the report, want 7: %v", len(servers), servers)
	}
	val := func(m rssac.Metric) float64 {
		if m.Value == nil {
			return -1
		}
		return *m.Value
	}
	for name, s := range servers {
		for _, tr := range s.Transports {
			if tr.Family != 4 {
				continue
			}
			if tr.Sent != int64(runs) {
				t.Errorf("%s %s%d: %d SOA queries, want %d", name, tr.Transport, tr.Family, tr.Sent, runs)
			}
			wantAvail := 1.0
			if name == "stopped" {
				wantAvail = 0
			}
			if got := val(tr.Availability); got != wantAvail || tr.Availability.Pass != (wantAvail == 1) {
				t.Errorf("%s %s: availability %v pass %v, want %v", name, tr.Transport, got, tr.Availability.Pass, wantAvail)
			}
			lat := val(tr.Latency)
			switch {
			case name == "stopped":
				if tr.Latency.Value != nil || tr.Latency.Pass {
					t.Errorf("stopped %s: latency %v pass %v, want no data and fail", tr.Transport, lat, tr.Latency.Pass)
				}
			case name == "slow" && tr.Transport == "udp":
				if lat < 300 || tr.Latency.Pass {
					t.Errorf("slow udp: latency %v ms pass %v, want ≥ 300 and fail", lat, tr.Latency.Pass)
				}
			case name == "slow":
				if lat < 300 || !tr.Latency.Pass {
					t.Errorf("slow tcp: latency %v ms pass %v, want ≥ 300 and pass (threshold 500)", lat, tr.Latency.Pass)
				}
			default:
				if !tr.Latency.Pass {
					t.Errorf("%s %s: latency %v ms fails", name, tr.Transport, lat)
				}
			}
		}
		corr := val(s.Correctness)
		switch name {
		case "wrong", "badsig":
			if corr >= 1 || corr < 0 || s.Correctness.Pass {
				t.Errorf("%s: correctness %v pass %v, want below 1 and fail (%+v)", name, corr, s.Correctness.Pass, s.CorrectnessCounts)
			}
		case "stopped":
			if s.Correctness.Pass {
				t.Errorf("stopped: correctness passes without a response")
			}
		default:
			if corr != 1 || !s.Correctness.Pass {
				t.Errorf("%s: correctness %v pass %v, want 1 (%+v)", name, corr, s.Correctness.Pass, s.CorrectnessCounts)
			}
		}
		pub := val(s.PublicationLatency)
		switch name {
		case "late":
			if pub != 70 || s.PublicationLatency.Pass {
				t.Errorf("late: publication latency %v min pass %v, want 70 and fail", pub, s.PublicationLatency.Pass)
			}
		case "stopped":
			if s.PublicationLatency.Pass {
				t.Error("stopped: publication latency passes")
			}
		default:
			if pub != 0 || !s.PublicationLatency.Pass {
				t.Errorf("%s: publication latency %v min pass %v, want 0 and pass", name, pub, s.PublicationLatency.Pass)
			}
		}
	}
	for _, tr := range rep.System.Transports {
		if tr.Family != 4 {
			continue
		}
		if got := val(tr.Availability); got != 0.75 || tr.Availability.Pass {
			t.Errorf("system %s: availability %v pass %v, want 6/8 = 0.75 and fail", tr.Transport, got, tr.Availability.Pass)
		}
		if !tr.Latency.Pass {
			t.Errorf("system %s: latency %v fails", tr.Transport, val(tr.Latency))
		}
	}
	if rep.System.Correctness.Pass {
		t.Error("system correctness passes with two incorrect servers")
	}
	if !rep.System.PublicationLatency.Pass {
		t.Errorf("system publication latency %v fails", val(rep.System.PublicationLatency))
	}
}
