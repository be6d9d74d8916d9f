package netflow

import (
	"testing"
	"time"

	"github.com/netpulse/netpulse/decoder/seq"
	"github.com/netpulse/netpulse/flow"
)

// FuzzDecode feeds two datagrams to one decoder, so that templates learnt
// from the first apply to the second. Nothing may panic, and the record
// handed to emit must be one of the supported kinds.
func FuzzDecode(f *testing.F) {
	seeds := [][]byte{
		msg{version: 9, sets: [][]byte{v9Tmpl, set(256, v9Rec("192.0.2.1", 1))}}.bytes(),
		msg{version: 10, sets: [][]byte{set(2, tmpl(400, []uint32{8, 4}, []uint32{82, 0xffff}, []uint32{7, 2, 9})), set(400, cat(ip("192.0.2.1"), u8(1), []byte("a"), u16(3)))}}.bytes(),
		msg{version: 10, sets: [][]byte{set(3, cat(u16(300), u16(3), u16(1), appendFields(nil, [][]uint32{{302, 4}, {305, 4}, {306, 4}}))), set(300, cat(u32(9), u32(1), u32(99)))}}.bytes(),
		msg{version: 9, sets: [][]byte{set(1, cat(u16(257), u16(4), u16(8), appendFields(nil, [][]uint32{{1, 4}, {48, 1}, {50, 4}}))), set(257, cat(u32(0), u8(5), u32(512)))}}.bytes(),
		cat(u16(5), u16(1), u32(0), u32(0), u32(0), u32(0), u16(0), u16(10), make([]byte, 48)),
	}
	for i, s := range seeds {
		f.Add(s, seeds[(i+1)%len(seeds)])
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		d := New(Config{HoldSets: 8, HoldBytes: 1 << 16, MaxTemplates: 16}, seq.NewTracker(16))
		emit := func(r *flow.Record) {
			if r.Kind != flow.KindFlow || r.Type == flow.TypeUnknown {
				t.Fatalf("bad record %+v", r)
			}
		}
		d.Decode(exp, t0, a, emit)
		d.Decode(exp, t0.Add(time.Second), b, emit)
		d.Decode(exp, t0.Add(2*time.Second), a, emit)
		if d.Templates().Len() > 16 || d.Stats().HeldNow > 8 {
			t.Fatalf("bounds exceeded: %d templates, %d held", d.Templates().Len(), d.Stats().HeldNow)
		}
	})
}
