package decoder_test

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netpulse/netpulse/decoder"
	"github.com/netpulse/netpulse/flow"
	"github.com/netpulse/netpulse/internal/integration"
)

// trafficPcap is the synthetic traffic the real exporters are fed with.
var trafficPcap = filepath.Join("..", "testdata", "captures", "traffic.pcap")

var (
	reExported = regexp.MustCompile(`Flows exported: (\d+) \((\d+) records\) in (\d+) packets \((\d+) failures\)`)
	reProto    = regexp.MustCompile(`(?m)^\s+\S+ \((\d+)\):\s+(\d+)\s+(\d+)\s`)
)

type totals struct{ bytes, packets uint64 }

// TestSoftflowdLive runs the real softflowd over the traffic capture,
// exporting to a socket of ours on loopback, and checks our decode against
// softflowd's own accounting: every record and datagram it says it sent
// arrives and decodes, and per-protocol byte and packet totals match its
// statistics to the unit.
func TestSoftflowdLive(t *testing.T) {
	bin := integration.Tool(t, "softflowd")
	if _, err := os.Stat(trafficPcap); err != nil {
		t.Fatalf("traffic capture: %v", err)
	}
	for _, tc := range []struct {
		name string
		args []string
		// perProto: softflowd's per-protocol statistics cover what it
		// exported (v5 cannot carry IPv6 flows, which it still counts).
		perProto bool
		biflow   bool
	}{
		{name: "v5", args: []string{"-v", "5"}},
		{name: "v9", args: []string{"-v", "9"}, perProto: true},
		{name: "ipfix", args: []string{"-v", "10"}, perProto: true},
		{name: "ipfix-biflow", args: []string{"-v", "10", "-b"}, perProto: true, biflow: true},
		{name: "ipfix-sampled", args: []string{"-v", "10", "-s", "10"}, perProto: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetReadBuffer(8 << 20)
			port := conn.LocalAddr().(*net.UDPAddr).Port

			d := decoder.New(decoder.DefaultConfig())
			got := map[uint8]totals{}
			var records, forward int
			var datagrams atomic.Int64
			done := make(chan struct{})
			go func() {
				defer close(done)
				buf := make([]byte, 65536)
				for {
					n, from, err := conn.ReadFromUDPAddrPort(buf)
					if err != nil {
						return
					}
					datagrams.Add(1)
					err = d.Decode(from.Addr(), time.Now(), buf[:n], func(r *flow.Record) {
						records++
						if !r.Reverse {
							forward++
						}
						tt := got[r.Proto]
						tt.bytes += r.Bytes
						tt.packets += r.Packets
						got[r.Proto] = tt
					})
					if err != nil {
						t.Errorf("datagram %d: %v", datagrams.Load(), err)
					}
				}
			}()

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			args := append([]string{"-d", "-c", "none", "-r", trafficPcap, "-n", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)).String()}, tc.args...)
			out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("softflowd %v: %v\n%s", args, err, out)
			}
			m := reExported.FindSubmatch(out)
			if m == nil {
				t.Fatalf("no export summary in softflowd's output:\n%s", out)
			}
			wantRecords, _ := strconv.Atoi(string(m[2]))
			wantDatagrams, _ := strconv.Atoi(string(m[3]))
			if string(m[4]) != "0" {
				t.Fatalf("softflowd reports send failures:\n%s", out)
			}
			// Loopback delivers what was sent; wait for the last datagrams.
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				time.Sleep(250 * time.Millisecond)
				if datagrams.Load() >= int64(wantDatagrams) {
					break
				}
			}
			conn.SetReadDeadline(time.Now())
			<-done
			if n := datagrams.Load(); n != int64(wantDatagrams) {
				t.Fatalf("received %d datagrams, softflowd sent %d", n, wantDatagrams)
			}
			if forward != wantRecords {
				t.Errorf("decoded %d records (%d with reverse halves), softflowd exported %d", forward, records, wantRecords)
			}
			if tc.biflow && records == forward {
				t.Error("biflow export gave no reverse records")
			}
			if held := d.NetFlow().Stats().HeldNow; held != 0 {
				t.Errorf("%d data sets still wait for a template", held)
			}
			if !tc.perProto {
				return
			}
			want := map[uint8]totals{}
			for _, pm := range reProto.FindAllSubmatch(out, -1) {
				p, _ := strconv.Atoi(string(pm[1]))
				b, _ := strconv.ParseUint(string(pm[2]), 10, 64)
				n, _ := strconv.ParseUint(string(pm[3]), 10, 64)
				want[uint8(p)] = totals{b, n}
			}
			if len(want) == 0 {
				t.Fatalf("no per-protocol statistics in softflowd's output:\n%s", out)
			}
			for p, w := range want {
				if got[p] != w {
					t.Errorf("protocol %d: decoded %d bytes %d packets, softflowd counted %d bytes %d packets", p, got[p].bytes, got[p].packets, w.bytes, w.packets)
				}
			}
			for p := range got {
				if _, ok := want[p]; !ok {
					t.Errorf("protocol %d decoded but softflowd has no statistics for it", p)
				}
			}
		})
	}
}
