package goflow2bench

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/netpulse/netpulse/capture"
	"github.com/netpulse/netpulse/decoder"
	"github.com/netpulse/netpulse/flow"
)

// captureDir holds the real-exporter captures, at the repository root;
// $NETPULSE_CAPTURES overrides it.
var captureDir = func() string {
	if d := os.Getenv("NETPULSE_CAPTURES"); d != "" {
		return d
	}
	return "../../testdata/captures"
}()

// wantCaptures are the captures testdata/gen/make-captures.sh makes; any
// other capture in the directory is benchmarked too. A missing one skips.
var wantCaptures = []string{
	"softflowd-v5", "softflowd-v9", "softflowd-ipfix", "softflowd-ipfix-biflow",
	"softflowd-v9-sampled", "softflowd-ipfix-sampled",
	"pmacct-v5", "pmacct-v9", "pmacct-ipfix", "pmacct-v9-sampled", "pmacct-ipfix-sampled",
	"pmacct-sflow", "fprobe-v5",
}

var implNames = []string{NameNetpulse, NameGoflow2Decode, NameGoflow2Proto, NameGoflow2JSON}

// captureNames lists wantCaptures and every capture found, sorted.
func captureNames() []string {
	names := slices.Clone(wantCaptures)
	for _, pat := range []string{"*.pcap", "*.pcapng"} {
		files, _ := filepath.Glob(filepath.Join(captureDir, pat))
		for _, f := range files {
			name := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
			// traffic is the exporters' input, tmp* are work files.
			if name != "traffic" && !strings.HasPrefix(name, "tmp") {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func capturePath(name string) string {
	for _, ext := range []string{".pcap", ".pcapng"} {
		p := filepath.Join(captureDir, name+ext)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

var (
	capturesMu sync.Mutex
	captures   = map[string][]capture.Datagram{}
)

// loadCapture returns the UDP datagrams of a capture, read once; it skips
// when the capture is missing or holds none.
func loadCapture(tb testing.TB, name string) []capture.Datagram {
	tb.Helper()
	capturesMu.Lock()
	defer capturesMu.Unlock()
	if dgs, ok := captures[name]; ok {
		return dgs
	}
	p := capturePath(name)
	if p == "" {
		tb.Skipf("capture %s not in %s (make captures)", name, captureDir)
	}
	dgs, err := capture.ReadAllUDP(p)
	if err != nil {
		tb.Fatal(err)
	}
	if !slices.ContainsFunc(dgs, func(d capture.Datagram) bool { return decoder.Detect(d.Payload) != flow.TypeUnknown }) {
		tb.Skipf("%s: no export datagrams", p)
	}
	captures[name] = dgs
	return dgs
}

func pass(d Impl, dgs []capture.Datagram) {
	for i := range dgs {
		_ = d.Decode(&dgs[i])
	}
}

// BenchmarkDecode decodes every datagram of a capture per op, templates
// primed by one pass beforehand, with each implementation. Run it with
// -cpu 1 for per-core figures. flows/s, flows/cpu-s and allocs/flow count
// exported flow records (NetFlow/IPFIX data records, sFlow flow samples):
// netpulse's reverse biflow records and sFlow counter records are left out
// of them. docs/performance.md has the method and the figures.
func BenchmarkDecode(b *testing.B) {
	for _, name := range captureNames() {
		b.Run("capture="+name, func(b *testing.B) {
			dgs := loadCapture(b, name)
			for _, impl := range implNames {
				b.Run("impl="+impl, func(b *testing.B) { benchImpl(b, impl, dgs) })
			}
		})
	}
}

func benchImpl(b *testing.B, impl string, dgs []capture.Datagram) {
	d, err := New(impl)
	if err != nil {
		b.Fatal(err)
	}
	pass(d, dgs) // learn the templates and sampling rates
	d.Reset()
	b.ReportAllocs()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0, cpuOK := CPUTime()
	passes := 0
	for b.Loop() {
		pass(d, dgs)
		passes++
	}
	cpu1, _ := CPUTime()
	runtime.ReadMemStats(&m1)
	c := d.Counts()
	if c.Flows == 0 {
		b.Fatalf("%s found no flows", impl)
	}
	if c.Errors > 0 {
		b.Logf("%s: %d decode errors in %d passes of %d datagrams", impl, c.Errors, passes, len(dgs))
	}
	b.ReportMetric(float64(c.Flows)/b.Elapsed().Seconds(), "flows/s")
	if cpu := cpu1 - cpu0; cpuOK && cpu > 0 {
		// Flows per second of CPU time used by the process, the GC's
		// included: on a busy machine, unlike flows/s, it does not count
		// the time the benchmark waited for a CPU.
		b.ReportMetric(float64(c.Flows)/cpu.Seconds(), "flows/cpu-s")
	}
	b.ReportMetric(float64(c.Flows)/float64(passes), "flows/op")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(c.Flows), "allocs/flow")
	if impl == NameNetpulse && c.Records() != c.Flows {
		b.ReportMetric(float64(c.Records())/float64(passes), "records/op")
	}
}

// TestSameFlowCount checks that both decoders find the same flows in each
// capture. In steady state (templates known) the counts must be equal. On
// the first pass goflow2 drops data sets that come before their template,
// which netpulse holds and decodes when the template arrives, and goflow2's
// pipe drops a whole datagram when any of its sets lacks a template; those
// flows are counted and must account for the whole difference.
func TestSameFlowCount(t *testing.T) {
	for _, name := range captureNames() {
		t.Run(name, func(t *testing.T) {
			dgs := loadCapture(t, name)
			sameFlowCount(t, dgs)
			// The same datagrams from the middle on, wrapping around: data
			// now comes before its template, as when a collector starts
			// while the exporter runs.
			t.Run("rotated", func(t *testing.T) {
				half := len(dgs) / 2
				sameFlowCount(t, append(slices.Clone(dgs[half:]), dgs[:half]...))
			})
		})
	}
}

func sameFlowCount(t *testing.T, dgs []capture.Datagram) {
	np := NewNetpulse()
	pass(np, dgs)
	npCold := np.Counts()
	stats := np.Decoder().NetFlow().Stats()
	np.Reset()
	pass(np, dgs)
	npHot := np.Counts()

	gd := NewGoflow2Decode()
	var raw []RawSet
	gd.OnRaw = func(r RawSet) { raw = append(raw, r) }
	pass(gd, dgs)
	gdCold := gd.Counts()
	gd.OnRaw = nil
	gd.Reset()
	pass(gd, dgs)
	gdHot := gd.Counts()

	gp, err := NewGoflow2Pipe("bin")
	if err != nil {
		t.Fatal(err)
	}
	var failed []int // datagrams the pipe rejected on the first pass
	for i := range dgs {
		if err := gp.Decode(&dgs[i]); err != nil {
			failed = append(failed, i)
		}
	}
	gpCold := gp.Counts()
	gp.Reset()
	pass(gp, dgs)
	gpHot := gp.Counts()

	t.Logf("%d datagrams; flows first pass / steady: netpulse %d / %d, goflow2-decode %d / %d, goflow2-proto %d / %d",
		len(dgs), npCold.Flows, npHot.Flows, gdCold.Flows, gdHot.Flows, gpCold.Flows, gpHot.Flows)
	if npHot.Reverse > 0 {
		t.Logf("netpulse also emits %d reverse biflow records (RFC 5103) per pass: goflow2 makes one message per data record and ignores the reverse elements", npHot.Reverse)
	}
	if npHot.Counters > 0 {
		t.Logf("netpulse also emits %d sFlow counter records per pass: goflow2's producer drops counter samples", npHot.Counters)
	}
	if npHot.Errors+gdHot.Errors+gpHot.Errors > 0 {
		t.Logf("decode errors per steady pass: netpulse %d, goflow2-decode %d, goflow2-proto %d", npHot.Errors, gdHot.Errors, gpHot.Errors)
	}

	// Steady state: all three must agree.
	if npHot.Flows != gdHot.Flows || npHot.Flows != gpHot.Flows {
		t.Errorf("steady state: netpulse %d flows, goflow2-decode %d, goflow2-proto %d", npHot.Flows, gdHot.Flows, gpHot.Flows)
	}

	// First pass, goflow2's decoders: the sets that came before their
	// template, decoded now that it is known.
	rawFlows, rawUnknown := 0, 0
	for _, r := range raw {
		n, ok := gd.RawFlows(r)
		rawFlows += n
		if !ok {
			rawUnknown++
		}
	}
	if len(raw) > 0 {
		t.Logf("goflow2-decode, first pass: %d data sets came before their template, %d flows dropped (%d sets whose template never came); netpulse held %d sets, decoded %d when the template came, %d expired, %d dropped, %d still held",
			len(raw), rawFlows, rawUnknown, stats.HeldSets, stats.HeldDecoded, stats.HeldExpired, stats.HeldDropped, stats.HeldNow)
	}
	if gdCold.Flows+rawFlows != npCold.Flows {
		t.Errorf("first pass: goflow2-decode %d flows + %d dropped before their template != netpulse %d", gdCold.Flows, rawFlows, npCold.Flows)
	}

	// First pass, goflow2's pipe: whole datagrams rejected.
	lost := 0
	if len(failed) > 0 {
		ref := NewGoflow2Decode()
		pass(ref, dgs) // learn every template
		for _, i := range failed {
			ref.Reset()
			_ = ref.Decode(&dgs[i])
			lost += ref.Counts().Flows
		}
		t.Logf("goflow2-proto, first pass: %d datagrams rejected (a set without its template fails the datagram), %d flows in them", len(failed), lost)
	}
	if gpCold.Flows+lost != npCold.Flows {
		t.Errorf("first pass: goflow2-proto %d flows + %d in rejected datagrams != netpulse %d", gpCold.Flows, lost, npCold.Flows)
	}
}
