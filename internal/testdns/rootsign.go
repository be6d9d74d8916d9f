package testdns

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/netpulse/netpulse/internal/integration"
)

// RootZoneText returns a small root-like zone, unsigned, with the given
// serial: the apex SOA and NS with glue for two root servers, and the
// delegations of arpa, com and net (with DS records), org and zw
// (without), with glue in-bailiwick for zw, sibling under net for com
// and net, and partly out of zone for org. Its shape and TTLs are those
// of the real root zone.
func RootZoneText(serial uint32) string {
	return fmt.Sprintf(`.	86400	IN	SOA	a.root-servers.net. nstld.verisign-grs.com. %d 1800 900 604800 86400
.	518400	IN	NS	a.root-servers.net.
.	518400	IN	NS	b.root-servers.net.
a.root-servers.net.	518400	IN	A	198.41.0.4
a.root-servers.net.	518400	IN	AAAA	2001:503:ba3e::2:30
b.root-servers.net.	518400	IN	A	170.247.170.2
b.root-servers.net.	518400	IN	AAAA	2801:1b8:10::b
arpa.	172800	IN	NS	a.root-servers.net.
arpa.	172800	IN	NS	b.root-servers.net.
arpa.	86400	IN	DS	42581 8 2 f28391c1ed4dc0f151ede5a1fd9f3a2c1b5d6a4f4c0c0a0b2f3a2c1b5d6a4f4c
com.	172800	IN	NS	a.gtld-servers.net.
com.	172800	IN	NS	b.gtld-servers.net.
com.	86400	IN	DS	19718 13 2 8acbb0cd28f41250a80a491389424d341522d946b0da0c0291f2d3d771d7805a
net.	172800	IN	NS	a.gtld-servers.net.
net.	172800	IN	NS	b.gtld-servers.net.
net.	86400	IN	DS	37331 13 2 2f0bec2d6f79dfbd1d08fd21a3af92d0e39a4b9ef1e3f4a8c6d43fbb5b7e5f9c
a.gtld-servers.net.	172800	IN	A	192.5.6.30
a.gtld-servers.net.	172800	IN	AAAA	2001:503:a83e::2:30
b.gtld-servers.net.	172800	IN	A	192.33.14.30
b.gtld-servers.net.	172800	IN	AAAA	2001:503:231d::2:30
org.	172800	IN	NS	a0.org.afilias-nst.info.
org.	172800	IN	NS	b0.org.afilias-nst.org.
b0.org.afilias-nst.org.	172800	IN	A	199.19.54.1
zw.	172800	IN	NS	ns1.zw.
zw.	172800	IN	NS	ns2.zw.
ns1.zw.	172800	IN	A	192.0.2.81
ns2.zw.	172800	IN	A	192.0.2.82
ns2.zw.	172800	IN	AAAA	2001:db8::82
`, serial)
}

// RootSigner signs root zones with Debian's ldns-signzone, with one
// key-signing key (RSASHA256, 2048 bits) and one zone-signing key
// (RSASHA256, 1024 bits) made by ldns-keygen, as the real root does with
// its KSK and ZSK. Every zone it signs has the same DNSKEYs.
type RootSigner struct {
	dir  string
	sign string
	keys []string // base names
	n    atomic.Int64
}

// NewRootSigner makes the keys. It skips t (or fails it under
// NETPULSE_REQUIRE_INTEGRATION=1) when ldnsutils is not installed.
func NewRootSigner(t testing.TB) *RootSigner {
	t.Helper()
	s := &RootSigner{dir: t.TempDir(), sign: integration.Tool(t, "ldns-signzone")}
	s.keys = append(s.keys,
		s.keygen(t, "-a", "RSASHA256", "-b", "2048", "-k", "-r", "/dev/urandom", "."),
		s.keygen(t, "-a", "RSASHA256", "-b", "1024", "-r", "/dev/urandom", "."))
	return s
}

// AddKSK makes one more key-signing key (RSASHA256, 2048 bits), as
// during a KSK rollover: every zone signed afterwards has both KSKs in
// its DNSKEY RRset, each signing it, which makes the DNSKEY answer with
// DO larger than 1220 bytes (a UDP answer to a 1220-byte EDNS buffer
// comes back truncated).
func (s *RootSigner) AddKSK(t testing.TB) {
	t.Helper()
	s.keys = append(s.keys, s.keygen(t, "-a", "RSASHA256", "-b", "2048", "-k", "-r", "/dev/urandom", "."))
}

func (s *RootSigner) keygen(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(integration.Tool(t, "ldns-keygen"), args...)
	cmd.Dir = s.dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ldns-keygen %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// Sign signs a root zone's text (NSEC, signatures valid from inception to
// expiration) and returns the signed zone's text.
func (s *RootSigner) Sign(t testing.TB, text string, inception, expiration time.Time) string {
	t.Helper()
	n := s.n.Add(1)
	in := filepath.Join(s.dir, fmt.Sprintf("zone-%d", n))
	out := in + ".signed"
	if err := os.WriteFile(in, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	const stamp = "20060102150405"
	args := []string{"-o", ".", "-i", inception.UTC().Format(stamp), "-e", expiration.UTC().Format(stamp), "-f", out, in}
	cmd := exec.Command(s.sign, append(args, s.keys...)...)
	cmd.Dir = s.dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ldns-signzone: %v\n%s", err, b)
	}
	signed, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// CorruptRRSIG returns a signed zone's text with the signature of the
// RRSIG covering (owner, covered) changed — still valid base64, so the
// zone loads and the server serves it, but it no longer verifies. It
// fails t when there is no such RRSIG.
func CorruptRRSIG(t testing.TB, signed, owner string, covered uint16) string {
	t.Helper()
	zp := dns.NewZoneParser(strings.NewReader(signed), ".", "")
	var b strings.Builder
	found := false
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if sig, isSig := rr.(*dns.RRSIG); isSig && !found && strings.EqualFold(sig.Hdr.Name, dns.Fqdn(owner)) && sig.TypeCovered == covered {
			// Swap one character in the middle of the base64 text.
			b64 := []byte(sig.Signature)
			i := len(b64) / 2
			if b64[i] == 'A' {
				b64[i] = 'B'
			} else {
				b64[i] = 'A'
			}
			sig.Signature = string(b64)
			found = true
		}
		b.WriteString(rr.String())
		b.WriteByte('\n')
	}
	if err := zp.Err(); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatalf("no RRSIG %s %s in the zone", owner, dns.TypeToString[covered])
	}
	return b.String()
}
