package capture

import (
	"bytes"
	"encoding/binary"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// udp4 builds an Ethernet/IPv4/UDP frame, or one fragment of it.
func udp4(payload []byte, id uint16, fragOff int, more bool) []byte {
	var ip []byte
	ip = append(ip, 0x45, 0)
	ip = binary.BigEndian.AppendUint16(ip, uint16(20+len(payload)))
	ip = binary.BigEndian.AppendUint16(ip, id)
	ff := uint16(fragOff / 8)
	if more {
		ff |= 0x2000
	}
	ip = binary.BigEndian.AppendUint16(ip, ff)
	ip = append(ip, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 2)
	eth := append(make([]byte, 12), 0x08, 0x00)
	return append(append(eth, ip...), payload...)
}

func udpHeader(sport, dport uint16, body []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(body)))
	b = append(b, 0, 0)
	return append(b, body...)
}

func pcapOf(t *testing.T, ng bool, frames ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	ts := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	if ng {
		w, err := pcapgo.NewNgWriter(&buf, layers.LinkTypeEthernet)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range frames {
			ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Second), CaptureLength: len(f), Length: len(f)}
			if err := w.WritePacket(ci, f); err != nil {
				t.Fatal(err)
			}
		}
		w.Flush()
		return buf.Bytes()
	}
	w := pcapgo.NewWriter(&buf)
	w.WriteFileHeader(65535, layers.LinkTypeEthernet)
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: ts.Add(time.Duration(i) * time.Second), CaptureLength: len(f), Length: len(f)}
		if err := w.WritePacket(ci, f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func readAll(t *testing.T, data []byte) (out []Datagram, bad []error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	x := NewExtractor()
	for {
		f, err := r.Next()
		if err == io.EOF {
			return out, bad
		}
		if err != nil {
			t.Fatal(err)
		}
		d, ok, err := x.Add(f)
		if err != nil && err != ErrNotUDP {
			bad = append(bad, err)
		}
		if ok {
			d.Payload = bytes.Clone(d.Payload)
			out = append(out, d)
		}
	}
}

func TestReadUDPAndFragments(t *testing.T) {
	body := bytes.Repeat([]byte("netflow!"), 400) // 3200 bytes
	whole := udpHeader(2055, 9995, body)
	frames := [][]byte{
		udp4(udpHeader(1000, 9995, []byte("hello")), 1, 0, false),
		udp4(whole[1480:2960], 7, 1480, true), // out of order
		udp4(whole[:1480], 7, 0, true),
		udp4(whole[2960:], 7, 2960, false),
		{1, 2, 3}, // runt frame
	}
	for _, ng := range []bool{false, true} {
		got, bad := readAll(t, pcapOf(t, ng, frames...))
		if len(got) != 2 {
			t.Fatalf("ng=%v: %d datagrams, want 2", ng, len(got))
		}
		if string(got[0].Payload) != "hello" || got[0].Number != 1 || got[0].Src != netip.MustParseAddrPort("127.0.0.1:1000") {
			t.Errorf("datagram 1: %+v", got[0])
		}
		if !bytes.Equal(got[1].Payload, body) || got[1].Number != 4 {
			t.Errorf("reassembled datagram: %d bytes, packet %d", len(got[1].Payload), got[1].Number)
		}
		if len(bad) != 1 {
			t.Errorf("bad frames %v, want the runt", bad)
		}
	}
}

func TestNotACapture(t *testing.T) {
	if _, err := NewReader(bytes.NewReader([]byte("this is not a pcap file"))); err == nil {
		t.Error("accepted garbage")
	}
}

func FuzzReader(f *testing.F) {
	f.Add(pcapOf(&testing.T{}, false, udp4(udpHeader(1, 2, []byte("x")), 1, 0, false)))
	f.Add(pcapOf(&testing.T{}, true, udp4(udpHeader(1, 2, []byte("x")), 1, 8, true)))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		x := NewExtractor()
		for i := 0; i < 1000; i++ {
			fr, err := r.Next()
			if err != nil {
				return
			}
			x.Add(fr)
		}
	})
}
