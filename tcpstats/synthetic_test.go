package tcpstats

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/netpulse/netpulse/internal/integration"
)

// step is one packet of a hand-made conversation: from the client (c2s)
// or the server, at ms milliseconds.
type step struct {
	ms       int
	c2s      bool
	seq, ack uint32
	flags    uint8
	win      uint16
	payload  int
	opts     []byte
	want     []Flag
}

// synthetic are the rare cases the Linux captures do not show: zero-window
// probes and their ACKs, spurious retransmissions, lost segments, ACKed
// unseen segments, window full under scaling, port reuse, a capture that
// starts mid-connection.
var synthetic = []struct {
	sport uint16
	steps []step
}{
	{40000, []step{
		{ms: 0, c2s: true, seq: 1000, flags: FlagSYN, win: 65535, opts: []byte{3, 3, 2}},
		{ms: 10, seq: 5000, ack: 1001, flags: FlagSYN | FlagACK, win: 1000, opts: []byte{3, 3, 2}},
		{ms: 20, c2s: true, seq: 1001, ack: 5001, flags: FlagACK, win: 1000},
		{ms: 30, c2s: true, seq: 1001, ack: 5001, flags: FlagACK, win: 1000, payload: 100},
		{ms: 40, seq: 5001, ack: 1101, flags: FlagACK, win: 25},
		{ms: 50, c2s: true, seq: 1101, ack: 5001, flags: FlagACK, win: 1000, payload: 100, want: []Flag{WindowFull}},
		{ms: 60, seq: 5001, ack: 1201, flags: FlagACK, win: 0, want: []Flag{ZeroWindow}},
		{ms: 300, c2s: true, seq: 1201, ack: 5001, flags: FlagACK, win: 1000, payload: 1, want: []Flag{ZeroWindowProbe}},
		{ms: 310, seq: 5001, ack: 1201, flags: FlagACK, win: 0, want: []Flag{ZeroWindow, ZeroWindowProbeAck}},
		{ms: 400, seq: 5001, ack: 1201, flags: FlagACK, win: 50, want: []Flag{WindowUpdate}},
		{ms: 410, c2s: true, seq: 1201, ack: 5001, flags: FlagACK, win: 1000, payload: 100},
		{ms: 420, c2s: true, seq: 1401, ack: 5001, flags: FlagACK, win: 1000, payload: 100, want: []Flag{LostSegment}},
		{ms: 430, seq: 5001, ack: 1301, flags: FlagACK, win: 50},
		{ms: 431, seq: 5001, ack: 1301, flags: FlagACK, win: 50, want: []Flag{DuplicateAck}},
		{ms: 432, seq: 5001, ack: 1301, flags: FlagACK, win: 50, want: []Flag{DuplicateAck}},
		{ms: 435, c2s: true, seq: 1301, ack: 5001, flags: FlagACK, win: 1000, payload: 100, want: []Flag{FastRetransmission, Retransmission}},
		{ms: 440, seq: 5001, ack: 1501, flags: FlagACK, win: 50},
		{ms: 2000, c2s: true, seq: 1301, ack: 5001, flags: FlagACK, win: 1000, payload: 100, want: []Flag{SpuriousRetransmission, Retransmission}},
		{ms: 5000, c2s: true, seq: 1500, ack: 5001, flags: FlagACK, win: 1000, want: []Flag{KeepAlive}},
		{ms: 5001, seq: 5001, ack: 1501, flags: FlagACK, win: 50, want: []Flag{KeepAliveAck}},
		{ms: 5010, seq: 5001, ack: 1501, flags: FlagACK | FlagPSH, win: 50, payload: 10},
		{ms: 5020, c2s: true, seq: 1501, ack: 5101, flags: FlagACK, win: 1000, want: []Flag{AckedUnseen}},
		{ms: 5030, c2s: true, seq: 1501, ack: 5101, flags: FlagRST | FlagACK, win: 0, want: []Flag{Reset}},
		// Port reuse: a new SYN after the RST starts connection 1.
		{ms: 6000, c2s: true, seq: 90000, flags: FlagSYN, win: 65535},
		{ms: 6010, seq: 70000, ack: 90001, flags: FlagSYN | FlagACK, win: 65535},
		{ms: 6020, c2s: true, seq: 90001, ack: 70001, flags: FlagACK, win: 65535},
		{ms: 6030, c2s: true, seq: 90001, ack: 70001, flags: FlagACK | FlagFIN, win: 65535},
		{ms: 6040, seq: 70001, ack: 90002, flags: FlagACK | FlagFIN, win: 65535},
		{ms: 6050, c2s: true, seq: 90002, ack: 70002, flags: FlagACK, win: 65535},
	}},
	// Mid-connection: no handshake, a hole, then the missing segment
	// within 3 ms: out-of-order.
	{40001, []step{
		{ms: 0, c2s: true, seq: 1, ack: 1, flags: FlagACK, win: 100, payload: 100},
		{ms: 1, c2s: true, seq: 201, ack: 1, flags: FlagACK, win: 100, payload: 100, want: []Flag{LostSegment}},
		{ms: 2, c2s: true, seq: 101, ack: 1, flags: FlagACK, win: 100, payload: 100, want: []Flag{OutOfOrder}},
		{ms: 3, seq: 1, ack: 301, flags: FlagACK, win: 100},
		{ms: 500, c2s: true, seq: 201, ack: 1, flags: FlagACK, win: 100, payload: 100, want: []Flag{SpuriousRetransmission, Retransmission}},
		{ms: 600, c2s: true, seq: 301, ack: 1, flags: FlagACK, win: 100, payload: 100},
		{ms: 900, c2s: true, seq: 301, ack: 1, flags: FlagACK, win: 100, payload: 100, want: []Flag{Retransmission}},
	}},
	// One byte at the next sequence number before the server has sent
	// anything: its window is unknown, not zero, so no zero-window probe.
	{40002, []step{
		{ms: 0, c2s: true, seq: 1, ack: 1, flags: FlagACK, win: 100, payload: 10},
		{ms: 1, c2s: true, seq: 11, ack: 1, flags: FlagACK, win: 100, payload: 1},
	}},
}

