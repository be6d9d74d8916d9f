package correct

import (
	"testing"

	"github.com/netpulse/netpulse/probe/result"
)

// FuzzCheckABuf feeds random responses to Check: any bytes give a
// verdict, never a panic. The seeds are NSD's captured answers.
func FuzzCheckABuf(f *testing.F) {
	zones := loadZones(f, serials...)
	got := loadResponses(f, serial3)
	for _, g := range goldenQueries {
		f.Add(g.qname, g.qtype, got[g.name].Response.ABuf)
	}
	f.Fuzz(func(t *testing.T, qname, qtype string, abuf []byte) {
		q := result.Query{Purpose: result.PurposeCorrectness, QName: qname, QType: qtype, DO: true,
			Response: &result.Response{ABuf: abuf}}
		Check(&q, zones)
	})
}

// FuzzCheckSections feeds random recorded sections (no ABuf) to Check.
func FuzzCheckSections(f *testing.F) {
	zones := loadZones(f, serials...)
	f.Add(".", "NS", ".", uint32(518400), "NS", "a.root-servers.net.", "a.root-servers.net.", "A", "198.41.0.4")
	f.Add("com.", "NS", "com.", uint32(172800), "DS", "19718 13 2 8acbb0cd28f41250a80a491389424d341522d946b0da0c0291f2d3d771d7805a", "x.", "RRSIG", "A 8 1 1 20360101000000 20260101000000 1 . AAAA")
	f.Fuzz(func(t *testing.T, qname, qtype, name string, ttl uint32, typ, rdata, name2, typ2, rdata2 string) {
		q := result.Query{Purpose: result.PurposeCorrectness, QName: qname, QType: qtype, DO: true,
			Response: &result.Response{Flags: []string{"qr", "aa"},
				Answer:     []result.RR{{Name: name, TTL: ttl, Type: typ, RData: rdata}},
				Authority:  []result.RR{{Name: name2, TTL: ttl, Type: typ2, RData: rdata2}},
				Additional: []result.RR{{Name: name2, TTL: ttl, Type: typ, RData: rdata}}}}
		Check(&q, zones)
	})
}
