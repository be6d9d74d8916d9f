package zone

import (
	"bytes"
	"os"
	"testing"

	"github.com/netpulse/netpulse/internal/testdns"
)

// FuzzParse feeds zone texts to the ingestion path: bad input is an
// error, never a panic, and a zone that parses answers its lookups.
func FuzzParse(f *testing.F) {
	signed, err := os.ReadFile("testdata/root.zone.signed")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed)
	f.Add([]byte(testdns.RootZoneText(1)))
	f.Add([]byte(". 86400 IN SOA a. b. 1 2 3 4 5\n$GENERATE 1-3 host$ A 192.0.2.$\n$ORIGIN com.\n@ 3600 IN NS ns\n"))
	f.Add([]byte(". 86400 IN SOA a. b. 1 2 3 4 5\n*.x. 1 IN TXT \"a\\\"b\" ( c )\n\\# 0\n"))
	lim := Limits{MaxBytes: 1 << 16, MaxRRs: 2000}
	f.Fuzz(func(t *testing.T, data []byte) {
		z, err := Parse(bytes.NewReader(data), "", lim)
		if err != nil {
			return
		}
		if z.RRCount() == 0 || z.RRCount() > lim.MaxRRs || z.Size() > lim.MaxBytes {
			t.Fatalf("%d records, %d bytes", z.RRCount(), z.Size())
		}
		soa := z.SOA()
		if s := z.Lookup(z.Origin(), soa.Hdr.Rrtype); s == nil || s.Len != 1 || z.Serial() != soa.Serial {
			t.Fatal("no SOA set at the apex")
		}
		for k := range z.sets {
			z.Cut(k.Name)
			z.Exists(k.Name)
			CompareNames(k.Name, z.Origin())
		}
	})
}
