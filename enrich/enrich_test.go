package enrich

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/internal/testdns"
)

func TestNetworks(t *testing.T) {
	nets, err := ParseNetworks("10.10.0.0/16, 2001:db8::/32,")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{MyNetworks: nets}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := flow.Record{Kind: flow.KindFlow, SrcAddr: netip.MustParseAddr("10.10.3.4"), DstAddr: netip.MustParseAddr("192.0.2.1")}
	e.Apply(&r)
	if !r.SrcInternal || r.DstInternal {
		t.Errorf("internal: src %v dst %v", r.SrcInternal, r.DstInternal)
	}
	if _, err := ParseNetworks("10.0.0.0/33"); err == nil {
		t.Error("bad CIDR accepted")
	}
	for _, bad := range []string{"127.0.0.1", "internal:nope", "host:53"} {
		if _, _, err := ParseDNS(bad); err == nil {
			t.Errorf("ParseDNS(%q) accepted", bad)
		}
	}
}

const reverseZone = `$TTL 3600
@ IN SOA ns.example. hostmaster.example. 1 3600 600 86400 60
@ IN NS ns.example.
5 IN PTR router-5.example.
`

const tenZone = `$TTL 3600
@ IN SOA ns.example. hostmaster.example. 1 3600 600 86400 60
@ IN NS ns.example.
3.2.1 IN PTR db-internal.corp.example.
`

// waitName applies e to a record until the source name appears.
func waitName(t *testing.T, e *Enricher, src netip.Addr, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r := flow.Record{Kind: flow.KindFlow, SrcAddr: src}
		e.Apply(&r)
		if r.SrcHostname == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%v never resolved to %q (stats %+v)", src, want, e.Stats())
}

// TestReverseDNSWithNSD resolves against a real authoritative server
// (NSD) on loopback.
func TestReverseDNSWithNSD(t *testing.T) {
	addr := testdns.StartNSD(t, map[string]string{"2.0.192.in-addr.arpa.": reverseZone, "10.in-addr.arpa.": tenZone})

	t.Run("all", func(t *testing.T) {
		e, err := New(Config{DNS: addr}, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.Start(context.Background())
		defer e.Stop(context.Background())
		r := flow.Record{Kind: flow.KindFlow, SrcAddr: netip.MustParseAddr("192.0.2.5"), DstAddr: netip.MustParseAddr("192.0.2.6")}
		e.Apply(&r)
		if r.SrcHostname != "" {
			t.Error("first sight answered synchronously")
		}
		waitName(t, e, netip.MustParseAddr("192.0.2.5"), "router-5.example")
		waitName(t, e, netip.MustParseAddr("10.1.2.3"), "db-internal.corp.example")
		// No PTR: cached as nothing, asked once.
		before := e.Stats().DNSLookups
		for i := 0; i < 100; i++ {
			r := flow.Record{Kind: flow.KindFlow, SrcAddr: netip.MustParseAddr("192.0.2.6")}
			e.Apply(&r)
		}
		if got := e.Stats().DNSLookups - before; got > 0 {
			t.Errorf("%d more lookups for a cached negative answer", got)
		}
	})
	t.Run("internal", func(t *testing.T) {
		e, err := New(Config{DNS: "internal:" + addr}, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.Start(context.Background())
		defer e.Stop(context.Background())
		waitName(t, e, netip.MustParseAddr("10.1.2.3"), "db-internal.corp.example")
		for i := 0; i < 10; i++ {
			r := flow.Record{Kind: flow.KindFlow, SrcAddr: netip.MustParseAddr("192.0.2.5")}
			e.Apply(&r)
			if r.SrcHostname != "" {
				t.Fatal("a public address was resolved under internal:")
			}
		}
		if s := e.Stats(); s.DNSLookups != 1 {
			t.Errorf("%d lookups, want only the RFC 1918 one", s.DNSLookups)
		}
	})
}

// TestDeadDNSNeverSlowsApply points at a server that never answers: Apply
// must not wait for it, and what the queue cannot hold is counted.
func TestDeadDNSNeverSlowsApply(t *testing.T) {
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	e, err := New(Config{DNS: silent.LocalAddr().String(), DNSTimeout: time.Second, DNSQueue: 100, DNSWorkers: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Start(context.Background())
	defer e.Stop(context.Background())
	start := time.Now()
	for i := 0; i < 20000; i++ {
		r := flow.Record{Kind: flow.KindFlow, SrcAddr: netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)})}
		e.Apply(&r)
	}
	// Had Apply waited for lookups, 20000 misses would take at least
	// the 1 s timeout each.
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("20000 applies took %v with a dead DNS server", d)
	}
	s := e.Stats()
	if s.DNSSkipped == 0 || s.DNSQueued+s.DNSSkipped != 20000 {
		t.Errorf("stats %+v: every miss is either queued or skipped, and the queue must overflow", s)
	}
}

func TestGeoIP(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, rec func() mmdbtype.DataType) string {
		tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: name, IncludeReservedNetworks: true})
		if err != nil {
			t.Fatal(err)
		}
		_, n, _ := net.ParseCIDR("192.0.2.0/24")
		if err := tree.Insert(n, rec()); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name+".mmdb")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tree.WriteTo(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return path
	}
	geo := write("Test-Country", func() mmdbtype.DataType {
		return mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String("NZ")}}
	})
	asn := write("Test-ASN", func() mmdbtype.DataType {
		return mmdbtype.Map{"autonomous_system_number": mmdbtype.Uint32(64500)}
	})
	e, err := New(Config{GeoIP: geo, ASN: asn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	r := flow.Record{Kind: flow.KindFlow, SrcAddr: netip.MustParseAddr("192.0.2.9"), DstAddr: netip.MustParseAddr("198.51.100.1"), DstAS: 7}
	e.Apply(&r)
	if r.SrcCountry != "NZ" || r.SrcAS != 64500 || r.DstCountry != "" || r.DstAS != 7 {
		t.Errorf("got src %q/%d dst %q/%d", r.SrcCountry, r.SrcAS, r.DstCountry, r.DstAS)
	}
	if _, err := New(Config{GeoIP: filepath.Join(dir, "missing.mmdb")}, nil); err == nil {
		t.Error("missing database accepted")
	}
}