// writeSynthetic writes the synthetic conversations, interleaved by time,
// to a pcap file, and returns the expected flags by frame number.
func writeSynthetic(t *testing.T, path string) map[int]Flags {
	t.Helper()
	type pkt struct {
		at   time.Duration
		data []byte
		want Flags
	}
	var pkts []pkt
	for i, conv := range synthetic {
		base := time.Duration(i) * 50 * time.Millisecond
		for _, s := range conv.steps {
			g := seg{src: "10.0.0.1", dst: "10.0.0.2", sport: conv.sport, dport: 80,
				seq: s.seq, ack: s.ack, flags: s.flags, win: s.win, payload: s.payload, opts: s.opts, df: true}
			if !s.c2s {
				g.src, g.dst, g.sport, g.dport = g.dst, g.src, g.dport, g.sport
			}
			pkts = append(pkts, pkt{base + time.Duration(s.ms)*time.Millisecond, ethernet(ipPacket(g)), flagsOf(s.want...)})
		}
	}
	// Stable sort by time keeps each conversation's order.
	for i := 1; i < len(pkts); i++ {
		for j := i; j > 0 && pkts[j].at < pkts[j-1].at; j-- {
			pkts[j], pkts[j-1] = pkts[j-1], pkts[j]
		}
	}
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	w := pcapgo.NewWriter(fh)
	w.WriteFileHeader(65535, layers.LinkTypeEthernet)
	want := map[int]Flags{}
	t0 := time.Unix(1_700_000_000, 0)
	for i, p := range pkts {
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(p.at), CaptureLength: len(p.data), Length: len(p.data)}
		if err := w.WritePacket(ci, p.data); err != nil {
			t.Fatal(err)
		}
		want[i+1] = p.want
	}
	return want
}

// TestSynthetic checks the hand-made conversations against the flags
// written beside them, and against tshark when it is installed.
func TestSynthetic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "synthetic.pcap")
	want := writeSynthetic(t, path)
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	got := map[int]Flags{}
	ids := map[int]int{}
	a := New(Config{}, nil)
	if _, err := ReadCapture(fh, a, func(f *Frame) { got[f.Number], ids[f.Number] = f.Flags, f.Conn.ID }); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= len(want); n++ {
		if got[n] != want[n] {
			t.Errorf("frame %d: got %s, want %s", n, fmtFlags(got[n]), fmtFlags(want[n]))
		}
	}
	if a.Totals().Connections != 4 {
		t.Errorf("%d connections, want 4 (one reuses the port)", a.Totals().Connections)
	}
	t.Run("tshark", func(t *testing.T) {
		tshark := integration.Tool(t, "tshark")
		theirs, streams := tsharkFlags(t, tshark, path)
		for n := 1; n <= len(want); n++ {
			if theirs[n] != got[n] {
				t.Errorf("frame %d: got %s, tshark %s", n, fmtFlags(got[n]), fmtFlags(theirs[n]))
			}
			if streams[n] != ids[n] {
				t.Errorf("frame %d: connection %d, tshark stream %d", n, ids[n], streams[n])
			}
		}
	})
}
