package zone

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// rootSizedZone is a synthetic zone of the real root zone's shape and
// size: 1,500 signed delegations, each with three name servers, their
// glue (A and AAAA), a DS and an NSEC, with 256-byte (RSA-2048) RRSIGs
// — about 22,000 records and 2.3 MB of text. The signatures are random
// bytes: parsing does not verify them.
func rootSizedZone() []byte {
	sig := func() string {
		b := make([]byte, 256)
		rand.Read(b)
		return base64.StdEncoding.EncodeToString(b)
	}
	var w strings.Builder
	fmt.Fprintf(&w, ".\t86400\tIN\tSOA\ta.root-servers.net. nstld.verisign-grs.com. 2026112000 1800 900 604800 86400\n")
	fmt.Fprintf(&w, ".\t86400\tIN\tRRSIG\tSOA 8 0 86400 20261203050000 20261120040000 61809 . %s\n", sig())
	tlds := make([]string, 1500)
	for i := range tlds {
		tlds[i] = fmt.Sprintf("tld%04d.", i)
	}
	for i, tld := range tlds {
		next := "."
		if i+1 < len(tlds) {
			next = tlds[i+1]
		}
		for n := 1; n <= 3; n++ {
			fmt.Fprintf(&w, "%s\t172800\tIN\tNS\tns%d.nic.%s\n", tld, n, tld)
		}
		fmt.Fprintf(&w, "%s\t86400\tIN\tDS\t%d 8 2 %064x\n", tld, 10000+i, i)
		fmt.Fprintf(&w, "%s\t86400\tIN\tRRSIG\tDS 8 1 86400 20261203050000 20261120040000 61809 . %s\n", tld, sig())
		fmt.Fprintf(&w, "%s\t86400\tIN\tNSEC\t%s NS DS RRSIG NSEC\n", tld, next)
		fmt.Fprintf(&w, "%s\t86400\tIN\tRRSIG\tNSEC 8 1 86400 20261203050000 20261120040000 61809 . %s\n", tld, sig())
		for n := 1; n <= 3; n++ {
			fmt.Fprintf(&w, "ns%d.nic.%s\t172800\tIN\tA\t192.0.%d.%d\n", n, tld, i%250, n)
			fmt.Fprintf(&w, "ns%d.nic.%s\t172800\tIN\tAAAA\t2001:db8:%x::%d\n", n, tld, i, n)
		}
	}
	return []byte(w.String())
}

// BenchmarkParseRootSized parses a root-sized zone, as the archive does
// for each new serial and for each version it reads back from disk; it
// reports the heap a parsed zone keeps.
func BenchmarkParseRootSized(b *testing.B) {
	text := rootSizedZone()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(bytes.NewReader(text), ".", Limits{}); err != nil {
			b.Fatal(err)
		}
	}
	// The heap kept: four zones held at once, as the archive's cache
	// holds a window's.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	zs := make([]*Zone, 4)
	for i := range zs {
		zs[i], _ = Parse(bytes.NewReader(text), ".", Limits{})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(len(zs))/(1<<20), "MiB/zone")
	b.ReportMetric(float64(zs[0].RRCount()), "records")
	runtime.KeepAlive(zs)
}
