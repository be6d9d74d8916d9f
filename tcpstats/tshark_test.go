package tcpstats

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/netpulse/netpulse/internal/integration"
)

// departure is a documented difference from tshark (docs/tcpstats.md,
// "Departures from Wireshark"): on capture file, frame number frame, we
// report ours where tshark reports theirs.
type departure struct {
	file        string
	frame       int
	ours, their Flags
	why         string
}

// departures lists every frame where we knowingly differ from tshark.
var departures = []departure{}

func flagsOf(fs ...Flag) Flags {
	var s Flags
	for _, f := range fs {
		s.set(f)
	}
	return s
}

// tsharkFlags runs tshark over file and returns the analysis flags and
// stream of every TCP frame, by frame number.
func tsharkFlags(t *testing.T, tshark, file string) (map[int]Flags, map[int]int) {
	t.Helper()
	args := []string{"-r", file, "-n", "-Y", "tcp", "-T", "fields", "-E", "separator=/t", "-e", "frame.number", "-e", "tcp.stream"}
	for f := Flag(0); f < NumFlags; f++ {
		args = append(args, "-e", f.TSharkField())
	}
	cmd := exec.Command(tshark, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v: %s", file, err, stderr.String())
	}
	flags, streams := map[int]Flags{}, map[int]int{}
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		cols := strings.Split(line, "\t")
		if len(cols) != 2+int(NumFlags) {
			t.Fatalf("tshark line %q: %d columns", line, len(cols))
		}
		n, _ := strconv.Atoi(cols[0])
		s, _ := strconv.Atoi(cols[1])
		var fs Flags
		for i, v := range cols[2:] {
			if v != "" && v != "0" && v != "False" {
				fs.set(Flag(i))
			}
		}
		flags[n], streams[n] = fs, s
	}
	return flags, streams
}

func fmtFlags(s Flags) string {
	var names []string
	for f := Flag(0); f < NumFlags; f++ {
		if s.Has(f) {
			names = append(names, f.String())
		}
	}
	return "[" + strings.Join(names, " ") + "]"
}

// TestAgainstTShark compares our per-frame, per-connection and total flag
// counts with tshark's on captures of the real Linux stack
// (testdata/tcp/make-captures.sh).
func TestAgainstTShark(t *testing.T) {
	tshark := integration.Tool(t, "tshark")
	files, _ := filepath.Glob("../testdata/tcp/*.pcap*")
	if len(files) == 0 {
		t.Fatal("no captures under testdata/tcp")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			want, streams := tsharkFlags(t, tshark, file)
			dep := map[int]departure{}
			for _, d := range departures {
				if d.file == filepath.Base(file) {
					dep[d.frame] = d
				}
			}
			got := map[int]Flags{}
			ids := map[int]int{}
			fh, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			a := New(Config{}, nil)
			if _, err := ReadCapture(fh, a, func(f *Frame) {
				got[f.Number], ids[f.Number] = f.Flags, f.Conn.ID
			}); err != nil {
				t.Fatal(err)
			}
			// Per frame, with departures applied to tshark's side.
			var frames []int
			for n := range want {
				frames = append(frames, n)
			}
			sort.Ints(frames)
			var wantTotal, gotTotal Counts
			wantConn, gotConn := map[int]*Counts{}, map[int]*Counts{}
			mismatches := 0
			for _, n := range frames {
				w := want[n]
				if d, ok := dep[n]; ok {
					if w != d.their {
						t.Errorf("frame %d: departure (%s) expects tshark %s, tshark says %s", n, d.why, fmtFlags(d.their), fmtFlags(w))
					}
					w = d.ours
				}
				g, ok := got[n]
				if !ok {
					t.Errorf("frame %d: tshark sees TCP, we did not analyze it", n)
					continue
				}
				if g != w && mismatches < 20 {
					mismatches++
					t.Errorf("frame %d: got %s, tshark %s", n, fmtFlags(g), fmtFlags(w))
				}
				if ids[n] != streams[n] {
					t.Errorf("frame %d: connection %d, tshark stream %d", n, ids[n], streams[n])
				}
				wantTotal.Add(w)
				gotTotal.Add(g)
				s := streams[n]
				if wantConn[s] == nil {
					wantConn[s], gotConn[s] = new(Counts), new(Counts)
				}
				wantConn[s].Add(w)
				gotConn[s].Add(g)
			}
			for s := range wantConn {
				if *wantConn[s] != *gotConn[s] {
					t.Errorf("stream %d: got %s, tshark %s", s, fmtCounts(gotConn[s]), fmtCounts(wantConn[s]))
				}
			}
			if wantTotal != gotTotal {
				t.Errorf("total: got %s, tshark %s", fmtCounts(&gotTotal), fmtCounts(&wantTotal))
			}
			t.Logf("%s: %d frames, %d streams, flags %s", filepath.Base(file), len(frames), len(wantConn), fmtCounts(&gotTotal))
		})
	}
}

func fmtCounts(c *Counts) string {
	var b strings.Builder
	for f := Flag(0); f < NumFlags; f++ {
		if c[f] != 0 {
			fmt.Fprintf(&b, "%s=%d ", f, c[f])
		}
	}
	return strings.TrimSpace(b.String())
}
