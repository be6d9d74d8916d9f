package correct

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netpulse/netpulse/internal/testdns"
	"github.com/netpulse/netpulse/probe/result"
	"github.com/netpulse/netpulse/rssac/zone"
)

var update = flag.Bool("update", false, "regenerate testdata: sign the test zones (ldnsutils) and capture NSD's answers (nsd)")

// The test zones: three versions of a small root-like zone signed with
// the same keys, valid 2026-01-01 to 2036-01-01. Version 2 changes the
// glue of b.gtld-servers.net, version 3 adds the TLD se.
const (
	serial1 = 2026110100
	serial2 = 2026110200
	serial3 = 2026110300
)

var serials = []uint32{serial1, serial2, serial3}

var (
	sigInception  = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sigExpiration = time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)
)

// versionText is the unsigned text of a test version.
func versionText(serial uint32) string {
	text := testdns.RootZoneText(serial)
	if serial >= serial2 {
		text = strings.Replace(text, "b.gtld-servers.net.\t172800\tIN\tA\t192.33.14.30", "b.gtld-servers.net.\t172800\tIN\tA\t192.33.14.31", 1)
	}
	if serial >= serial3 {
		text += "se.\t172800\tIN\tNS\ta.ns.se.\nse.\t86400\tIN\tDS\t59407 8 2 d1c8e8a6b1c3e0a5b1b3f5c3b3b6f7a8e1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6\na.ns.se.\t172800\tIN\tA\t192.36.144.107\n"
	}
	return text
}

// goldenQueries are the correctness queries captured: every positive
// kind and negative ones whose NSEC proofs differ (the name sorts first,
// in the middle, last).
var goldenQueries = []struct{ name, qname, qtype string }{
	{"soa", ".", "SOA"},
	{"dnskey", ".", "DNSKEY"},
	{"ns", ".", "NS"},
	{"com-ns", "com.", "NS"},
	{"com-ds", "com.", "DS"},
	{"org-ns", "org.", "NS"},
	{"org-ds", "org.", "DS"},
	{"zw-ns", "zw.", "NS"},
	{"nxd-first", "www.rssac047-test.aaaaaaaaaa.", "A"},
	{"nxd-middle", "www.rssac047-test.nnnnnnnnnn.", "A"},
	{"nxd-last", "www.rssac047-test.zzzzzzzzzz.", "A"},
}

func zoneFile(serial uint32) string {
	return filepath.Join("testdata", "zones", fmt.Sprintf("%d.zone", serial))
}

func responsesFile(serial uint32) string {
	return filepath.Join("testdata", fmt.Sprintf("nsd-responses-%d.json", serial))
}

// TestGenerateTestdata regenerates the test zones and NSD's captured
// answers with -update; without it, it checks that the files are there.
func TestGenerateTestdata(t *testing.T) {
	if !*update {
		for _, s := range serials {
			if _, err := os.Stat(zoneFile(s)); err != nil {
				t.Fatalf("%v (regenerate with go test -run TestGenerateTestdata -update)", err)
			}
		}
		return
	}
	signer := testdns.NewRootSigner(t)
	if err := os.MkdirAll(filepath.Join("testdata", "zones"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range serials {
		signed := signer.Sign(t, versionText(s), sigInception, sigExpiration)
		if err := os.WriteFile(zoneFile(s), []byte(signed), 0o644); err != nil {
			t.Fatal(err)
		}
		if s == serial1 {
			// The zone package's tests parse the same file.
			if err := os.WriteFile(filepath.Join("..", "zone", "testdata", "root.zone.signed"), []byte(signed), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, s := range []uint32{serial1, serial3} {
		text, err := os.ReadFile(zoneFile(s))
		if err != nil {
			t.Fatal(err)
		}
		addr := testdns.StartNSD(t, map[string]string{".": string(text)})
		var qs []result.Query
		for _, g := range goldenQueries {
			q := probeQuery(t, addr, g.qname, g.qtype)
			q.Target, q.Address, q.Port = g.name, "127.0.0.1", 53
			qs = append(qs, q)
		}
		data, err := json.MarshalIndent(qs, "", " ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(responsesFile(s), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// loadZones parses the test zones.
func loadZones(t testing.TB, which ...uint32) []*zone.Zone {
	t.Helper()
	var zs []*zone.Zone
	for _, s := range which {
		data, err := os.ReadFile(zoneFile(s))
		if err != nil {
			t.Fatal(err)
		}
		z, err := zone.Parse(bytes.NewReader(data), ".", zone.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		zs = append(zs, z)
	}
	return zs
}

// loadResponses reads NSD's captured answers, by golden query name.
func loadResponses(t testing.TB, serial uint32) map[string]result.Query {
	t.Helper()
	data, err := os.ReadFile(responsesFile(serial))
	if err != nil {
		t.Fatal(err)
	}
	var qs []result.Query
	if err := json.Unmarshal(data, &qs); err != nil {
		t.Fatal(err)
	}
	out := map[string]result.Query{}
	for _, q := range qs {
		out[q.Target] = q
	}
	if len(out) != len(goldenQueries) {
		t.Fatalf("%s: %d responses, want %d", responsesFile(serial), len(out), len(goldenQueries))
	}
	return out
}
