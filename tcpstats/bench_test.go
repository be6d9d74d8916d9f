package tcpstats

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/netpulse/netpulse/capture"
)

type benchFrame struct {
	t    time.Time
	data []byte
}

// benchCaptures are the Ethernet captures the benchmark replays.
var benchCaptures = []string{"loss4.pcap", "loss6.pcap", "wireloss4.pcap", "caploss4.pcap", "zerowin4.pcap", "zerowin6.pcap", "rst4.pcap", "keepalive6.pcap"}

// benchCopies makes the benchmark input ~500k packets: enough connections
// that the flow table matters and tshark's start-up does not dominate.
const benchCopies = 250

// buildBenchCapture replays the real captures benchCopies times, each copy
// with its own client port and a time offset, so every copy is a distinct
// connection with the real stack's behaviour. It writes the result as a
// pcap for tshark and returns the frames.
func buildBenchCapture(tb testing.TB, path string) []benchFrame {
	tb.Helper()
	var base []benchFrame
	for _, name := range benchCaptures {
		fh, err := os.Open(filepath.Join("../testdata/tcp", name))
		if err != nil {
			tb.Fatal(err)
		}
		r, err := capture.NewReader(fh)
		if err != nil {
			tb.Fatal(err)
		}
		for {
			f, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				tb.Fatal(err)
			}
			base = append(base, benchFrame{f.Time, bytes.Clone(f.Data)})
		}
		fh.Close()
	}
	var out []benchFrame
	var p Packet
	t0 := base[0].t
	for i := 0; i < benchCopies; i++ {
		for _, f := range base {
			d := bytes.Clone(f.data)
			if Parse(LinkEthernet, d, &p) != nil {
				continue
			}
			off := 14 + p.ipHdrLen
			port := uint16(20000 + i)
			if p.SrcPort != 5001 {
				binary.BigEndian.PutUint16(d[off:], port)
			} else {
				binary.BigEndian.PutUint16(d[off+2:], port)
			}
			out = append(out, benchFrame{t0.Add(time.Duration(i)*time.Second + f.t.Sub(t0)%time.Second), d})
		}
	}
	fh, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer fh.Close()
	w := pcapgo.NewWriter(fh)
	w.WriteFileHeader(65535, layers.LinkTypeEthernet)
	for _, f := range out {
		w.WritePacket(gopacket.CaptureInfo{Timestamp: f.t, CaptureLength: len(f.data), Length: len(f.data)}, f.data)
	}
	return out
}

var benchOnce struct {
	sync.Once
	frames      []benchFrame
	tsharkPPS   float64
	tsharkError string
}

// BenchmarkAnalyze measures Parse and Analyzer.Add over ~500k packets of
// the real captures, and, in the same run, tshark's TCP analysis of the
// same packets as the peer (-q -z io,stat,0,tcp.analysis.flags, which
// needs every analysis flag).
func BenchmarkAnalyze(b *testing.B) {
	benchOnce.Do(func() {
		path := filepath.Join(os.TempDir(), "netpulse-tcpstats-bench.pcap")
		benchOnce.frames = buildBenchCapture(b, path)
		defer os.Remove(path)
		tshark, err := exec.LookPath("tshark")
		if err != nil {
			benchOnce.tsharkError = "tshark not installed"
			return
		}
		start := time.Now()
		cmd := exec.Command(tshark, "-n", "-r", path, "-q", "-z", "io,stat,0,tcp.analysis.flags")
		if out, err := cmd.CombinedOutput(); err != nil {
			benchOnce.tsharkError = string(out)
			return
		}
		benchOnce.tsharkPPS = float64(len(benchOnce.frames)) / time.Since(start).Seconds()
	})
	frames := benchOnce.frames
	b.ReportAllocs()
	b.ResetTimer()
	var p Packet
	for i := 0; i < b.N; i++ {
		a := New(Config{}, nil)
		for _, f := range frames {
			if Parse(LinkEthernet, f.data, &p) == nil {
				a.Add(f.t, &p)
			}
		}
		a.Flush()
	}
	b.ReportMetric(float64(len(frames))*float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
	b.ReportMetric(float64(len(frames)), "pkts/op")
	if benchOnce.tsharkPPS > 0 {
		b.ReportMetric(benchOnce.tsharkPPS, "tshark_pkts/s")
	} else {
		b.Logf("no tshark figure: %s", benchOnce.tsharkError)
	}
}
