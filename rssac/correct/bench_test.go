package correct

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/netpulse/netpulse/rssac"
	"github.com/netpulse/netpulse/rssac/zone"
)

// benchZones returns n zones: the test zones, then copies of version 3
// with later serials (their SOA signature does not verify, which does not
// matter to the answers benchmarked), newest last as a window is.
func benchZones(b *testing.B, n int) []*zone.Zone {
	zs := loadZones(b, serials...)
	v3, err := os.ReadFile(zoneFile(serial3))
	if err != nil {
		b.Fatal(err)
	}
	for k := 1; len(zs) < n; k++ {
		text := strings.Replace(string(v3), fmt.Sprint(serial3), fmt.Sprint(serial3+k), 1)
		z, err := zone.Parse(bytes.NewReader([]byte(text)), ".", zone.Limits{})
		if err != nil {
			b.Fatal(err)
		}
		zs = append(zs, z)
	}
	return zs[len(zs)-n:]
}

// BenchmarkCheck judges NSD's captured answers against a window of 1 and
// of 8 zones. The answers match version 3; with 8 zones it is not the
// newest, and a bad signature makes every zone be tried.
func BenchmarkCheck(b *testing.B) {
	got := loadResponses(b, serial3)
	one := loadZones(b, serial3)
	eight := append(loadZones(b, serial1, serial2, serial3), benchZones(b, 8)[3:]...)
	badSig := mutate(b, got["soa"], func(m *dns.Msg) {
		s := m.Answer[1].(*dns.RRSIG)
		s.Signature = "AAAA" + s.Signature[4:]
	})
	for _, tc := range []struct {
		name  string
		query string
		want  rssac.Verdict
	}{
		{"soa", "soa", rssac.Correct}, {"dnskey", "dnskey", rssac.Correct}, {"referral", "com-ns", rssac.Correct},
		{"nxdomain", "nxd-middle", rssac.Correct}, {"bad-sig", "", rssac.Incorrect},
	} {
		q := got[tc.query]
		if tc.query == "" {
			q = badSig
		}
		for _, zs := range [][]*zone.Zone{one, eight} {
			b.Run(fmt.Sprintf("%s/zones=%d", tc.name, len(zs)), func(b *testing.B) {
				if v, why := Check(&q, zs); v != tc.want {
					b.Fatalf("%v %q", v, why)
				}
				b.ReportAllocs()
				for b.Loop() {
					Check(&q, zs)
				}
			})
		}
	}
}
