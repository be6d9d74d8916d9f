package zone

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/netpulse/netpulse/internal/testdns"
)

// signedText is a small root-like zone signed by ldns-signzone (made by
// rssac/correct's TestGenerateTestdata -update).
func signedText(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("testdata/root.zone.signed")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseSigned(t *testing.T) {
	z, err := Parse(strings.NewReader(signedText(t)), ".", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if z.Origin() != "." || z.Serial() != 2026110100 || z.RRCount() != 48 || !z.Signed() || !z.HasNSEC() || z.HasNSEC3() {
		t.Fatalf("origin %q serial %d rrs %d signed %v nsec %v nsec3 %v", z.Origin(), z.Serial(), z.RRCount(), z.Signed(), z.HasNSEC(), z.HasNSEC3())
	}
	var tags []uint16
	for _, k := range z.DNSKEYs() {
		tags = append(tags, k.Tag)
	}
	slices.Sort(tags)
	if !slices.Equal(tags, []uint16{40075, 42174}) {
		t.Errorf("DNSKEY tags %v", tags)
	}
	for _, tc := range []struct {
		name      string
		typ       uint16
		n, sigs   int
		ttl       uint32
		wantExist bool
	}{
		{".", dns.TypeNS, 2, 1, 518400, true},
		{".", dns.TypeDNSKEY, 2, 1, 86400, true},
		{"com.", dns.TypeNS, 2, 0, 172800, true}, // a delegation: not signed
		{"com.", dns.TypeDS, 1, 1, 86400, true},
		{"org.", dns.TypeDS, 0, 0, 0, false},
		{"a.gtld-servers.net.", dns.TypeAAAA, 1, 0, 172800, true}, // glue
		{"zw.", dns.TypeNSEC, 1, 1, 86400, true},
	} {
		s := z.Lookup(tc.name, tc.typ)
		if (s != nil) != tc.wantExist {
			t.Errorf("%s %s: exists %v", tc.name, dns.TypeToString[tc.typ], s != nil)
			continue
		}
		if s != nil && (s.Len != tc.n || len(s.Sigs) != tc.sigs || s.TTL != tc.ttl || s.MixedTTL) {
			t.Errorf("%s %s: %d records, %d sigs, TTL %d (mixed %v)", tc.name, dns.TypeToString[tc.typ], s.Len, len(s.Sigs), s.TTL, s.MixedTTL)
		}
	}
	for name, cut := range map[string]string{
		".": "", "com.": "com.", "www.example.com.": "com.", "a.root-servers.net.": "net.",
		"nope.": "", "ns1.zw.": "zw.",
	} {
		if got := z.Cut(name); got != cut {
			t.Errorf("Cut(%s) = %q, want %q", name, got, cut)
		}
	}
	for name, want := range map[string]bool{
		".": true, "com.": true, "gtld-servers.net.": true /* empty non-terminal */, "afilias-nst.org.": true,
		"nope.": false, "www.com.": false,
	} {
		if got := z.Exists(name); got != want {
			t.Errorf("Exists(%s) = %v", name, got)
		}
	}
}

// TestCanonical: case and record order do not change an RRset's form.
func TestCanonical(t *testing.T) {
	a := "com. 172800 IN NS A.GTLD-Servers.net.\nCOM. 172800 IN NS b.gtld-servers.net.\n"
	b := "com. 172800 IN NS b.gtld-servers.net.\ncom. 172800 IN NS a.gtld-servers.net.\n"
	soa := ". 86400 IN SOA a.root-servers.net. nstld.verisign-grs.com. 1 1800 900 604800 86400\n"
	za, err := Parse(strings.NewReader(soa+a), ".", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	zb, err := Parse(strings.NewReader(soa+b), ".", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	sa, sb := za.Lookup("com.", dns.TypeNS), zb.Lookup("com.", dns.TypeNS)
	if sa == nil || sb == nil || sa.Data != sb.Data || sa.Len != 2 {
		t.Fatalf("%+v %+v", sa, sb)
	}
	// A repeated record is dropped, as a server does.
	zc, err := Parse(strings.NewReader(soa+a+a), ".", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if s := zc.Lookup("com.", dns.TypeNS); s.Data != sa.Data {
		t.Error("duplicates kept")
	}
	// Different TTLs within one set are flagged.
	zd, err := Parse(strings.NewReader(soa+"com. 172800 IN NS a.gtld-servers.net.\ncom. 3600 IN NS b.gtld-servers.net.\n"), ".", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if s := zd.Lookup("com.", dns.TypeNS); !s.MixedTTL {
		t.Error("mixed TTLs not flagged")
	}
}

// TestCompareNames checks the canonical order of RFC 4034 §6.1's
// example.
func TestCompareNames(t *testing.T) {
	ordered := []string{"example.", "a.example.", "yljkjljk.a.example.", "Z.a.example.", "zABC.a.EXAMPLE.",
		"z.example.", `\001.z.example.`, "*.z.example.", `\200.z.example.`}
	for i := range ordered {
		for j := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := CompareNames(ordered[i], ordered[j]); got != want {
				t.Errorf("CompareNames(%s, %s) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	if CompareNames(".", "*.") >= 0 || CompareNames("*.", "arpa.") >= 0 {
		t.Error("the root's wildcard does not sort between the root and arpa.")
	}
}

func TestParseErrors(t *testing.T) {
	soa := ". 86400 IN SOA a.root-servers.net. nstld.verisign-grs.com. 1 1800 900 604800 86400\n"
	big := soa + strings.Repeat("com. 172800 IN NS a.gtld-servers.net.\n", 100)
	for _, tc := range []struct {
		name, text, origin string
		lim                Limits
		want               string
	}{
		{"empty", "", ".", Limits{}, "zone: no records"},
		{"no SOA first", "com. 172800 IN NS a.gtld-servers.net.\n" + soa, ".", Limits{}, "first record is com. NS, not the SOA"},
		{"wrong origin", soa, "example.", Limits{}, "SOA owner ., want example."},
		{"other origin", strings.Replace(soa, ". 86400", "example. 86400", 1), ".", Limits{}, "SOA owner example., want ."},
		{"two SOAs", soa + strings.Replace(soa, " 1 1800", " 2 1800", 1), ".", Limits{}, "2 different SOA records"},
		{"SOA below apex", soa + "com. 86400 IN SOA a. b. 1 2 3 4 5\n", ".", Limits{}, "SOA at com., not at the apex"},
		{"class CH", soa + "com. 172800 CH NS a.gtld-servers.net.\n", ".", Limits{}, "class CH, want IN"},
		{"outside", strings.Replace(soa, ". 86400", "example. 86400", 1) + "other. 3600 IN A 192.0.2.1\n", "", Limits{}, "outside the zone example."},
		{"include", soa + "$INCLUDE /etc/passwd\n", ".", Limits{}, "$INCLUDE directive not allowed"},
		{"generate", soa + "$GENERATE 1-65535 h$ TXT x\n", ".", Limits{}, "$GENERATE is refused"},
		{"no RDATA", soa + "com. 172800 IN NS\n", ".", Limits{}, "com. NS: no RDATA"},
		{"bad line", soa + "com. 172800 IN A 999.1.1.1\n", ".", Limits{}, "zone: dns: bad A A"},
		{"bad type", soa + "com. 172800 IN FOO bar\n", ".", Limits{}, "zone: dns: unknown RR type"},
		{"RRSIG of RRSIG", soa + ". 86400 IN RRSIG RRSIG 8 0 86400 20360101000000 20260101000000 1 . AAAA\n", ".", Limits{}, "RRSIG covering RRSIG"},
		{"too many bytes", big, ".", Limits{MaxBytes: 1000}, "more than 1000 bytes"},
		{"too many records", big, ".", Limits{MaxRRs: 10}, "more than 10 records"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.text), tc.origin, tc.lim)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if strings.HasPrefix(tc.name, "too many") && !errors.Is(err, ErrTooLarge) {
				t.Errorf("%v is not ErrTooLarge", err)
			}
		})
	}
}

// TestParseRRs: the records of a transfer make the same zone as its
// text.
func TestParseRRs(t *testing.T) {
	text := testdns.RootZoneText(7)
	z1, err := Parse(strings.NewReader(text), ".", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var rrs []dns.RR
	zp := dns.NewZoneParser(strings.NewReader(text), ".", "")
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	z2, err := ParseRRs(rrs, ".", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if z1.Serial() != 7 || z2.Serial() != 7 || len(z1.sets) != len(z2.sets) {
		t.Fatalf("serials %d %d, sets %d %d", z1.Serial(), z2.Serial(), len(z1.sets), len(z2.sets))
	}
	for k, s := range z1.sets {
		if s2 := z2.sets[k]; s2 == nil || s2.Data != s.Data || s2.TTL != s.TTL {
			t.Errorf("%v differs", k)
		}
	}
	if z1.Signed() {
		t.Error("an unsigned zone is Signed")
	}
	if _, err := ParseRRs(rrs, ".", Limits{MaxRRs: 3}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("limit: %v", err)
	}
}
